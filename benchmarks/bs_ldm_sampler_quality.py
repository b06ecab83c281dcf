"""How few steps does BS-LDM's sampler need? Quality and time of short samplers against the official one.

    python benchmarks/bs_ldm_sampler_quality.py --profile smoke --image-size 128 --steps-scale 4 \\
        --runs-dir .cache/benchmark-runs --num-test 40 --output benchmarks/results/bs_ldm_samplers_smoke_128

BS-LDM is trained (or reused) exactly as ``python -m bs_lib benchmark`` trains it, so with the
same profile, size, scale and runs folder this measures the benchmark's own model. Every test
image is then sampled with

* DDPM, all 1 000 steps, with temporal adaptive thresholding (TAT): the official sampler and the
  **reference**; the same sampler from another seed (how far sampling noise alone moves the
  scores: the floor of any comparison); and DDPM 1 000 without thresholding;
* DDIM (η = 0) with each of ``--ddim-steps`` steps, and DPM-Solver++(2M), the second-order solver of
  the same path, with each of ``--dpm-steps``; each with TAT (rescaled to the step count) and without,
  on "leading" timesteps (the chain starts at T − T/n and ends at 0);
* both again with TAT on "trailing" timesteps (the chain starts at T − 1, where pure noise belongs;
  :func:`bs_lib.diffusion.sampling_timesteps`), with each of ``--trailing-steps``,

all from the same seed, and measured with :mod:`bs_lib.metrics` beside the identity baseline.
Each sampler is compared with the reference image by image: the mean paired difference and its
95 % bootstrap interval (:func:`bs_lib.evaluate.paired_difference`). A sampler counts as **equal
quality** when, for whole-image PSNR and symmetric BSR, the interval's lower end lies above
−margin (``--margin-psnr`` dB, ``--margin-bsr`` percentage points): a non-inferiority test.

Network evaluations (one per step) set the cost on any machine; seconds per image are measured
here too, on whatever device runs the script. Results belong in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bs_lib import evaluate
from bs_lib.engine.checkpoint import library_versions

COMPARED = ("psnr", "bsr_symmetric", "lung/psnr", "ssim")  # reported as paired differences
DECIDING = ("psnr", "bsr_symmetric")  # the non-inferiority test
SHOWN_SCALE = {"bsr_symmetric": 100.0}  # BSR is a fraction per image, shown in percent


@dataclass(frozen=True)
class Sampler:
    sampler: str  # a name in bs_lib.diffusion.SAMPLERS: "ddpm", "ddim" or "dpm++2m"
    sampling_steps: int | None  # None: every one of the schedule's 1 000 steps
    threshold: str  # "tat" or "none"
    seed_offset: int = 0  # another draw of the same sampler
    spacing: str = "leading"  # where a shorter chain's steps lie: "leading" or "trailing"

    @property
    def evaluations(self) -> int:
        return 1000 if self.sampling_steps is None else self.sampling_steps

    @property
    def name(self) -> str:
        name = f"{self.sampler.upper()} {self.evaluations}" + (f" {self.spacing}" if self.sampling_steps else "")
        name += " + TAT" if self.threshold == "tat" else ""
        return name + (f", seed +{self.seed_offset}" if self.seed_offset else "")


REFERENCE = Sampler("ddpm", None, "tat")


FAST = {"ddim": "tab:blue", "dpm++2m": "tab:orange"}  # the few-step samplers: colour
CURVES = {("leading", "tat"): {"marker": "o", "linestyle": "-"},  # (spacing, threshold): line style
          ("leading", "none"): {"marker": "s", "linestyle": "--", "alpha": 0.6},
          ("trailing", "tat"): {"marker": "^", "linestyle": "-.", "markerfacecolor": "white"}}


def samplers(ddim_steps: list[int], dpm_steps: list[int] = (), trailing_steps: list[int] = ()) -> list[Sampler]:
    """The reference, a second draw of it, DDPM without thresholding, then DDIM and DPM-Solver++, many steps to few:
    on leading timesteps with TAT and without, then on trailing timesteps with TAT."""
    chosen = [REFERENCE, Sampler("ddpm", None, "tat", seed_offset=1), Sampler("ddpm", None, "none")]
    for sampler, step_counts in (("ddim", ddim_steps), ("dpm++2m", dpm_steps)):
        for steps in sorted(set(step_counts), reverse=True):
            chosen += [Sampler(sampler, steps, "tat"), Sampler(sampler, steps, "none")]
    for sampler in ("ddim", "dpm++2m"):
        for steps in sorted(set(trailing_steps), reverse=True):
            chosen.append(Sampler(sampler, steps, "tat", spacing="trailing"))
    return chosen


def sampler_method(objective, sampler: Sampler, budget: evaluate.TrainingBudget, device) -> evaluate.Method:
    """The trained BS-LDM, sampling with ``sampler`` instead of its config's."""

    def predict(cxr, masks, generator):
        return objective.predict(cxr, generator, sampler=sampler.sampler, sampling_steps=sampler.sampling_steps,
                                 spacing=sampler.spacing, threshold=sampler.threshold)

    return evaluate.Method(sampler.name, sampler.name, "diffusion", predict, budget, device)


