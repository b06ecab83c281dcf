"""The course's training runs, one YAML file per method in this folder, one section per profile.

The files are package data; the code that reads them is
:mod:`bs_lib.engine.recipes`, whose names this module re-exports, so a
notebook writes ``from bs_lib.configs import load_config``.
"""

from bs_lib.engine.recipes import (
    CONFIGS_DIR,
    available_methods,
    capped,
    config_dict,
    is_sectioned,
    load_config,
    merge_sections,
    rescheduled,
    resolve_run_config,
    smallest_side,
)

__all__ = ["CONFIGS_DIR", "available_methods", "capped", "config_dict", "is_sectioned", "load_config",
           "merge_sections", "rescheduled", "resolve_run_config", "smallest_side"]
