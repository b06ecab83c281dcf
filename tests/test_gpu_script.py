"""The GPU script's dry run: the quick parts at smoke sizes on the CPU, so that a typo never costs GPU time.

``bash benchmarks/bs_ldm_gpu.sh --dry-run LOGDIR quick`` runs the same parts,
through the same code, as the one-call GPU measurement, and merges their
numbers into ``LOGDIR/bs_ldm_gpu.json`` and ``.md``. Here it must finish, log
every part, and fill every headline number.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bs_ldm_gpu.sh"
QUICK = ("sampling_full", "training_full", "end_to_end_256")
NUMBERS = ("sampling_official_s_per_image", "sampling_ours_s_per_image", "sampling_speedup",
           "sampling_official_extrapolated_from_steps", "sampling_largest_batch",
           "sampling_largest_batch_s_per_image", "sampling_compile_s", "training_official_images_per_s",
           "training_ours_images_per_s", "training_speedup")
SETTINGS = ("sampling_official_settings", "sampling_ours_settings", "training_official_settings",
            "training_ours_settings")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    logdir = tmp_path_factory.mktemp("gpu-dry-run")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(logdir), "quick"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=240)
    return result, logdir


@pytest.mark.slow
def test_the_dry_run_runs_every_quick_part(dry_run):
    result, logdir = dry_run
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads((logdir / "bs_ldm_gpu.json").read_text())
    for part in QUICK:
        assert (logdir / f"{part}.log").stat().st_size > 0
        assert summary["parts"][part]["exit"] == 0, (logdir / f"{part}.log").read_text()[-2000:]
        assert f"== {part} (limit" in result.stdout


@pytest.mark.slow
def test_the_dry_run_fills_every_headline_number(dry_run):
    _, logdir = dry_run
    summary = json.loads((logdir / "bs_ldm_gpu.json").read_text())
    assert summary["dry_run"] is True
    assert summary["gpu"] and summary["command"].startswith("bash benchmarks/bs_ldm_gpu.sh --dry-run ")
    for key in NUMBERS:
        assert isinstance(summary[key], (int, float)) and math.isfinite(summary[key]) and summary[key] > 0, key
    for key in SETTINGS:
        assert summary[key]["label"], key
    ours = summary["sampling_ours_settings"]
    assert (ours["sampler"], ours["sampling_steps"], ours["spacing"], ours["threshold"]) == ("ddim", 20, "trailing",
                                                                                           "tat")
    assert summary["sampling_official_settings"]["sampler"] == "ddpm"
    assert summary["training_ours_settings"]["cached_latents"] is True
    assert summary["end_to_end"]["methods"]["bs_ldm"]["psnr_mean"] > 0
    report = (logdir / "bs_ldm_gpu.md").read_text()
    assert "**Dry run**" in report and summary["command"] in report and "extrapolated from 10 steps" in report


def test_an_unknown_part_stops_before_anything_runs(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(tmp_path), "sampling_ful"], cwd=ROOT,
                            env=os.environ | {"PYTHON": sys.executable}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "unknown part 'sampling_ful'" in result.stderr
    assert not (tmp_path / "parts.tsv").exists()
