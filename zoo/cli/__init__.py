"""zoo's command line. Commands are thin: parse, call the library, print. Errors are handled once, in :func:`main`."""

from __future__ import annotations

import sys
import traceback

from zoo.cli._app import app, split_global_options, use_zoo_commands
from zoo.cli import cmd_bench, cmd_convert, cmd_export, cmd_models, cmd_run, cmd_store, cmd_verify  # noqa: F401
from zoo.cli import cmd_eval  # noqa: F401,E402

use_zoo_commands()

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map every error to a one-line message and an exit code (1 error, 2 usage, 130 Ctrl-C)."""
    import os
    import warnings

    from typer.exceptions import Abort, Exit, TyperException

    # paddle, when a command needs it, should not bury zoo's output under its build and glog chatter
    warnings.filterwarnings("ignore", message="No ccache found")
    os.environ.setdefault("GLOG_minloglevel", "2")

    from zoo import config
    from zoo.errors import ZooError

    interrupted = False
    try:
        args = split_global_options(sys.argv[1:] if argv is None else list(argv))
        result = app(args=args, prog_name="zoo", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except ZooError as exc:
        if config.debug():
            traceback.print_exc()
        print(f"zoo: error: {exc}", file=sys.stderr)
        code = 1
    except Exit as exc:
        code = exc.exit_code
    except TyperException as exc:  # usage errors: typer's own message, exit 2
        exc.show()
        code = exc.exit_code
    except (KeyboardInterrupt, Abort):
        print("zoo: interrupted", file=sys.stderr)
        code, interrupted = 130, True
    if code == 130 and not interrupted:  # typer turns Ctrl-C into Exit(130) by itself
        print("zoo: interrupted", file=sys.stderr)
    sys.stdout.flush()
    return code
