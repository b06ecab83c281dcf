"""The literature survey as data: one YAML file per paper, checked like code.

The field of bone suppression is small enough to read completely, and big
enough that a list in a README drifts out of date. So every paper is a file,
``papers/<id>.yaml``, with a fixed schema (see ``CONTRIBUTING.md``)::

    id: bs-ldm-2025                # slug, equals the file name
    title: "BS-LDM: ..."
    authors: ["Y. Sun", "Z. Chen", "et al."]
    year: 2025
    venue: "IEEE Journal of Biomedical and Health Informatics"
    category: diffusion            # one of CATEGORIES
    datasets: ["SZCH-X-Rays"]
    metrics:
      - {name: PSNR, value: 33.22, unit: dB, dataset: SZCH-X-Rays, resolution: 1024, source: paper}
    code: https://github.com/...
    links: {arxiv: https://arxiv.org/abs/2412.15670}
    evidence: verified
    unverified: []
    summary: {problem: ..., method: ..., key_idea: ..., results: ..., limitations: ...}

This module is the whole life of that database:

* :func:`check_folder` reads every entry and collects **every** problem, each
  naming the file, the field and what to do, so a contributor fixes them all
  in one pass;
* :func:`load_papers` returns the entries as :class:`Paper` objects (and
  raises :class:`PaperDatabaseError` when anything is wrong);
* :func:`render_index` writes the ``papers/README.md`` tables, grouped by
  category and sorted by year then id. The output is a pure function of the
  entries (no timestamps), so a test can regenerate it and demand no diff;
* :func:`plot_papers_per_year`, :func:`plot_datasets` and
  :func:`plot_reported_metrics` return matplotlib figures for notebook 00;
* ``python -m bs_lib papers new|check|build`` drives all of it.

A word on the numbers: a PSNR reported by one paper and a PSNR reported by
another are rarely comparable. Datasets, splits, resolutions, intensity
scales and even the metric code differ (BS-LDM's official PSNR, for example,
was computed on 8-bit differences that wrap around). Every metric therefore
carries its dataset, resolution, target (the soft-tissue image, or a bone
image) and source (``paper``, ``re-evaluation`` or ``secondary``), and a plot
puts two numbers on one axis only when dataset, target and resolution agree.

Two fields report what a source list says rather than what the paper says:
``highlighted`` (a star in the survey list) and ``category`` where it departs
from that list (``survey_category``). Both must name their source in
``sources``, and :func:`check_folder` reports an entry that does not.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from bs_lib.resources import course_path

if TYPE_CHECKING:  # pandas and matplotlib load only when a table or a figure is asked for
    import pandas as pd
    from matplotlib.figure import Figure

#: The clone's ``papers/`` in a source tree, else the copy a wheel carries (see :mod:`bs_lib.resources`).
PAPERS_DIR = course_path("papers")
INDEX_NAME = "README.md"
FIGURES_DIR_NAME = "figures"
ENTRY_SUFFIXES = (".yaml", ".yml", ".md")

YEAR_MIN, YEAR_MAX = 1990, 2027
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

#: category -> (group, heading in the index). The order is the order of the index.
CATEGORIES: dict[str, tuple[str, str]] = {
    "manual": ("bone suppression", "Manual suppression and conventional methods"),
    "commercial": ("bone suppression", "Commercial and clinical software"),
    "autoencoder": ("bone suppression", "Autoencoders"),
    "domain-adaptation": ("bone suppression", "Domain adaptation"),
    "distillation": ("bone suppression", "Distillation learning"),
    "gan": ("bone suppression", "Generative adversarial networks"),
    "cnn": ("bone suppression", "Convolutional neural networks"),
    "diffusion": ("bone suppression", "Diffusion models"),
    "application": ("bone suppression", "Applications of bone suppression"),
    "cross-modality-synthesis": ("adjacent field", "Cross-modality image synthesis"),
    "medical-diffusion": ("adjacent field", "Diffusion models in medical imaging and vision"),
    "segmentation": ("adjacent field", "Segmentation, augmentation and distillation"),
    "xray-pretraining": ("adjacent field", "X-ray pre-training"),
    "report-generation": ("adjacent field", "Radiology report generation"),
    "datasets": ("adjacent field", "Datasets"),
}
METRIC_NAMES = (
    "PSNR", "SSIM", "MS-SSIM", "MSE", "BSR", "LPIPS", "AUC", "sensitivity", "specificity", "other",
)
METRIC_UNITS = ("dB", "fraction", "percent", "1e-3", "none")
#: paper: the paper's own number; re-evaluation: measured by other authors;
#: secondary: the paper's number as quoted by a third party, not checked against the paper.
METRIC_SOURCES = ("paper", "re-evaluation", "secondary")
#: What the number was measured on: the soft-tissue (bone-suppressed) image, or a predicted bone image.
METRIC_TARGETS = ("soft", "bone")
#: Metrics where a lower value is better unless the entry says otherwise with ``better:``.
LOWER_IS_BETTER = ("MSE", "LPIPS")
EVIDENCE_LEVELS = ("verified", "secondary", "unverified")
SUMMARY_KEYS = ("problem", "method", "key_idea", "results", "limitations")
NOTEBOOKS = (
    "00_survey", "01_physics", "02_datasets", "03_autoencoders_cnns", "04_gans",
    "05_distillation_adaptation", "06_ml_vqgan", "07_bs_ldm_training", "08_bs_ldm_sampling",
    "09_benchmark",
)
REQUIRED_FIELDS = ("id", "title", "authors", "year", "venue", "category", "evidence", "summary")
OPTIONAL_FIELDS = (
    "also_in", "highlighted", "survey_category", "sources", "datasets", "metrics", "code", "links",
    "unverified", "notebooks",
)
#: Fields whose value comes from a source list and must say where it comes from (see ``sources``).
SOURCED_FIELDS = ("highlighted", "category")
METRIC_REQUIRED = ("name", "value", "unit", "dataset", "resolution", "source")
METRIC_OPTIONAL = ("note", "target", "better")
#: Text a scaffolded entry carries until a person writes the summary.
PLACEHOLDER = "TODO"
PLACEHOLDER_URL = re.compile(r"xxx|TODO|example\.(com|org)", re.IGNORECASE)


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one entry: where, which field, what, and what to do.

    ``severity`` is ``"error"`` (``papers check`` fails) or ``"warning"`` (it
    is printed, the check still passes; e.g. a summary still reading TODO).
    """

    path: str
    field: str
    message: str
    fix: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.path}: field '{self.field}'" if self.field else self.path
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{where}: {self.message}. {self.fix}"


