"""The benchmark's figures: the same test cases for every method, and their errors on one shared scale."""

from __future__ import annotations

import io as byte_io
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from bs_lib.benchmark.result import Leaderboard


def chosen_cases(result: Leaderboard, count: int = 3) -> list[int]:
    """Test images to show: evenly spread over the test set (always the same ones for the same set)."""
    total = len(result.samples)
    return sorted({round(i * (total - 1) / max(1, count - 1)) for i in range(min(count, total))})


def case_grid(result: Leaderboard, cases: Sequence[int] | None = None) -> Figure:
    """The same test cases (columns) for the radiograph, the truth and every method (rows, leaderboard order)."""
    cases = list(cases) if cases is not None else chosen_cases(result)
    ranked = result.ranked()
    rows = [("radiograph", [result.samples[i]["cxr"] for i in cases]),
            ("truth (soft tissue)", [result.samples[i]["soft"] for i in cases])]
    rows += [(r.label, [r.predictions[i] for i in cases]) for r in ranked]
    figure, axes = plt.subplots(len(rows), len(cases), figsize=(1.9 * len(cases) + 1.6, 1.9 * len(rows)),
                                squeeze=False, constrained_layout=True)
    for row_axes, (title, images) in zip(axes, rows, strict=True):
        for axis, image in zip(row_axes, images, strict=True):
            axis.imshow(np.asarray(image)[0], cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
        row_axes[0].set_ylabel(title, fontsize=8)
    for axis, index in zip(axes[0], cases, strict=True):
        axis.set_title(str(result.samples[index]["id"]), fontsize=8)
    return figure


def difference_maps(result: Leaderboard, cases: Sequence[int] | None = None) -> Figure:
    """Prediction − truth for the same cases; red = too bright (bone left), blue = too dark; one shared scale."""
    cases = list(cases) if cases is not None else chosen_cases(result)
    ranked = result.ranked()
    differences = [[(r.predictions[i] - result.samples[i]["soft"])[0].numpy() for i in cases] for r in ranked]
    reach = float(np.percentile(np.abs(np.stack(differences)), 99.5)) or 1.0  # one outlier must not wash out the rest
    figure, axes = plt.subplots(len(ranked), len(cases), figsize=(1.9 * len(cases) + 2.2, 1.9 * len(ranked)),
                                squeeze=False, constrained_layout=True)
    shown = None
    for row_axes, r, row in zip(axes, ranked, differences, strict=True):
        for axis, difference in zip(row_axes, row, strict=True):
            shown = axis.imshow(difference, cmap="coolwarm", vmin=-reach, vmax=reach)
            axis.set_xticks([])
            axis.set_yticks([])
        row_axes[0].set_ylabel(r.label, fontsize=8)
    for axis, index in zip(axes[0], cases, strict=True):
        axis.set_title(str(result.samples[index]["id"]), fontsize=8)
    figure.colorbar(shown, ax=axes, shrink=0.6, label="prediction − truth")
    return figure


def save_compact_png(figure: Figure, path: Path, dpi: int = 72, colors: int = 256) -> None:
    """Save a figure as a palette PNG (``colors`` colours): a fraction of the size, fit to commit."""
    buffer = byte_io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    image = Image.open(buffer).convert("RGB")
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
