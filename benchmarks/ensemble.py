"""Several phantom-trained models, one bone layer: does averaging their layers do less harm on real radiographs?

    python benchmarks/ensemble.py [--size 256] [--seeds 0 1 2] [--runs-dir .cache/benchmark-runs]
        [--steps-scale 4] [--methods unet unet_plus_plus ...] [--bone-gains 1 0.4] [--randomise [CHAIN]]
        [--rib-spacing 0.13 0.165] [--rib-arch 0.55 0.8] [--output benchmarks/results/ensemble_256]

The benchmark's phantom-trained models (their runs are reused; a missing one
is trained) suppress the real development pairs (``real-pairs``: six SZCH
dual-energy pairs) at the working size ``--size``. Each model's bone layer,
after the rules ``python -m bs_lib sample`` applies to a phantom-only checkpoint
(``highpass`` + ``nonnegative``), is brought back to 1024² and subtracted, alone
or averaged with others' (:func:`bs_lib.bone_layer.average`, what
``sample --ensemble`` does):

* ``one model``: every model (method × seed) on its own, per-image scores averaged over them;
* ``one model, layer × r``: the same, each layer scaled by r, the ratio of the
  all-model mean layer's standard deviation to a single layer's: averaging
  layers that disagree also shrinks them, and this row tells what shrinking
  alone would buy;
* ``each method's seeds averaged``: one ensemble per method, of its ``--seeds``;
* ``each seed's methods averaged``: one ensemble per seed, of every method trained with it;
* ``all models averaged`` (mean) and ``all models, median`` (pixel-wise median).

Scored against the real soft-tissue image at 1024² (PSNR, symmetric BSR),
each as a difference to the identity (do nothing), with a paired bootstrap
interval over the six images; for each ``--bone-gains`` g below 1 the pairs'
bone layer is first scaled by g (:func:`bs_lib.augment.weaken_bone`), a stress
test for radiographs that show less bone than SZCH's. ``--randomise [CHAIN]``: the
runs trained through random imaging chains (a named one of
:data:`bs_lib.augment.CHAINS`, e.g. ``faint-bone``). ``--rib-spacing`` and
``--rib-arch``: the runs trained on that phantom variant
(``benchmarks/phantom_variant.py``). Writes ``OUTPUT.md`` and ``OUTPUT.png``
(one pair's bone layers: the true one, one model's, its seeds' mean, all
models' mean). No real target is trained on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

METHODS = ("unet", "unet_plus_plus", "resnet_bs", "pix2pix", "mca_net", "vae", "vq_vae", "gusarev_ae",
           "distillation", "domain_adaptation")
RULES = ("highpass", "nonnegative")
FULL_SIZE = 1024
Layers = dict[tuple[str, int], list[np.ndarray]]  # (method label, seed) -> one full-size layer per image


def model_layers(args, samples_by_gain: dict[float, list]) -> dict[float, Layers]:
    """Every model's full-size bone layer of every (weakened) pair, after :data:`RULES`."""
    import torch

    from bs_lib import bone_layer, io
    from bs_lib.benchmark.training import prepare_method

    layers: dict[float, Layers] = {gain: {} for gain in samples_by_gain}
    for name in args.methods:
        for seed in args.seeds:
            method = prepare_method(name, "smoke", image_size=args.size, seed=seed, runs=args.runs_dir,
                                    device=torch.device("cpu"), steps_scale=args.steps_scale,
                                    randomise=args.randomise)
            for gain, samples in samples_by_gain.items():
                layers[gain][method.label, seed] = []
                for sample in samples:
                    full = sample["cxr"].numpy()
                    small = io.resize(full, (args.size, args.size))
                    with torch.no_grad():
                        soft = method.predict(torch.as_tensor(small)[None], {}, torch.Generator().manual_seed(0))
                    soft = soft[0].float().clamp(0, 1).numpy()
                    layers[gain][method.label, seed].append(bone_layer.full_size_layer(full, small, soft, RULES))
            print(f"{method.label}, seed {seed}: done", flush=True)
    return layers


def scores(layers: list[np.ndarray], samples) -> dict[str, np.ndarray]:
    """PSNR and symmetric BSR of each radiograph less its layer, against the real soft tissue (one value per image)."""
    from bs_lib import bone_layer, metrics

    psnr, bsr = [], []
    for layer, sample in zip(layers, samples, strict=True):
        cxr, soft = sample["cxr"].numpy(), sample["soft"].numpy()
        estimate = bone_layer.subtract(cxr, layer)
        psnr.append(metrics.psnr(estimate, soft))
        bsr.append(100 * metrics.bsr_symmetric(estimate, soft, cxr))
    return {"psnr": np.array(psnr), "bsr": np.array(bsr)}


def detail(layer: np.ndarray) -> float:
    """How much structure a layer holds: its standard deviation."""
    return float(layer.std())


