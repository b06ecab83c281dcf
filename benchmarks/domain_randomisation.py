"""What each part of domain randomisation buys on real radiographs: an ablation, phantom-trained U-Nets.

    python benchmarks/domain_randomisation.py [--size 128] [--steps 300] [--seeds 0 1]
        [--variants plain all anatomy faint-bone no-bone_contrast no-texture no-geometry ...]
        [--bone-gain 1 0.6 0.4] [--method unet] [--bone-rules highpass nonnegative]
        [--tracking] [--rib-spacing 0.13 0.165] [--rib-arch 0.55 0.8] [--runs DIR] [--output FILE.md]

Every variant trains the same small U-Net (``unet`` recipe, width 16, batch 8,
lr 2e-3) on 200 phantom pairs only: ``plain`` without randomisation, ``all``
with every part of :class:`bs_lib.augment.Randomisation`, ``anatomy`` with the
anatomy parts only (bone contrast, parenchymal texture; no imaging chain), ``no-PART``
with every part but that one, and each named chain of :data:`bs_lib.augment.CHAINS`
with every part and its own bone gain: ``faint-bone`` (bone from a fifth of the
phantom's to as strong, radiographs that show little bone, as at high tube
voltage) and ``wide-bone`` (from a fifth to the default's strongest).
Each trained model is scored on 16 phantom test pairs and on the real
development pairs (``real-pairs``: six SZCH dual-energy pairs; the script stops
when they cannot be had), and, for each ``--bone-gain`` g below 1, on the same
pairs with their bone layer scaled by g (:func:`bs_lib.augment.weaken_bone`):
a stress test for radiographs that show less bone than SZCH's. ``--method``
trains another of the course's methods instead, with its own ``smoke`` recipe
(width, batch, learning rate) for ``--steps`` steps. ``--bone-rules`` adds, for
every variant, the rows of its output with those rules applied to the removed
bone layer (:func:`bs_lib.bone_layer.restrict`), as ``python -m bs_lib sample``
does for a phantom-only checkpoint. ``--tracking`` adds a table of how much
rib-scale bone each model removes from the phantom and the real pairs with
their bone layer scaled from ×1.4 to ×0.2 (:func:`removal`): does the model
remove the bone an image shows, or a fixed amount? ``--rib-spacing LOW HIGH`` trains and
scores on a phantom with its ribs that far apart (:func:`bs_lib.phantom.variant`; the
real pairs' ribs lie 0.13–0.165 apart in its units), ``--rib-arch LOW HIGH`` with its
ribs falling that far to the chest wall (0.55–0.8 tilts them about as steeply as
real ones). With ``--runs DIR`` a finished run of the same config is reused instead
of trained again. Numbers are means over the images and
the seeds; each difference to identity (do nothing) is a paired bootstrap
interval over images × seeds, so read it as "this recipe, these images", not
as a guarantee for other hospitals. No real target is ever trained on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

from bs_lib.augment import CHAINS, PARTS, Randomisation, weaken_bone  # (after the thread setting)

ANATOMY = ("bone_contrast", "texture")
NAMED = tuple(name for name in CHAINS if name != "default")
VARIANTS = ("plain", "all", "anatomy", *NAMED, *(f"no-{part}" for part in PARTS))
NOTES = ("".join(" `{}`: every part, the bone gain drawn from {:.1f}–{:.1f} instead of {:.1f}–{:.1f}.".format(
             name, *CHAINS[name].bone_gain, *Randomisation().bone_gain) for name in NAMED)
         + " `bone ×g`: the real pairs with each radiograph replaced by soft + g·(radiograph − soft), a stress test "
         "for radiographs that show less bone (a linear mix of grey levels, not physics).")


def chain_of(variant: str):
    """The ``data_args.randomise`` setting of a variant."""
    if variant == "plain":
        return False
    if variant == "all":
        return True
    if variant == "anatomy":
        return {part: False for part in PARTS if part not in ANATOMY}
    if variant in NAMED:
        default = Randomisation()
        return {item.name: list(value) if isinstance(value, tuple) else value for item in fields(default)
                if (value := getattr(CHAINS[variant], item.name)) != getattr(default, item.name)}
    return {variant.removeprefix("no-"): False}


UNET_RECIPE = {"batch_size": 8, "lr": 2e-3, "method_args": {"width": 16}}


def train(variant: str, size: int, steps: int, seed: int, runs: Path, method: str = "unet", phantom: str = ""):
    """The trained model (a finished run of the same name reused); ``phantom`` names a variant phantom in the run."""
    import bs_lib.models  # noqa: F401  (registers the course's methods)
    from bs_lib import config
    from bs_lib.engine import Trainer, build_objective, finished_run, load_config, load_weights

    recipe, prefix = (UNET_RECIPE, "dr") if method == "unet" else ({}, f"dr-{method}-")
    cfg = load_config(method, "smoke", image_size=size, steps=steps, seed=seed, output_dir=str(runs),
                      name=f"{prefix}{variant}{phantom}-{size}-{steps}-s{seed}", log_every=max(1, steps // 4), **recipe,
                      data_args={"num_images": 200, "randomise": chain_of(variant)})
    config.seed_everything(seed)
    from bs_lib.engine.data import build_datasets

    model = build_objective(cfg)
    finished = finished_run(cfg)
    if finished is not None:
        load_weights(finished, model)
    else:
        train_set, _ = build_datasets(cfg)
        Trainer(model, cfg, train_set).fit()
    return model.eval()


def scores(model, dataset, rules: tuple[str, ...] = ()) -> dict[str, list[float]]:
    """Per-image PSNR and symmetric BSR of the model (its bone layer restricted by ``rules``) and of identity."""
    import torch

    from bs_lib import bone_layer, metrics

    out = {"psnr": [], "bsr": [], "psnr_identity": [], "bsr_identity": []}
    for i in range(len(dataset)):
        sample = dataset[i]
        with torch.no_grad():
            prediction = model.predict(sample["cxr"][None])[0]
        if rules:
            cxr = sample["cxr"].numpy()
            prediction = torch.as_tensor(bone_layer.transfer(cxr, cxr, prediction.float().clamp(0, 1).numpy(), rules))
        for suffix, image in (("", prediction), ("_identity", sample["cxr"])):
            values = metrics.evaluate(image, sample["soft"], sample["cxr"])
            out["psnr" + suffix].append(float(values["psnr"]))
            out["bsr" + suffix].append(float(values["bsr_symmetric"]))
    return out


def weakened(dataset, gain: float) -> list[dict]:
    """Every pair of ``dataset`` with its bone layer scaled by ``gain`` (:func:`bs_lib.augment.weaken_bone`)."""
    try:
        return weaken_bone([dataset[i] for i in range(len(dataset))], gain)
    except ValueError as error:
        raise SystemExit(str(error)) from None


#: Bone gains of the tracking table: stronger than recorded, as recorded, and ever fainter.
TRACKING_GAINS = (1.4, 1.0, 0.6, 0.4, 0.2)


def rib_scale(layer):
    """A bone layer at rib scale and finer: less its coarse part (:func:`bs_lib.bone_layer.highpass`) and its mean."""
    import torch

    from bs_lib.bone_layer import highpass

    fine = torch.as_tensor(highpass(layer.float().numpy()))
    return (fine - fine.mean()).flatten()


def removed_and_recorded(model, pair, gain: float = 1.0):
    """What ``model`` removes from ``pair`` with its bone layer ×``gain``, and the recorded bone layer, at rib scale."""
    import torch

    from bs_lib.augment import apply_bone_gain

    cxr = apply_bone_gain(pair["cxr"], pair["soft"], gain)
    with torch.no_grad():
        removed = rib_scale(cxr - model.predict(cxr[None])[0])
    return removed, rib_scale(pair["cxr"] - pair["soft"])


def removal(model, pairs, gain: float) -> tuple[list[float], list[float]]:
    r"""How much rib-scale bone ``model`` removes from each pair with its bone layer ×``gain``.

    With :math:`b'` the pair's recorded bone layer at rib scale (:func:`rib_scale`)
    and :math:`r'` the layer the model removes from :math:`s + g\,b`, two numbers per
    image: the size :math:`\lVert r' \rVert / \lVert b' \rVert` and the part along the
    bone :math:`\langle r', b' \rangle / \lVert b' \rVert^2`. A remover that takes out
    exactly the bone there is reads :math:`g` and :math:`g`; size above the part along
    the bone is what it removes that does not line up with the recorded bone.
    """
    sizes, along = [], []
    for pair in pairs:
        removed, bone = removed_and_recorded(model, pair, gain)
        sizes.append(float(removed.norm() / bone.norm()))
        along.append(float(removed @ bone / (bone @ bone)))
    return sizes, along


def tracking_lines(tracked: dict[tuple[str, str], dict[float, tuple[list, list]]]) -> list[str]:
    """The tracking table: per data and variant, size (part along the bone) of the removal at each bone gain."""
    import numpy as np

    lines = ["", "## How much bone each model removes as the bone weakens", "",
             "Rib-scale bone layer removed from each pair with its bone layer ×g (`removal`), as a multiple of the "
             "pair's recorded one: its size, and in brackets its part along the recorded bone. Removing exactly "
             "the bone there reads g (g); size beyond the part along the bone is what does not line up with the "
             "recorded bone (`_removed.png` shows it for one pair as recorded).", "",
             "| data | variant | " + " | ".join(f"bone ×{g:g}" for g in TRACKING_GAINS) + " |",
             "|---|---|" + "---|" * len(TRACKING_GAINS)]
    for (name, variant), by_gain in tracked.items():
        cells = [f"{np.mean(by_gain[g][0]):.2f} ({np.mean(by_gain[g][1]):.2f})" for g in TRACKING_GAINS]
        lines.append(f"| {name} | {variant} | " + " | ".join(cells) + " |")
    return lines


def removed_layers(model, pair):
    """The pair's rib-scale bone layer, what ``model`` removes at rib scale, and the part of that not along the bone."""
    removed, bone = removed_and_recorded(model, pair)
    side = pair["cxr"].shape[-2:]
    rest = removed - (removed @ bone / (bone @ bone)) * bone
    return [layer.view(side).numpy() for layer in (bone, removed, rest)]