def summarise(results: dict[str, evaluate.MethodResult], chosen: dict[str, Sampler],
              margins: dict[str, float]) -> list[dict]:
    """One row per method: means, paired differences with the reference, and the equal-quality verdict."""
    reference = results[REFERENCE.name]
    rows = []
    for name, result in results.items():
        sampler = chosen.get(name)
        row = {"method": name, "evaluations": sampler.evaluations if sampler else 0,
               "seconds_per_image": result.seconds_per_image}
        if sampler:
            row |= {"sampler": sampler.sampler, "spacing": sampler.spacing, "threshold": sampler.threshold}
        for metric in COMPARED:
            row[metric] = float(result.values(metric).mean())
            if name != REFERENCE.name:
                row[f"delta/{metric}"] = evaluate.paired_difference(result.values(metric), reference.values(metric))
        if name not in (REFERENCE.name, evaluate.IDENTITY):
            row["equal_quality"] = all(row[f"delta/{m}"][1] > -margins[m] for m in DECIDING)
        rows.append(row)
    return rows


def markdown(rows: list[dict], margins: dict[str, float]) -> str:
    def delta(row, metric):
        if f"delta/{metric}" not in row:
            return "reference"
        scale = SHOWN_SCALE.get(metric, 1.0)
        return evaluate.format_difference(*(scale * v for v in row[f"delta/{metric}"]),
                                          digits=4 if metric == "ssim" else 2)

    header = ["sampler", "network evaluations", "s/image (here)", "PSNR (dB)", "BSR sym. (%)", "lung PSNR (dB)",
              "SSIM", "Δ PSNR (dB) [95 % CI]", "Δ BSR sym. (points) [95 % CI]", "Δ lung PSNR (dB) [95 % CI]",
              "equal quality"]
    cells = []
    for row in rows:
        verdict = {True: "**yes**", False: "no"}.get(row.get("equal_quality"), "—")
        evaluations = "—" if row["method"] == evaluate.IDENTITY else str(row["evaluations"])
        cells.append([row["method"], evaluations, f"{row['seconds_per_image']:.3f}", f"{row['psnr']:.2f}",
                      f"{100 * row['bsr_symmetric']:.2f}", f"{row['lung/psnr']:.2f}", f"{row['ssim']:.4f}",
                      delta(row, "psnr"), delta(row, "bsr_symmetric"), delta(row, "lung/psnr"), verdict])
    rule = (f"Equal quality: the 95 % interval of the paired difference with {REFERENCE.name} lies above "
            f"−{margins['psnr']:g} dB for PSNR and above −{100 * margins['bsr_symmetric']:g} points for "
            f"symmetric BSR (whole image). The reference's second draw shows how far sampling noise alone "
            f"moves the comparison.")
    return evaluate.markdown_table(header, cells) + "\n\n" + rule + "\n"


