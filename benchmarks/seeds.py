"""One leaderboard, several training seeds: which gains over identity survive a retrained model?

    python benchmarks/seeds.py RESULT.json [RESULT.json ...] [--against B.json ...] \
        --output benchmarks/results/real_pairs_256_seeds

Each ``RESULT.json`` is what ``python -m bs_lib benchmark --output RESULT``
wrote for one ``--seed``, on the same test images. A single leaderboard is one
draw of every model's training: the same recipe trained again (another seed,
even another number of CPU threads, which changes the order of floating-point
sums) gives another model, and on images unlike the training data the two
can differ by more than the gap between families. This script puts the draws
side by side:

* per seed, every method's mean gain over identity (PSNR, symmetric BSR);
* the gain of the **seed-averaged** per-image scores, with its paired
  bootstrap interval over the test images (the training noise averaged out,
  the image-to-image spread kept);
* how many seeds pass the bar "PSNR above identity and symmetric BSR not
  below it" (both mean gains > 0 / ≥ 0 on that seed).

``--against B.json [B.json ...]`` compares with another set of seeds of the
same benchmark (another phantom, another recipe), scored on the same images:

    python benchmarks/seeds.py A_seed0.json A_seed1.json --against B_seed0.json B_seed1.json

For each method both sets trained, and for the mean of those methods, it
adds the difference of the seed-averaged per-image gains, A − B, with its
paired bootstrap interval over the images, and on how many images A is ahead.
The seeds of the two sets need not match: each set's training noise is
averaged first, and only the images are paired.

Writes ``OUTPUT.md``; prints it too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

IDENTITY = "identity"
METRICS = {"psnr": ("Δ PSNR (dB)", 1.0, 2), "bsr_symmetric": ("Δ BSR sym. (points)", 100.0, 1)}


def load(path: Path) -> tuple[dict, dict[str, dict[str, dict[str, float]]]]:
    """A benchmark JSON: its settings + ``labels`` and ``{method: {image id: {metric: value}}}``."""
    try:
        result = json.loads(Path(path).read_text())
        rows = result["per_image"]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"{path}: not a benchmark result (python -m bs_lib benchmark --output ... writes one): "
                         f"{error}") from error
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        scores.setdefault(row["method"], {})[row["id"]] = row
    labels = {row["method"]: row.get("label", row["method"]) for row in result.get("summary", [])}
    return {**result.get("settings", {}), "labels": labels}, scores


def gains(scores: dict[str, dict[str, dict[str, float]]], method: str, metric: str, ids: list[str]) -> np.ndarray:
    """Per-image gain of ``method`` over identity, in the order of ``ids``."""
    return np.array([scores[method][i][metric] - scores[IDENTITY][i][metric] for i in ids])


def common(runs: list[dict[str, dict[str, dict[str, float]]]]) -> tuple[list[str], list[str]]:
    """The methods every run has (identity first dropped) and the image ids every run scored."""
    methods = [m for m in runs[0] if m != IDENTITY and all(m in run for run in runs)]
    if any(IDENTITY not in run for run in runs):
        raise SystemExit("every result needs the identity baseline (the benchmark always adds it).")
    ids = sorted(set.intersection(*(set(run[IDENTITY]) for run in runs)))
    if not ids or any(len(run[IDENTITY]) != len(ids) for run in runs):
        raise SystemExit("the results were not measured on the same test images: run the benchmark with the same "
                         "--dataset, --image-size and --num-test for every seed.")
    return methods, ids


def table(runs: list[dict], seeds: list[str], labels: dict[str, str]) -> str:
    """The Markdown table, sorted by the seed-mean PSNR gain, best first."""
    from bs_lib.benchmark.tables import format_difference, markdown_table
    from bs_lib.evaluate import paired_difference

    methods, ids = common(runs)
    header = ["method"]
    for label, _, _ in METRICS.values():
        header += [f"{label}, seed {seed}" for seed in seeds] + [f"{label}, seed mean [95 % CI]"]
    header.append(f"seeds passing (of {len(runs)})")
    ranked = []
    for method in methods:
        row, passing = [labels.get(method, method)], np.ones(len(runs), dtype=bool)
        for metric, (_, scale, digits) in METRICS.items():
            per_seed = [scale * gains(run, method, metric, ids) for run in runs]
            row += [f"{g.mean():+.{digits}f}" for g in per_seed]
            row.append(format_difference(*paired_difference(np.mean(per_seed, axis=0), np.zeros(len(ids))), digits))
            means = np.array([g.mean() for g in per_seed])
            passing &= means > 0 if metric == "psnr" else means >= 0
        row.append(str(int(passing.sum())))
        ranked.append((np.mean([gains(run, method, "psnr", ids).mean() for run in runs]), row))
    return markdown_table(header, [row for _, row in sorted(ranked, key=lambda pair: -pair[0])])


def seed_mean(runs: list[dict], method: str, metric: str, ids: list[str]) -> np.ndarray:
    """Per-image gain of ``method`` over identity, averaged over the runs (seeds), scaled as :data:`METRICS` shows."""
    return METRICS[metric][1] * np.mean([gains(run, method, metric, ids) for run in runs], axis=0)


def comparison(runs: list[dict], against: list[dict], labels: dict[str, str]) -> str:
    """The Markdown table of A − B: per method both sets have, then their mean; intervals paired over the images."""
    from bs_lib.benchmark.tables import format_difference, markdown_table
    from bs_lib.evaluate import paired_difference

    methods_a, ids = common(runs)
    methods_b, ids_b = common(against)
    if ids != ids_b:
        raise SystemExit("--against: the two sets were not measured on the same test images; a paired difference "
                         "needs the same --dataset, --image-size and --num-test.")
    shared = [m for m in methods_a if m in methods_b]
    methods = [m for m in shared if any(np.any(seed_mean(runs, m, metric, ids) != seed_mean(against, m, metric, ids))
                                        for metric in METRICS)]
    if not methods:
        raise SystemExit("--against: the two sets have no method in common, besides identity, that scores "
                         "differently in them.")
    same = [labels.get(m, m) for m in shared if m not in methods]
    differences = {m: {metric: seed_mean(runs, m, metric, ids) - seed_mean(against, m, metric, ids)
                       for metric in METRICS} for m in methods}
    mean_label = f"**mean of the {len(methods)} methods**"
    differences[mean_label] = {metric: np.mean([d[metric] for d in differences.values()], axis=0) for metric in METRICS}
    header = ["method", *(f"{label}, A − B [95 % CI]" for label, _, _ in METRICS.values()),
              "images where A is ahead (PSNR)"]
    rows = [[labels.get(name, name),
             *(format_difference(*paired_difference(d[metric], np.zeros(len(ids))), digits)
               for metric, (_, _, digits) in METRICS.items()),
             f"{int(np.sum(d['psnr'] > 0))} of {len(ids)}"] for name, d in differences.items()]
    note = f"\n\nLeft out, scored the same in both sets (nothing learned): {', '.join(same)}." if same else ""
    return markdown_table(header, rows) + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="benchmark JSON files, one per seed")
    parser.add_argument("--against", nargs="+", type=Path, metavar="B.json",
                        help="another set of seeds on the same images: add the paired difference A − B")
    parser.add_argument("--output", type=Path, help="write OUTPUT.md")
    args = parser.parse_args(argv)
    loaded = [load(path) for path in args.results]
    settings = [s for s, _ in loaded]
    seeds = [str(s.get("seed", "?")) for s in settings]
    data = settings[0].get("data_label") or settings[0].get("dataset", "the same test images")
    command = " ".join(str(p) for p in args.results)
    command += " --against " + " ".join(str(p) for p in args.against) if args.against else ""
    lines = [f"# Gains over identity across training seeds {', '.join(seeds)}", "",
             f"Produced by `python benchmarks/seeds.py {command}"
             + (f" --output {args.output}`" if args.output else "`"), "",
             f"Data: **{data}**. Every column is a gain over the identity (do nothing) baseline on the same "
             "images: per training seed the mean over images, then the per-image gain averaged over the seeds "
             "with its paired bootstrap interval over the images. A seed passes when its mean PSNR gain is "
             "above 0 and its mean symmetric-BSR gain is not below 0.", "",
             table([run for _, run in loaded], seeds, settings[0]["labels"]), ""]
    if args.against:
        against = [load(path) for path in args.against]
        other_seeds = ", ".join(str(s.get("seed", "?")) for s, _ in against)
        names = ", ".join(path.stem for path in args.against)
        lines += [f"## A − B: these seeds (A) against {names} (B, seeds {other_seeds})",
                  "", "Each set's per-image gains over identity are averaged over its seeds; the difference "
                  "is paired over the images (bootstrap interval), so a difference whose interval excludes 0 "
                  "holds on these images for these recipes, not necessarily on other hospitals' radiographs.",
                  "", comparison([run for _, run in loaded], [run for _, run in against], settings[0]["labels"]), ""]
    text = "\n".join(lines)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
