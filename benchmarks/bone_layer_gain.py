"""What the ``gain`` rule reads: how much of each model's bone layer the radiograph shows, and how much of that is bone.

    python benchmarks/bone_layer_gain.py [--size 256] [--seeds 0 1 2] [--bone-gains 1 0.4]
        [--runs-dir .cache/benchmark-runs] [--steps-scale 4] [--methods unet ...]
        [--output benchmarks/results/bone_layer_gain_256]

The ``gain`` rule (:func:`bs_lib.bone_layer.gain`) scales a predicted bone layer
:math:`\\hat b` by its least-squares gain in the radiograph at rib scale and finer,

.. math:: g_x = \\langle x', \\hat b' \\rangle / \\lVert \\hat b' \\rVert^2 ,

clipped to [0, 1]. On a real pair the radiograph is soft tissue plus bone,
:math:`x = s + b`, so the gain splits in two: :math:`g_x = g_b + g_s`, the gain
of the layer in the true bone layer and in the soft-tissue image. Only
:math:`g_b` says how much of the layer is bone; the rule can only see
:math:`g_x`. This script measures the three for the benchmark's phantom-trained
models (their runs are reused; a missing one is trained) on the real development
pairs at the working size, as recorded and with the bone weakened
(``--bone-gains``: :func:`bs_lib.augment.weaken_bone`, a stress test), after
``highpass`` + ``nonnegative`` (what ``sample`` applies to a phantom-only
checkpoint). The first rows are a fixed remover: it takes away each pair's bone
layer as recorded (shaped by the same rules) whatever bone the radiograph shows,
right at ×1 and 1/G times too much at ×G; its gain in the soft tissue is what
soft tissue lines up with even for a layer that is pure bone. The last column
is the gain a rule that could see the bone would apply, :math:`g_b` clipped to
[0, 1]. Writes ``OUTPUT.md`` and ``OUTPUT.png`` (the readings as stacked bars);
no real target is trained on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bs_lib import bone_layer, io
from bs_lib.augment import weaken_bone

METHODS = ("unet", "unet_plus_plus", "resnet_bs", "pix2pix", "mca_net", "vae", "vq_vae", "gusarev_ae",
           "distillation", "domain_adaptation")
RULES = ("highpass", "nonnegative")
RECORDED = "each pair's recorded bone (a fixed remover)"
Readings = dict[str, list[float]]  # "image" / "bone" / "soft" -> one gain per image (and seed)


def readings(layers: list[np.ndarray], samples) -> Readings:
    """The unclipped gain of each layer in its radiograph, in its true bone layer and in its soft-tissue image."""
    out: Readings = {"image": [], "bone": [], "soft": []}
    for layer, sample in zip(layers, samples, strict=True):
        cxr, soft = sample["cxr"].numpy(), sample["soft"].numpy()
        for key, image in (("image", cxr), ("bone", cxr - soft), ("soft", soft)):
            out[key].append(float(bone_layer.measured_gain(layer, image, clip=False).mean()))
    return out


def model_layers(method, samples) -> list[np.ndarray]:
    """The bone layer ``method`` removes from each sample (at the samples' size), shaped by :data:`RULES`."""
    import torch

    layers = []
    for sample in samples:
        cxr = sample["cxr"]
        with torch.no_grad():
            soft = method.predict(cxr[None], {}, torch.Generator().manual_seed(0))[0].float().clamp(0, 1)
        layers.append(bone_layer.restrict((cxr - soft).numpy(), RULES))
    return layers


def recorded_layers(samples) -> list[np.ndarray]:
    return [bone_layer.restrict((s["cxr"] - s["soft"]).numpy(), RULES) for s in samples]


def row(label: str, shown: float, values: Readings) -> str:
    image, bone, soft = (np.array(values[key]) for key in ("image", "bone", "soft"))
    return (f"| {label} | ×{shown:g} | {image.mean():.2f} [{image.min():.2f}, {image.max():.2f}] | "
            f"{bone.mean():.2f} | {soft.mean():.2f} | {np.mean(image >= 1):.0%} | {np.mean(np.clip(bone, 0, 1)):.2f} |")


def figure(path: Path, results: dict[str, dict[float, Readings]]) -> None:
    """Per model and bone strength, the reading as a stack: the part that is bone, then the part that is soft tissue."""
    import matplotlib.pyplot as plt

    labels = list(results)
    shown = list(next(iter(results.values())))
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 0.45 * len(labels) + 1.6), sharey=True,
                             squeeze=False)
    rows = np.arange(len(labels))
    for ax, gain in zip(axes[0], shown, strict=True):
        bone = np.array([np.mean(results[label][gain]["bone"]) for label in labels])
        soft = np.array([np.mean(results[label][gain]["soft"]) for label in labels])
        ax.barh(rows, bone, color="tab:blue", label="in the bone")
        ax.barh(rows, soft, left=np.maximum(bone, 0), color="tab:orange", label="in the soft tissue")
        ax.axvline(1, color="black", lw=1, ls="--")
        ax.set_title(f"real development pairs, bone ×{gain:g}", fontsize=9)
        ax.set_xlabel("least-squares gain of the layer, at rib scale")
    axes[0][0].set_yticks(rows, labels, fontsize=8)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.suptitle("What the gain rule reads: the layer's gain in the radiograph, split (right of the dashed line: "
                 "kept whole)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="working size of the models")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (readings pooled)")
    parser.add_argument("--bone-gains", type=float, nargs="+", default=[1.0, 0.4], metavar="G",
                        help="scale the pairs' bone layer by each G in (0, 1] (1: as recorded)")
    parser.add_argument("--runs-dir", type=Path, default=Path(".cache/benchmark-runs"))
    parser.add_argument("--steps-scale", type=float, default=4.0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/bone_layer_gain_256"))
    args = parser.parse_args(argv)

    import matplotlib
    import torch

    from bs_lib.benchmark.data import load_test_samples
    from bs_lib.benchmark.training import prepare_method

    matplotlib.use("Agg")
    started = time.perf_counter()
    try:
        pairs = load_test_samples("real-pairs", 1024, 0, None)
    except (FileNotFoundError, ValueError) as error:
        print(f"the real development pairs are needed: {error}", file=sys.stderr)
        return 2
    small = [{key: torch.as_tensor(io.resize(pair[key].numpy(), (args.size, args.size))) for key in ("cxr", "soft")}
             for pair in pairs]
    stressed = {shown: weaken_bone(small, shown) for shown in args.bone_gains}
    results: dict[str, dict[float, Readings]] = {RECORDED: {shown: readings(recorded_layers(small), samples)
                                                            for shown, samples in stressed.items()}}
    for name in args.methods:
        for seed in args.seeds:
            method = prepare_method(name, "smoke", image_size=args.size, seed=seed, runs=args.runs_dir,
                                    device=torch.device("cpu"), steps_scale=args.steps_scale)
            per_gain = results.setdefault(method.label, {shown: {"image": [], "bone": [], "soft": []}
                                                         for shown in args.bone_gains})
            for shown, samples in stressed.items():
                for key, values in readings(model_layers(method, samples), samples).items():
                    per_gain[shown][key] += values
            print(f"{method.label}, seed {seed}: done", flush=True)

    command = " ".join(["python benchmarks/bone_layer_gain.py", *(argv if argv is not None else sys.argv[1:])])
    seeds = ", ".join(map(str, args.seeds))
    lines = [f"# What the gain rule reads: the bone layer's gain in the radiograph, in the bone and in the soft tissue "
             f"({args.size}²)", "",
             f"Produced by `{command}` in {time.perf_counter() - started:.0f} s (CPU, torch {torch.__version__}).", "",
             f"Data: **real development pairs** (six SZCH dual-energy pairs, `real-pairs`) at {args.size}², as "
             "recorded (×1) and with their bone layer scaled (soft + G·(radiograph − soft), a stress test, not "
             "physics). Models: the benchmark's phantom-trained runs (smoke recipes, steps "
             f"×{args.steps_scale:g}), training seed(s) {seeds}; readings pooled over images and seeds. Each bone "
             f"layer is shaped by `{' + '.join(RULES)}` first; every gain is the unclipped least-squares gain at rib "
             "scale and finer (`bs_lib.bone_layer.measured_gain`). The gain in the radiograph is what the `gain` "
             "rule reads (it keeps the layer whole when ≥ 1); it is the sum of the gain in the true bone layer "
             "(how much of the layer is bone) and in the soft-tissue image. No real target is trained on.", "",
             "| bone layer of | bone shown | gain in the radiograph, mean [min, max] | in the bone | "
             "in the soft tissue | kept whole by `gain` (≥ 1) | gain a bone-aware rule would apply |",
             "|---|---|---|---|---|---|---|"]
    for label, per_gain in results.items():
        lines += [row(label, shown, values) for shown, values in per_gain.items()]
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".md").write_text(text)
    figure(args.output.with_suffix(".png"), results)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
