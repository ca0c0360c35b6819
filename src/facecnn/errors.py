"""The exceptions the CLI turns into one line and an exit code, never a traceback."""

from pathlib import Path


class FacecnnError(Exception):
    """A problem with the user's input (a missing folder, a bad name, a corrupt file).

    The CLI catches it, prints `error: <message>` and exits with `exit_code`, so users never
    see a traceback for something they can fix.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(Exception):
    """Work stopped by Ctrl-C once what was done was kept: the message says what, and how to
    go on (`run_dir`: a training run's folder, which `--resume` continues)."""

    def __init__(self, message: str, run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir
