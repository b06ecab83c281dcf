"""The benchmark's names, as notebooks and scripts import them: ``from bs_lib import evaluate``.

The code lives in :mod:`bs_lib.benchmark`, one module per job; this module only
gathers the names so that ``evaluate.run_benchmark(...)``,
``evaluate.paired_difference(...)`` and the others keep working.
"""

from bs_lib.benchmark.cli import add_arguments, command_line, parse_train_steps, run
from bs_lib.benchmark.data import data_label, load_test_samples, save_benchmark_split, sources
from bs_lib.benchmark.figures import case_grid, chosen_cases, difference_maps, save_compact_png
from bs_lib.benchmark.measure import (
    LUNG_PREFIX,
    MethodResult,
    ParameterTally,
    evaluate_method,
    image_metrics,
    paired_difference,
    predict_all,
)
from bs_lib.benchmark.methods import (
    IDENTITY,
    NOT_SUPPRESSORS,
    Method,
    TrainingBudget,
    all_methods,
    check_method_names,
    family_of,
    identity_method,
    label_of,
    learned_methods,
    manual_method,
    manual_methods,
)
from bs_lib.benchmark.published import PUBLISHED, published_html, published_markdown, published_table
from bs_lib.benchmark.report import BenchmarkResult, settings_markdown
from bs_lib.benchmark.result import BAR_METRICS, NO_LUNG_MASKS, SORT_KEY, Leaderboard
from bs_lib.benchmark.run import DEFAULT_TEST_IMAGES, run_benchmark
from bs_lib.benchmark.tables import DISPLAY, Display, format_difference, html_table, markdown_table, versions_text
from bs_lib.benchmark.training import (
    bs_ldm_ready,
    bs_ldm_steps,
    bs_ldm_suffix,
    learned_config,
    prepare_method,
    runs_folder,
    scaled_steps,
    shortened_budgets,
    trained_bs_ldm,
)

__all__ = [
    "BAR_METRICS", "DEFAULT_TEST_IMAGES", "DISPLAY", "IDENTITY", "LUNG_PREFIX", "NOT_SUPPRESSORS", "NO_LUNG_MASKS",
    "PUBLISHED", "SORT_KEY", "BenchmarkResult", "Display", "Leaderboard", "Method", "MethodResult",
    "ParameterTally", "TrainingBudget", "add_arguments", "all_methods", "bs_ldm_ready", "bs_ldm_steps",
    "bs_ldm_suffix", "case_grid", "check_method_names", "chosen_cases", "command_line", "data_label",
    "difference_maps", "evaluate_method", "family_of", "format_difference", "html_table", "identity_method",
    "image_metrics", "label_of", "learned_config", "learned_methods", "load_test_samples", "manual_method",
    "manual_methods", "markdown_table", "paired_difference", "parse_train_steps", "predict_all", "prepare_method",
    "published_html", "published_markdown", "published_table", "run", "run_benchmark", "runs_folder",
    "save_benchmark_split", "save_compact_png", "scaled_steps", "settings_markdown", "shortened_budgets",
    "sources", "trained_bs_ldm", "versions_text",
]