class PaperDatabaseError(ValueError):
    """The papers database has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the papers database:\n{lines}")


# --------------------------------------------------------------------------- the entries


@dataclass(frozen=True)
class Metric:
    """A number reported for a method: PSNR 33.22 dB on SZCH-X-Rays at 1024², from the paper."""

    name: str
    value: float
    unit: str
    dataset: str
    resolution: int | None
    source: str
    note: str = ""
    target: str = "soft"
    better: str = "higher"

    def value_in(self, unit: str) -> float:
        """The value converted to ``unit``: fraction ↔ percent (×100), none ↔ 1e-3 (×1000)."""
        scale = {"fraction": 1.0, "percent": 100.0, "none": 1.0, "1e-3": 1000.0, "dB": 1.0}
        compatible = [{"fraction", "percent"}, {"none", "1e-3"}, {"dB"}]
        if self.unit == unit:
            return self.value
        if not any({self.unit, unit} <= group for group in compatible):
            raise ValueError(f"cannot convert {self.name} from unit {self.unit!r} to {unit!r}")
        return self.value / scale[self.unit] * scale[unit]


@dataclass(frozen=True)
class Paper:
    """One entry of the database, after validation."""

    id: str
    title: str
    authors: tuple[str, ...]
    year: int
    venue: str
    category: str
    evidence: str
    summary: dict[str, str]
    path: Path
    also_in: tuple[str, ...] = ()
    highlighted: bool = False
    survey_category: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    datasets: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = ()
    code: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    unverified: tuple[str, ...] = ()
    notebooks: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """``"bone suppression"`` or ``"adjacent field"``."""
        return CATEGORIES[self.category][0]

    @property
    def short_authors(self) -> str:
        """First author, then "et al." when there are more."""
        first = self.authors[0].removesuffix(" et al.").strip()
        return first if len(self.authors) == 1 and first == self.authors[0] else f"{first} et al."

    @property
    def paper_url(self) -> str | None:
        """The best link to the paper itself: DOI, then arXiv, then any other link."""
        for key in ("doi", "arxiv", *sorted(self.links)):
            if key in self.links:
                return self.links[key]
        return None


# --------------------------------------------------------------------------- reading


def entry_files(folder: Path | str = PAPERS_DIR) -> list[Path]:
    """The entry files of a folder (``*.yaml``, ``*.yml``, ``*.md`` except the index), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"papers folder {folder} does not exist; pass the folder of the entries")
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix in ENTRY_SUFFIXES and p.name != INDEX_NAME and not p.name.startswith(".")
    )


