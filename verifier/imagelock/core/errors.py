"""Errors that carry what went wrong, where, and what to do, plus the exit code the CLI maps them to.

Exit codes (documented in docs/exit-codes.md and spec/README.md):
0 ok; 1 verification failed or mismatch; 2 bad input or usage; 3 an input could not be
fetched; 4 sandbox or tool unavailable; 70 internal error (a bug); 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_FETCH_FAILED = 3
EXIT_TOOL_UNAVAILABLE = 4
EXIT_INTERNAL = 70
"""A bug of ours: the CLI's last line of defence, never an expected outcome."""
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report a process ended by SIGINT."""


class ImagelockError(Exception):
    """Base error: a message, optionally the file and field it concerns, and a hint."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.hint = hint
        # Set when the message already names its places (a list of validation errors).
        self.located = False

    def render(self) -> str:
        """One human-readable block: `file:line: field: message` then the hint."""
        where = ""
        if self.located:
            pass
        elif self.path:
            where = self.path + (f":{self.line}" if self.line else "") + ": "
        if self.field and not self.located:
            where += f"{self.field}: "
        text = f"error: {where}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def as_json(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "field": self.field,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class InputError(ImagelockError):
    """The user's input (spec, lock, policy, arguments, context files) is wrong."""

    exit_code = EXIT_BAD_INPUT


class UnsupportedInput(InputError):
    """Well-formed input that uses a feature imagelock, or a library it verifies with, does not
    support: named as unsupported, never reported as some other failure."""


class StaleLockError(InputError):
    """The lock no longer matches the spec or the context it was made from."""


class FetchError(ImagelockError):
    """An input could not be had with the pinned content: network failure or digest mismatch."""

    exit_code = EXIT_FETCH_FAILED


class IntegrityError(FetchError):
    """Bytes did not hash to the digest that pins them; they were discarded."""


class VerificationFailed(ImagelockError):
    """A verification ran and said no (a signature, a policy, a digest that must match)."""

    exit_code = EXIT_VERIFICATION_FAILED


class ToolUnavailable(ImagelockError):
    """A required external tool or the sandbox is missing or cannot run here."""

    exit_code = EXIT_TOOL_UNAVAILABLE


class UnsafeContentError(InputError):
    """An archive, package or image tried to escape the image root or carried a forbidden entry."""
