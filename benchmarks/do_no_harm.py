"""Do no harm outside bone: how a suppression at a small working size is brought back to a real radiograph.

    python benchmarks/do_no_harm.py [--size 128] [--seeds 0 1 2] [--runs-dir .cache/benchmark-runs]
        [--steps-scale 4] [--methods unet unet_plus_plus ...] [--phantom 40] [--randomise [CHAIN]]
        [--bone-gain 0.4] [--rib-spacing 0.13 0.165] [--rib-arch 0.55 0.8]
        [--output benchmarks/results/do_no_harm_128]

The phantom-trained models of the benchmark (their runs are reused; a missing
one is trained) suppress the real development pairs (``real-pairs``: six SZCH
dual-energy pairs, 1024²) at the working size ``--size``. Their output is then
brought back to 1024², as ``python -m bs_lib sample`` does for a user's image,
in several ways (:mod:`bs_lib.bone_layer`):

* ``soft upsampled``: the soft-tissue estimate resized to 1024² (what ``sample`` did first);
* ``bone layer``: the removed bone layer resized and subtracted from the 1024² radiograph;
* ``+ nonnegative``, ``+ smooth``, ``+ highpass``, ..., ``+ gain``: the bone layer with those rules first
  (``gain``: scaled to the amount of it the radiograph shows).

Every variant is scored at 1024² against the real soft-tissue image: PSNR,
symmetric BSR and the fine-detail error outside bone
(:func:`bs_lib.metrics.fine_detail_error`), each beside the identity (do
nothing) with a paired bootstrap interval over the six images. With several
``--seeds`` each method is trained once per seed and every image's scores are
averaged over the seeds before the interval is drawn (as ``seeds.py`` does).
``--phantom N`` scores the same variants on N phantom test images at the
working size, where the models were trained: what a rule costs there.
``--bone-gain g`` first weakens each pair's bone: the radiograph becomes
soft + g·(radiograph − soft) (:func:`bs_lib.augment.weaken_bone`), a stress test for a scanner, energy pair or
grey-level processing whose radiographs show less bone than SZCH's (where
doing nothing is already close, and a model that removes a fixed amount of
"bone" does harm). It is a linear mix of display grey levels, not physics.
``--rib-spacing LOW HIGH``, ``--rib-arch LOW HIGH``: the runs trained on a phantom
with its ribs that far apart, falling that far (``benchmarks/phantom_variant.py``; a
missing run is trained on it too). Writes
``OUTPUT.md`` and two figures: a lung crop (``OUTPUT.png``) and whole images
with their bone layers (``OUTPUT_layers.png``). No real target is trained on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bs_lib.augment import weaken_bone

VARIANTS = {"soft upsampled": None, "bone layer": (), "+ nonnegative": ("nonnegative",), "+ smooth": ("smooth",),
            "+ both": ("nonnegative", "smooth"), "+ highpass": ("highpass",),
            "+ highpass + nonnegative": ("highpass", "nonnegative"),
            "+ highpass + nonnegative + gain": ("highpass", "nonnegative", "gain")}
METHODS = ("unet", "unet_plus_plus", "resnet_bs", "pix2pix", "mca_net", "vae", "vq_vae", "gusarev_ae",
           "distillation", "domain_adaptation")
FULL_SIZE = 1024
Scores = dict[str, np.ndarray]  # metric -> one value per image


def predictions(method, samples, size: int) -> dict[str, list[np.ndarray]]:
    """Every variant's full-size soft-tissue estimate of every sample (the model sees it at ``size``)."""
    import torch

    from bs_lib import bone_layer, io

    out: dict[str, list[np.ndarray]] = {variant: [] for variant in VARIANTS}
    for sample in samples:
        full = sample["cxr"].numpy()
        small = io.resize(full, (size, size))
        with torch.no_grad():
            soft = method.predict(torch.as_tensor(small)[None], {}, torch.Generator().manual_seed(0))
        soft = soft[0].float().clamp(0, 1).numpy()
        for variant, rules in VARIANTS.items():
            if rules is None:
                out[variant].append(io.resize(soft, full.shape[1:]))
            else:
                out[variant].append(bone_layer.transfer(full, small, soft, rules))
    return out