def read_entry(path: Path) -> tuple[Any, list[Problem]]:
    """Parse one file: YAML, or Markdown whose YAML front matter sits between ``---`` lines."""
    import yaml

    shown = _display(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
        if match is None:
            return None, [Problem(shown, "", "a Markdown entry has no YAML front matter",
                                  "Start the file with '---', the YAML fields, and '---'.")]
        text = match.group(1)
    try:
        return yaml.safe_load(text), []
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        return None, [Problem(shown, "", f"is not valid YAML{where} ({reason})",
                              "Fix the YAML syntax (quote titles that contain ':' or '#').")]


def _display(path: Path) -> str:
    """The path as a person would type it: relative to the working directory when possible."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- validating


class _Checker:
    """Collects the problems of one entry; each check appends and never stops early."""

    def __init__(self, path: Path):
        self.path = path
        self.shown = _display(path)
        self.problems: list[Problem] = []

    def error(self, field_name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.shown, field_name, message, fix))

    def warn(self, field_name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.shown, field_name, message, fix, severity="warning"))

    # -- small typed checks; each returns whether the value is usable

    def text(self, name: str, value: Any) -> bool:
        if isinstance(value, str) and value.strip():
            return True
        self.error(name, f"expected a non-empty string, got {value!r}", f"Write the {name} as text.")
        return False

    def text_list(self, name: str, value: Any, non_empty: bool = False) -> bool:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.error(name, f"expected a list of non-empty strings, got {value!r}",
                       f"Write {name} as a YAML list, e.g. {name}: [\"first\", \"second\"].")
            return False
        if non_empty and not value:
            self.error(name, "the list is empty", f"Give at least one entry in {name}.")
            return False
        return True

    def choice(self, name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> bool:
        if isinstance(value, str) and value in allowed:
            return True
        hint = difflib.get_close_matches(str(value), list(allowed), n=1)
        suggestion = f"Did you mean '{hint[0]}'? " if hint else ""
        self.error(name, f"unknown value {value!r}",
                   f"{suggestion}Use one of: {', '.join(allowed)}.")
        return False

    def url(self, name: str, value: Any) -> bool:
        problem = url_problem(value)
        if problem:
            self.error(name, problem, "Give the full address, starting with https://.")
            return False
        return True


def url_problem(value: Any) -> str | None:
    """Why ``value`` is not a well-formed web address (None when it is one)."""
    if not isinstance(value, str):
        return f"expected a URL string, got {value!r}"
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or "." not in parsed.netloc or re.search(r"\s", value):
        return f"{value!r} is not a well-formed http(s) URL"
    if PLACEHOLDER_URL.search(value):
        return f"{value!r} looks like a placeholder, not a real address"
    return None


def validate_entry(data: Any, path: Path) -> list[Problem]:
    """Every problem with one parsed entry (an empty list means it is valid)."""
    check = _Checker(path)
    if not isinstance(data, dict):
        check.error("", f"expected a YAML mapping of fields, got {type(data).__name__}",
                    "Write one 'field: value' per line; see CONTRIBUTING.md for the schema.")
        return check.problems

    known = REQUIRED_FIELDS + OPTIONAL_FIELDS
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            fix = f"Did you mean '{hint[0]}'?" if hint else f"Known fields: {', '.join(known)}."
            check.error(str(key), "unknown field", f"Remove it or rename it. {fix}")
    for key in REQUIRED_FIELDS:
        if key not in data or data[key] is None:
            check.error(key, "required field is missing", f"Add '{key}:' (see CONTRIBUTING.md).")

    _check_identity(check, data, path)
    _check_classification(check, data)
    _check_sources(check, data)
    _check_datasets_and_metrics(check, data)
    _check_links(check, data)
    _check_evidence(check, data)
    _check_summary(check, data)
    return check.problems


def _check_identity(check: _Checker, data: dict, path: Path) -> None:
    if data.get("id") is not None and check.text("id", data["id"]):
        entry_id = data["id"]
        if not ID_PATTERN.match(entry_id):
            check.error("id", f"{entry_id!r} is not a slug",
                        "Use lower-case letters, digits and single hyphens, e.g. 'gusarev-2017'.")
        elif entry_id != path.stem:
            check.error("id", f"{entry_id!r} differs from the file name {path.name!r}",
                        f"Rename the file to {entry_id}{path.suffix} or set id: {path.stem}.")
    if data.get("title") is not None:
        check.text("title", data["title"])
    if data.get("authors") is not None:
        check.text_list("authors", data["authors"], non_empty=True)
    year = data.get("year")
    if year is not None and not (isinstance(year, int) and not isinstance(year, bool)
                                 and YEAR_MIN <= year <= YEAR_MAX):
        check.error("year", f"expected an integer between {YEAR_MIN} and {YEAR_MAX}, got {year!r}",
                    "Fix the year (write it without quotes; note doubts in 'unverified').")
    if data.get("venue") is not None:
        check.text("venue", data["venue"])


def _check_classification(check: _Checker, data: dict) -> None:
    categories = list(CATEGORIES)
    if data.get("category") is not None:
        check.choice("category", data["category"], categories)
    also_in = data.get("also_in", [])
    if also_in is not None and check.text_list("also_in", also_in):
        for extra in also_in:
            check.choice("also_in", extra, categories)
        if data.get("category") in also_in:
            check.error("also_in", f"repeats the main category {data['category']!r}",
                        "List only further categories in also_in.")
    highlighted = data.get("highlighted", False)
    if not isinstance(highlighted, bool):
        check.error("highlighted", f"expected true or false, got {highlighted!r}",
                    "Write highlighted: true (starred in the survey list) or leave it out.")
    notebooks = data.get("notebooks", [])
    if notebooks is not None and check.text_list("notebooks", notebooks):
        for name in notebooks:
            check.choice("notebooks", name, NOTEBOOKS)


def _check_sources(check: _Checker, data: dict) -> None:
    """A star, and a category that departs from the survey list, must say where they come from."""
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        check.error("sources", f"expected a mapping like {{highlighted: \"...\"}}, got {sources!r}",
                    "Write one 'field: where its value comes from' per line under sources:.")
        return
    for key, text in sources.items():
        if key in SOURCED_FIELDS:
            check.text(f"sources.{key}", text)
        else:
            check.error(f"sources.{key}", "not a sourced field", f"Use only {', '.join(SOURCED_FIELDS)}.")
    if data.get("highlighted") is True and not sources.get("highlighted"):
        check.error("sources.highlighted", "highlighted: true has no source",
                    "Say where the star comes from, e.g. sources: {highlighted: \"⭐ in the survey list "
                    "by Y. Sun and Z. Chen (commit ee40683)\"}, or remove highlighted.")
    elif sources.get("highlighted") and data.get("highlighted") is not True:
        check.error("sources.highlighted", "gives a source for a star the entry does not claim",
                    "Set highlighted: true, or remove sources.highlighted.")
    survey = data.get("survey_category")
    if survey is None or not check.choice("survey_category", survey, list(CATEGORIES)):
        return
    if survey != data.get("category") and not sources.get("category"):
        check.error("sources.category", f"category {data.get('category')!r} departs from the survey list's "
                    f"{survey!r} without a reason",
                    f"Say why in sources: {{category: \"...\"}}, or set category: {survey}.")


def _check_datasets_and_metrics(check: _Checker, data: dict) -> None:
    datasets = data.get("datasets", [])
    if datasets is not None:
        check.text_list("datasets", datasets)
    metrics = data.get("metrics", [])
    if metrics is None:
        return
    if not isinstance(metrics, list):
        check.error("metrics", f"expected a list, got {type(metrics).__name__}",
                    "Write metrics as a YAML list of mappings (or metrics: [] when none).")
        return
    for index, metric in enumerate(metrics):
        _check_metric(check, f"metrics[{index}]", metric)


def _check_metric(check: _Checker, where: str, metric: Any) -> None:
    if not isinstance(metric, dict):
        check.error(where, f"expected a mapping, got {metric!r}",
                    "Give name, value, unit, dataset, resolution and source.")
        return
    for key in metric:
        if key not in METRIC_REQUIRED + METRIC_OPTIONAL:
            hint = difflib.get_close_matches(str(key), METRIC_REQUIRED + METRIC_OPTIONAL, n=1)
            check.error(f"{where}.{key}", "unknown field",
                        f"Remove it. {f'Did you mean {hint[0]!r}?' if hint else ''}".strip())
    for key in METRIC_REQUIRED:
        if key not in metric:
            check.error(f"{where}.{key}", "required field is missing",
                        f"Add '{key}:' (resolution may be null when unknown).")
    if "name" in metric:
        check.choice(f"{where}.name", metric["name"], METRIC_NAMES)
    if "unit" in metric:
        check.choice(f"{where}.unit", metric["unit"], METRIC_UNITS)
    if "source" in metric:
        check.choice(f"{where}.source", metric["source"], METRIC_SOURCES)
    if "target" in metric:
        check.choice(f"{where}.target", metric["target"], METRIC_TARGETS)
    if "better" in metric:
        check.choice(f"{where}.better", metric["better"], ("higher", "lower"))
    if "dataset" in metric:
        check.text(f"{where}.dataset", metric["dataset"])
    if "note" in metric:
        check.text(f"{where}.note", metric["note"])
    resolution = metric.get("resolution")
    if resolution is not None and not (isinstance(resolution, int) and not isinstance(resolution, bool)
                                       and resolution > 0):
        check.error(f"{where}.resolution", f"expected a positive integer or null, got {resolution!r}",
                    "Give the image side in pixels (e.g. 1024), or null when unknown.")
    value = metric.get("value")
    if "value" in metric:
        if not _is_number(value):
            check.error(f"{where}.value", f"expected a number, got {value!r}",
                        "Write the number without quotes or units (the unit goes in 'unit').")
        elif metric.get("unit") == "fraction" and not 0 <= value <= 1.5:
            check.error(f"{where}.value", f"{value} is not a fraction",
                        "Use unit: percent for values like 95.4, or divide by 100.")
        elif metric.get("unit") == "percent" and not 0 <= value <= 100:
            check.error(f"{where}.value", f"{value} is not a percentage", "Check the value and its unit.")


def default_better(name: str) -> str:
    """Which direction is better for a metric when the entry does not say: ``"lower"`` or ``"higher"``."""
    return "lower" if name in LOWER_IS_BETTER else "higher"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_links(check: _Checker, data: dict) -> None:
    if data.get("code") is not None:
        check.url("code", data["code"])
    links = data.get("links", {})
    if links is None:
        return
    if not isinstance(links, dict):
        check.error("links", f"expected a mapping like {{arxiv: https://...}}, got {links!r}",
                    "Write one 'kind: URL' per line under links:.")
        return
    for kind, address in links.items():
        if not (isinstance(kind, str) and ID_PATTERN.match(kind)):
            check.error(f"links.{kind}", "link names are short lower-case words",
                        "Use names like arxiv, doi, pubmed, publisher, project.")
        check.url(f"links.{kind}", address)


def _check_evidence(check: _Checker, data: dict) -> None:
    if data.get("evidence") is not None:
        check.choice("evidence", data["evidence"], EVIDENCE_LEVELS)
    unverified = data.get("unverified", [])
    if unverified is not None:
        check.text_list("unverified", unverified)


def _check_summary(check: _Checker, data: dict) -> None:
    summary = data.get("summary")
    if summary is None:
        return
    if not isinstance(summary, dict):
        check.error("summary", f"expected a mapping with keys {', '.join(SUMMARY_KEYS)}",
                    "Write the summary as 'summary:' followed by indented 'problem: ...' lines.")
        return
    for key in summary:
        if key not in SUMMARY_KEYS:
            hint = difflib.get_close_matches(str(key), SUMMARY_KEYS, n=1)
            check.error(f"summary.{key}", "unknown summary key",
                        f"Use only {', '.join(SUMMARY_KEYS)}. {f'Did you mean {hint[0]!r}?' if hint else ''}"
                        .strip())
    for key in SUMMARY_KEYS:
        if key not in summary:
            check.error(f"summary.{key}", "required summary key is missing",
                        f"Add '{key}:' with one to three sentences in your own words.")
        elif check.text(f"summary.{key}", summary[key]) and summary[key].strip().startswith(PLACEHOLDER):
            check.warn(f"summary.{key}", "still holds the scaffold's placeholder",
                       "Replace the TODO text with one to three sentences.")


def validate_database(entries: dict[Path, dict]) -> list[Problem]:
    """Problems that only show across entries: the same id, or the same title, twice."""
    problems: list[Problem] = []
    by_id: dict[str, list[Path]] = {}
    by_title: dict[str, list[Path]] = {}
    for path, data in entries.items():
        if isinstance(data.get("id"), str):
            by_id.setdefault(data["id"], []).append(path)
        if isinstance(data.get("title"), str):
            by_title.setdefault(_normalised_title(data["title"]), []).append(path)
    for entry_id, paths in sorted(by_id.items()):
        for path in paths[1:]:
            problems.append(Problem(_display(path), "id", f"duplicate id {entry_id!r} (also in "
                                    f"{_display(paths[0])})", "Give each paper its own id."))
    for paths in by_title.values():
        for path in paths[1:]:
            problems.append(Problem(_display(path), "title", f"the same title as {_display(paths[0])}",
                                    "Keep one entry per paper; list extra categories in also_in."))
    return problems


def _normalised_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


def check_folder(folder: Path | str = PAPERS_DIR) -> tuple[list[Paper], list[Problem]]:
    """Read and validate every entry of ``folder``.

    Returns the entries that are valid (as :class:`Paper`) and every problem
    found, errors and warnings together; nothing is raised for bad entries.
    """
    parsed: dict[Path, dict] = {}
    problems: list[Problem] = []
    for path in entry_files(folder):
        data, read_problems = read_entry(path)
        problems += read_problems
        if read_problems:
            continue
        entry_problems = validate_entry(data, path)
        problems += entry_problems
        if isinstance(data, dict):
            parsed[path] = data
    problems += validate_database(parsed)
    problems.sort(key=lambda p: p.path)  # stable: each file's problems stay in field order
    failing = {p.path for p in problems if p.severity == "error"}
    papers = [_to_paper(data, path) for path, data in parsed.items() if _display(path) not in failing]
    return sort_papers(papers), problems


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def load_papers(folder: Path | str = PAPERS_DIR) -> list[Paper]:
    """All entries of ``folder``, sorted by category, year and id.

    Raises :class:`PaperDatabaseError` listing every error when any entry is
    invalid, so an analysis never runs on half a database.
    """
    papers, problems = check_folder(folder)
    if errors_only(problems):
        raise PaperDatabaseError(errors_only(problems))
    return papers


def _to_paper(data: dict, path: Path) -> Paper:
    metrics = tuple(
        Metric(m["name"], float(m["value"]), m["unit"], m["dataset"], m["resolution"], m["source"],
               m.get("note", ""), m.get("target", "soft"), m.get("better", default_better(m["name"])))
        for m in data.get("metrics") or []
    )
    return Paper(
        id=data["id"], title=data["title"].strip(), authors=tuple(data["authors"]), year=data["year"],
        venue=data["venue"].strip(), category=data["category"], evidence=data["evidence"],
        summary={k: data["summary"][k].strip() for k in SUMMARY_KEYS}, path=Path(path),
        also_in=tuple(data.get("also_in") or ()), highlighted=bool(data.get("highlighted", False)),
        survey_category=data.get("survey_category"), sources=dict(data.get("sources") or {}),
        datasets=tuple(data.get("datasets") or ()), metrics=metrics, code=data.get("code"),
        links=dict(data.get("links") or {}), unverified=tuple(data.get("unverified") or ()),
        notebooks=tuple(data.get("notebooks") or ()),
    )


def sort_papers(papers: list[Paper]) -> list[Paper]:
    """Index order: category (as in :data:`CATEGORIES`), then year, then id."""
    order = {name: i for i, name in enumerate(CATEGORIES)}
    return sorted(papers, key=lambda p: (order[p.category], p.year, p.id))


# --------------------------------------------------------------------------- tables


def papers_frame(papers: list[Paper]) -> pd.DataFrame:
    """One row per paper: id, title, first author, year, venue, category, group, evidence, …"""
    import pandas as pd

    rows = [
        {
            "id": p.id, "title": p.title, "authors": p.short_authors, "year": p.year, "venue": p.venue,
            "category": p.category, "group": p.group, "evidence": p.evidence,
            "highlighted": p.highlighted, "n_datasets": len(p.datasets), "n_metrics": len(p.metrics),
            "has_code": p.code is not None,
        }
        for p in papers
    ]
    columns = ["id", "title", "authors", "year", "venue", "category", "group", "evidence",
               "highlighted", "n_datasets", "n_metrics", "has_code"]
    return pd.DataFrame(rows, columns=columns)


def metrics_frame(papers: list[Paper]) -> pd.DataFrame:
    """One row per reported number, with the paper's id, year and category beside it."""
    import pandas as pd

    rows = [
        {"id": p.id, "year": p.year, "category": p.category, "metric": m.name, "value": m.value,
         "unit": m.unit, "dataset": m.dataset, "resolution": m.resolution, "source": m.source,
         "target": m.target, "better": m.better, "note": m.note}
        for p in papers for m in p.metrics
    ]
    columns = ["id", "year", "category", "metric", "value", "unit", "dataset", "resolution", "source",
               "target", "better", "note"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["resolution"] = frame["resolution"].astype("Int64")  # whole pixels; <NA> when unknown
    return frame


# --------------------------------------------------------------------------- the index


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _format_metric(metric: Metric) -> str:
    unit = {"dB": " dB", "percent": " %", "1e-3": "×10⁻³"}.get(metric.unit, "")
    resolution = f", {metric.resolution}²" if metric.resolution else ""
    marker = {"paper": "", "re-evaluation": " †", "secondary": " ‡"}[metric.source]
    arrow = " ↓" if metric.better == "lower" else ""
    target = "bone image; " if metric.target == "bone" else ""
    return f"{metric.name} {metric.value:g}{unit}{arrow} ({target}{metric.dataset}{resolution}){marker}"


def _metrics_cell(metrics: tuple[Metric, ...]) -> str:
    """Named metrics in full; those named ``other`` (reader scores, timings) only counted."""
    named = [_format_metric(m) for m in metrics if m.name != "other"]
    others = sum(m.name == "other" for m in metrics)
    return "; ".join(named + ([f"+{others} other number(s) in the entry"] if others else []))


def _index_row(paper: Paper) -> str:
    star = " ⭐" if paper.highlighted else ""
    also = f" (also: {', '.join(paper.also_in)})" if paper.also_in else ""
    if paper.survey_category and paper.survey_category != paper.category:
        also += f" (survey list: {paper.survey_category})"
    links = [f"[{kind}]({url})" for kind, url in sorted(paper.links.items())]
    code = f"[code]({paper.code})" if paper.code else "—"
    cells = [
        str(paper.year),
        f"[{_cell(paper.title)}]({paper.path.name}){star}{also}",
        _cell(paper.short_authors),
        _cell(paper.venue),
        _cell(", ".join(paper.datasets)) or "—",
        _cell(_metrics_cell(paper.metrics)) or "—",
        code,
        " ".join(links) or "—",
        paper.evidence,
    ]
    return "| " + " | ".join(cells) + " |"


def render_index(papers: list[Paper], figures: list[str] | None = None) -> str:
    """The Markdown text of ``papers/README.md``: a pure function of the entries.

    ``figures`` are file names under ``figures/`` to show below the counts.
    """
    papers = sort_papers(papers)
    counts = Counter(p.category for p in papers)
    groups = Counter(p.group for p in papers)
    lines = [
        "# Papers",
        "",
        "<!-- Generated by `python -m bs_lib papers build` from the entry files; do not edit by hand. -->",
        "",
        f"{len(papers)} entries: {groups['bone suppression']} on bone suppression and "
        f"{groups['adjacent field']} from adjacent fields. Each title links to its entry file, "
        "which holds the summary (problem, method, key idea, results, limitations).",
        "",
        "To add a paper, see [Adding a paper](../CONTRIBUTING.md#adding-a-paper).",
        "",
        "Legend: ⭐ highlighted in the survey list by the BS-LDM authors; *survey list: …* the "
        "category that list gives where ours differs (the entry's `sources` says why); † a number from a "
        "re-evaluation by other authors, not from the paper itself; ‡ the paper's number as quoted by a "
        "third party, not checked against the paper; ↓ lower is better (higher is better otherwise); "
        "*bone image* a number measured on a predicted bone image rather than on the soft-tissue "
        "image. *Evidence* says how well the "
        "entry is sourced: `verified` (abstract, publisher page or official code), `secondary` "
        "(a survey list or a third party only), `unverified` (still to be checked). Reported numbers "
        "are **not comparable across rows**: datasets, splits, resolutions and metric code differ.",
        "",
        "| category | entries |",
        "|---|---|",
    ]
    lines += [f"| [{CATEGORIES[c][1]}](#{_anchor(CATEGORIES[c][1])}) | {counts[c]} |"
              for c in CATEGORIES if counts[c]]
    for name in figures or []:
        lines += ["", f"![{name}]({FIGURES_DIR_NAME}/{name})"]
    header = ("| year | paper | authors | venue | datasets | reported numbers | code | links | evidence |\n"
              "|---|---|---|---|---|---|---|---|---|")
    current_group = None
    for category, (group, heading) in CATEGORIES.items():
        members = [p for p in papers if p.category == category]
        if not members:
            continue
        if group != current_group:
            lines += ["", f"## {group.capitalize()}"]
            current_group = group
        lines += ["", f"### {heading}", "", header, *(_index_row(p) for p in members)]
    return "\n".join(lines) + "\n"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, spaces to hyphens, punctuation dropped."""
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


# --------------------------------------------------------------------------- figures

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


def build_index(folder: Path | str = PAPERS_DIR, output: Path | str | None = None,
                figures: bool = True) -> Path:
    """Validate ``folder`` and write its index (``folder/README.md`` unless ``output`` is given).

    With ``figures=True`` the summary figures are written to ``folder/figures``
    too and shown in the index. The index text does not depend on whether the
    figures were regenerated this time, only on the entries.
    """
    folder = Path(folder)
    papers = load_papers(folder)
    if figures:
        save_figures(papers, folder / FIGURES_DIR_NAME)
    target = Path(output) if output is not None else folder / INDEX_NAME
    target.write_text(render_index(papers, figures=list(FIGURE_FILES)), encoding="utf-8")
    return target


# --------------------------------------------------------------------------- new entries


def suggest_id(authors: list[str], year: int | str) -> str:
    """A slug from the first author's surname and the year: ``["M. Gusarev"], 2017 -> gusarev-2017``."""
    first = authors[0].removesuffix("et al.").strip() if authors else "paper"
    surname = first.split()[-1] if first.split() else "paper"
    return f"{slugify(surname)}-{year}"


def slugify(text: str) -> str:
    """Lower case, ASCII letters and digits, single hyphens."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "paper"


def entry_skeleton(entry_id: str, title: str, authors: list[str], year: int, venue: str, category: str,
                   datasets: list[str] | None = None, code: str | None = None,
                   links: dict[str, str] | None = None, evidence: str = "unverified") -> str:
    """The YAML text of a new entry: the given fields, empty lists, TODO summary lines."""
    import json

    def dump(value: Any) -> str:  # JSON is valid YAML: quoted strings, flow lists, null
        return json.dumps(value, ensure_ascii=False)

    link_lines = "".join(f"  {kind}: {dump(url)}\n" for kind, url in (links or {}).items())
    summary_hints = {
        "problem": "what goes wrong without this work, in one to three sentences",
        "method": "what the authors built or measured",
        "key_idea": "the one idea to remember",
        "results": "the main findings; say 'not reported in the sources we used' when unknown",
        "limitations": "what it does not show or cannot do",
    }
    summary = "".join(f"  {key}: \"{PLACEHOLDER}: {hint}\"\n" for key, hint in summary_hints.items())
    return (
        f"id: {entry_id}\n"
        f"title: {dump(title)}\n"
        f"authors: {dump(list(authors))}\n"
        f"year: {int(year)}\n"
        f"venue: {dump(venue)}\n"
        f"category: {category}\n"
        f"also_in: []\n"
        f"highlighted: false\n"
        f"datasets: {dump(list(datasets or []))}\n"
        "metrics: []  # e.g. - {name: PSNR, value: 33.2, unit: dB, dataset: JSRT, resolution: 1024,\n"
        "             #         source: paper}\n"
        f"code: {dump(code)}\n"
        + (f"links:\n{link_lines}" if link_lines else "links: {}\n")
        + f"evidence: {evidence}\n"
        "unverified: []\n"
        f"summary:\n{summary}"
        "notebooks: []\n"
    )


def new_entry(folder: Path | str, entry_id: str | None, title: str, authors: list[str], year: int,
              venue: str, category: str, **optional: Any) -> tuple[Path, list[Problem]]:
    """Write ``folder/<id>.yaml`` from the given fields, after validating it.

    Nothing is written when a field is wrong (:class:`PaperDatabaseError`
    lists every problem) or when the entry exists already
    (:class:`FileExistsError`). Returns the new file and its warnings: the
    summary's TODO lines, which a person replaces next.
    """
    import yaml

    entry_id = entry_id or suggest_id(authors, year)
    folder = Path(folder)
    target = folder / f"{entry_id}.yaml"
    if any((folder / f"{entry_id}{suffix}").exists() for suffix in ENTRY_SUFFIXES):
        raise FileExistsError(f"{_display(target)} already exists; edit it, or choose another --id.")
    text = entry_skeleton(entry_id, title, authors, year, venue, category, **optional)
    problems = validate_entry(yaml.safe_load(text), target)
    if errors_only(problems):
        raise PaperDatabaseError(errors_only(problems))
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target, problems


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``bs-lib papers new|check|build``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    new = actions.add_parser("new", help="scaffold a new entry from flags or prompts, then validate it")
    new.add_argument("--id", help="slug, e.g. gusarev-2017 (default: first author's surname and year)")
    new.add_argument("--title")
    new.add_argument("--authors", nargs="+", metavar="AUTHOR",
                     help='one argument per author, or one argument separated by ";"')
    new.add_argument("--year", help=f"{YEAR_MIN}..{YEAR_MAX}")
    new.add_argument("--venue", help='journal or conference; "arXiv" for preprints, "unknown" if not known')
    new.add_argument("--category", help=f"one of: {', '.join(CATEGORIES)}")
    new.add_argument("--dataset", dest="datasets", action="append", default=None, metavar="NAME",
                     help="a dataset the paper uses (repeat the flag for several)")
    new.add_argument("--code", help="URL of the code repository")
    new.add_argument("--arxiv", help="arXiv URL, e.g. https://arxiv.org/abs/2412.15670")
    new.add_argument("--doi", help="DOI URL, e.g. https://doi.org/10.1109/TMI.2020.2974159")
    new.add_argument("--evidence", default="unverified", choices=EVIDENCE_LEVELS)
    new.add_argument("--folder", type=Path, default=PAPERS_DIR, help="the papers folder (default: papers/)")

    check = actions.add_parser("check", help="validate every entry; exit 1 and list every problem")
    check.add_argument("--folder", type=Path, default=PAPERS_DIR)

    build = actions.add_parser("build", help="validate, then write papers/README.md and papers/figures/")
    build.add_argument("--folder", type=Path, default=PAPERS_DIR)
    build.add_argument("--output", type=Path, help="write the index here instead of <folder>/README.md")
    build.add_argument("--no-figures", action="store_true", help="skip the figures (faster)")
    build.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 when the committed index is out of date")


def run(args: argparse.Namespace) -> int:
    action = {"new": _run_new, "check": _run_check, "build": _run_build}[args.action]
    return action(args)


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)


def _run_check(args: argparse.Namespace) -> int:
    papers, problems = check_folder(args.folder)
    _print_problems(problems)
    errors = errors_only(problems)
    if errors:
        print(f"papers check: {len(errors)} error(s) in {len({p.path for p in errors})} file(s); "
              f"{len(papers)} valid entries.", file=sys.stderr)
        return 1
    counts = Counter(p.category for p in papers)
    groups = Counter(p.group for p in papers)
    print(f"papers check: {len(papers)} entries OK ({groups['bone suppression']} bone suppression, "
          f"{groups['adjacent field']} adjacent field).")
    print("  " + ", ".join(f"{c} {counts[c]}" for c in CATEGORIES if counts[c]))
    return 0


def _run_build(args: argparse.Namespace) -> int:
    try:
        if args.check:
            index = Path(args.output) if args.output else Path(args.folder) / INDEX_NAME
            expected = render_index(load_papers(args.folder), figures=list(FIGURE_FILES))
            if not index.exists() or index.read_text(encoding="utf-8") != expected:
                print(f"{_display(index)} is out of date; run: python -m bs_lib papers build",
                      file=sys.stderr)
                return 1
            print(f"{_display(index)} is up to date.")
            return 0
        target = build_index(args.folder, args.output, figures=not args.no_figures)
    except PaperDatabaseError as error:
        _print_problems(error.problems)
        print(f"papers build: fix the {len(error.problems)} error(s) above first.", file=sys.stderr)
        return 1
    print(f"wrote {_display(target)}" + ("" if args.no_figures else
                                         f" and {_display(Path(args.folder) / FIGURES_DIR_NAME)}/"))
    return 0


def _run_new(args: argparse.Namespace) -> int:
    fields = _fields_from_args(args)
    if fields is None:
        return 2
    links = {kind: getattr(args, kind) for kind in ("arxiv", "doi") if getattr(args, kind)}
    try:
        path, problems = new_entry(
            args.folder, fields.pop("id"), **fields, datasets=args.datasets, code=args.code, links=links,
            evidence=args.evidence,
        )
    except PaperDatabaseError as error:
        _print_problems(error.problems)
        print("papers new: nothing written; fix the flags named above.", file=sys.stderr)
        return 1
    except FileExistsError as error:
        print(f"papers new: {error}", file=sys.stderr)
        return 1
    print(f"wrote {_display(path)} ({len(problems)} TODO line(s) in its summary). Next: write the summary, "
          "add metrics and links, then run: python -m bs_lib papers check && python -m bs_lib papers build")
    return 0


def _fields_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The required fields from flags, asking for the missing ones when stdin is a terminal."""
    authors = [a.strip() for given in (args.authors or []) for a in given.split(";") if a.strip()]
    fields: dict[str, Any] = {"title": args.title, "authors": authors or None, "year": args.year,
                              "venue": args.venue, "category": args.category}
    missing = [name for name, value in fields.items() if not value]
    if missing and not sys.stdin.isatty():
        flags = " ".join(f"--{name}" for name in missing)
        print(f"papers new: missing {flags}; give them as flags (or run in a terminal to be asked).",
              file=sys.stderr)
        return None
    prompts = {
        "title": "Title: ",
        "authors": 'Authors, separated by ";" (e.g. "M. Gusarev; R. Kuleev; et al."): ',
        "year": f"Year ({YEAR_MIN}-{YEAR_MAX}): ",
        "venue": 'Venue ("arXiv" for preprints, "unknown" if not known): ',
        "category": f"Category ({', '.join(CATEGORIES)}): ",
    }
    for name in missing:
        answer = input(prompts[name]).strip()
        fields[name] = [a.strip() for a in answer.split(";") if a.strip()] if name == "authors" else answer
    try:
        fields["year"] = int(fields["year"])
    except (TypeError, ValueError):
        print(f"papers new: --year must be an integer between {YEAR_MIN} and {YEAR_MAX}, "
              f"got {fields['year']!r}.", file=sys.stderr)
        return None
    entry_id = args.id
    if not entry_id and sys.stdin.isatty():
        suggestion = suggest_id(fields["authors"] or [], fields["year"])
        entry_id = input(f"Id [{suggestion}]: ").strip() or suggestion
    fields["id"] = entry_id
    return fields
