"""``python -m bs_lib train``: train any method of the course from a YAML run description.

::

    python -m bs_lib train unet --profile smoke --set steps=200
    python -m bs_lib train run.yaml --set lr=2e-4 --resume
    accelerate launch --multi_gpu --num_processes 2 -m bs_lib train run.yaml --resume

The loop itself is :mod:`bs_lib.engine`; this module is its command line, and
it keeps the names older code imports from here (``from bs_lib.train import
Trainer``). Importing it imports :mod:`bs_lib.models`, so every method of the
course is registered and can be named in a config.
"""

from __future__ import annotations

import argparse

import bs_lib.models  # noqa: F401  (registers every method of the course)
from bs_lib import config as course_config
from bs_lib import engine
from bs_lib.engine import (
    ConfigError,
    Objective,
    TrainConfig,
    Trainer,
    build_datasets,
    discard_stale_run,
    finished_run,
    fit_or_reuse,
    read_state,
    register_method,
    resolve_checkpoint,
    train_needed_runs,
    train_or_reuse,
)
from bs_lib.engine.data import collate_tensors
from bs_lib.engine.distributed import end_processes
from bs_lib.engine.optim import EMA

__all__ = [  # the names notebooks, benchmarks and bs_lib.evaluate still import from here
    "EMA", "Objective", "TrainConfig", "Trainer", "add_arguments", "build_datasets", "build_objective",
    "collate_tensors", "discard_stale_run", "finished_run", "fit_or_reuse", "read_state", "register_method",
    "resolve_checkpoint", "run", "train_or_reuse",
]


def build_objective(config: TrainConfig) -> Objective:
    """The objective of ``config``, after training the runs its method needs first (a distillation teacher).

    Temporary: notebook 05 builds a distillation student through this name and
    relies on it to train the teacher. Once the notebook calls
    :func:`bs_lib.engine.train_needed_runs` itself, this becomes a plain
    re-export of :func:`bs_lib.engine.build_objective`, which only builds.
    """
    train_needed_runs(config)
    return engine.build_objective(config)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a method with a config in bs_lib/configs (e.g. bs_ldm), or a YAML file: "
                                       "a flat run description or base + profile sections")
    parser.add_argument("--profile", default=None, help="the profile section to use (default: $BS_PROFILE, "
                                                        "else smoke on a CPU and colab on a GPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set steps=200 --set method_args.depth=3")
    parser.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    profile = course_config.get_profile(args.profile or course_config.default_profile()).name
    config = engine.resolve_run_config(args.config, profile, args.overrides)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    if not config.method:
        raise ConfigError(f"{args.config}: 'method' is empty; name a registered method or 'module:function'.")
    course_config.seed_everything(config.seed)  # identical initial weights in every process
    train_needed_runs(config)
    trainer = Trainer(engine.build_objective(config), config, *build_datasets(config))
    result = trainer.fit(resume=args.resume)
    if trainer.is_main_process:
        last = result.history[-1] if result.history else {}
        summary = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k != "step")
        print(f"{config.name}: step {result.final_step}/{config.steps} in {result.wall_time_s:.1f} s "
              f"({result.images_per_s:.1f} images/s); {summary}\ncheckpoint: {result.checkpoint}")
    end_processes()
    return 0
