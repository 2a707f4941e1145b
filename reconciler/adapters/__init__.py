"""Layer 3: every piece of I/O (YAML files, git, the store, harness processes)."""
