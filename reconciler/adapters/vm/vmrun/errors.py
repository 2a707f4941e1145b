"""What can go wrong before the guest runs, split the way the reconciler splits its errors.

A `ConfigError` is the caller's mistake (a bad size, an unknown key, a payload too large for
the VM's memory); an `InfraError` is the worker's (QEMU or busybox missing, the kernel image
gone) and says what to do about it. Both become one event line, never a traceback.
"""

from __future__ import annotations


class ConfigError(Exception):
    """CONFIG is malformed or asks for something impossible."""


class InfraError(Exception):
    """The worker lacks something the VM needs."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
