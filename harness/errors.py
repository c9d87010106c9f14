"""Errors the CLI turns into one line on stderr and a non-zero exit (traceback with --debug)."""


class UserError(Exception):
    """Bad input: a missing/corrupt file, wrong shape or dtype, a spec mismatch. Message = one line."""


class InputFileError(UserError):
    """A file that is missing, unreadable or malformed; the message names the file."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
