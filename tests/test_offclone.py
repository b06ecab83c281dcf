"""The course as a student gets it on Colab: a built wheel, and the notebooks alone in a folder.

The other notebook tests run inside the clone, where a notebook could quietly
read any file of the repository. Here the wheel is installed into a fresh
virtual environment, the notebooks are copied into an empty folder, and each
one is executed there with papermill, offline and with the smoke profile. A
notebook that passes here needs nothing but what ``pip install`` gives.

The fresh environment borrows its dependencies (torch, papermill, ...) from
this one through a ``.pth`` file holding the path of this environment's
``site-packages``. A plain path line is added to ``sys.path`` as it is: the
``.pth`` files inside that folder do not run, so the editable install of the
clone stays invisible and ``import bs_lib`` finds the wheel.
"""

import json
import os
import subprocess
import sys
import sysconfig
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_packaging import build_wheel

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: Notebooks run side by side; each kernel uses one thread (OMP_NUM_THREADS=1).
WORKERS = min(2, os.cpu_count() or 1)
NOTEBOOK_TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> dict:
    """A fresh environment with the wheel installed, an empty folder of notebooks, and the environment variables."""
    wheel = build_wheel(tmp_path_factory.getbasetemp())
    home = tmp_path_factory.mktemp("student")
    python = _fresh_environment(home / "venv", wheel)
    folders = {name: home / name for name in ("notebooks", "executed", "data", "runs", "cache", "mpl", "jupyter")}
    for folder in folders.values():
        folder.mkdir()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PYTHON", "JUPYTER", "VIRTUAL_ENV", "CONDA", "BS_"))}
    env.update(
        HOME=str(home), PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(python.parent.parent),
        BS_PROFILE="smoke", BS_OFFLINE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", BS_STATIC="1",
        BS_REAL_PAIRS=str(home / "no-shared-folder"),  # students have no ../shared beside the course
        BS_DATA_DIR=str(folders["data"]), BS_RUNS_DIR=str(folders["runs"]), XDG_CACHE_HOME=str(folders["cache"]),
        MPLCONFIGDIR=str(folders["mpl"]), JUPYTER_DATA_DIR=str(folders["jupyter"]),
    )
    return {"python": python, "venv": python.parent.parent, "env": env, **folders}


def _fresh_environment(folder: Path, wheel: Path) -> Path:
    """A new virtual environment holding the wheel, its dependencies borrowed from this one; its python."""
    venv.EnvBuilder(symlinks=os.name != "nt", with_pip=False).create(folder)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, capture_output=True, text=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    borrowed = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    return python


def _papermill(student: dict, notebook: Path, output: Path) -> subprocess.CompletedProcess:
    command = [str(student["python"]), "-m", "papermill", str(notebook), str(output), "-k", "python3",
               "--cwd", str(student["notebooks"]), "-p", "PROFILE", "smoke", "--no-progress-bar"]
    return subprocess.run(command, cwd=student["notebooks"], env=student["env"], capture_output=True, text=True,
                          timeout=NOTEBOOK_TIMEOUT_S)


def _first_error(executed: Path) -> str | None:
    """The first failing cell of an executed notebook: its error and the start of its source."""
    for cell in json.loads(executed.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                source = "".join(cell["source"]).strip().splitlines()
                return f"{output['ename']}: {output['evalue']}\n    in the cell starting: {source[0] if source else ''}"
    return None


def test_the_fresh_environment_imports_the_wheel_not_the_clone(student):
    probe = ("import bs_lib; from bs_lib import resources; from bs_lib.course import survey; "
             "print(bs_lib.__file__); print(resources.in_source_tree()); print(len(survey.entry_files()))")
    done = subprocess.run([str(student["python"]), "-c", probe], cwd=student["notebooks"], env=student["env"],
                          capture_output=True, text=True, check=True)
    module, in_source_tree, papers = done.stdout.split()
    assert Path(module).is_relative_to(student["venv"]), module
    assert in_source_tree == "False" and int(papers) >= 80


def test_the_kernel_runs_the_fresh_environment(student):
    probe = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": "import sys, bs_lib\nprint(sys.executable)\nprint(bs_lib.__file__)"}],
             "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
             "nbformat": 4, "nbformat_minor": 5}
    notebook, output = student["executed"] / "probe.ipynb", student["executed"] / "probe-out.ipynb"
    notebook.write_text(json.dumps(probe), encoding="utf-8")
    done = _papermill(student, notebook, output)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = json.loads(output.read_text(encoding="utf-8"))["cells"]  # papermill adds a cell for -p PROFILE
    printed = "".join(line for cell in cells for out in cell.get("outputs", []) if out.get("name") == "stdout"
                      for line in out["text"]).split()
    executable, module = map(Path, printed)
    print(f"kernel interpreter: {executable}; bs_lib imported from: {module}")
    assert executable.parent.parent == student["venv"], executable  # not resolved: a venv's python is a link
    assert Path(module).is_relative_to(student["venv"]), module


def test_every_notebook_runs_from_an_empty_folder(student):
    assert len(NOTEBOOKS) >= 10
    copies = []
    for notebook in NOTEBOOKS:
        copy = student["notebooks"] / notebook.name
        copy.write_bytes(notebook.read_bytes())
        copies.append(copy)

    def execute(notebook: Path) -> tuple[str, float, str | None]:
        started = time.perf_counter()
        output = student["executed"] / notebook.name
        done = _papermill(student, notebook, output)
        error = None
        if done.returncode != 0:
            error = (_first_error(output) if output.is_file() else None) or done.stderr.strip()[-2000:]
        return notebook.stem, time.perf_counter() - started, error

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(execute, copies))
    for name, seconds, error in results:
        print(f"{name}: {seconds:.0f} s, {'ok' if error is None else 'FAILED'}")
    failed = {name: error for name, _, error in results if error is not None}
    assert not failed, "notebooks failing off the clone:\n" + "\n".join(f"- {n}: {e}" for n, e in failed.items())
