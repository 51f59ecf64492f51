"""zoo's command line. Commands are thin: parse, call the library, print. Errors are handled once, in :func:`main`."""

from __future__ import annotations

import sys
import traceback

from zoo.cli._app import app, info, split_global_options, use_zoo_commands
from zoo.cli import cmd_bench, cmd_convert, cmd_export, cmd_models, cmd_run, cmd_store, cmd_verify  # noqa: F401
from zoo.cli import cmd_quantize  # noqa: F401,E402
from zoo.cli import cmd_eval  # noqa: F401,E402
from zoo.cli import cmd_add  # noqa: F401,E402
from zoo.cli import cmd_tune  # noqa: F401,E402
from zoo.cli import cmd_serve  # noqa: F401,E402

use_zoo_commands()

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map every error to a one-line message and an exit code (1 error, 2 usage, 130 Ctrl-C)."""
    import os
    import warnings

    from typer._click.exceptions import NoArgsIsHelpError
    from typer.exceptions import Abort, Exit, TyperException

    # paddle, when a command needs it, should not bury zoo's output under its build and glog chatter
    warnings.filterwarnings("ignore", message="No ccache found")
    os.environ.setdefault("GLOG_minloglevel", "2")

    from zoo import config

    if config.completing():  # typer answers and exits inside app(); its shell classes must be registered first
        from typer.completion import completion_init

        completion_init()
    interrupted = False
    import signal
    import threading

    main_thread = threading.current_thread() is threading.main_thread()  # signal handlers can only be set there
    saved = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None  # cleans up like ^C
    shown, warnings.showwarning = warnings.showwarning, _one_line_warning(warnings.showwarning)
    try:
        args = split_global_options(sys.argv[1:] if argv is None else list(argv))
        result = app(args=args, prog_name="zoo", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except Exit as exc:
        code = exc.exit_code
        interrupted = getattr(exc, "said", False)  # the command already said it was interrupted
    except (KeyboardInterrupt, Abort):
        print("zoo: interrupted", file=sys.stderr)
        code, interrupted = 130, True
    except NoArgsIsHelpError as exc:  # bare `zoo` or `zoo cache`: the help, not an error
        exc.show()
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the one place every error becomes one line
        if config.debug():
            traceback.print_exc()
        print(f"zoo: error: {error_line(exc)}", file=sys.stderr)
        code = exc.exit_code if isinstance(exc, TyperException) else 1
    if code == 130 and not interrupted:  # typer turns Ctrl-C into Exit(130) by itself
        print("zoo: interrupted", file=sys.stderr)
    if saved is not None:
        signal.signal(signal.SIGTERM, saved)
    warnings.showwarning = shown
    sys.stdout.flush()
    return code


def _one_line_warning(python_shows):  # noqa: ANN001, ANN202 - warnings.showwarning's own signature
    """A showwarning that says zoo's own warnings (from any command, the Ray engine's driver included) as one line,
    ``zoo: warning: ...``, and leaves everyone else's to Python."""

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if category.__module__.split(".")[0] == "zoo":
            info(f"zoo: warning: {message}")  # above any progress bar, wrapped to the terminal as zoo's lines are
        else:
            python_shows(message, category, filename, lineno, file, line)

    return show


def error_line(exc: BaseException) -> str:
    """Any error as the one line the user sees: what happened and what to run next.

    zoo's own errors say both; a usage error gets the command's --help as the next step; anything else (a bug, or an
    OS error zoo did not anticipate) names its type and how to see the traceback.
    """
    from typer.exceptions import TyperException

    from zoo.errors import ZooError

    if isinstance(exc, ZooError):
        text = str(exc)
    elif isinstance(exc, TyperException):  # click's usage errors: one line, not click's 4-line usage block
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "zoo"
        text = f"{exc.format_message().removesuffix('.')}; see '{command} --help'"
    elif isinstance(exc, OSError):
        text = f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}; run again with ZOO_DEBUG=1 to see where"
    else:
        text = f"{type(exc).__name__}: {exc}; this is a bug in zoo: run again with ZOO_DEBUG=1 and report the traceback"
    return " ".join(text.split())  # messages quoting other libraries' multi-line text stay on one line
