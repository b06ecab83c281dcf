"""The course as a student gets it on Colab: a built wheel, the notebooks alone in a folder, the ``colab`` profile.

The nbval run executes every notebook's ``smoke`` profile inside the clone,
where a notebook could quietly read any file of the repository. Here the wheel
is installed into a fresh virtual environment, the notebooks are copied into
an empty folder, and each one is executed there with papermill, offline,
without the real data, with the ``colab`` profile a Colab student runs. That
profile takes other branches (another dataset, larger presets, validation
during training, the checkpoints of a GPU run); the caps
(:func:`bs_lib.config.is_capped`) run its code path on a CPU in minutes: two
optimiser steps per training run and two steps per default sampling chain,
images of at most 64², eight per dataset split, the smoke profile's loop
lengths. Claims about what training achieved are reported
as not checked; every other claim must hold. A notebook that passes here needs
nothing but what ``pip install`` gives, and one that reads the profile's real
dataset must say, in one line, how to get it.

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
from pathlib import Path

import pytest
from test_packaging import build_wheel

from bs_lib.config import get_profile
from bs_lib.datasets import how_to_get

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NOTEBOOK_TIMEOUT_S = 900
CAPS = {"BS_MAX_STEPS": "2", "BS_MAX_SIZE": "64", "BS_MAX_IMAGES": "8"}
CAPPED_LINE = "capped by BS_MAX_SIZE=64, BS_MAX_STEPS=2, BS_MAX_IMAGES=8"
#: the cells that read the profile's dataset (and so must say how to get it when it is absent)
READS_PROFILE_DATA = ("profile_dataset(", "usable_dataset(", "run.profile.dataset")
#: jupyter_client's error when a kernel started beside another one dies before its first reply
KERNEL_START_FAILURE = "Kernel died before replying to kernel_info"


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
        **CAPS, BS_PROFILE="colab", BS_OFFLINE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", BS_STATIC="1",
        BS_QUIET="1",
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
               "--cwd", str(student["notebooks"]), "-p", "PROFILE", "colab", "--no-progress-bar"]
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


def _outputs(executed: dict) -> str:
    """Everything the cells printed or displayed as text."""
    texts = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text", "") or output.get("data", {}).get("text/plain", "")
            texts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(texts)


def _slowest_cells(executed: dict, count: int = 3) -> str:
    timed = [(cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0, i)
             for i, cell in enumerate(executed["cells"]) if cell["cell_type"] == "code"]
    return ", ".join(f"cell {i} {seconds:.0f} s" for seconds, i in sorted(timed, reverse=True)[:count])


def test_the_course_has_its_notebooks():
    assert len(NOTEBOOKS) >= 10


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_its_colab_profile_from_an_empty_folder(student, notebook):
    copy = student["notebooks"] / notebook.name
    copy.write_bytes(notebook.read_bytes())
    executed_path = student["executed"] / notebook.name
    started = time.perf_counter()
    done = _papermill(student, copy, executed_path)
    if done.returncode != 0 and KERNEL_START_FAILURE in done.stderr:  # no cell ran: a kernel-launch race, once more
        done = _papermill(student, copy, executed_path)
    if done.returncode != 0:
        error = (_first_error(executed_path) if executed_path.is_file() else None) or done.stderr.strip()[-2000:]
        pytest.fail(f"{notebook.name} failed off the clone in the capped colab profile: {error}")

    executed = json.loads(executed_path.read_text(encoding="utf-8"))
    printed = _outputs(executed)
    assert CAPPED_LINE in printed, "the notebook did not run under the caps"
    dataset = get_profile("colab").dataset
    reads_profile_data = any(needle in "".join(cell["source"]) for cell in executed["cells"]
                             if cell["cell_type"] == "code" for needle in READS_PROFILE_DATA)
    if reads_profile_data and dataset != "phantom":
        assert how_to_get(dataset) in printed, (
            f"{notebook.name} uses the colab profile's dataset ({dataset}), which is not on this machine, "
            f"and never said how to get it")
    print(f"{notebook.stem}: {time.perf_counter() - started:.0f} s; slowest: {_slowest_cells(executed)}")
