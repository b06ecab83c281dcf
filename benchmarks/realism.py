"""How far the phantom is from real radiographs, and which way domain randomisation moves it.

    python benchmarks/realism.py [--size 256] [--num-images 16] [--rib-spacing 0.13 0.165] \\
        [--rib-arch 0.55 0.8] [--output benchmarks/results/realism_256]

Measures (:mod:`bs_lib.realism`, the same code on every source) the phantom's
training pairs as they are, the same pairs through random imaging chains
(:mod:`bs_lib.augment`, the ``data_args.randomise: true`` of a run), and the
real development pairs (six SZCH dual-energy pairs; the script stops when they
cannot be had); with ``--rib-spacing`` or ``--rib-arch``, also a phantom whose
ribs lie that far apart or fall that far to the chest wall
(:func:`bs_lib.phantom.variant`, ``benchmarks/phantom_variant.py``).
Writes a Markdown table (``OUTPUT.md``: one row per measure, the real value,
and for each phantom source its gap to it) and a figure
(``OUTPUT.png``: grey-level histograms, radial power spectra, bone-layer power
spectra). Six real images: read the gaps' signs and sizes, not their decimals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def images(size: int, num_images: int, rib_spacing=None, rib_arch=None
           ) -> dict[str, list[tuple[np.ndarray, np.ndarray]]] | None:
    """Each source's (radiograph, soft tissue) arrays, the real pairs last; ``None`` without them."""
    from bs_lib import phantom
    from bs_lib.augment import randomised
    from bs_lib.datasets import get_dataset, real_pairs

    real = real_pairs(size=size)
    if real is None:
        return None
    default = get_dataset("phantom", split="train", size=size, num_images=num_images)
    data = {"phantom": arrays(default, num_images),
            "phantom, randomised": arrays(randomised(default, True, seed=0), num_images)}
    words = phantom.variant_words(rib_spacing, rib_arch)
    if words:
        with phantom.variant(rib_spacing=rib_spacing, rib_arch=rib_arch):  # drawn inside: a dataset draws lazily
            ribs = get_dataset("phantom", split="train", size=size, num_images=num_images)
            data[f"phantom, {words}"] = arrays(ribs, num_images)
    return {**data, f"real ({len(real)} SZCH pairs)": arrays(real, len(real))}


def arrays(dataset, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(s["cxr"])[0], np.asarray(s["soft"])[0]) for s in (dataset[i] for i in range(min(limit,
                                                                                                          len(dataset))))]


def figure(images: dict[str, list[tuple[np.ndarray, np.ndarray]]]):
    import matplotlib.pyplot as plt

    from bs_lib.realism import radial_spectrum

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, pairs in images.items():
        grey = np.concatenate([cxr.ravel() for cxr, _ in pairs])
        axes[0].hist(grey, bins=64, range=(0, 1), density=True, histtype="step", lw=1.5, label=name)
        for axis, layer in ((axes[1], lambda c, s: c), (axes[2], lambda c, s: c - s)):
            spectra = [radial_spectrum(layer(c, s)) for c, s in pairs]
            axis.loglog(spectra[0][0], np.mean([p for _, p in spectra], axis=0), lw=1.5, label=name)
    axes[0].set(title="radiograph grey levels", xlabel="intensity (bone bright)", ylabel="density")
    axes[1].set(title="radiograph power spectrum", xlabel="cycles per pixel", ylabel="power")
    axes[2].set(title="bone layer (radiograph − soft) power spectrum", xlabel="cycles per pixel")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def markdown(table) -> str:
    lines = ["| measure | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{value:+.4f}" if "−" in column else f"{value:.4f}"
                                          for column, value in row.items()) + " |" for name, row in table.iterrows()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--num-images", type=int, default=16, help="phantom pairs measured (all real pairs are)")
    parser.add_argument("--rib-spacing", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="also measure a phantom with ribs this far apart (image units; default phantom "
                             "0.105 0.125)")
    parser.add_argument("--rib-arch", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="also measure a phantom whose ribs fall this far to the chest wall (image units; "
                             "default phantom 0.18 0.26)")
    parser.add_argument("--output", type=Path, default=None, help="write OUTPUT.md and OUTPUT.png")
    args = parser.parse_args()

    from bs_lib.realism import compare, measure

    pairs_of = images(args.size, args.num_images, args.rib_spacing, args.rib_arch)
    if pairs_of is None:
        print("the real development pairs are needed (see the line above): nothing measured", file=sys.stderr)
        return 2
    table = compare({name: [measure(c, s) for c, s in pairs] for name, pairs in pairs_of.items()})
    real = table.columns[-1]
    for name in table.columns[:-1]:
        table[f"{name} − real"] = table[name] - table[real]
    command = "python benchmarks/realism.py " + " ".join(sys.argv[1:])
    text = (f"# The phantom against real radiographs\n\n`{command}`\n\nMeans over the images of each source at "
            f"{args.size}² (`bs_lib.realism`; lung texture: inside the darkest third of the body on every image, "
            f"the same proxy for all sources). Data: phantom training pairs (synthetic) and the real development "
            f"pairs.\n\n"
            + markdown(table) + "\n")
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.with_suffix(".md").write_text(text, encoding="utf-8")
        figure(pairs_of).savefig(args.output.with_suffix(".png"), dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
