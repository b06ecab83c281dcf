"""BS-LDM on real radiographs: the decoded output, or the radiograph minus a bone layer?

    python benchmarks/bs_ldm_real.py [--size 128] [--seeds 0 1 2] [--runs-dir .cache/benchmark-runs]
        [--steps-scale 4] [--samples 1 4] [--output benchmarks/results/bs_ldm_real_128]

BS-LDM's soft-tissue image is a *decoding*, :math:`\\mathcal D(x_0)`: it keeps
of the radiograph only what the stage-1 autoencoder can reconstruct. An
autoencoder trained on the phantom reconstructs a real radiograph poorly, and
everything it misses is lost from the output, bone or not. The residual output
(``residual=True``, :mod:`bs_lib.models.ldm`) subtracts the difference of two
decodings, :math:`\\mathcal D(z_c) - \\mathcal D(x_0)`, from the radiograph
instead, so that the autoencoder's error cancels.

For the benchmark's phantom-trained BS-LDM of each ``--seed`` (its runs are
reused; a missing one is trained), this scores on the real development pairs
(``real-pairs``, six SZCH dual-energy pairs) and on the phantom's test split:

* ``autoencoder only``: :math:`\\mathcal D(\\mathcal E(c))`, what stage 1 alone does to an image;
* ``decoded`` (the published output) and ``residual``;
* each with the bone-layer rules that ``python -m bs_lib sample`` applies: ``nonnegative``
  (every checkpoint) and ``highpass`` + ``nonnegative`` (one trained on the phantom only);
* for each ``K`` above 1 in ``--samples``, the same from the mean of ``K`` sampled images.

Every row is a gain over identity (do nothing) on the same images: per seed
the mean, then the seed-averaged per-image gain with its paired bootstrap
interval over the images. Writes ``OUTPUT.md``; prints it too. No real target
is trained on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = {"real-pairs": "real development pairs (SZCH)", "phantom": "phantom test split"}
PHANTOM_IMAGES = 16
METRICS = {"psnr": ("Δ PSNR (dB)", 1.0, 2), "bsr_symmetric": ("Δ BSR sym. (points)", 100.0, 1)}


def outputs(objective, cxr, averages=(1,)):
    """Every output of one trained BS-LDM for a batch of radiographs (N,1,H,W), each in [0, 1].

    Each ``K`` of ``averages`` above 1 adds the same outputs from the mean of ``K`` samples."""
    import torch

    from bs_lib import bone_layer
    from bs_lib.suppress import DEFAULT_BONE_RULES, PHANTOM_BONE_RULES  # what `sample` applies: any, phantom-only

    def sampled(residual: bool, count: int) -> torch.Tensor:
        return torch.cat([objective.predict(cxr[i:i + 1], torch.Generator().manual_seed(i), residual=residual,
                                            samples=count) for i in range(len(cxr))])

    with torch.no_grad():
        images = {"autoencoder only": objective.autoencoder.predict(cxr)}
        for count in averages:
            for output, residual in (("decoded", False), ("residual", True)):
                name = output if count == 1 else f"{output}, mean of {count}"
                soft = sampled(residual, count).clamp(0, 1)
                images[name] = soft
                bone = bone_layer.bone_layer(cxr.numpy(), soft.numpy())
                for rules in (DEFAULT_BONE_RULES, PHANTOM_BONE_RULES):
                    kept = bone_layer.restrict(bone, rules)
                    images[" + ".join([name, *rules])] = torch.as_tensor(np.clip(cxr.numpy() - kept, 0, 1))
    return {name: image.float().numpy() for name, image in images.items()}


def gains(objective, pairs, averages=(1,)) -> dict[str, dict[str, np.ndarray]]:
    """``{output: {metric: per-image gain over identity}}`` on the test ``pairs``."""
    import torch

    from bs_lib import metrics

    cxr = torch.stack([pair["cxr"] for pair in pairs]).float()
    soft = torch.stack([pair["soft"] for pair in pairs]).float().numpy()

    def score(image: np.ndarray) -> dict[str, np.ndarray]:
        return {"psnr": np.asarray(metrics.psnr(image, soft, per_image=True)),
                "bsr_symmetric": np.asarray(metrics.bsr_symmetric(image, soft, cxr.numpy(), per_image=True))}

    identity = score(cxr.numpy())
    return {name: {metric: values - identity[metric] for metric, values in score(image).items()}
            for name, image in outputs(objective, cxr, averages).items()}


def table(per_seed: list[dict[str, dict[str, np.ndarray]]], seeds: list[int]) -> list[str]:
    """One row per output: each metric's gain per seed and the seed mean with its interval."""
    from bs_lib.benchmark.tables import format_difference, markdown_table
    from bs_lib.evaluate import paired_difference

    header = ["output"]
    for title, _, _ in METRICS.values():
        header += [f"{title}, seed {seed}" for seed in seeds] + [f"{title}, seed mean [95 % CI]"]
    rows = []
    for name in per_seed[0]:
        row = [name]
        for metric, (_, scale, digits) in METRICS.items():
            draws = [scale * result[name][metric] for result in per_seed]
            row += [f"{draw.mean():+.{digits}f}" for draw in draws]
            mean = np.mean(draws, axis=0)
            row.append(format_difference(*paired_difference(mean, np.zeros_like(mean)), digits))
        rows.append(row)
    return markdown_table(header, rows).splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128, help="working size of the models")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs-dir", type=Path, default=Path(".cache/benchmark-runs"))
    parser.add_argument("--steps-scale", type=float, default=4.0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/bs_ldm_real_128"))
    parser.add_argument("--samples", type=int, nargs="+", default=[1], metavar="K",
                        help="also score the mean of K samples per radiograph, for each K (1: one sample)")
    args = parser.parse_args(argv)
    if min(args.samples) < 1:
        parser.error("--samples: every K must be at least 1")

    import torch

    from bs_lib.benchmark.data import load_test_samples
    from bs_lib.benchmark.training import trained_bs_ldm
    from bs_lib.suppress import load_suppressor

    torch.set_num_threads(1)  # the benchmark's own setting: its runs are reused bit for bit
    started = time.perf_counter()
    try:
        load_test_samples("real-pairs", args.size, 0, None)
    except (FileNotFoundError, ValueError) as error:
        print(f"the real development pairs are needed: {error}", file=sys.stderr)
        return 2
    results: dict[str, list] = {dataset: [] for dataset in DATASETS}
    for seed in args.seeds:
        checkpoint, _ = trained_bs_ldm("smoke", image_size=args.size, seed=seed, runs=args.runs_dir,
                                       steps_scale=args.steps_scale)
        objective, _ = load_suppressor(checkpoint, "cpu")
        for dataset in DATASETS:
            pairs = load_test_samples(dataset, args.size, seed, PHANTOM_IMAGES if dataset == "phantom" else None)
            results[dataset].append(gains(objective, pairs, args.samples))
        print(f"seed {seed}: done", flush=True)
    command = " ".join(["python benchmarks/bs_ldm_real.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [f"# BS-LDM on real radiographs at {args.size}²: decoded output or radiograph minus bone layer", "",
             f"Produced by `{command}` in {time.perf_counter() - started:.0f} s (CPU, torch {torch.__version__}).",
             "", f"Models: the benchmark's phantom-trained BS-LDM at {args.size}² (smoke recipe, both stages' steps "
             f"×{args.steps_scale:g}), training seeds {', '.join(map(str, args.seeds))}; DDIM as configured, image i "
             "sampled with generator seed i. Every column is a gain over identity (do nothing) on the same images: "
             "per training seed the mean over images, then the seed-averaged per-image gain with its paired "
             "bootstrap interval over the images. `+ nonnegative`: the negative part of the bone layer set to 0; "
             "`+ highpass`: the bone layer less its structure coarser than the rib pattern (`bs_lib.bone_layer`); "
             "`python -m bs_lib sample` applies both to a checkpoint trained on the phantom only."]
    for dataset, title in DATASETS.items():
        count = len(results[dataset][0]["decoded"]["psnr"])
        lines += ["", f"## Data: {title}, {count} images", "", *table(results[dataset], args.seeds)]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
