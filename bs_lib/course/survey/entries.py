"""The survey's entries as Python objects: read, checked and loaded from ``papers/``.

:func:`check_folder` reads every entry file and returns the valid ones as
:class:`Paper` objects together with every problem found; :func:`load_papers`
returns the papers only, and raises :class:`PaperDatabaseError` (listing every
error) when any entry is wrong, so an analysis never runs on half a database.
:func:`papers_frame` and :func:`metrics_frame` turn the papers into tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bs_lib.course.survey.schema import (
    CATEGORIES,
    SUMMARY_KEYS,
    Problem,
    default_better,
    display_path,
    validate_database,
    validate_entry,
)
from bs_lib.resources import course_path

if TYPE_CHECKING:  # pandas loads only when a table is asked for
    import pandas as pd

#: The clone's ``papers/`` in a source tree, else the copy a wheel carries (see :mod:`bs_lib.resources`).
PAPERS_DIR = course_path("papers")
INDEX_NAME = "README.md"
ENTRY_SUFFIXES = (".yaml", ".yml", ".md")


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

    shown = display_path(path)
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
    papers = [_to_paper(data, path) for path, data in parsed.items() if display_path(path) not in failing]
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
