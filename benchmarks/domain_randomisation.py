"""What each part of domain randomisation buys on real radiographs: an ablation, phantom-trained U-Nets.

    python benchmarks/domain_randomisation.py [--size 128] [--steps 300] [--seeds 0 1]
        [--variants plain all anatomy faint-bone no-bone_contrast no-texture no-geometry ...]
        [--bone-gain 1 0.6 0.4] [--method unet] [--bone-rules highpass nonnegative]
        [--runs DIR] [--output FILE.md]

Every variant trains the same small U-Net (``unet`` recipe, width 16, batch 8,
lr 2e-3) on 200 phantom pairs only: ``plain`` without randomisation, ``all``
with every part of :class:`bs_lib.augment.Randomisation`, ``anatomy`` with the
anatomy parts only (bone contrast, parenchymal texture; no imaging chain), ``no-PART``
with every part but that one, ``faint-bone`` with every part and the bone gain
drawn from :data:`FAINT_BONE_GAIN` instead (the chain ``faint-bone`` of
:data:`bs_lib.augment.CHAINS`: bone from a fifth of the phantom's to as strong,
radiographs that show little bone, as at high tube voltage).
Each trained model is scored on 16 phantom test pairs and on the real
development pairs (``real-pairs``: six SZCH dual-energy pairs; the script stops
when they cannot be had), and, for each ``--bone-gain`` g below 1, on the same
pairs with their bone layer scaled by g (:func:`bs_lib.augment.weaken_bone`):
a stress test for radiographs that show less bone than SZCH's. ``--method``
trains another of the course's methods instead, with its own ``smoke`` recipe
(width, batch, learning rate) for ``--steps`` steps. ``--bone-rules`` adds, for
every variant, the rows of its output with those rules applied to the removed
bone layer (:func:`bs_lib.bone_layer.restrict`), as ``python -m bs_lib sample``
does for a phantom-only checkpoint. With ``--runs DIR`` a finished run of the
same config is reused instead of trained again. Numbers are means over the images and
the seeds; each difference to identity (do nothing) is a paired bootstrap
interval over images × seeds, so read it as "this recipe, these images", not
as a guarantee for other hospitals. No real target is ever trained on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

from bs_lib.augment import CHAINS, PARTS, Randomisation, weaken_bone  # (after the thread setting)

ANATOMY = ("bone_contrast", "texture")
FAINT_BONE_GAIN = CHAINS["faint-bone"].bone_gain
VARIANTS = ("plain", "all", "anatomy", "faint-bone", *(f"no-{part}" for part in PARTS))
NOTES = (" `faint-bone`: every part, the bone gain drawn from {:.1f}–{:.1f} instead of {:.1f}–{:.1f}. "
         "`bone ×g`: the real pairs with each radiograph replaced by soft + g·(radiograph − soft), a stress test "
         "for radiographs that show less bone (a linear mix of grey levels, not physics)."
         ).format(*FAINT_BONE_GAIN, *Randomisation().bone_gain)


def chain_of(variant: str):
    """The ``data_args.randomise`` setting of a variant."""
    if variant == "plain":
        return False
    if variant == "all":
        return True
    if variant == "anatomy":
        return {part: False for part in PARTS if part not in ANATOMY}
    if variant == "faint-bone":
        return {"bone_gain": list(FAINT_BONE_GAIN)}
    return {variant.removeprefix("no-"): False}


UNET_RECIPE = {"batch_size": 8, "lr": 2e-3, "method_args": {"width": 16}}


def train(variant: str, size: int, steps: int, seed: int, runs: Path, method: str = "unet"):
    import bs_lib.models  # noqa: F401  (registers the course's methods)
    from bs_lib import config
    from bs_lib.engine import Trainer, build_objective, finished_run, load_config, load_weights

    recipe, prefix = (UNET_RECIPE, "dr") if method == "unet" else ({}, f"dr-{method}-")
    cfg = load_config(method, "smoke", image_size=size, steps=steps, seed=seed, output_dir=str(runs),
                      name=f"{prefix}{variant}-{size}-{steps}-s{seed}", log_every=max(1, steps // 4), **recipe,
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
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the runs go; finished ones are reused (default: a temporary folder)")
    parser.add_argument("--output", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()

    import tempfile

    import torch

    from bs_lib.bone_layer import check_rules
    from bs_lib.datasets import get_dataset, real_pairs

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
    lines = [f"Phantom-trained {model_text}, {args.size}², {args.steps} steps{batch}, seeds {seeds}; "
             f"identity = the radiograph itself.{NOTES}{rules_note(args.bone_rules)}", "",
             "| data | variant | PSNR (dB) | − identity [95 % CI] | sym. BSR | − identity [95 % CI] |",
             "|---|---|---|---|---|---|"]
    for variant in args.variants:
        started, pooled = time.perf_counter(), {(name, rules): None for rules in rule_sets for name in data}
        for seed in args.seeds:
            model = train(variant, args.size, args.steps, seed, runs, args.method)
            for name, rules in pooled:
                values = scores(model, data[name], rules)
                before = pooled[name, rules]
                pooled[name, rules] = values if before is None else {k: before[k] + v for k, v in values.items()}
        for (name, rules), values in pooled.items():
            lines.append(row(name, variant + (f" + {' + '.join(rules)}" if rules else ""), values))
            print(lines[-1], flush=True)
        print(f"  ({variant}: {time.perf_counter() - started:.0f} s)", flush=True)
    command = "python benchmarks/domain_randomisation.py " + " ".join(sys.argv[1:])
    text = "\n".join([f"# Domain randomisation, part by part\n\n`{command}`\n", *lines]) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