def scores(estimates: list[np.ndarray], samples) -> Scores:
    from bs_lib import metrics

    columns: dict[str, list[float]] = {"psnr": [], "bsr_symmetric": [], "fine_detail_error": []}
    for estimate, sample in zip(estimates, samples, strict=True):
        soft, cxr = sample["soft"].numpy(), sample["cxr"].numpy()
        columns["psnr"].append(metrics.psnr(estimate, soft))
        columns["bsr_symmetric"].append(metrics.bsr_symmetric(estimate, soft, cxr))
        columns["fine_detail_error"].append(1000 * metrics.fine_detail_error(estimate, soft, cxr))
    return {key: np.array(values) for key, values in columns.items()}


def seed_mean(per_seed: list[Scores]) -> Scores:
    """Every image's scores averaged over the training seeds."""
    return {key: np.mean([s[key] for s in per_seed], axis=0) for key in per_seed[0]}


def passes(values: Scores, identity: Scores) -> bool:
    """The real-pairs bar (as in ``seeds.py``): PSNR above identity and symmetric BSR not below it (mean gains)."""
    return bool(np.mean(values["psnr"] - identity["psnr"]) > 0
                and np.mean(values["bsr_symmetric"] - identity["bsr_symmetric"]) >= 0)


def interval(values: np.ndarray, reference: np.ndarray) -> str:
    from bs_lib.benchmark.tables import format_difference
    from bs_lib.evaluate import paired_difference

    return format_difference(*paired_difference(values, reference))


def table(results: dict[str, dict[str, Scores]], identity: Scores) -> list[str]:
    lines = ["| method | bring back | PSNR (dB) ↑ | Δ PSNR vs identity [95 % CI] | BSR sym. ↑ | "
             "Δ BSR sym. vs identity [95 % CI] | fine-detail error (10⁻³) ↓ | Δ vs identity [95 % CI] |",
             "|---|---|---|---|---|---|---|---|"]
    lines.append(f"| identity | — | {identity['psnr'].mean():.2f} | — | {identity['bsr_symmetric'].mean():.3f} | — | "
                 f"{identity['fine_detail_error'].mean():.2f} | — |")
    for label, variants in results.items():
        for variant, values in variants.items():
            lines.append(
                f"| {label} | {variant} | {values['psnr'].mean():.2f} | {interval(values['psnr'], identity['psnr'])} | "
                f"{values['bsr_symmetric'].mean():.3f} | "
                f"{interval(values['bsr_symmetric'], identity['bsr_symmetric'])} | "
                f"{values['fine_detail_error'].mean():.2f} | "
                f"{interval(values['fine_detail_error'], identity['fine_detail_error'])} |")
    return lines


