"""The `facecnn` command: parses flags, calls the API, prints with rich. Nothing else lives here.

Each module holds one group of commands and adds them with its `register`, in the order
`--help` lists them; options.py declares the flags they share.
"""

from __future__ import annotations

import sys

import typer
import typer.rich_utils

from facecnn.cli import cluster, faces, gallery, listing, serve, studies, training
from facecnn.errors import FacecnnError, Interrupted
from facecnn.terminal import configure_logging, debugging, err_console, output_width

# --help as wide as the tables: TERMINAL_WIDTH (typer's own) wins, then ours off a terminal
typer.rich_utils.MAX_WIDTH = typer.rich_utils.MAX_WIDTH or output_width(sys.stdout)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Face recognition with convolutional networks: train, evaluate, predict.")


def _print_version(value: bool) -> None:
    """Read the installed package's metadata, so `--version` never imports torch."""
    if value:
        from importlib.metadata import version

        print(version("facecnn"))
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version,
                                          is_eager=True, help="Print the version and exit.")
             ) -> None:
    """Options that come before any command."""


for commands in (training, faces, cluster, serve, gallery, listing, studies):
    commands.register(app)


def main() -> None:
    """Console entry point: user errors become one line on stderr and an exit code, and so
    does a bug (exit 1); `FACECNN_DEBUG=1` adds the traceback to either."""
    debug = debugging()
    configure_logging()
    try:
        app()
    except FacecnnError as exc:
        if debug:
            err_console.print_exception()
        err_console.print(f"error: {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        err_console.print(f"interrupted: {exc}", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug, not the user's doing: say so in one line
        if debug:
            err_console.print_exception()
        err_console.print(f"error: unexpected {type(exc).__name__}: {exc} (a facecnn bug; "
                          "FACECNN_DEBUG=1 shows where)", highlight=False)
        sys.exit(1)