def figure(rows: list[dict], margins: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {row["method"]: row for row in rows}
    fig, (quality, gap) = plt.subplots(1, 2, figsize=(11, 4))
    fast = [r for r in rows if r.get("sampler") in FAST]
    series = list(itertools.product(FAST.items(), CURVES.items()))
    for number, ((sampler, color), ((spacing, threshold), style)) in enumerate(series):
        own = sorted((r for r in fast if (r["sampler"], r["spacing"], r["threshold"]) == (sampler, spacing, threshold)),
                     key=lambda r: r["evaluations"])
        if not own:
            continue
        label = f"{sampler.upper()} {spacing}" + (" + TAT" if threshold == "tat" else ", no threshold")
        style = {"color": color, **style}
        steps = [r["evaluations"] for r in own]
        quality.plot(steps, [r["psnr"] for r in own], label=label, **style)
        means = np.array([r["delta/psnr"] for r in own])
        dodge = 1.04 ** (number - (len(series) - 1) / 2)  # side by side, so that the intervals stay readable
        gap.errorbar([step * dodge for step in steps], means[:, 0],
                     yerr=[means[:, 0] - means[:, 1], means[:, 2] - means[:, 0]], capsize=3, label=label, **style)
    identity = by_name[evaluate.IDENTITY]["psnr"]
    bottom = identity - 1.0
    redraw = Sampler("ddpm", None, "tat", seed_offset=1).name
    for name, marker, size, color, label in ((REFERENCE.name, "*", 15, "tab:green", f"{REFERENCE.name} (official)"),
                                             (redraw, "P", 7, "tab:purple", f"{REFERENCE.name}, another seed"),
                                             ("DDPM 1000", "x", 11, "tab:red", None)):
        if name not in by_name:
            continue
        value = by_name[name]["psnr"]
        if value >= bottom:
            quality.plot([1000], [value], marker, markersize=size, color=color, label=label or name)
        else:  # far below doing nothing: say so rather than squash the interesting range
            quality.annotate(f"{name}: {value:.1f} dB", xy=(1000, bottom), xytext=(120, bottom + 0.6),
                             arrowprops={"arrowstyle": "->"}, fontsize=8)
    quality.axhline(identity, color="grey", linestyle=":", label="identity (do nothing)")
    quality.set_ylim(bottom, None)
    quality.set(xscale="log", xlabel="network evaluations (sampling steps)", ylabel="mean PSNR (dB)",
                title="quality against steps")
    quality.legend(fontsize=8)
    gap.axhline(0, color="black", linewidth=0.8)
    if redraw in by_name:  # how far sampling noise alone moves the reference
        _, low_noise, high_noise = by_name[redraw]["delta/psnr"]
        gap.axhspan(low_noise, high_noise, color="tab:green", alpha=0.15, label="the reference, another seed")
    low = min(r["delta/psnr"][1] for r in fast)
    floor = min(low, -2 * margins["psnr"]) - 0.1
    gap.axhspan(floor, -margins["psnr"], color="tab:red", alpha=0.08,
                label=f"worse than the reference by > {margins['psnr']:g} dB")
    gap.set_ylim(floor, None)
    gap.set(xscale="log", xlabel="sampling steps", ylabel=f"Δ PSNR against {REFERENCE.name} (dB)",
            title="paired difference, 95 % bootstrap interval")
    gap.legend(fontsize=8)
    few_steps = []
    for steps in sorted({r["evaluations"] for r in fast}):  # labels far enough apart to read on a log axis
        if not few_steps or steps >= 1.5 * few_steps[-1]:
            few_steps.append(steps)
    for axes, ticks in ((quality, [*few_steps, 1000]), (gap, few_steps)):
        axes.set_xticks(ticks, [str(t) for t in ticks])
        axes.minorticks_off()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="as in `bs_lib benchmark`")
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--num-test", type=int, default=40, help="phantom test images")
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[250, 100, 50, 20, 10, 5])
    parser.add_argument("--dpm-steps", type=int, nargs="*", default=[50, 20, 10, 5])
    parser.add_argument("--trailing-steps", type=int, nargs="*", default=[50, 25, 20, 10, 5],
                        help="DDIM and DPM-Solver++ with TAT on trailing timesteps")
    parser.add_argument("--margin-psnr", type=float, default=0.1, help="dB")
    parser.add_argument("--margin-bsr", type=float, default=0.5, help="percentage points")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="write <OUTPUT>.md, .json and .png")
    args = parser.parse_args()

    import torch

    from bs_lib import config as course_config
    from bs_lib.suppress import load_suppressor

    started = time.perf_counter()
    course_config.setup(args.profile, seed=args.seed, device=args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = course_config.detect_device(args.device)
    size = args.image_size or course_config.get_profile(args.profile).image_size
    samples = evaluate.load_test_samples("phantom", size, args.seed, args.num_test)
    checkpoint, budget = evaluate.trained_bs_ldm(args.profile, image_size=size, seed=args.seed,
                                                 runs=args.runs_dir, steps_scale=args.steps_scale)
    objective, _ = load_suppressor(checkpoint, device)
    results = {evaluate.IDENTITY: evaluate.evaluate_method(evaluate.identity_method(), samples)}
    chosen = samplers(args.ddim_steps, args.dpm_steps, args.trailing_steps)
    for sampler in chosen:
        print(f"sampling {len(samples)} images with {sampler.name} ...", flush=True)
        method = sampler_method(objective, sampler, budget, device)
        results[sampler.name] = evaluate.evaluate_method(method, samples, batch_size=args.batch_size,
                                                         seed=args.seed + sampler.seed_offset)
    margins = {"psnr": args.margin_psnr, "bsr_symmetric": args.margin_bsr / 100}
    rows = summarise(results, {s.name: s for s in chosen}, margins)
    table = markdown(rows, margins)
    command = "python " + shlex.join(sys.argv)
    setting = (f"- model: {checkpoint} ({budget.describe()})\n"
               f"- data: phantom test split, {len(samples)} images at {size}², seed {args.seed}; one sampling seed\n"
               f"- device: {device} ({torch.get_num_threads()} torch thread(s)); "
               f"{evaluate.versions_text(library_versions())}\n"
               f"- this invocation: {time.perf_counter() - started:.0f} s\n")
    print(table)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)

        def named(suffix: str) -> Path:
            return args.output.with_name(args.output.name + suffix)

        report = (f"# BS-LDM samplers against the official one: {args.profile} model at {size}²\n\n"
                  f"Produced by:\n\n```\n{command}\n```\n\n{setting}\n{table}")
        named(".md").write_text(report)
        named(".json").write_text(json.dumps(
            {"command": command, "rows": rows,
             "per_image": {name: r.per_image for name, r in results.items()}}, indent=1))
        figure(rows, margins, named(".png"))
        print(f"wrote {named('.md')}, .json and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
