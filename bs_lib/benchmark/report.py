"""The benchmark's report: Markdown and HTML (command, settings, leaderboard, the published table apart), JSON, CSV.

:class:`BenchmarkResult` is the :class:`~bs_lib.benchmark.result.Leaderboard`
that can write itself: ``save(stem)`` writes ``<stem>.md``, ``.html``,
``.json``, ``.csv`` (per image) and the figures.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib.pyplot as plt

from bs_lib.benchmark.figures import case_grid, difference_maps, save_compact_png
from bs_lib.benchmark.published import published_html, published_markdown
from bs_lib.benchmark.result import Leaderboard
from bs_lib.benchmark.tables import html_table, versions_text

STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
         "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "td:first-child,th:first-child{text-align:left}.different-data{background:#f6f6f6;padding:1em}")


def settings_markdown(s: dict) -> str:
    """The settings of a benchmark as a Markdown list: data, training, device, metrics, time."""
    lungs = s.get("lung_masks", "the phantom's lung mask")
    lines = [f"- data: {s.get('data_label', s['dataset'])}: `{s['dataset']}` test split, {s['num_test']} images at "
             f"{s['image_size']}², seed {s['seed']}; split saved as `{s['split_file']}`",
             f"- training: each method's `{s['profile']}` config (`bs_lib/configs/<method>.yaml`) at "
             f"{s['image_size']}², seed {s['seed']}; training-step overrides: {s['train_steps'] or 'none'}, "
             f"step scale ×{s['steps_scale']:g} (BS-LDM: both stages; the notebooks' runs are reused only unscaled)"
             + (f"; training pairs seen through random imaging chains (`data_args.randomise: "
                f"{'true' if s['randomise'] is True else s['randomise']}`, `bs_lib.augment`; BS-LDM without)"
                if s.get("randomise") else ""),
             f"- device: {s['device']} ({s['torch_threads']} torch thread(s)); {versions_text(s['versions'])}",
             f"- metrics: `bs_lib.metrics.evaluate` per image (float, data range 1); lung region = {lungs}; "
             f"std is the population standard deviation over images",
             f"- this invocation: {s['total_time_s']:.0f} s (runs finished earlier with the same config are reused; "
             f"the Cost table gives each method's own training time)"]
    return "\n".join(lines)


def title(s: dict) -> str:
    return f"Benchmark: {s['profile']} profile, {s['dataset']} test split at {s['image_size']}²"


class BenchmarkResult(Leaderboard):
    """Every method's per-image metrics on the same test images, and everything needed to report them."""

    def report_markdown(self) -> str:
        """The whole report: command, settings, leaderboard, then the published table, apart."""
        s = self.settings
        lines = [f"# {title(s)}", "", "Produced by:", "", "```", s["command"], "```", "",
                 settings_markdown(s), "", f"## Leaderboard ({self.data})", "", self.leaderboard_markdown(), "",
                 published_markdown()]
        return "\n".join(lines) + "\n"

    def report_html(self) -> str:
        s = self.settings
        body = [f"<h1>{html.escape(title(s))}</h1>", f"<p>Produced by:</p><pre>{html.escape(s['command'])}</pre>",
                "<ul>" + "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>"
                                 for line in settings_markdown(s).splitlines()) + "</ul>",
                f"<h2>Leaderboard ({html.escape(self.data)})</h2>",
                f"<p>Sorted by mean whole-image PSNR, best first; mean ± std over {len(self.samples)} test images; "
                f"best mean per column in bold.</p>"]
        for region, heading, note in self.sections():
            body.append(f"<h3>{html.escape(heading)}</h3>")
            if not region:
                body.append(f"<p>{html.escape(note)}</p>")
                continue
            body.append(html_table(*self.table(region, html_output=True)))
        body.append(published_html())
        return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>bs_lib benchmark</title>"
                f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def to_json(self) -> dict:
        return {"settings": self.settings, "summary": self.summary_rows(), "per_image": self.per_image_rows()}

    def save(self, stem: str | Path, figures: bool = True) -> list[Path]:
        """Write ``<stem>.md``, ``.html``, ``.csv`` (per image), ``.json`` and the figures; returns the paths."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        written = []
        for suffix, text in ((".md", self.report_markdown()), (".html", self.report_html()),
                             (".json", json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")):
            path = stem.with_name(stem.name + suffix)
            path.write_text(text, encoding="utf-8")
            written.append(path)
        csv_path = stem.with_name(stem.name + ".csv")
        self.per_image_frame().to_csv(csv_path, index=False, float_format="%.6g")
        written.append(csv_path)
        if figures:
            for name, draw in (("_cases.png", case_grid), ("_differences.png", difference_maps)):
                figure = draw(self)
                path = stem.with_name(stem.name + name)
                save_compact_png(figure, path)
                plt.close(figure)
                written.append(path)
        return written
