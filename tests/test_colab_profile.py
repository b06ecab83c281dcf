"""Every notebook's ``colab`` profile runs, code path and all, on a CPU in minutes.

The smoke tests run the ``smoke`` profile; ``colab`` takes other branches
(another dataset, larger presets, validation during training, the checkpoints
of a GPU run). Here each notebook runs its ``colab`` profile with papermill,
capped (:func:`bs_lib.config.max_steps`, :func:`bs_lib.config.max_size`): two
optimiser steps per training run, images of at most 64², offline and without
the real data. Claims about what training achieved are reported as not
checked; every other claim must hold. A notebook that reads the profile's real
dataset must say, in one line, how to get it, since it is not on this machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from bs_lib.config import get_profile
from bs_lib.course.stress import first_error
from bs_lib.datasets import how_to_get

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CAPS = {"BS_MAX_STEPS": "2", "BS_MAX_SIZE": "64"}
TIMEOUT_S = 900
#: the cells that read the profile's dataset (and so must say how to get it when it is absent)
READS_PROFILE_DATA = ("profile_dataset(", "usable_dataset(", "run.profile.dataset")
#: jupyter_client's error when a kernel started beside another one dies before its first reply
KERNEL_START_FAILURE = "Kernel died before replying to kernel_info"


def _outputs(executed: nbformat.NotebookNode) -> str:
    """Everything the cells printed or displayed as text."""
    texts = []
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def _slowest_cells(executed: nbformat.NotebookNode, count: int = 3) -> str:
    timed = [(cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0, i)
             for i, cell in enumerate(executed.cells) if cell.cell_type == "code"]
    return ", ".join(f"cell {i} {seconds:.0f} s" for seconds, i in sorted(timed, reverse=True)[:count])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_colab_profile_runs_capped_on_a_cpu(notebook, tmp_path):
    executed_path = tmp_path / notebook.name
    env = {name: value for name, value in os.environ.items() if not name.startswith("BS_")}
    env.update(CAPS, BS_PROFILE="colab", BS_OFFLINE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", BS_QUIET="1",
               BS_STATIC="1", BS_REAL_PAIRS=str(tmp_path / "no-real-pairs"), BS_DATA_DIR=str(tmp_path / "data"),
               BS_RUNS_DIR=str(tmp_path / "runs"))
    command = [sys.executable, "-m", "papermill", str(notebook), str(executed_path), "-k", "python3",
               "--cwd", str(notebook.parent), "--no-progress-bar", "-p", "PROFILE", "colab"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0 and KERNEL_START_FAILURE in done.stderr:  # no cell ran: a kernel-launch race, once more
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        error = first_error(executed_path) or (done.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.fail(f"{notebook.name} failed in the capped colab profile: {error}")

    executed = nbformat.read(executed_path, as_version=4)
    printed = _outputs(executed)
    assert "capped by BS_MAX_SIZE=64 and BS_MAX_STEPS=2" in printed, "the notebook did not run under the caps"
    dataset = get_profile("colab").dataset
    reads_profile_data = any(needle in cell.source for cell in executed.cells if cell.cell_type == "code"
                             for needle in READS_PROFILE_DATA)
    if reads_profile_data and dataset != "phantom":
        assert how_to_get(dataset) in printed, (
            f"{notebook.name} uses the colab profile's dataset ({dataset}), which is not on this machine, "
            f"and never said how to get it")
    seconds = sum(cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0 for cell in executed.cells)
    print(f"{notebook.stem}: {seconds:.0f} s of cells; slowest: {_slowest_cells(executed)}")
