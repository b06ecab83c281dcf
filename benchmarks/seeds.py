"""One leaderboard, several training seeds: which gains over identity survive a retrained model?

    python benchmarks/seeds.py RESULT.json [RESULT.json ...] --output benchmarks/results/real_pairs_256_seeds

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="benchmark JSON files, one per seed")
    parser.add_argument("--output", type=Path, help="write OUTPUT.md")
    args = parser.parse_args(argv)
    loaded = [load(path) for path in args.results]
    settings = [s for s, _ in loaded]
    seeds = [str(s.get("seed", "?")) for s in settings]
    data = settings[0].get("data_label") or settings[0].get("dataset", "the same test images")
    lines = [f"# Gains over identity across training seeds {', '.join(seeds)}", "",
             "Produced by `python benchmarks/seeds.py " + " ".join(str(p) for p in args.results)
             + (f" --output {args.output}`" if args.output else "`"), "",
             f"Data: **{data}**. Every column is a gain over the identity (do nothing) baseline on the same "
             "images: per training seed the mean over images, then the per-image gain averaged over the seeds "
             "with its paired bootstrap interval over the images. A seed passes when its mean PSNR gain is "
             "above 0 and its mean symmetric-BSR gain is not below 0.", "",
             table([run for _, run in loaded], seeds, settings[0]["labels"]), ""]
    text = "\n".join(lines)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