def combine(layers: Layers, keys: list[tuple[str, int]], how: str = "mean") -> list[np.ndarray]:
    """Per image, the pixel-wise mean (or median) of the layers of ``keys``."""
    from bs_lib import bone_layer

    per_image = zip(*(layers[key] for key in keys), strict=True)
    if how == "median":
        return [np.median(np.stack(stack), axis=0) for stack in per_image]
    return [bone_layer.average(stack) for stack in per_image]


def rows_for(layers: Layers, samples) -> tuple[dict[str, dict], dict[str, dict], float, dict]:
    """The summary rows, each method's rows (alone, seeds averaged), the shrinkage ratio r, and the
    all-model mean's scores less the shrinkage row's (image by image)."""
    models = list(layers)
    labels = list(dict.fromkeys(label for label, _ in models))
    seeds = list(dict.fromkeys(seed for _, seed in models))
    everyone = combine(layers, models)
    ratio = np.mean([detail(e) for e in everyone]) / np.mean([detail(x) for key in models for x in layers[key]])
    alone = {key: scores(layers[key], samples) for key in models}
    shrunk = {key: scores([ratio * x for x in layers[key]], samples) for key in models}
    per_method = {}
    for label in labels:
        keys = [key for key in models if key[0] == label]
        per_method[label] = {"alone": mean_scores([alone[key] for key in keys]),
                             "seeds averaged": scores(combine(layers, keys), samples)}
    summary = {"one model": mean_scores(list(alone.values())),
               "one model, layer × r": mean_scores(list(shrunk.values())),
               "each method's seeds averaged": mean_scores([m["seeds averaged"] for m in per_method.values()]),
               "each seed's methods averaged": mean_scores([scores(combine(layers, [k for k in models if k[1] == seed]),
                                                                   samples) for seed in seeds]),
               f"all {len(models)} models averaged": scores(everyone, samples),
               f"all {len(models)} models, median": scores(combine(layers, models, "median"), samples)}
    versus_shrunk = {key: summary[f"all {len(models)} models averaged"][key] - summary["one model, layer × r"][key]
                     for key in ("psnr", "bsr")}
    return summary, per_method, ratio, versus_shrunk


def mean_scores(many: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.mean([s[key] for s in many], axis=0) for key in many[0]}


def cell(values: dict[str, np.ndarray], identity: dict[str, np.ndarray]) -> list[str]:
    from bs_lib.benchmark.tables import format_difference
    from bs_lib.evaluate import paired_difference

    return [format_difference(*paired_difference(values["psnr"], identity["psnr"]), 2),
            format_difference(*paired_difference(values["bsr"], identity["bsr"]), 1)]


def passes(values: dict[str, np.ndarray], identity: dict[str, np.ndarray]) -> bool:
    """The bar of ``seeds.py``: mean PSNR gain above 0 and mean symmetric-BSR gain not below 0."""
    return bool(np.mean(values["psnr"] - identity["psnr"]) > 0 and np.mean(values["bsr"] - identity["bsr"]) >= 0)


def tables(results: dict[float, tuple], identities: dict[float, dict]) -> list[str]:
    """The Markdown tables: the summary rows per bone gain, then every method alone and with its seeds averaged."""
    from bs_lib.benchmark.tables import markdown_table

    gains = list(results)
    header = ["bone layer removed"]
    for gain in gains:
        header += [f"bone ×{gain:g}: Δ PSNR (dB) [95 % CI]", f"bone ×{gain:g}: Δ BSR sym. (points) [95 % CI]"]
    identity_row = ["identity (do nothing): PSNR (dB) / BSR sym. (points)"]
    for gain in gains:
        identity_row += [f"{identities[gain]['psnr'].mean():.2f}", f"{identities[gain]['bsr'].mean():.1f}"]
    summary = [[label, *(c for gain in gains for c in cell(results[gain][0][label], identities[gain]))]
               for label in results[gains[0]][0]]
    zero = {key: np.zeros_like(value) for key, value in identities[gains[0]].items()}
    summary.append(["all models averaged − one model × r (paired)",
                    *(c for gain in gains for c in cell(results[gain][3], zero))])
    passing = ["methods passing, seeds averaged"]
    for gain in gains:
        methods = results[gain][1].values()
        passing += [f"{sum(passes(m['seeds averaged'], identities[gain]) for m in methods)} of {len(methods)} "
                    f"(alone, seed mean: {sum(passes(m['alone'], identities[gain]) for m in methods)})", ""]
    per_method = [[f"{label}, {kind}", *(c for gain in gains for c in cell(results[gain][1][label][kind],
                                                                           identities[gain]))]
                  for label in results[gains[0]][1] for kind in ("alone", "seeds averaged")]
    return ["## Averaged over the models", "", markdown_table(header, [identity_row, *summary, passing]), "",
            "## Each method: alone (its seeds' scores averaged) and its seeds' layers averaged", "",
            markdown_table(header, per_method), ""]


