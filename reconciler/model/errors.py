"""Our error types and the CLI exit codes they map to.

Two axes: whose fault (the user's input vs the infrastructure) and whether to retry. Library
exceptions are wrapped in these (`raise ... from exc`) so the CLI prints one clear line, never a
traceback.
"""

from __future__ import annotations

from enum import IntEnum

from reconciler.model.specset import SourceLocation


class ExitCode(IntEnum):
    OK = 0
    USER_ERROR = 1
    """Bad spec, bad argument, unknown ref; or a gate that failed."""
    PENDING = 2
    """Per command: work pending (`plan --detailed-exitcode`), tests failed, results incomplete."""
    INFRASTRUCTURE = 3
    """Git remote unreachable, store unwritable, a worker down: try again later."""


class ReconcilerError(Exception):
    """An error we expected and can explain: what, where, and what to do next."""

    exit_code: ExitCode = ExitCode.USER_ERROR
    retryable: bool = False

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} (hint: {self.hint})" if self.hint else text


class UserError(ReconcilerError):
    exit_code = ExitCode.USER_ERROR


class InfrastructureError(ReconcilerError):
    exit_code = ExitCode.INFRASTRUCTURE
    retryable = True


class SpecError(UserError):
    """One problem in one spec document, located as FILE:LINE:COLUMN."""

    def __init__(self, message: str, *, location: SourceLocation | None, hint: str | None = None):
        super().__init__(message, where=str(location) if location else None, hint=hint)
        self.location = location

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        if self.location is None:
            return ("", 0, 0, self.message)
        return (self.location.file, self.location.line, self.location.column, self.message)


class SpecErrors(UserError):
    """Every problem found in a spec directory, reported together."""

    def __init__(self, errors: list[SpecError]):
        self.errors = sorted(errors, key=lambda e: e.sort_key)
        count = len(self.errors)
        super().__init__(f"{count} error{'s' if count != 1 else ''} in specs")

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class GitError(UserError):
    """A ref that does not exist, a commit that is not there: the spec asked for it."""


class GitUnreachableError(InfrastructureError):
    """A repository that cannot be read or fetched."""


class StoreError(InfrastructureError):
    """The store cannot be read or written."""


class HarnessError(UserError):
    """A harness could not enumerate or parse: its spec or its output is wrong."""


class WorkerUnreachable(InfrastructureError):
    """A worker host could not be reached or dropped the connection mid-command."""
