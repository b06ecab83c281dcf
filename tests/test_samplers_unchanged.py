"""Each sampler gives, for a fixed seed, the very numbers it gave before ``bs_lib.diffusion`` became a package.

The reference values below were computed once with the single-module
implementation (``bs_lib/diffusion.py`` at commit 5731104), on a tiny fixed
stand-in for a trained network, and are pinned here: a rewrite of a sampler
must reproduce them.
"""

import pytest
import torch

from bs_lib import diffusion as D

SCHEDULE = D.NoiseSchedule.cosine()
W = torch.tensor([0.9, -0.4]).view(1, 2, 1, 1)


def tiny_model(x_t, t):
    """A fixed, seeded stand-in for a trained ε-network: smooth in x_t and in t."""
    return torch.tanh(W * x_t + (t.float() / 1000).view(-1, 1, 1, 1)) + 0.1 * x_t.roll(1, dims=-1)


# (sampler, sampling_steps, spacing, eta, threshold, snapshot timesteps, the sample's 16 values)
BEFORE = [
    ("ddpm", None, "leading", 0.0, "tat", [999, 0],
     [-0.917795, 1.031135, 0.245405, -0.351274, -4.344363, 3.678456, -4.17866, 4.245535,
      -0.178298, -0.765716, -1.145782, -0.452927, 2.013573, 2.634808, 1.59682, -4.27007]),
    ("ddpm", 10, "trailing", 0.0, "tat", [999, 99],
     [-2.446386, -0.25439, 0.984025, -0.579029, -3.653811, -4.210884, -2.572907, -2.670033,
      -0.844273, 0.335451, -0.860462, -0.613777, -3.787398, -0.792542, -3.79752, -0.565854]),
    ("ddim", 7, "leading", 0.0, None, [852, 0],
     [-2.208066, -0.20816, 0.989186, -3.720816, -4.125949, -0.860528, -5.502765, -6.975383,
      0.723351, -1.996591, -2.473081, -1.064834, 0.939209, 3.758753, -2.695701, 4.878588]),
    ("ddim", 7, "trailing", 0.0, "tat", [999, 142],
     [-1.737767, -0.520983, 1.986515, -2.757996, -2.964619, -2.297144, -3.295879, -3.463788,
      1.7581, -1.806901, -2.078131, -1.083521, -1.731622, 3.666383, -2.992523, 3.762658]),
    ("ddim", 5, "trailing", 0.5, "static", [999, 199],
     [-1.0, -0.514383, 1.0, -0.836561, -1.0, -1.0, -1.0, -1.0,
      0.182943, -0.564652, -0.966989, -1.0, -1.0, 1.0, -1.0, 1.0]),
    ("ddim", 6, "leading", 1.0, "tat", [830, 0],
     [-1.544532, -0.486217, 1.44047, -0.548927, -3.504859, -2.085928, -2.211077, -2.850445,
      -0.41317, -0.235627, -0.660364, -2.007641, -2.873198, 2.516245, -3.398015, -0.197577]),
    ("dpm++2m", 7, "leading", 0.0, None, [852, 0],
     [-1.912791, -0.102235, 1.039636, -3.537219, -4.165751, -0.724298, -5.420283, -6.917933,
      0.754633, -1.67794, -2.24779, -0.844762, 1.039755, 4.095638, -2.850733, 5.318439]),
    ("dpm++2m", 7, "trailing", 0.0, "tat", [999, 142],
     [-1.706158, -0.384473, 2.038807, -2.913297, -3.159846, -2.366162, -3.556206, -3.743066,
      1.790592, -1.762634, -2.101132, -0.966017, -1.814628, 4.034689, -3.233792, 4.145033]),
    ("dpm++2m", 1, "leading", 0.0, None, [0],
     [-0.816369, 0.39397, 0.895519, -1.383559, -0.167611, 0.285993, -0.642143, -0.895466,
      0.922519, -0.533241, -1.154439, -0.456902, 0.709677, 1.014791, 0.230292, 1.092677]),
]


@pytest.mark.parametrize(("sampler", "sampling_steps", "spacing", "eta", "threshold", "snapshots", "expected"),
                         BEFORE, ids=[f"{case[0]}-{case[1]}-{case[2]}-eta{case[3]}-{case[4]}" for case in BEFORE])
def test_every_sampler_gives_what_it_gave_before(sampler, sampling_steps, spacing, eta, threshold, snapshots,
                                                 expected):
    result = D.sample(tiny_model, (2, 2, 2, 2), SCHEDULE, sampler=sampler, sampling_steps=sampling_steps,
                      spacing=spacing, eta=eta, threshold=D.make_threshold(threshold),
                      generator=torch.Generator().manual_seed(7), snapshots=2, show_progress=False)
    assert torch.allclose(result.sample.flatten(), torch.tensor(expected), atol=2e-5, rtol=1e-5)
    assert [t for t, _ in result.trajectory] == snapshots


def test_a_sampler_object_reused_for_a_second_sample_starts_afresh():
    """DPM-Solver++ keeps the previous x̂₀ between steps; ``sample`` resets it, so a reused sampler repeats itself."""
    solver = D.DPMSolver(SCHEDULE, 7, "trailing")

    def draw():
        return D.sample(tiny_model, (2, 2, 2, 2), SCHEDULE, sampler=solver, threshold=D.make_threshold("tat"),
                        generator=torch.Generator().manual_seed(7), show_progress=False).sample

    first = draw()
    assert torch.equal(first, draw())
    expected = next(case[-1] for case in BEFORE if case[:5] == ("dpm++2m", 7, "trailing", 0.0, "tat"))
    assert torch.allclose(first.flatten(), torch.tensor(expected), atol=2e-5, rtol=1e-5)
