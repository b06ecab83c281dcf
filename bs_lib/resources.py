"""The course's files outside the package, found the same way in a clone and in a wheel.

Some files the notebooks read live at the top of the repository, where
contributors edit them: the paper database (``papers/``), the dataset cards
(``datasets/``), the measured tables (``benchmarks/results/``). A student on
Colab has none of that beside the notebook: ``pip`` installs the package and
nothing else. So the wheel carries a copy of them under ``bs_lib/_course/``
(``setup.py`` copies every file :data:`COURSE_FILES` selects when it builds),
and :func:`course_path` is the one place that decides which copy to read:

* from a source tree (a clone, or an editable install of one: the package's
  parent holds ``pyproject.toml``), the clone's own file, so an edit shows at
  once;
* otherwise the copy packaged with ``bs_lib``.

A path that :data:`COURSE_FILES` does not select is refused even in a clone,
so a notebook cannot come to depend on a file that its students will not have.

This module uses the standard library only: ``setup.py`` reads
:data:`COURSE_FILES` from it before anything is installed.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

PACKAGE_DIR = Path(__file__).resolve().parent
#: The repository root when the package runs from a source tree.
SOURCE_ROOT = PACKAGE_DIR.parent
#: Where a built package keeps its copies, laid out as in the repository.
PACKAGED_DIR = PACKAGE_DIR / "_course"

#: Glob patterns, relative to the repository root, of the files a wheel carries.
COURSE_FILES = (
    "papers/*.yaml",  # the paper database: every entry survey.entry_files reads ...
    "papers/*.yml",
    "papers/*.md",  # ... (Markdown entries too) and the generated index
    "datasets/*.md",  # the dataset cards the registry points at
    "benchmarks/results/*.md",  # the measured tables the notebooks cite
    "benchmarks/results/benchmark_smoke_128.json",  # read by notebook 09
)


def in_source_tree() -> bool:
    """True when the package runs from a clone (its parent folder holds ``pyproject.toml``)."""
    return (SOURCE_ROOT / "pyproject.toml").is_file()


def course_files(root: Path | str) -> list[str]:
    """The files under ``root`` that :data:`COURSE_FILES` selects, as sorted POSIX paths relative to ``root``."""
    root = Path(root)
    found = {path.relative_to(root).as_posix()
             for pattern in COURSE_FILES for path in root.glob(pattern) if path.is_file()}
    return sorted(found)


def is_shipped(relative: str) -> bool:
    """True when a wheel carries ``relative``: a file a pattern matches, or a folder holding such files.

    >>> is_shipped("papers/bs-ldm-2025.yaml"), is_shipped("papers"), is_shipped("benchmarks/bs_ldm_speed.py")
    (True, True, False)
    """
    parts = PurePosixPath(relative).parts
    for pattern in COURSE_FILES:
        wanted = PurePosixPath(pattern).parts
        if len(parts) == len(wanted) and all(map(fnmatchcase, parts, wanted)):
            return True
        if 0 < len(parts) < len(wanted) and parts == wanted[: len(parts)]:
            return True
    return False


def course_path(relative: str) -> Path:
    """The course file or folder ``relative`` (a repository path such as ``"papers"``) on this machine.

    The clone's own copy when running from a source tree, else the copy packaged
    with ``bs_lib``. Raises ``ValueError`` for a path no wheel carries (add a
    pattern to :data:`COURSE_FILES`) and ``FileNotFoundError`` when neither copy
    exists.
    """
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not is_shipped(str(path)):
        raise ValueError(f"{relative!r} is not one of the course files a wheel carries, so an installed "
                         f"bs_lib would not find it; add a pattern for it to COURSE_FILES in bs_lib/resources.py")
    candidates = ([SOURCE_ROOT / path] if in_source_tree() else []) + [PACKAGED_DIR / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    looked = " or ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"course file {relative} not found (looked for {looked}). In a clone, restore it; "
                            "an installed bs_lib lacks it only when it was built without the step in setup.py "
                            "that copies the course files: reinstall it with pip from the repository")
