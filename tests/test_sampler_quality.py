"""The sampler study of benchmarks/bs_ldm_sampler_quality.py: its verdicts on made-up per-image scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bs_lib.evaluate import IDENTITY, MethodResult, TrainingBudget


@pytest.fixture(scope="module")
def study(benchmark_script):
    return benchmark_script("bs_ldm_sampler_quality")


def scored(name: str, psnr: np.ndarray, bsr: np.ndarray) -> MethodResult:
    rows = [{"id": f"img{i}", "psnr": float(p), "bsr_symmetric": float(b), "lung/psnr": float(p) + 1,
             "ssim": 0.9} for i, (p, b) in enumerate(zip(psnr, bsr, strict=True))]
    return MethodResult(name, name, "diffusion", 0, 0.01, TrainingBudget(), rows, torch.zeros(len(rows), 1, 2, 2))


def test_equal_quality_is_a_non_inferiority_verdict(study):
    rng = np.random.default_rng(0)
    psnr = rng.uniform(28, 36, 40)  # images spread over 8 dB
    bsr = rng.uniform(0.6, 0.9, 40)
    reference = study.REFERENCE.name
    ddim50, ddim5, ddim20 = (study.Sampler("ddim", steps, "tat") for steps in (50, 5, 20))
    results = {IDENTITY: scored(IDENTITY, psnr - 5, bsr - 0.5),
               reference: scored(reference, psnr, bsr),
               ddim50.name: scored(ddim50.name, psnr - 0.03 + rng.normal(0, 0.05, 40), bsr),
               ddim5.name: scored(ddim5.name, psnr - 0.4 + rng.normal(0, 0.05, 40), bsr),
               ddim20.name: scored(ddim20.name, psnr, bsr - 0.02)}
    margins = {"psnr": 0.1, "bsr_symmetric": 0.005}
    chosen = {sampler.name: sampler for sampler in (study.REFERENCE, ddim50, ddim5, ddim20)}
    rows = {row["method"]: row for row in study.summarise(results, chosen, margins)}
    assert rows[ddim50.name]["equal_quality"]  # 0.03 dB worse on average: within the 0.1 dB margin
    assert not rows[ddim5.name]["equal_quality"]  # 0.4 dB worse
    assert not rows[ddim20.name]["equal_quality"]  # PSNR equal but 2 BSR points worse
    assert "equal_quality" not in rows[reference] and "equal_quality" not in rows[IDENTITY]
    assert rows[ddim50.name]["evaluations"] == 50 and rows[reference]["evaluations"] == 1000
    assert (rows[ddim50.name]["sampler"], rows[ddim50.name]["spacing"]) == ("ddim", "leading")
    table = study.markdown(list(rows.values()), margins)
    assert "| DDIM 50 leading + TAT | 50 |" in table and "**yes**" in table and "reference" in table


def test_the_reference_is_the_official_sampler_and_comes_first(study):
    chosen = study.samplers([10, 50, 10], trailing_steps=[20])
    assert chosen[0] == study.REFERENCE == study.Sampler("ddpm", None, "tat")
    assert chosen[0].name == "DDPM 1000 + TAT"  # a full chain has no spacing to name
    assert chosen[1].name == "DDPM 1000 + TAT, seed +1"  # sampling noise alone: the floor of every comparison
    assert [s.name for s in chosen[3:]] == ["DDIM 50 leading + TAT", "DDIM 50 leading", "DDIM 10 leading + TAT",
                                            "DDIM 10 leading", "DDIM 20 trailing + TAT", "DPM++2M 20 trailing + TAT"]
    assert chosen[0].evaluations == 1000
