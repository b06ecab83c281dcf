"""bs_lib.runs: the notebooks' run names, and finding (or training) BS-LDM's two stages by them."""

import pytest
import torch

from bs_lib import runs
from bs_lib.engine import train_or_reuse


def pairs(count: int = 8, size: int = 64) -> list[dict]:
    images = torch.rand(count, 2, 1, size, size, generator=torch.Generator().manual_seed(0))
    return [{"cxr": cxr, "soft": soft} for cxr, soft in images]


@pytest.fixture
def runs_here(tmp_path, monkeypatch):
    """Runs go to ``tmp_path``, every recipe capped at two steps."""
    monkeypatch.setenv("BS_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("BS_MAX_STEPS", "2")
    return tmp_path


def test_the_stages_are_named_as_the_notebooks_name_them(runs_here):
    stage1 = runs.stage1_config("smoke", seed=3)
    stage2 = runs.stage2_config("smoke", runs_here / "ae", suffix=runs.NOTEBOOK_07, steps=1)
    assert (stage1.name, stage1.seed, stage1.run_dir.parent) == ("ml_vqgan-smoke", 3, runs_here)
    assert stage2.name == "bs_ldm-smoke-for-07" and stage2.method_args["autoencoder"] == str(runs_here / "ae")
    assert stage2.steps == 1  # a budget of its own replaces the recipe's
    assert runs.finished_bs_ldm("smoke") is None


def test_notebook_07s_runs_are_found_and_reused_by_notebook_08(runs_here):
    data = pairs()
    stage1, suffix = runs.autoencoder("smoke", data)  # notebook 06 has not run here: notebook 07's own copy
    assert suffix == runs.NOTEBOOK_07 and stage1.parent.parent.name == "ml_vqgan-smoke-for-07"
    assert runs.finished_bs_ldm("smoke") is None  # no stage 2 yet
    stage2 = train_or_reuse(runs.stage2_config("smoke", stage1, suffix=suffix), data)
    assert runs.finished_bs_ldm("smoke", own_suffix=runs.NOTEBOOK_08) == (stage1, stage2)
    assert runs.bs_ldm("smoke", data, own_suffix=runs.NOTEBOOK_08) == (stage1, stage2)  # nothing trained
    assert not (runs_here / "ml_vqgan-smoke-for-08").exists() and not (runs_here / "bs_ldm-smoke-for-08").exists()
    assert runs.finished_bs_ldm("smoke", steps=(2, 2)) is None  # a budget of its own never reuses the notebooks'
