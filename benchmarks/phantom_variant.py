"""The benchmark on another phantom: does closing one realism gap help on real chests?

    python benchmarks/phantom_variant.py --rib-spacing 0.13 0.165 -- --profile smoke --image-size 256 \\
        --steps-scale 4 --num-test 0 --dataset real-pairs --seed 0 --output benchmarks/results/real_pairs_256_ribs

Three gaps between the phantom and the real development pairs
(``benchmarks/results/realism_256.md``) can be closed here, each with a flag:

``--abdomen DEPTH``
    On the phantom the brightest pixels are bone (the spine, the clavicles);
    on a real chest the abdomen below the diaphragm and the heart are as
    bright (``bright is bone`` in :mod:`bs_lib.realism`: +0.041 on the
    phantom, −0.006 on the real pairs). A network that sees little context
    can learn "bright means bone" and remove the abdomen of a real chest. The
    phantom's body is 12 % deeper below the diaphragm than through the chest
    (:data:`bs_lib.phantom.ABDOMEN_EXTRA`); ``--abdomen 0.3`` makes it 30 %.
``--rib-spacing LOW HIGH``
    The phantom's ribs lie closer together than real ones (``rib period``:
    0.058 of the image height against 0.074, every real pair outside the
    phantom's range). Their spacing is drawn from
    :data:`bs_lib.phantom.RIB_SPACING`, 0.105–0.125 image units;
    ``--rib-spacing 0.13 0.165`` gives a period of 0.074.
``--rib-arch LOW HIGH``
    The phantom's ribs run almost flat across the lateral lungs; real ones
    curve steeply down the chest wall (``rib tilt``: 12° against 42°, where
    white noise alone reads about 45°). How far the posterior ribs fall from
    the spine to the chest wall is drawn from :data:`bs_lib.phantom.RIB_ARCH`,
    0.18–0.26; ``--rib-arch 0.55 0.8`` (with ``--rib-spacing 0.13 0.165``)
    gives 36°.

The script runs ``python -m bs_lib benchmark`` (the arguments after ``--``)
on that phantom, trains in runs of its own (``.cache/benchmark-runs-<variant>``
unless ``--runs-dir`` is given: a run's name does not say which phantom it
saw), puts the default phantom back, and notes the variant at the top of the
leaderboard it writes. No real target is trained on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def variant(args: argparse.Namespace) -> tuple[dict, str, str]:
    """:func:`bs_lib.phantom.variant`'s arguments, a name for the runs folder, the words for the leaderboard."""
    from bs_lib import phantom

    settings, names, words = {}, [], []
    if args.abdomen is not None:
        settings["abdomen_extra"] = args.abdomen
        names.append(f"abdomen-{args.abdomen:g}")
        words.append(f"abdomen {args.abdomen:g} deeper than the chest (the default phantom: "
                     f"{phantom.ABDOMEN_EXTRA:g})")
    if args.rib_spacing is not None:
        low, high = settings["rib_spacing"] = tuple(args.rib_spacing)
        names.append(f"ribs-{low:g}-{high:g}")
        default_low, default_high = phantom.RIB_SPACING
        words.append(f"ribs {low:g}–{high:g} apart (the default phantom: {default_low:g}–{default_high:g})")
    if args.rib_arch is not None:
        low, high = settings["rib_arch"] = tuple(args.rib_arch)
        names.append(f"arch-{low:g}-{high:g}")
        default_low, default_high = phantom.RIB_ARCH
        words.append(f"ribs falling {low:g}–{high:g} (the default phantom: {default_low:g}–{default_high:g})")
    return settings, "-".join(names), "; ".join(words)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--abdomen", type=float,
                        help="extra soft-tissue depth below the diaphragm, as a share of the chest's (default 0.12)")
    parser.add_argument("--rib-spacing", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="range of the ribs' vertical spacing in image units (default 0.105 0.125)")
    parser.add_argument("--rib-arch", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="range of how far the posterior ribs fall to the chest wall (default 0.18 0.26)")
    parser.add_argument("benchmark", nargs=argparse.REMAINDER, help="-- then the arguments of bs_lib benchmark")
    args = parser.parse_args(argv)
    if args.abdomen is None and args.rib_spacing is None and args.rib_arch is None:
        parser.error("name what to change: --abdomen DEPTH, --rib-spacing LOW HIGH, --rib-arch LOW HIGH")
    if args.abdomen is not None and args.abdomen < 0:
        parser.error(f"--abdomen must be 0 or more, got {args.abdomen}")
    if args.rib_spacing is not None and not 0 < args.rib_spacing[0] <= args.rib_spacing[1] <= 0.3:
        parser.error(f"--rib-spacing needs 0 < LOW <= HIGH <= 0.3 (image units: the image is 2 tall, and the "
                     f"default phantom's ribs are 0.105-0.125 apart), got {args.rib_spacing[0]:g} "
                     f"{args.rib_spacing[1]:g}")
    if args.rib_arch is not None and not 0 <= args.rib_arch[0] <= args.rib_arch[1] <= 1:
        parser.error(f"--rib-arch needs 0 <= LOW <= HIGH <= 1 (image units; the default phantom's ribs fall "
                     f"0.18-0.26), got {args.rib_arch[0]:g} {args.rib_arch[1]:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    forwarded = [a for a in args.benchmark if a != "--"]
    command = (f"python benchmarks/phantom_variant.py {' '.join(argv[:len(argv) - len(args.benchmark)])} -- "
               f"{' '.join(forwarded)}")

    from bs_lib import phantom
    from bs_lib.cli import main as bs_lib_main

    settings, name, words = variant(args)
    if "--runs-dir" not in forwarded:
        forwarded += ["--runs-dir", f".cache/benchmark-runs-{name}"]
    with phantom.variant(**settings):
        status = bs_lib_main(["benchmark", *forwarded])
    if status == 0 and "--output" in forwarded:
        stem = Path(forwarded[forwarded.index("--output") + 1])
        report = stem.with_name(stem.name + ".md")  # as the benchmark names it (a stem may hold a dot)
        lines = report.read_text().splitlines()
        note = f"- phantom variant: {words}; written by `{command}`"
        first_item = next(i for i, line in enumerate(lines) if line.startswith("- "))
        report.write_text("\n".join([*lines[:first_item], note, *lines[first_item:]]) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
