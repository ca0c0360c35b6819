"""The one exception type users see: the CLI prints its message on one line and exits."""


class FacecnnError(Exception):
    """A problem with the user's input (a missing folder, a bad name, a corrupt file).

    The CLI catches it, prints `error: <message>` and exits with `exit_code`, so users never
    see a traceback for something they can fix.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