def summary(results: dict[str, dict[str, Scores]], identity: Scores,
            per_seed: dict[str, dict[str, list[Scores]]]) -> list[str]:
    """Each variant averaged over the methods, and how many methods (and method-seeds) pass the bar."""
    draws_per_variant = sum(len(variants["bone layer"]) for variants in per_seed.values())
    lines = ["| bring back | mean PSNR (dB) | mean Δ PSNR (dB) | mean BSR sym. | mean Δ BSR sym. (points) | "
             f"mean fine-detail error (10⁻³) | methods passing, seed mean (of {len(results)}) | "
             f"method-seeds passing (of {draws_per_variant}) |", "|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        rows = [variants[variant] for variants in results.values()]
        draws = [draw for variants in per_seed.values() for draw in variants[variant]]
        lines.append(f"| {variant} | {np.mean([r['psnr'].mean() for r in rows]):.2f} | "
                     f"{np.mean([np.mean(r['psnr'] - identity['psnr']) for r in rows]):+.2f} | "
                     f"{np.mean([r['bsr_symmetric'].mean() for r in rows]):.3f} | "
                     f"{100 * np.mean([np.mean(r['bsr_symmetric'] - identity['bsr_symmetric']) for r in rows]):+.1f} | "
                     f"{np.mean([r['fine_detail_error'].mean() for r in rows]):.2f} | "
                     f"{sum(passes(r, identity) for r in rows)} | {sum(passes(d, identity) for d in draws)} |")
    return lines


def crop_figure(path: Path, sample, estimates: dict[str, np.ndarray], label: str, data: str = "") -> None:
    """A lung crop at full resolution: radiograph, target, and the estimate brought back each way."""
    import matplotlib.pyplot as plt

    rows, cols = slice(300, 556), slice(180, 436)  # 256² of the right lung (image left), at 1024²
    panels = {"radiograph": sample["cxr"].numpy(), "real soft tissue": sample["soft"].numpy(),
              f"{label}: soft upsampled": estimates["soft upsampled"],
              f"{label}: bone layer": estimates["bone layer"]}
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for axis, (title, image) in zip(axes, panels.items(), strict=True):
        crop = image[0][rows, cols]
        axis.imshow(crop, cmap="gray", vmin=np.quantile(crop, 0.01), vmax=np.quantile(crop, 0.99))
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.suptitle(f"Real development pair {sample['id']}{data}, lung crop at 1024²", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def layers_figure(path: Path, sample, estimates: dict[str, np.ndarray], label: str, data: str = "") -> None:
    """Whole images: the soft tissue (top) and the bone layer it implies (bottom), true and estimated."""
    import matplotlib.pyplot as plt

    cxr = sample["cxr"].numpy()[0]
    softs = {"real (dual energy)": sample["soft"].numpy()[0], f"{label}: bone layer": estimates["bone layer"][0],
             f"{label}: + highpass + nonnegative": estimates["+ highpass + nonnegative"][0]}
    figure, axes = plt.subplots(2, len(softs), figsize=(3.4 * len(softs), 7))
    low, high = np.quantile(cxr, [0.01, 0.99])
    bone_high = np.quantile(cxr - softs["real (dual energy)"], 0.99)
    for column, (title, soft) in enumerate(softs.items()):
        axes[0, column].imshow(soft, cmap="gray", vmin=low, vmax=high)
        axes[0, column].set_title(f"soft tissue: {title}", fontsize=9)
        axes[1, column].imshow(cxr - soft, cmap="gray", vmin=-bone_high, vmax=bone_high)
        axes[1, column].set_title("bone layer (radiograph − soft)", fontsize=9)
    for axis in axes.flat:
        axis.axis("off")
    figure.suptitle(f"Real development pair {sample['id']}{data} at 1024², soft tissue (top) and bone layer (bottom):\n"
                    "the highpass rule keeps the estimated bone layer's rib-scale structure, not the coarser rest",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def evaluate_methods(args, samples) -> tuple[dict, dict, dict]:
    """Per method: its seed-mean scores per variant, every seed's scores, and seed 0's estimates."""
    import torch

    from bs_lib.benchmark.training import prepare_method

    results, per_seed, first = {}, {}, {}
    for name in args.methods:
        draws: dict[str, list[Scores]] = {variant: [] for variant in VARIANTS}
        for seed in args.seeds:
            method = prepare_method(name, "smoke", image_size=args.size, seed=seed, runs=args.runs_dir,
                                    device=torch.device("cpu"), steps_scale=args.steps_scale,
                                    randomise=args.randomise)
            estimates = predictions(method, samples, args.size)
            for variant, values in estimates.items():
                draws[variant].append(scores(values, samples))
            first.setdefault(method.label, {variant: values[0] for variant, values in estimates.items()})
            print(f"{method.label}, seed {seed}: done", flush=True)
        results[method.label] = {variant: seed_mean(values) for variant, values in draws.items()}
        per_seed[method.label] = draws
    return results, per_seed, first


def chain_note(randomise: bool | str) -> str:
    from bs_lib.augment import chain_words

    return f", trained through {chain_words(randomise)}" if randomise else ""


def ribs_note(rib_spacing, rib_arch=None) -> str:
    from bs_lib.phantom import variant_words

    words = variant_words(rib_spacing, rib_arch)
    return f" on a phantom with {words}" if words else ""


def weak_bone_note(gain: float) -> str:
    if gain == 1:
        return ""
    return (f", **with their bone weakened**: each radiograph replaced by soft + {gain:g}·(radiograph − soft), "
            "a stress test for radiographs that show less bone (a linear mix of grey levels, not physics)")


def section(title: str, results, per_seed, identity) -> list[str]:
    return [f"## {title}: each bring-back, averaged over the methods", "", *summary(results, identity, per_seed), "",
            f"## {title}: every method", "", *table(results, identity), ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128, help="working size of the models")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (scores averaged)")
    parser.add_argument("--runs-dir", type=Path, default=Path(".cache/benchmark-runs"))
    parser.add_argument("--steps-scale", type=float, default=4.0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--phantom", type=int, default=0, metavar="N",
                        help="also score N phantom test images at the working size (0: none)")
    parser.add_argument("--randomise", nargs="?", const=True, default=False, metavar="CHAIN",
                        help="the runs trained through random imaging chains (CHAIN: a named one, e.g. faint-bone)")
    parser.add_argument("--bone-gain", type=float, default=1.0, metavar="G",
                        help="scale the real pairs' bone layer by G in (0, 1] first (a stress test; 1: as recorded)")
    parser.add_argument("--rib-spacing", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="the runs trained on a phantom with ribs this far apart (benchmarks/phantom_variant.py)")
    parser.add_argument("--rib-arch", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="the runs trained on a phantom whose ribs fall this far (benchmarks/phantom_variant.py)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/do_no_harm_128"))
    args = parser.parse_args(argv)

    import matplotlib
    import torch

    from bs_lib.benchmark.data import load_test_samples
    from bs_lib.phantom import variant

    matplotlib.use("Agg")
    started = time.perf_counter()
    try:
        samples = weaken_bone(load_test_samples("real-pairs", FULL_SIZE, 0, None), args.bone_gain)
    except (FileNotFoundError, ValueError) as error:
        print(f"the real development pairs are needed: {error}", file=sys.stderr)
        return 2
    identity = scores([s["cxr"].numpy() for s in samples], samples)
    phantom_lines = []
    with variant(rib_spacing=args.rib_spacing, rib_arch=args.rib_arch):  # the phantom the runs trained on
        results, per_seed, first = evaluate_methods(args, samples)
        if args.phantom:
            phantom = load_test_samples("phantom", args.size, 0, args.phantom)
            phantom_results, phantom_seeds, _ = evaluate_methods(args, phantom)
    if args.phantom:
        phantom_identity = scores([s["cxr"].numpy() for s in phantom], phantom)
        phantom_lines = [f"Data: **phantom**, the first {len(phantom)} images of its test split, scored at the "
                         f"working size {args.size}² (the models' own domain; no resizing, so `soft upsampled` is "
                         "the model's output as is).", "",
                         *section("Phantom", phantom_results, phantom_seeds, phantom_identity)]
    seeds = ", ".join(map(str, args.seeds))
    command = " ".join(["python benchmarks/do_no_harm.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [f"# Do no harm outside bone: bringing a {args.size}² suppression back to 1024²", "",
             f"Produced by `{command}` in {time.perf_counter() - started:.0f} s (CPU, torch {torch.__version__}).", "",
             f"Data: **real development pairs** (six SZCH dual-energy pairs, `real-pairs`), scored at 1024²"
             f"{weak_bone_note(args.bone_gain)}. Models: "
             f"the benchmark's phantom-trained runs at {args.size}²{ribs_note(args.rib_spacing, args.rib_arch)} "
             f"(smoke recipes, steps ×{args.steps_scale:g}"
             f"{chain_note(args.randomise)}), training seed(s) {seeds}; "
             "with several seeds every image's scores are averaged over them. No real target is trained on. "
             "Intervals are paired bootstrap intervals over the six images; fine-detail error: RMS of the "
             "difference of the band G₂ − G₈ (σ = 4 px at 1024², vessel scale) over the half of each image "
             "with the least bone (`bs_lib.metrics.fine_detail_error`; lower is better). A method passes when its "
             "mean PSNR gain is above 0 and its mean symmetric-BSR gain is not below 0.", "",
             *section("Real development pairs", results, per_seed, identity), *phantom_lines]
    text = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".md").write_text(text)
    label = next(iter(first))
    data = "" if args.bone_gain == 1 else f" with its bone layer ×{args.bone_gain:g}"
    crop_figure(args.output.with_suffix(".png"), samples[0], first[label], label, data)
    shown = "ResNet-BS" if "ResNet-BS" in first else label  # the model with the shortcut, when it ran
    layers_figure(args.output.with_name(args.output.name + "_layers.png"), samples[0], first[shown], shown, data)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
