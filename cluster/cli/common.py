"""What every `callfleet` command module shares: the consoles, the one error a command
raises for its user, the decorator that reports errors as one red line and an exit
status, and where the cluster's Redis and model registry are.

Exit statuses: 0 done; 2 the user asked for something impossible (a mistake in the
command line or a file, an unknown id); 1 something the command needs is not there
(Redis unreachable, a file it cannot read or write). Any other exception is a bug and
keeps its traceback.

`callfleet --help` imports every command module, so this one imports only rich and the
(stdlib-only) model registry; settings and the cluster lifecycle are imported inside the
functions that use them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import wraps

from rich.console import Console
from rich.markup import escape

from cluster.runtime.lifecycle import read_info
from configs.settings import load_settings
from training.models.registry import ModelRegistry

__all__ = [
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "Handler",
    "console",
    "model_registry",
    "out",
    "print_error",
    "redis_url",
    "redis_url_option",
    "reports_errors",
]

Handler = Callable[[argparse.Namespace], int]
ErrorTypes = Callable[[], tuple[type[Exception], ...]]

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 1


def _console(stderr: bool, piped_width: int) -> Console:
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=piped_width)


#: progress, messages and errors (stderr); piped or logged, a fixed width keeps tables readable
console = _console(stderr=True, piped_width=140)
#: results people read (stdout): tables and listings
out = _console(stderr=False, piped_width=160)


class CliError(Exception):
    """What a command tells its user instead of a traceback: one line, then `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def print_error(message: str) -> None:
    """``error: message`` in red on stderr, never wrapped or read as markup."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False,
                  emoji=False)


def _no_errors() -> tuple[type[Exception], ...]:
    return ()


def _os_errors() -> tuple[type[Exception], ...]:
    return (OSError,)


def reports_errors(user_errors: ErrorTypes = _no_errors,
                   unavailable: ErrorTypes = _os_errors) -> Callable[[Handler], Handler]:
    """Decorate a command so that known errors become one `print_error` line and a status.

    CliError exits with its own status; the types `user_errors()` returns with 2; those
    `unavailable()` returns (default: OSError, a file or socket the command needs) with 1.
    They are callables so a command module names its domain errors without importing
    them until one is raised.
    """

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        def run(args: argparse.Namespace) -> int:
            try:
                return handler(args)
            except Exception as exc:
                if isinstance(exc, CliError):
                    code = exc.exit_code
                elif isinstance(exc, user_errors()):
                    code = EXIT_USAGE
                elif isinstance(exc, unavailable()):
                    code = EXIT_UNAVAILABLE
                else:
                    raise
                print_error(str(exc))
                return code

        return run

    return decorate


def redis_url_option() -> argparse.ArgumentParser:
    """A parent parser adding ``--redis-url``; usable before and after the action (an
    absent one does not overwrite a value given earlier)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--redis-url", metavar="URL", default=argparse.SUPPRESS,
                        help="Redis of the cluster (default: the running cluster's, from "
                        "run/cluster.json, then redis_url from the settings)")
    return parent


def redis_url(args: argparse.Namespace, missing_exit_code: int = EXIT_USAGE) -> str:
    """The cluster's Redis: ``--redis-url``, else the running cluster's (``<state_dir>/run/
    cluster.json``, written by `callfleet up`), else ``redis_url`` from the settings.

    With none of them, CliError with `missing_exit_code` saying how to get one.
    """
    if getattr(args, "redis_url", None):
        return args.redis_url
    # lifecycle loads httpx and the Redis server wrapper, settings every section's schema:
    # only for commands that run, not for --help

    settings = load_settings(getattr(args, "config", None))
    info = read_info(settings)
    url = (info.redis_url if info else None) or settings.redis_url
    if not url:
        raise CliError(
            f"no running cluster found ({settings.state_dir / 'run' / 'cluster.json'} is "
            "missing) and no redis_url configured; start one with `callfleet up` or pass "
            "--redis-url", exit_code=missing_exit_code)
    return url


def model_registry(args: argparse.Namespace, folder_option: str = "registry") -> ModelRegistry:
    """The registry named by the `folder_option` argument, else ``registry_path`` from the
    settings."""
    from configs.settings import load_settings  # every section's schema: not for --help

    folder = getattr(args, folder_option, None)
    if folder:
        return ModelRegistry(folder)
    settings = load_settings(getattr(args, "config", None))
    return ModelRegistry(settings.registry_path, settings.registry_url)
