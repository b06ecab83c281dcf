"""``python -m bs_lib benchmark``: train and evaluate every method on one split; write the leaderboard.

Examples::

    python -m bs_lib benchmark --profile smoke --image-size 128 --output benchmarks/results/benchmark_smoke_128
    python -m bs_lib benchmark --dataset real-pairs --methods unet resnet_bs
    python -m bs_lib benchmark --dataset path/to/pairs --train-steps 200 --train-steps unet=400
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bs_lib import config as course_config
from bs_lib.augment import CHAINS
from bs_lib.benchmark.methods import all_methods, check_method_names
from bs_lib.benchmark.run import run_benchmark


def parse_train_steps(values: Sequence[str]) -> dict[str, int]:
    """``["200", "unet=400"]`` -> ``{"all": 200, "unet": 400}``; bad items raise a clear error."""
    parsed = {}
    for value in values:
        name, sep, count = value.rpartition("=") if "=" in value else ("all", "=", value)
        try:
            steps = int(count)
        except ValueError:
            steps = 0
        if not sep or not name or steps < 1:
            raise ValueError(f"--train-steps {value!r}: give a positive number of training steps, for every method "
                             f"(--train-steps 200) or one (--train-steps unet=200).")
        parsed[name] = steps
    return parsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="smoke", help="smoke | colab | full (configs, test images)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"methods to run (default: all); identity is always added. Known: "
                             f"{', '.join(all_methods())}")
    parser.add_argument("--image-size", type=int, default=None, help="image side (default: the profile's)")
    parser.add_argument("--num-test", type=int, default=-1,
                        help="test images (default: 16 in smoke, 64 in colab, all in full; 0 = all)")
    parser.add_argument("--train-steps", action="append", default=[], metavar="[METHOD=]N",
                        help="training steps for every method (N) or one (METHOD=N); repeatable")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every config's training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="phantom",
                        help="test data: phantom (default), real-pairs, another registered dataset, or a folder of "
                             "radiograph / soft-tissue pairs")
    parser.add_argument("--split", type=Path, default=None, help="restrict the test set to a saved split file")
    parser.add_argument("--runs-dir", type=Path, default=None, help="training runs (default: $BS_RUNS_DIR)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--batch-size", type=int, default=8, help="inference batch size")
    parser.add_argument("--output", type=Path, default=None,
                        help="write <OUTPUT>.md/.html/.csv/.json/_cases.png/_differences.png/_split.json")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--randomise", nargs="?", const=True, default=False, metavar="CHAIN",
                        help="train the learned methods (not BS-LDM) through random imaging chains, in runs of "
                             "their own (bs_lib.augment; for testing on real radiographs); CHAIN: one of "
                             f"{', '.join(CHAINS)} (without CHAIN: default)")


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (``python -m bs_lib benchmark ...``), rebuilt from ``sys.argv``."""
    argv = sys.argv[1:]
    if "benchmark" in argv:
        return "python -m bs_lib " + shlex.join(argv[argv.index("benchmark"):])
    words = []
    for key, value in vars(args).items():  # called from Python: every option that is set, as it would be typed
        flag = "--" + key.replace("_", "-")
        if value is None or value is False or (isinstance(value, list) and not value):
            continue
        values = [] if value is True else [str(v) for v in value] if isinstance(value, list) else [str(value)]
        words += [flag, *values]
    return "python -m bs_lib benchmark " + shlex.join(words)


def run(args: argparse.Namespace) -> int:
    try:
        check_method_names(args.methods or [])
        train_steps = parse_train_steps(args.train_steps)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    course_config.setup(args.profile, seed=args.seed, device=args.device)  # seeds; one torch thread in smoke on a CPU
    output = args.output
    try:
        result = run_benchmark(args.methods, args.profile, image_size=args.image_size,
                               num_test=None if args.num_test == 0 else args.num_test, seed=args.seed,
                               train_steps=train_steps, steps_scale=args.steps_scale, runs=args.runs_dir,
                               device=args.device, dataset=args.dataset, split_file=args.split,
                               split_out=output.with_name(output.name + "_split.json") if output else None,
                               batch_size=args.batch_size, randomise=args.randomise, command=command_line(args))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.leaderboard_markdown())
    if output is not None:
        written = result.save(output, figures=not args.no_figures)
        print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