def figure(path: Path, sample, layers: Layers, title: str) -> None:
    """One pair's bone layers: the true one, one model's, that method's seeds averaged, every model averaged."""
    import matplotlib.pyplot as plt

    first = next(iter(layers))
    own = [key for key in layers if key[0] == first[0]]
    panels = {"true (radiograph − soft tissue)": sample["cxr"].numpy() - sample["soft"].numpy(),
              f"{first[0]}, seed {first[1]}": layers[first][0],
              f"{first[0]}, {len(own)} seeds averaged": combine(layers, own)[0][0],
              f"all {len(layers)} models averaged": combine(layers, list(layers))[0][0]}
    reach = float(np.quantile(np.abs(panels["true (radiograph − soft tissue)"]), 0.99))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.8), constrained_layout=True)
    for axis, (label, image) in zip(axes, panels.items(), strict=True):
        axis.imshow(np.squeeze(image)[::2, ::2], cmap="gray", vmin=-reach, vmax=reach)
        axis.set_title(label, fontsize=9)
        axis.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="working size of the models")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--runs-dir", type=Path, default=Path(".cache/benchmark-runs"))
    parser.add_argument("--steps-scale", type=float, default=4.0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--bone-gains", type=float, nargs="+", default=[1.0, 0.4], metavar="G",
                        help="scale the real pairs' bone layer by each G in (0, 1] (1: as recorded)")
    parser.add_argument("--randomise", nargs="?", const=True, default=False, metavar="CHAIN",
                        help="the runs trained through random imaging chains (CHAIN: a named one, e.g. faint-bone)")
    parser.add_argument("--rib-spacing", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="the runs trained on a phantom with ribs this far apart (benchmarks/phantom_variant.py)")
    parser.add_argument("--rib-arch", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="the runs trained on a phantom whose ribs fall this far (benchmarks/phantom_variant.py)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/ensemble_256"))
    args = parser.parse_args(argv)
    if len(args.methods) * len(args.seeds) < 2:
        parser.error("an ensemble needs at least two models: give several --methods or --seeds.")

    import matplotlib
    import torch

    from bs_lib.augment import chain_words, weaken_bone
    from bs_lib.benchmark.data import load_test_samples
    from bs_lib.phantom import variant, variant_words

    matplotlib.use("Agg")
    started = time.perf_counter()
    try:
        pairs = load_test_samples("real-pairs", FULL_SIZE, 0, None)
        samples = {gain: weaken_bone(pairs, gain) for gain in args.bone_gains}
    except (FileNotFoundError, ValueError) as error:
        print(f"the real development pairs are needed: {error}", file=sys.stderr)
        return 2
    with variant(rib_spacing=args.rib_spacing, rib_arch=args.rib_arch):  # the phantom the runs trained on
        layers = model_layers(args, samples)
    identities = {gain: scores([np.zeros_like(s["cxr"].numpy()) for s in samples[gain]], samples[gain])
                  for gain in args.bone_gains}
    results = {gain: rows_for(layers[gain], samples[gain]) for gain in args.bone_gains}
    words = variant_words(args.rib_spacing, args.rib_arch)
    chain = f", trained through {chain_words(args.randomise)}" if args.randomise else ""
    command = " ".join(["python benchmarks/ensemble.py", *(argv if argv is not None else sys.argv[1:])])
    ratios = ", ".join(f"×{gain:g}: {results[gain][2]:.2f}" for gain in args.bone_gains)
    lines = [f"# Averaging the bone layers of {len(args.methods)} methods × {len(args.seeds)} seeds", "",
             f"Produced by `{command}` in {time.perf_counter() - started:.0f} s (CPU, torch {torch.__version__}).",
             "", f"Data: **real development pairs** (six SZCH dual-energy pairs, `real-pairs`), scored at "
             f"{FULL_SIZE}²; `bone ×g`: each radiograph replaced by soft + g·(radiograph − soft), a stress test for "
             "radiographs that show less bone (a linear mix of grey levels, not physics). Models: the benchmark's "
             f"phantom-trained runs at {args.size}²{' on a phantom with ' + words if words else ''} (smoke recipes, "
             f"steps ×{args.steps_scale:g}{chain}), training seeds {', '.join(map(str, args.seeds))}; every layer "
             f"after `{'` + `'.join(RULES)}` (what `sample` applies to a phantom-only checkpoint). No real target is "
             "trained on. Each cell is the mean gain over identity with its paired bootstrap interval over the six "
             f"images. r, the all-model mean layer's standard deviation over a single layer's (each column its own): "
             f"{ratios}. A method passes when its mean PSNR gain is above 0 and its mean symmetric-BSR gain is "
             "not below 0.", "", *tables(results, identities)]
    text = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".md").write_text(text)
    weakest = min(args.bone_gains)
    figure(args.output.with_suffix(".png"), samples[weakest][0], layers[weakest],
           f"Real development pair {pairs[0]['id']}, bone ×{weakest:g}: bone layers removed at {FULL_SIZE}²")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
