"""The benchmark on a phantom with a deeper abdomen: does removing the "bright is bone" shortcut help on real chests?

    python benchmarks/phantom_abdomen.py --abdomen 0.3 -- --profile smoke --image-size 256 --steps-scale 4 \\
        --num-test 0 --dataset real-pairs --seed 0 --output benchmarks/results/real_pairs_256_abdomen

On the phantom the brightest pixels are bone (the spine, the clavicles); on a
real chest the abdomen below the diaphragm and the heart are as bright
(``bright is bone`` in :mod:`bs_lib.realism`: +0.041 on the phantom, −0.006
on the real development pairs, ``benchmarks/results/realism_256.md``). A
network that sees little context can learn "bright means bone" and remove the
abdomen of a real chest. The phantom's body is 12 % deeper below the diaphragm
than through the chest (:data:`bs_lib.phantom.ABDOMEN_EXTRA`); this script
sets another depth (``--abdomen``) for one run of ``python -m bs_lib benchmark``
(the arguments after ``--``), trains in runs of their own
(``.cache/benchmark-runs-abdomen-<depth>`` unless ``--runs-dir`` is given: a
run's name does not say which phantom it saw), and notes the depth at the top
of the leaderboard it writes. No real target is trained on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--abdomen", type=float, required=True,
                        help="extra soft-tissue depth below the diaphragm, as a share of the chest's (default 0.12)")
    parser.add_argument("benchmark", nargs=argparse.REMAINDER, help="-- then the arguments of bs_lib benchmark")
    args = parser.parse_args(argv)
    forwarded = [a for a in args.benchmark if a != "--"]
    if args.abdomen < 0:
        parser.error(f"--abdomen must be 0 or more, got {args.abdomen}")
    if "--runs-dir" not in forwarded:
        forwarded += ["--runs-dir", f".cache/benchmark-runs-abdomen-{args.abdomen:g}"]

    from bs_lib import phantom
    from bs_lib.cli import main as bs_lib_main

    default, phantom.ABDOMEN_EXTRA = phantom.ABDOMEN_EXTRA, args.abdomen
    try:
        status = bs_lib_main(["benchmark", *forwarded])
    finally:
        phantom.ABDOMEN_EXTRA = default
    if status == 0 and "--output" in forwarded:
        stem = Path(forwarded[forwarded.index("--output") + 1])
        report = stem.with_name(stem.name + ".md")  # as the benchmark names it (a stem may hold a dot)
        lines = report.read_text().splitlines()
        note = (f"- phantom variant: abdomen {args.abdomen:g} deeper than the chest (the default phantom: "
                f"{default:g}); written by `python benchmarks/phantom_abdomen.py --abdomen {args.abdomen:g} -- "
                f"{' '.join(a for a in args.benchmark if a != '--')}`")
        first_item = next(i for i, line in enumerate(lines) if line.startswith("- "))
        report.write_text("\n".join([*lines[:first_item], note, *lines[first_item:]]) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
