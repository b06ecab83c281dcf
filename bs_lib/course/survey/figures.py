"""The survey's figures: papers per year, datasets used, reported numbers, and the families as pipelines.

Each function takes the papers (:func:`bs_lib.course.survey.load_papers`) and
returns a matplotlib figure; notebook 00 shows them and ``papers build`` saves
three of them beside the index (:func:`save_figures`). A reported number shares
an axis with another only when both were measured on the same dataset, the same
target image and at the same resolution: numbers from different set-ups do not
compare.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bs_lib.course.survey.entries import Metric, Paper, metrics_frame, papers_frame
from bs_lib.course.survey.schema import CATEGORIES, default_better

if TYPE_CHECKING:  # pandas and matplotlib load only when a figure is asked for
    import pandas as pd
    from matplotlib.figure import Figure

#: Figures written by ``papers build``: file name -> function of the papers.
FIGURE_FILES = ("papers_per_year.png", "datasets.png", "reported_psnr_bsr.png")
CAVEAT = "numbers are not comparable across datasets, resolutions and metric code"


def _category_palette() -> dict[str, Any]:
    import seaborn as sns

    colours = sns.color_palette("tab20", len(CATEGORIES))
    return dict(zip(CATEGORIES, colours, strict=True))


def plot_papers_per_year(papers: list[Paper], group: str | None = "bone suppression") -> Figure:
    """Stacked bars: how many papers each year, coloured by category.

    ``group`` keeps one group of categories (``"bone suppression"`` or
    ``"adjacent field"``); ``None`` shows every entry.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    chosen = [p for p in papers if group is None or p.group == group]
    frame = papers_frame(chosen)
    order = [c for c in CATEGORIES if c in set(frame["category"])]
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    if len(frame):
        sns.histplot(data=frame, x="year", hue="category", hue_order=order, multiple="stack",
                     discrete=True, palette=_category_palette(), ax=ax, linewidth=0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="year", ylabel="papers",
           title=f"Papers per year by category ({group or 'all entries'}, n = {len(frame)})")
    return fig


#: How free-text dataset names are grouped for plotting: the first pattern that matches wins.
DATASET_FAMILIES: tuple[tuple[str, str], ...] = (
    (r"Gusarev", "Gusarev DES (35 public pairs)"),
    (r"JSRT", "JSRT / BSE-JSRT"),
    (r"SZCH", "SZCH-X-Rays"),
    (r"LIDC|DRR|\bCT\b", "CT volumes or CT-derived DRRs"),
    (r"dual-energy|\bDES\b|soft-tissue", "other dual-energy pairs (mostly private)"),
    (r"NIH|ChestX-ray14", "NIH ChestX-ray14"),
    (r"MIMIC|IU-Xray|CheXpert", "report datasets (MIMIC-CXR, IU-Xray, CheXpert Plus)"),
    (r"COVID|RSNA|[Pp]neumonia|Montgomery|Shenzhen|VinDr", "public CXR classification sets"),
)
OTHER_DATASETS = "other or unnamed sets"


def dataset_family(name: str) -> str:
    """The family a dataset name belongs to, e.g. ``"JSRT/BSE-JSRT (Kaggle)" -> "JSRT / BSE-JSRT"``.

    Entries name datasets as their sources do ("JSRT (151 images)", "private
    DES (504 cases)"); grouping them shows which data the field really rests on.
    """
    for pattern, family in DATASET_FAMILIES:
        if re.search(pattern, name):
            return family
    return OTHER_DATASETS


