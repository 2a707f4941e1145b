"""kernel-reconciler: a declarative, GitOps-style reconciler for Linux kernel test farms."""

__version__ = "0.1.0"
