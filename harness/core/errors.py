"""The one error base of the harness.

Every error caused by the user's input derives from ``UserError``; the CLI turns it (and ``OSError``)
into one line on stderr and exit 2. Anything else is a programming error and keeps its traceback.
Bottom floor: imports nothing.
"""


class UserError(Exception):
    """Bad input: a missing/corrupt file, wrong shape or dtype, a spec mismatch. Message = one line."""


class InputFileError(UserError):
    """A file that is missing, unreadable or malformed; the message names the file."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path


def one_line(e: BaseException) -> str:
    """The first line of an exception's message, never empty (used by the CLI and error wrappers)."""
    text = str(e).strip()
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return text.splitlines()[0] if text else type(e).__name__