def plot_datasets(papers: list[Paper], top: int = 15, grouped: bool = True) -> Figure:
    """Horizontal bars: how many papers use each dataset (family), bone suppression vs adjacent.

    ``grouped=False`` shows the names exactly as the entries write them.
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    rows = [
        {"dataset": name, "group": p.group}
        for p in papers
        for name in sorted({dataset_family(d) if grouped else d for d in p.datasets})
    ]
    frame = pd.DataFrame(rows, columns=["dataset", "group"])
    totals = Counter(frame["dataset"])
    # most used first, ties by name, the catch-all family last
    order = sorted(totals, key=lambda d: (d == OTHER_DATASETS, -totals[d], d))[:top]
    frame = frame[frame["dataset"].isin(order)].copy()
    frame["dataset"] = pd.Categorical(frame["dataset"], categories=order)
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(order), 4) + 1.2), layout="constrained")
    if len(frame):
        sns.histplot(data=frame, y="dataset", hue="group", multiple="stack", discrete=True, shrink=0.8,
                     hue_order=["bone suppression", "adjacent field"], ax=ax, linewidth=0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="papers that use it", ylabel="",
           title=f"Datasets used ({'grouped into families' if grouped else 'as named'}, top {len(order)})")
    return fig


#: How each kind of source is drawn: marker, filled?, colour, legend text.
SOURCE_STYLE: dict[str, tuple[str, bool, str, str]] = {
    "paper": ("o", True, "#1f4e8c", "the paper's own number"),
    "re-evaluation": ("s", False, "#d1731b", "re-evaluation by other authors"),
    "secondary": ("^", False, "#6e6e6e", "secondary: the paper's number quoted by a third party, not checked"),
}
DISPLAY_UNITS = {"PSNR": "dB", "BSR": "percent", "SSIM": "fraction", "MS-SSIM": "fraction", "LPIPS": "none",
                 "MSE": "1e-3"}
TARGET_LABELS = {"soft": "soft-tissue image", "bone": "bone image"}


def _panel_label(dataset: str, target: str, resolution: Any) -> str:
    """The comparison group of a number: its dataset, target image and resolution."""
    import pandas as pd

    size = "resolution not stated" if pd.isna(resolution) else f"{resolution}²"
    return f"{dataset} · {TARGET_LABELS[target]} · {size}"


def _reported_frame(papers: list[Paper], metrics: tuple[str, ...]) -> pd.DataFrame:
    """The numbers of ``metrics`` in display units (BSR in percent), each with its comparison group."""
    frame = metrics_frame(papers)
    frame = frame[frame["metric"].isin(metrics)].copy()
    frame["shown"] = [Metric(r.metric, r.value, r.unit, r.dataset, None, r.source)
                      .value_in(DISPLAY_UNITS.get(r.metric, r.unit)) for r in frame.itertuples()]
    frame["panel"] = [_panel_label(r.dataset, r.target, r.resolution) for r in frame.itertuples()]
    return frame


def _axis_label(name: str) -> str:
    unit = {"dB": " (dB)", "percent": " (%)"}.get(DISPLAY_UNITS.get(name, ""), "")
    arrow = "← lower is better" if default_better(name) == "lower" else "higher is better →"
    return f"{name}{unit}, {arrow}"


def _draw_group(subfig: Any, part: pd.DataFrame, metrics: tuple[str, ...], title: str) -> None:
    """One row of panels: the methods of one comparison group, one panel per metric."""
    methods = sorted(set(part["id"]), key=lambda m: (part.loc[part["id"] == m, "year"].min(), m))
    subfig.suptitle(title, x=0.01, ha="left", fontsize="medium", fontweight="bold")
    for col, (ax, name) in enumerate(zip(subfig.subplots(1, len(metrics), squeeze=False)[0], metrics,
                                         strict=True)):
        rows = part[part["metric"] == name]
        for source, (marker, filled, colour, _) in SOURCE_STYLE.items():
            chosen = rows[rows["source"] == source]
            ax.scatter(chosen["shown"], [methods.index(m) for m in chosen["id"]], marker=marker, s=46,
                       facecolors=colour if filled else "none", edgecolors=colour, linewidths=1.4)
        ax.set_yticks(range(len(methods)), methods)
        ax.tick_params(labelleft=col == 0, labelsize="small")
        ax.set_ylim(len(methods) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        if rows.empty:
            ax.text(0.5, 0.5, f"no {name} reported", transform=ax.transAxes, ha="center", va="center",
                    color="grey")
            ax.set_xticks([])
        else:
            ax.set_xlabel(_axis_label(name), fontsize="small")


def _draw_footer(subfig: Any, left_out: pd.DataFrame, sources: set[str]) -> None:
    """The legend of the markers, and the numbers that have no other method to be compared with."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="", marker=marker, markersize=7, markerfacecolor=colour if filled
                      else "none", markeredgecolor=colour, markeredgewidth=1.4, label=label)
               for source, (marker, filled, colour, label) in SOURCE_STYLE.items() if source in sources]
    if handles:
        subfig.legend(handles=handles, loc="upper center", ncols=len(handles), fontsize="small", frameon=False)
    alone = sorted({f"{r.id} ({r.panel})" for r in left_out.itertuples()})
    if alone:
        note = "Not drawn, because no other method reports on the same data: " + "; ".join(alone) + "."
        subfig.text(0.01, 0.05, textwrap.fill(note, 190), fontsize="x-small", va="bottom", ha="left")


