#!/usr/bin/env python3
"""Run the course from a fresh clone with nothing but Python (3.10+) and pip.

    python3 course.py report   # install what is missing, execute every notebook (smoke profile), write reports/
    python3 course.py test     # install what is missing, run the unit tests and every notebook (nbval)
    python3 course.py lab      # install what is missing, open JupyterLab on the notebooks

Where it installs: the active virtual or conda environment when there is one,
otherwise a ``.venv`` folder in this clone (created on first use). It installs
the project with ``pip install -e ".[dev]"`` once, and again only when
``pyproject.toml`` changes. torch is whatever pip resolves for your machine; to
choose a build (a CPU-only one, a CUDA version), install torch into that
environment first and it is kept.

Extra arguments go to the underlying command: ``python3 course.py test -k metrics``,
``python3 course.py report --notebooks 00 01 -p SEED 1``.

This file uses the standard library only, because it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LOCAL_VENV = ROOT / ".venv"
EXTRAS = "dev"

#: The test command: unit tests and every notebook (nbval settings live in pyproject.toml).
TEST_COMMAND = ["-m", "pytest", "-n", str(min(4, os.cpu_count() or 1)), "--dist", "loadfile", "--no-loadscope-reorder"]
PYTEST_NO_TESTS_COLLECTED = 5


def say(message: str) -> None:
    print(f"[course] {message}", flush=True)


def in_managed_environment() -> bool:
    """True inside an activated venv/virtualenv or a conda environment."""
    return sys.prefix != sys.base_prefix or bool(os.environ.get("CONDA_PREFIX"))


def venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def choose_python() -> Path:
    """The interpreter to install into and run with; creates ``.venv`` when needed."""
    if in_managed_environment():
        return Path(sys.executable)
    python = venv_python(LOCAL_VENV)
    if not python.exists():
        say(f"creating a virtual environment in {LOCAL_VENV.relative_to(ROOT)}/")
        venv.EnvBuilder(with_pip=True).create(LOCAL_VENV)
    return python


def install_stamp(python: Path) -> Path:
    """A file recording which pyproject.toml was installed into which environment."""
    key = hashlib.sha256(str(python.resolve().parent).encode()).hexdigest()[:16]
    return ROOT / ".cache" / "install" / key


def ensure_installed(python: Path) -> None:
    """``pip install -e .[dev]`` unless this exact pyproject.toml is already installed there."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = install_stamp(python)
    importable = subprocess.run([str(python), "-c", "import bs_lib, pytest, papermill"],
                                capture_output=True, cwd=ROOT).returncode == 0
    if importable and stamp.exists() and stamp.read_text().strip() == wanted:
        return
    say(f"installing the course and its dependencies into {python.parent.parent}")
    subprocess.run([str(python), "-m", "pip", "install", "--upgrade", "pip"], check=True, cwd=ROOT)
    # --no-compile: modules are byte-compiled when first imported, not every file of every package now
    subprocess.run([str(python), "-m", "pip", "install", "--no-compile", "-e", f".[{EXTRAS}]"], check=True, cwd=ROOT)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted)


def run_tests(python: Path, extra: list[str]) -> int:
    env = {**os.environ, "BS_PROFILE": os.environ.get("BS_PROFILE", "smoke")}
    code = subprocess.run([str(python), *TEST_COMMAND, *extra], cwd=ROOT, env=env).returncode
    if code == PYTEST_NO_TESTS_COLLECTED:
        say("pytest collected no tests: that is a failure, not a pass")
        return 1
    return code


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 -- this check must run on any Python
        say(f"Python 3.10 or newer is needed; this is {sys.version.split()[0]}")
        return 2
    tasks = {"report", "test", "lab"}
    if not argv or argv[0] not in tasks:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    task, extra = argv[0], argv[1:]
    python = choose_python()
    ensure_installed(python)
    if task == "test":
        return run_tests(python, extra)
    if task == "report":
        profile = [] if "--profile" in extra else ["--profile", "smoke"]  # the main job: synthetic data, CPU-sized
        return subprocess.run([str(python), "-m", "bs_lib", "report", *profile, *extra], cwd=ROOT).returncode
    jupyter = python.parent / ("jupyter.exe" if os.name == "nt" else "jupyter")
    return subprocess.run([str(jupyter), "lab", "notebooks/", *extra], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
