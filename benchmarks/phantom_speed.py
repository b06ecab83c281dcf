"""Phantom rendering speed on one CPU core, in images per second.

    OMP_NUM_THREADS=1 python benchmarks/phantom_speed.py [--sizes 256 1024] [--count 20]

Each size renders ``count`` different seeds (after one warm-up render) with the
defaults of ``bs_lib.phantom.render`` (blur and quantum noise on) and prints
images/s. Targets: at least 50 images/s at 256² and 5 images/s at 1024².
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()

    import torch

    from bs_lib import phantom

    torch.set_num_threads(1)
    print(f"one core (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}), {args.count} images per size")
    for size in args.sizes:
        phantom.render(0, size)
        started = time.perf_counter()
        for seed in range(1, args.count + 1):
            phantom.render(seed, size)
        seconds = time.perf_counter() - started
        print(f"{size:>5}²: {args.count / seconds:6.1f} images/s ({1000 * seconds / args.count:.1f} ms per image)")


if __name__ == "__main__":
    main()