def plot_reported_metrics(papers: list[Paper], metrics: tuple[str, ...] = ("PSNR", "BSR"),
                          min_methods: int = 2) -> Figure:
    """Reported PSNR and BSR as small multiples: one row per dataset, target image and resolution.

    Numbers share an axis only when they were measured on the same dataset, the same target (the
    soft-tissue image or a predicted bone image) and at the same resolution; even then the split and
    the metric code may differ, and the title says so. A group needs ``min_methods`` methods to be
    drawn; the others are named in a footnote. Marker and fill give the source: filled circles for a
    paper's own number, hollow squares for re-evaluations, hollow triangles for secondary quotes.
    BSR given as a fraction is shown in percent.
    """
    import matplotlib.pyplot as plt

    frame = _reported_frame(papers, metrics)
    counts = frame.groupby("panel")["id"].nunique()
    groups = sorted(counts[counts >= min_methods].index, key=lambda g: (-counts[g], g))
    heights = [0.3 * counts[g] + 1.1 for g in groups] + [1.0]
    fig = plt.figure(figsize=(11, sum(heights) + 0.7), layout="constrained")
    subfigs = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    for subfig, group in zip(subfigs[:-1], groups, strict=True):
        _draw_group(subfig, frame[frame["panel"] == group], metrics, group)
    _draw_footer(subfigs[-1], frame[~frame["panel"].isin(groups)], set(frame["source"]))
    fig.suptitle(f"Reported {' and '.join(metrics)}, one row per dataset, target image and resolution\n"
                 f"({CAVEAT}; compare only within a panel)", fontsize="medium")
    return fig


#: The idea of each family as a pipeline of boxes, for :func:`plot_family_pipelines`.
FAMILY_PIPELINES: dict[str, tuple[str, ...]] = {
    "dual-energy hardware": ("low-kV and high-kV\nexposures", "weighted subtraction\nof log images",
                             "soft-tissue image\n+ bone image"),
    "manual / conventional": ("radiograph", "model the ribs and\nclavicles (shape, profile)",
                              "estimate their shadow", "subtract it"),
    "commercial": ("radiograph", "vendor software\n(ClearRead, SoftView)", "soft-tissue image\nbeside the original"),
    "autoencoder": ("radiograph", "encoder", "compact code", "decoder", "soft tissue\n(loss vs. target)"),
    "CNN": ("radiograph", "convolutions at several\nscales (or wavelet /\ngradient domain)",
            "soft tissue or\nbone image"),
    "GAN": ("radiograph", "generator", "soft tissue", "discriminator:\nreal DES or generated?"),
    "domain adaptation": ("CT volumes → DRRs\n(bones known)", "train on the\nsource domain",
                          "align features with\nunpaired real CXRs", "suppress on real CXRs"),
    "distillation": ("teacher trained on\nscarce DES pairs", "teacher's outputs\nas targets",
                     "smaller or better-\nbehaved student"),
    "diffusion": ("pure noise", "T denoising steps\nconditioned on the CXR\n(in a latent space for LDMs)",
                  "soft tissue"),
}


def plot_family_pipelines(families: list[str] | None = None) -> Figure:
    """One row per family of methods: its idea drawn as boxes joined by arrows.

    A schematic, not an architecture: it shows what goes in, what is learned
    and what comes out. ``families`` picks rows of :data:`FAMILY_PIPELINES`.
    """
    import matplotlib.pyplot as plt

    names = list(families or FAMILY_PIPELINES)
    unknown = [n for n in names if n not in FAMILY_PIPELINES]
    if unknown:
        raise ValueError(f"unknown famil(y/ies) {unknown}; choose from {list(FAMILY_PIPELINES)}")
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 1.05 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        steps = FAMILY_PIPELINES[name]
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.axis("off")
        ax.text(0.0, 0.5, name, ha="left", va="center", fontsize=10, fontweight="bold")
        left, width = 0.2, 0.8
        centres = [left + width * (i + 0.5) / len(steps) for i in range(len(steps))]
        for i, (x, label) in enumerate(zip(centres, steps, strict=True)):
            ax.text(x, 0.5, label, ha="center", va="center", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.4", "facecolor": "#e8f0fa", "edgecolor": "#4a78b0"})
            if i:
                gap = width / len(steps)
                ax.annotate("", xy=(x - 0.42 * gap, 0.5), xytext=(centres[i - 1] + 0.42 * gap, 0.5),
                            arrowprops={"arrowstyle": "->", "color": "#555555"})
    fig.suptitle("The families of bone-suppression methods, one idea per row", fontsize="medium")
    fig.tight_layout()
    return fig


def save_figures(papers: list[Paper], folder: Path) -> list[str]:
    """Write the three summary figures as PNG into ``folder``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    makers = (plot_papers_per_year, plot_datasets, plot_reported_metrics)
    for name, make in zip(FIGURE_FILES, makers, strict=True):
        fig = make(papers)
        fig.savefig(folder / name, dpi=80, metadata={"Software": None})
        plt.close(fig)
    return list(FIGURE_FILES)
