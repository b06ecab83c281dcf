"""The ``bs-lib`` command line (also ``python -m bs_lib``).

Each command lives in the module that owns its subject and exposes two
functions, ``add_arguments(parser)`` and ``run(args) -> int``; this file only
lists them, so ``bs-lib --help`` stays fast (nothing heavy is imported until a
command is chosen).

Errors a user can fix (a missing file, a bad config, an unknown dataset, ...)
are printed as one line, ``error: <what went wrong and what to do>``, with exit
status 2; ``--debug`` shows their traceback instead. Any other exception is a
bug: its traceback is printed, followed by where to report it (exit status 1).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from bs_lib import home

#: command name -> (module that implements it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "report": ("bs_lib.course.report", "execute every notebook with papermill and write reports/"),
    "site": ("bs_lib.course.site", "build the course as a static web site: executed notebooks, course map as home"),
    "info": ("bs_lib.cli", "print versions, device, precision and the profiles"),
    "notebooks": ("bs_lib.course.notebooks", "check the course notebooks, or start a new one from the template"),
    "papers": ("bs_lib.course.survey.command", "the papers/ database: new entry, check, build the index and figures"),
    "datasets": ("bs_lib.datasets.catalogue", "list the registered datasets and whether each is present"),
    "download": ("bs_lib.download", "download a registered dataset into $BS_DATA_DIR"),
    "train": ("bs_lib.train", "train a model from a YAML run description (single process or accelerate launch)"),
    "sample": ("bs_lib.suppress", "suppress bones in your own radiographs with a trained checkpoint"),
    "benchmark": ("bs_lib.benchmark.cli", "train and evaluate every method on one split; write the leaderboard"),
}


#: Errors a user can fix from their message alone, by the module that defines them (subclasses
#: included: PairMismatchError is an ImageReadError, CredentialsMissingError a DownloadError, ...).
#: They are looked up in ``sys.modules`` only once something went wrong: a module that was never
#: imported cannot have raised its errors, and the command line imports nothing heavy to start.
USER_ERRORS: dict[str, tuple[str, ...]] = {
    "builtins": ("FileNotFoundError", "FileExistsError"),  # a path given on the command line
    "bs_lib.io": ("ImageReadError",),
    "bs_lib.engine.checkpoint": ("CheckpointError",),
    "bs_lib.engine.config": ("ConfigError",),
    "bs_lib.datasets.folders": ("DatasetNotFoundError",),
    "bs_lib.download": ("DownloadError",),
    "bs_lib.config": ("UnknownParameterError",),
    "bs_lib.course.survey.entries": ("PaperDatabaseError",),
}

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bs-lib",
        description="Bone suppression in chest X-rays: the course's command line.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one-line message")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, description=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status; a known error becomes one line and status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # before the command or after it
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        return run_command(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it
    except Exception as error:
        if debug:
            raise
        if isinstance(error, user_errors()):
            print(f"error: {one_line(error)}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"This looks like a bug: please report it, with the traceback above, at {home.issues_url()}",
              file=sys.stderr)
        return 1


def run_command(argv: list[str]) -> int:
    """Parse ``COMMAND [OPTIONS]``, import the command's module and run it."""
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}")
        parser.parse_args(argv)  # prints help for -h and errors for stray options
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"bs-lib {name}", description=summary)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)


def user_errors() -> tuple[type[Exception], ...]:
    """The classes of :data:`USER_ERRORS` whose modules are loaded."""
    found = (getattr(sys.modules.get(module), name, None) for module, names in USER_ERRORS.items() for name in names)
    return tuple(error for error in found if error is not None)


def one_line(error: Exception, limit: int = 300) -> str:
    """An error's message on one line: all of it when short, else its first line (the rest is detail)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    whole = " ".join(lines)
    return whole if len(whole) <= limit else lines[0]


# --------------------------------------------------------------------------- bs-lib info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``bs-lib info`` takes no options."""


def run(args: argparse.Namespace) -> int:
    from bs_lib.config import PROFILES, environment_report

    print(environment_report())
    print("\nprofiles:")
    for profile in PROFILES.values():
        print(f"  {profile.name:<6} {profile.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
