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

This package is the whole life of that database, one job per module:

* ``schema``: what an entry may hold, and the checker that reports **every**
  problem (:func:`validate_entry`), each naming the file, the field and what to
  do, so a contributor fixes them all in one pass;
* ``entries``: :func:`check_folder` reads and checks every entry;
  :func:`load_papers` returns them as :class:`Paper` objects (and raises
  :class:`PaperDatabaseError` when anything is wrong); :func:`papers_frame` and
  :func:`metrics_frame` make tables of them;
* ``index``: :func:`render_index` writes the ``papers/README.md`` tables, grouped
  by category and sorted by year then id. The output is a pure function of the
  entries (no timestamps), so a test can regenerate it and demand no diff;
* ``figures``: :func:`plot_papers_per_year`, :func:`plot_datasets`,
  :func:`plot_reported_metrics` and :func:`plot_family_pipelines` return
  matplotlib figures for notebook 00;
* ``command``: ``python -m bs_lib papers new|check|build`` drives all of it.

Everything a notebook or a test needs is importable from here:
``from bs_lib.course import survey; survey.load_papers()``.

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

from bs_lib.course.survey.command import entry_skeleton, new_entry, slugify, suggest_id
from bs_lib.course.survey.entries import (
    ENTRY_SUFFIXES,
    INDEX_NAME,
    PAPERS_DIR,
    Metric,
    Paper,
    PaperDatabaseError,
    check_folder,
    entry_files,
    errors_only,
    load_papers,
    metrics_frame,
    papers_frame,
    read_entry,
    sort_papers,
)
from bs_lib.course.survey.figures import (
    CAVEAT,
    DATASET_FAMILIES,
    FAMILY_PIPELINES,
    FIGURE_FILES,
    OTHER_DATASETS,
    dataset_family,
    plot_datasets,
    plot_family_pipelines,
    plot_papers_per_year,
    plot_reported_metrics,
    save_figures,
)
from bs_lib.course.survey.index import FIGURES_DIR_NAME, build_index, render_index
from bs_lib.course.survey.schema import (
    CATEGORIES,
    EVIDENCE_LEVELS,
    METRIC_NAMES,
    METRIC_SOURCES,
    METRIC_TARGETS,
    METRIC_UNITS,
    NOTEBOOKS,
    SUMMARY_KEYS,
    YEAR_MAX,
    YEAR_MIN,
    Problem,
    default_better,
    url_problem,
    validate_database,
    validate_entry,
)

__all__ = [
    "CATEGORIES", "CAVEAT", "DATASET_FAMILIES", "ENTRY_SUFFIXES", "EVIDENCE_LEVELS", "FAMILY_PIPELINES",
    "FIGURES_DIR_NAME", "FIGURE_FILES", "INDEX_NAME", "METRIC_NAMES", "METRIC_SOURCES", "METRIC_TARGETS",
    "METRIC_UNITS", "NOTEBOOKS", "OTHER_DATASETS", "PAPERS_DIR", "SUMMARY_KEYS", "YEAR_MAX", "YEAR_MIN",
    "Metric", "Paper", "PaperDatabaseError", "Problem", "build_index", "check_folder", "dataset_family",
    "default_better", "entry_files", "entry_skeleton", "errors_only", "load_papers", "metrics_frame",
    "new_entry", "papers_frame", "plot_datasets", "plot_family_pipelines", "plot_papers_per_year",
    "plot_reported_metrics", "read_entry", "render_index", "save_figures", "slugify", "sort_papers",
    "suggest_id", "url_problem", "validate_database", "validate_entry",
]
