"""The ``bs-lib`` command line (also ``python -m bs_lib``).

Each command lives in the module that owns its subject and exposes two
functions, ``add_arguments(parser)`` and ``run(args) -> int``; this file only
lists them, so ``bs-lib --help`` stays fast (nothing heavy is imported until a
command is chosen).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: command name -> (module that implements it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "report": ("bs_lib.report", "execute every notebook with papermill and write reports/"),
    "info": ("bs_lib.cli", "print versions, device, precision and the profiles"),
    "notebooks": ("bs_lib.notebooks", "check the course notebooks, or start a new one from the template"),
    "papers": ("bs_lib.survey", "the papers/ database: new entry, check, build the index and figures"),
    "datasets": ("bs_lib.datasets", "list the registered datasets and whether each is present"),
    "download": ("bs_lib.download", "download a registered dataset into $BS_DATA_DIR"),
    "train": ("bs_lib.train", "train a model from a YAML run description (single process or accelerate launch)"),
    "sample": ("bs_lib.suppress", "suppress bones in your own radiographs with a trained checkpoint"),
    "benchmark": ("bs_lib.evaluate", "train and evaluate every method on one split; write the leaderboard"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bs-lib",
        description="Bone suppression in chest X-rays: the course's command line.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, description=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
