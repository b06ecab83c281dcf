"""The leaderboard: every method's per-image metrics on the same test images, ranked and tabulated.

Methods are sorted by mean whole-image PSNR (the one metric every paper
reports), best first; the identity row stays in that order, so every method
below it is visibly worse than doing nothing. The best mean of each metric
column is in bold, and each method's gain over doing nothing is given with
its paired bootstrap interval.

Every table says what data its numbers come from (:func:`bs_lib.benchmark.data.data_label`).
Lung-region rows are measured only on images that have their own lung mask;
a test set with several sources (``meta["source"]``) also gets a table per source.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from bs_lib.benchmark.data import data_label, has_lung_mask, sources
from bs_lib.benchmark.measure import LUNG_PREFIX, MethodResult, paired_difference
from bs_lib.benchmark.methods import IDENTITY
from bs_lib.benchmark.tables import DISPLAY, format_difference, markdown_table

SORT_KEY = "psnr"  # leaderboard order: mean whole-image PSNR, best first
BAR_METRICS = ("psnr", "bsr_symmetric")  # what a method must improve over the identity baseline
NO_LUNG_MASKS = "lung region: no lung masks for this dataset"
SOURCE_METRICS = ("psnr", "bsr_symmetric")  # the columns of the per-source table


@dataclass
class Leaderboard:
    """Every method's per-image metrics on the same test images, and the settings that produced them."""

    results: list[MethodResult]
    samples: list[dict]
    settings: dict

    # ------------------------------------------------------------------ what was measured

    def result(self, name: str) -> MethodResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"No method {name!r} in this benchmark; it has {', '.join(r.name for r in self.results)}.")

    @property
    def data(self) -> str:
        """What the numbers were measured on (phantom, real development pairs, other)."""
        return self.settings.get("data_label") or data_label(self.settings.get("dataset", "phantom"))

    def per_image_rows(self) -> list[dict]:
        """Long format: one row per (method, test image)."""
        return [{"method": r.name, **row} for r in self.results for row in r.per_image]

    def per_image_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.per_image_rows())

    def metric_keys(self) -> list[str]:
        """The metrics every method has (lung-region ones only when some image has a lung mask)."""
        keys = self.results[0].metric_keys()
        return [k for k in keys if all(k in r.metric_keys() for r in self.results)]

    def lung_images(self) -> list[int]:
        """Indices of the test images with their own lung mask (lung-region metrics exist only for them)."""
        return [i for i, sample in enumerate(self.samples) if has_lung_mask(sample)]

    def sources(self) -> list[str]:
        return sources(self.samples)

    # ------------------------------------------------------------------ statistics

    def ranked(self) -> list[MethodResult]:
        """Methods sorted by mean whole-image PSNR (:data:`SORT_KEY`), best first."""
        key = SORT_KEY if SORT_KEY in self.metric_keys() else self.metric_keys()[0]
        return sorted(self.results, key=lambda r: -r.summary()[key][0])

    def beats_identity(self, name: str) -> dict[str, bool]:
        """For :data:`BAR_METRICS`: is the method's mean better than the identity baseline's?"""
        identity, method = self.result(IDENTITY).summary(), self.result(name).summary()
        return {k: method[k][0] > identity[k][0] for k in BAR_METRICS if k in method and k in identity}

    def gain_over_identity(self, name: str, metric: str = SORT_KEY,
                           images: list[int] | None = None) -> tuple[float, float, float]:
        """Mean per-image gain of ``name`` over doing nothing, with its paired 95 % bootstrap interval."""
        return paired_difference(self.result(name).values(metric, images), self.result(IDENTITY).values(metric, images))

    def summary_rows(self) -> list[dict]:
        """One dict per method (ranked): mean and std of every metric, cost and budget."""
        rows = []
        for r in self.ranked():
            row = {"method": r.name, "label": r.label, "family": r.family, "parameters": r.parameters,
                   "seconds_per_image": r.seconds_per_image, **{f"budget_{k}": v for k, v in asdict(r.budget).items()}}
            for key, (mean, std) in r.summary().items():
                row[f"{key}_mean"], row[f"{key}_std"] = mean, std
            if r.name != IDENTITY and any(x.name == IDENTITY for x in self.results):
                row["beats_identity"] = self.beats_identity(r.name)
                row["psnr_gain_over_identity"] = self.gain_over_identity(r.name)
                row["bsr_symmetric_gain_over_identity"] = self.gain_over_identity(r.name, "bsr_symmetric")
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ tables

    def metric_columns(self, region: str) -> list[str]:
        keys = self.metric_keys()
        if region == "lung":
            return [LUNG_PREFIX + k for k in DISPLAY if LUNG_PREFIX + k in keys]
        return [k for k in DISPLAY if k in keys]

    def table(self, region: str = "whole", html_output: bool = False) -> tuple[list[str], list[list[str]]]:
        """(header, rows) of the leaderboard; ``region`` is ``"whole"``, ``"lung"``, ``"cost"`` or ``"source"``."""
        bold = ("<b>", "</b>") if html_output else ("**", "**")
        ranked = self.ranked()
        if region == "cost":
            header = ["method", "family", "parameters", "ms / image", "training (steps × batch)", "train time (s)"]
            rows = [[r.label, r.family, f"{r.parameters:,}", f"{1e3 * r.seconds_per_image:.2f}", r.budget.describe(),
                     "—" if r.budget.wall_time_s is None else f"{r.budget.wall_time_s:.1f}"] for r in ranked]
            return header, rows
        if region == "source":
            return self.source_table()
        columns = self.metric_columns(region)
        summaries = {r.name: r.summary() for r in ranked}
        best = {}
        for column in columns:
            higher = DISPLAY[column.removeprefix(LUNG_PREFIX)].higher_is_better
            if higher is None:
                continue
            means = [summaries[r.name][column][0] for r in ranked]
            best[column] = max(means) if higher else min(means)
        header = ["method", *[DISPLAY[c.removeprefix(LUNG_PREFIX)].title for c in columns]]
        show_bar = region == "whole" and IDENTITY in summaries
        if show_bar:
            header += ["Δ PSNR against identity (dB) [95 % CI]", "Δ BSR sym. against identity (%) [95 % CI]",
                       "beats identity (PSNR, BSR sym.)"]
        rows = []
        for r in ranked:
            cells = [r.label]
            for column in columns:
                shown = DISPLAY[column.removeprefix(LUNG_PREFIX)]
                mean, std = summaries[r.name][column]
                text = f"{mean * shown.scale:.{shown.decimals}f}"
                if column in best and math.isclose(mean, best[column], rel_tol=0, abs_tol=1e-12):
                    text = f"{bold[0]}{text}{bold[1]}"
                cells.append(f"{text} ± {std * shown.scale:.{shown.decimals}f}")
            if show_bar and r.name == IDENTITY:
                cells += ["—", "—", "—"]
            elif show_bar:
                cells.append(format_difference(*self.gain_over_identity(r.name)))
                bsr_gain = [100 * value for value in self.gain_over_identity(r.name, "bsr_symmetric")]
                cells.append(format_difference(*bsr_gain, digits=1))
                cells.append("yes" if all(self.beats_identity(r.name).values()) else
                             "**no**" if not html_output else "<b>no</b>")
            rows.append(cells)
        return header, rows

    def source_table(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows): every method on the images of each source, with its PSNR gain over doing nothing."""
        by_source = {source: [i for i, s in enumerate(self.samples) if str(s.get("meta", {}).get("source", "?"))
                              == source] for source in self.sources()}
        columns = [k for k in SOURCE_METRICS if k in self.metric_keys()]
        header = ["method", "source (images)", *[DISPLAY[k].title for k in columns]]
        with_identity = any(r.name == IDENTITY for r in self.results)
        if with_identity:
            header.append("Δ PSNR against identity (dB) [95 % CI]")
        rows = []
        for r in self.ranked():
            for source, images in by_source.items():
                summary = r.summary(images)
                cells = [r.label, f"{source} ({len(images)})"]
                for key in columns:
                    shown = DISPLAY[key]
                    mean, std = summary[key]
                    cells.append(f"{mean * shown.scale:.{shown.decimals}f} ± {std * shown.scale:.{shown.decimals}f}")
                if with_identity:
                    cells.append("—" if r.name == IDENTITY else
                                 format_difference(*self.gain_over_identity(r.name, images=images)))
                rows.append(cells)
        return header, rows

    def lung_note(self) -> str:
        """What the lung-region table covers: all images, some of them, or none (then no rows at all)."""
        count = len(self.lung_images())
        if count == 0 or not self.metric_columns("lung"):
            return NO_LUNG_MASKS
        if count < len(self.samples):
            return f"inside each image's own lung mask, on the {count} of {len(self.samples)} images that have one"
        return "inside each image's own lung mask"

    def sections(self) -> list[tuple[str, str, str]]:
        """(region, title, note) of each table of the leaderboard, in order."""
        count = len(self.samples)
        sections = [("whole", f"Whole image — {self.data}", f"mean ± std over {count} test images")]
        lung_note = self.lung_note()
        sections.append(("lung" if lung_note != NO_LUNG_MASKS else "", f"Lung region — {self.data}", lung_note))
        if len(self.sources()) > 1:
            sections.append(("source", f"By source — {self.data}", "the same predictions, on each source's images"))
        sections.append(("cost", "Cost", "parameters one prediction uses, time per image, training budget"))
        return sections

    def leaderboard_markdown(self) -> str:
        """The leaderboard (whole image, lung region, per source, cost) as Markdown tables."""
        parts = [f"Data: **{self.data}**. Sorted by mean whole-image PSNR, best first; mean ± std over "
                 f"{len(self.samples)} test images; best mean per column in bold. The gain over identity is the mean "
                 f"per-image difference with its paired bootstrap interval (an interval containing 0: no "
                 f"detectable difference)."]
        for region, title, note in self.sections():
            parts += ["", f"### {title}", ""]
            if not region:  # no lung masks: a sentence instead of rows
                parts.append(note)
                continue
            if region in ("lung", "source"):
                parts += [f"{note[0].upper()}{note[1:]}.", ""]
            parts.append(markdown_table(*self.table(region)))
        return "\n".join(parts)