def removed_figure(pair, layers: dict[str, list], path: Path) -> None:
    """One real pair: its recorded bone layer; per variant, what the model removes and its part not along the bone."""
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    bone = next(iter(layers.values()))[0]
    limit = 3 * float(np.std(bone))
    figure, axes = plt.subplots(2, len(layers) + 1, figsize=(2.6 * (len(layers) + 1), 5.6), squeeze=False)
    axes[0, 0].imshow(torch.as_tensor(pair["cxr"]).numpy()[0], cmap="gray")
    axes[0, 0].set_title("radiograph", fontsize=9)
    axes[1, 0].imshow(bone, cmap="gray", vmin=-limit, vmax=limit)
    axes[1, 0].set_title("recorded bone (rib scale)", fontsize=9)
    for column, (variant, (_, removed, rest)) in enumerate(layers.items(), start=1):
        axes[0, column].imshow(removed, cmap="gray", vmin=-limit, vmax=limit)
        axes[0, column].set_title(f"{variant}: removed", fontsize=9)
        axes[1, column].imshow(rest, cmap="gray", vmin=-limit, vmax=limit)
        axes[1, column].set_title(f"{variant}: not along the bone", fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def tracking_figure(tracked: dict[tuple[str, str], dict[float, tuple[list, list]]], path: Path) -> None:
    """The tracking table drawn: removal against the bone there is, one panel per data, one colour per variant."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(dict.fromkeys(name for name, _ in tracked))
    variants = list(dict.fromkeys(variant for _, variant in tracked))
    figure, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), sharey=True, squeeze=False)
    gains = np.array(TRACKING_GAINS)
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot(gains, gains, color="black", lw=1, label="removes the bone there is")
        for colour, variant in zip(plt.cm.tab10.colors, variants, strict=False):
            by_gain = tracked[name, variant]
            ax.plot(gains, [np.mean(by_gain[g][0]) for g in gains], "o-", color=colour, label=f"{variant}: size")
            ax.plot(gains, [np.mean(by_gain[g][1]) for g in gains], "s--", color=colour, alpha=0.6,
                    label=f"{variant}: along the bone")
        ax.set(title=name, xlabel="bone shown (× recorded)", xlim=(0, 1.5), ylim=(0, 1.6))
    axes[0, 0].set_ylabel("rib-scale bone removed (× recorded)")
    axes[0, -1].legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def rules_note(rules: list[str]) -> str:
    if not rules:
        return ""
    return (f" `+ {' + '.join(rules)}`: the same output with the rules of `bs_lib.bone_layer` applied to its bone "
            "layer (radiograph − output) at the working size, as `python -m bs_lib sample` does for a "
            "phantom-only checkpoint.")


def row(name: str, variant: str, values: dict[str, list[float]]) -> str:
    import numpy as np

    from bs_lib.evaluate import paired_difference

    psnr = paired_difference(values["psnr"], values["psnr_identity"])
    bsr = paired_difference(values["bsr"], values["bsr_identity"])
    return (f"| {name} | {variant} | {np.mean(values['psnr']):.2f} | {psnr[0]:+.2f} [{psnr[1]:+.2f}, {psnr[2]:+.2f}] "
            f"| {np.mean(values['bsr']):.3f} | {bsr[0]:+.3f} [{bsr[1]:+.3f}, {bsr[2]:+.3f}] |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--bone-gain", type=float, nargs="+", default=[1.0], metavar="G",
                        help="also score the real pairs with their bone layer scaled by each G below 1")
    parser.add_argument("--method", default="unet",
                        help="the method trained (default: a width-16 U-Net; others: their smoke recipe)")
    parser.add_argument("--bone-rules", nargs="+", default=[], metavar="RULE",
                        help="also score every variant with these bone-layer rules (bs_lib.bone_layer.RULES)")
    parser.add_argument("--tracking", action="store_true",
                        help="also tabulate how much bone each model removes as the bone weakens (phantom and real)")
    parser.add_argument("--rib-spacing", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="train and score on a phantom with ribs this far apart (default phantom 0.105 0.125)")
    parser.add_argument("--rib-arch", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="train and score on a phantom whose ribs fall this far (default phantom 0.18 0.26)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the runs go; finished ones are reused (default: a temporary folder)")
    parser.add_argument("--output", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()
    from bs_lib.phantom import variant

    with variant(rib_spacing=args.rib_spacing, rib_arch=args.rib_arch):
        return measure(args, parser)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Train every variant and seed, score them, write the table (and the tracking figures)."""
    import tempfile

    import matplotlib
    import torch

    matplotlib.use("Agg")

    from bs_lib.bone_layer import check_rules
    from bs_lib.datasets import get_dataset, real_pairs
    from bs_lib.phantom import variant_words

    try:
        rule_sets = [(), check_rules(args.bone_rules)] if args.bone_rules else [()]
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    real = real_pairs(size=args.size)
    if real is None:
        print("the real development pairs are needed (see the line above): nothing measured", file=sys.stderr)
        return 2
    data = {"phantom (16 test pairs)": get_dataset("phantom", split="test", size=args.size, num_images=16),
            f"real development pairs ({len(real)} SZCH)": real}
    for gain in sorted({g for g in args.bone_gain if g != 1}, reverse=True):
        data[f"real development pairs, bone ×{gain:g}"] = weakened(real, gain)
    runs = args.runs or Path(tempfile.mkdtemp(prefix="dr-ablation-"))
    model_text = "U-Net (width 16)" if args.method == "unet" else f"`{args.method}` (its smoke recipe)"
    batch = " × batch 8" if args.method == "unet" else ""
    seeds = ", ".join(map(str, args.seeds))
    ribs = "".join("-{}{:g}-{:g}".format(slug, *value) for slug, value in (("ribs", args.rib_spacing),
                                                                            ("arch", args.rib_arch)) if value)
    words = variant_words(args.rib_spacing, args.rib_arch)
    ribs_text = f" on a phantom with {words}" if words else ""
    lines = [f"Phantom-trained {model_text}{ribs_text}, {args.size}², {args.steps} steps{batch}, seeds {seeds}; "
             f"identity = the radiograph itself.{NOTES}{rules_note(args.bone_rules)}", "",
             "| data | variant | PSNR (dB) | − identity [95 % CI] | sym. BSR | − identity [95 % CI] |",
             "|---|---|---|---|---|---|"]
    tracked, examples = {}, {}
    for variant in args.variants:
        started, pooled = time.perf_counter(), {(name, rules): None for rules in rule_sets for name in data}
        for seed in args.seeds:
            model = train(variant, args.size, args.steps, seed, runs, args.method, ribs)
            for name in list(data)[:2] if args.tracking else ():  # the phantom and the real pairs as recorded
                pairs = [data[name][i] for i in range(len(data[name]))]
                for gain in TRACKING_GAINS:
                    sizes, along = removal(model, pairs, gain)
                    before = tracked.setdefault((name, variant), {}).get(gain, ([], []))
                    tracked[name, variant][gain] = (before[0] + sizes, before[1] + along)
            if args.tracking and seed == args.seeds[0]:
                examples[variant] = removed_layers(model, real[0])
            for name, rules in pooled:
                values = scores(model, data[name], rules)
                before = pooled[name, rules]
                pooled[name, rules] = values if before is None else {k: before[k] + v for k, v in values.items()}
        for (name, rules), values in pooled.items():
            lines.append(row(name, variant + (f" + {' + '.join(rules)}" if rules else ""), values))
            print(lines[-1], flush=True)
        print(f"  ({variant}: {time.perf_counter() - started:.0f} s)", flush=True)
    command = "python benchmarks/domain_randomisation.py " + " ".join(sys.argv[1:])
    lines += tracking_lines(tracked) if tracked else []
    text = "\n".join([f"# Domain randomisation, part by part\n\n`{command}`\n", *lines]) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        if tracked:
            tracking_figure(tracked, args.output.with_name(args.output.stem + "_tracking.png"))
            removed_figure(real[0], examples, args.output.with_name(args.output.stem + "_removed.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
