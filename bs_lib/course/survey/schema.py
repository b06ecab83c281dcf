"""The schema of a paper entry, and the checker that reports every way an entry breaks it.

An entry is a YAML mapping (see ``CONTRIBUTING.md``); this module says which
fields it may have, which values each field takes, and checks one parsed entry
(:func:`validate_entry`) and the database as a whole (:func:`validate_database`:
an id or a title used twice). A checker never stops at the first problem: it
collects them all, each a :class:`Problem` naming the file, the field, what is
wrong and what to do, so a contributor fixes everything in one pass.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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


def display_path(path: Path) -> str:
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
        self.shown = display_path(path)
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
            problems.append(Problem(display_path(path), "id", f"duplicate id {entry_id!r} (also in "
                                    f"{display_path(paths[0])})", "Give each paper its own id."))
    for paths in by_title.values():
        for path in paths[1:]:
            problems.append(Problem(display_path(path), "title", f"the same title as {display_path(paths[0])}",
                                    "Keep one entry per paper; list extra categories in also_in."))
    return problems


def _normalised_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()
