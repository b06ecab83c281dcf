"""Where the course notebooks are, and which of them a command runs.

A course notebook is ``notebooks/NN_topic.ipynb``: two digits, an underscore,
a lower-case slug. The template (``_template.py``) and scratch files do not
match, so they are never checked, reported or published. Every course command
(``notebooks``, ``report``, ``site``, ``notebooks stress``) lists notebooks
through this module, and this module imports none of them.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs_lib.resources import SOURCE_ROOT

NOTEBOOKS_DIR = SOURCE_ROOT / "notebooks"
COURSE_NOTEBOOK = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


def course_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The course's ``NN_topic.ipynb`` files, in order."""
    return sorted(p for p in Path(notebooks_dir).glob("*.ipynb") if COURSE_NOTEBOOK.match(p.name))


def select_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR, only: list[str] | None = None) -> list[Path]:
    """The course notebooks in order; ``only`` keeps those whose name starts with one of its items."""
    notebooks = course_notebooks(notebooks_dir)
    if only:
        notebooks = [p for p in notebooks if any(p.name.startswith(prefix) for prefix in only)]
        if not notebooks:
            raise FileNotFoundError(f"No course notebook in {notebooks_dir} starts with any of {only}.")
    if not notebooks:
        raise FileNotFoundError(f"No course notebooks (NN_name.ipynb) found in {notebooks_dir}.")
    return notebooks
