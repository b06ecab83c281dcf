"""Noise schedule, offset noise, thresholds and samplers, against MONAI and against exact answers."""

import math

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from bs_lib import diffusion as D

SCHEDULE = D.NoiseSchedule.cosine()


def test_the_cosine_schedule_matches_monai_and_the_paper_reference_values():
    monai = DDPMScheduler(num_train_timesteps=1000, schedule="cosine", clip_sample=False)
    assert torch.allclose(SCHEDULE.alpha_bar.float(), monai.alphas_cumprod, atol=1e-6)
    assert SCHEDULE.betas[-1].item() == pytest.approx(0.999)
    assert math.sqrt(SCHEDULE.alpha_bar_at(500)) == pytest.approx(0.70, abs=0.005)
    assert math.sqrt(SCHEDULE.alpha_bar_at(900)) == pytest.approx(0.15, abs=0.005)
    assert SCHEDULE.alpha_bar_at(-1) == 1.0


def test_noising_and_its_inverse_are_exact():
    x0, eps = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = torch.tensor([0, 400, 990])
    x_t = SCHEDULE.add_noise(x0, eps, t)
    assert torch.allclose(SCHEDULE.predict_x0(x_t, eps, t), x0, atol=1e-3)
    assert torch.allclose(SCHEDULE.predict_eps(x_t, x0, t), eps, atol=1e-4)


@pytest.mark.parametrize("t", [600, 100, 1])
def test_a_ddpm_step_equals_monai(t):
    monai = DDPMScheduler(num_train_timesteps=1000, schedule="cosine", clip_sample=False)
    x, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    expected, _ = monai.step(eps, t, x, generator=torch.Generator().manual_seed(1))
    x0 = SCHEDULE.predict_x0(x, eps, torch.full((2,), t))
    mine = D.DDPM(SCHEDULE, generator=torch.Generator().manual_seed(1)).step(x, x0, t, t - 1)
    assert torch.allclose(mine, expected, atol=2e-4)


@pytest.mark.parametrize("t", [980, 500, 20])
def test_a_ddim_step_equals_monai(t):
    monai = DDIMScheduler(num_train_timesteps=1000, schedule="cosine", clip_sample=False)
    monai.set_timesteps(50)  # MONAI steps from t to t - 1000 // 50
    x, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    expected, _ = monai.step(eps, t, x)
    t_batch = torch.full((2,), t)
    x0 = SCHEDULE.predict_x0(x, eps, t_batch)
    mine = D.DDIM(SCHEDULE).step(x, x0, t, t - 20)  # ε̂ re-derived from x̂₀
    assert torch.allclose(mine, expected, atol=1e-4)
    assert torch.equal(mine, D.ddim_step(x, x0, SCHEDULE.predict_eps(x, x0, t_batch), t, t - 20, SCHEDULE))


def test_timesteps_walk_the_whole_chain_or_evenly_spaced_steps():
    assert D.sampling_timesteps(1000, None) == list(range(999, -1, -1))
    assert D.sampling_timesteps(1000, 5) == [800, 600, 400, 200, 0]  # leading, the default
    assert D.sampling_timesteps(1000, 5, "trailing") == [999, 799, 599, 399, 199]
    assert D.sampling_timesteps(1000, 3, "trailing") == [999, 666, 332]
    assert D.sampling_timesteps(1000, None, "trailing") == D.sampling_timesteps(1000, None)  # the full chain
    with pytest.raises(ValueError):
        D.sampling_timesteps(1000, 0)
    with pytest.raises(ValueError, match="leading, trailing"):
        D.sampling_timesteps(1000, 5, "middle")


def test_offset_noise_adds_one_constant_per_sample_and_channel():
    g = torch.Generator().manual_seed(0)
    plain = D.offset_noise((64, 4, 32, 32), 0.0, generator=g)
    offset = D.offset_noise((64, 4, 32, 32), 0.1, generator=torch.Generator().manual_seed(0))
    bias = offset - plain  # same Gaussian draw, so the difference is λ·ε_b
    assert torch.allclose(bias, bias.mean(dim=(2, 3), keepdim=True), atol=1e-6)  # constant over H×W
    assert bias.mean(dim=(2, 3)).std().item() == pytest.approx(0.1, rel=0.15)
    assert plain.mean(dim=(2, 3)).std().item() == pytest.approx(1 / 32, rel=0.2)  # white noise barely moves the mean


def test_temporal_adaptive_threshold_opens_from_1_4_to_4_4():
    tat = D.TemporalAdaptiveThreshold()
    assert tat.limit(0, 1000) == pytest.approx(1.4)
    assert tat.limit(999, 1000) == pytest.approx(1.4 + 0.003 * 999)
    assert tat.limit(49, 50) == pytest.approx(tat.limit(999, 1000))  # rescaled for fewer steps
    x0 = torch.full((1, 4, 2, 2), 3.0)
    assert tat(x0, 0, 1000).max().item() == pytest.approx(1.4)
    assert tat(x0, 999, 1000).max().item() == pytest.approx(3.0)


def test_dynamic_threshold_rescales_by_the_percentile_and_static_clamps():
    x0 = torch.linspace(-4, 4, 1000).view(1, 1, 10, 100)
    out = D.DynamicThreshold(percentile=0.995)(x0, 0, 10)
    assert out.abs().max().item() == pytest.approx(1.0)
    assert D.StaticThreshold(2.0)(x0, 0, 10).abs().max().item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="Unknown threshold"):
        D.make_threshold("percentile")


def _point_mass_denoiser(mu):
    """The exact ε-predictor when every clean sample equals ``mu``."""

    def denoiser(x_t, t):
        return SCHEDULE.predict_eps(x_t, mu.expand_as(x_t), t)

    return denoiser


@pytest.mark.parametrize(("sampler", "steps"), [("ddim", 10), ("ddim", 3), ("ddpm", 25), ("ddpm", None),
                                              ("dpm++2m", 10), ("dpm++2m", 3)])
def test_samplers_recover_a_known_clean_sample(sampler, steps):
    mu = torch.tensor([0.5, -1.0, 2.0, 0.0]).view(1, 4, 1, 1).expand(1, 4, 4, 4)
    result = D.sample(_point_mass_denoiser(mu), (2, 4, 4, 4), SCHEDULE, sampler=sampler, sampling_steps=steps,
                      generator=torch.Generator().manual_seed(0), show_progress=False)
    assert torch.allclose(result.sample, mu.expand(2, 4, 4, 4), atol=1e-3)


def test_a_tight_threshold_limits_the_result_and_snapshots_are_kept():
    mu = torch.full((1, 4, 4, 4), 3.0)
    result = D.sample(_point_mass_denoiser(mu), (1, 4, 4, 4), SCHEDULE, sampling_steps=11,
                      threshold=D.StaticThreshold(1.0), snapshots=3, show_progress=False)
    assert result.sample.max().item() == pytest.approx(1.0, abs=1e-3)
    assert [t for t, _ in result.trajectory] == [900, 450, 0]  # first, middle and last of 11 steps


def test_sampling_is_deterministic_with_a_seed():
    def denoiser(x_t, t):
        return 0.5 * x_t

    def draw(seed):
        return D.sample(denoiser, (2, 4, 4, 4), SCHEDULE, sampler="ddpm", sampling_steps=20,
                        generator=torch.Generator().manual_seed(seed), show_progress=False).sample

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))


def _gaussian_denoiser(mu: float, s: float):
    r"""The exact ε-predictor for clean samples :math:`x_0 \sim \mathcal N(\mu, s^2)` (each element)."""

    def denoiser(x_t, t):
        a = SCHEDULE._alpha_bar(t, x_t)
        return (1 - a).sqrt() * (x_t - a.sqrt() * mu) / (a * s**2 + 1 - a)

    return denoiser


def _exact_endpoint(x_start, t_start: int, mu: float, s: float):
    """Where the deterministic path from ``x_start`` at ``t_start`` lands: each sample keeps its quantile."""
    a = SCHEDULE.alpha_bar_at(t_start)
    return mu + s * (x_start - math.sqrt(a) * mu) / math.sqrt(a * s**2 + 1 - a)


@pytest.mark.parametrize(("steps", "error_ratio"), [(5, 1.0), (10, 0.5), (20, 0.2), (50, 0.1)])
def test_dpm_solver_follows_the_exact_path_closer_than_ddim(steps, error_ratio):
    mu, s, shape = 0.7, 0.4, (4, 4, 8, 8)
    x_start = torch.randn(shape, generator=torch.Generator().manual_seed(0))  # what sample() draws first
    exact = _exact_endpoint(x_start, D.sampling_timesteps(1000, steps)[0], mu, s)
    error = {}
    for sampler in ("ddim", "dpm++2m"):
        result = D.sample(_gaussian_denoiser(mu, s), shape, SCHEDULE, sampler=sampler, sampling_steps=steps,
                          generator=torch.Generator().manual_seed(0), show_progress=False)
        error[sampler] = (result.sample - exact).abs().max().item()
    assert error["dpm++2m"] < error_ratio * error["ddim"], error  # second order against first order


@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m"])
def test_trailing_steps_start_from_pure_noise_so_even_five_steps_sample_the_right_mean(sampler):
    """A perfect denoiser, clean values ~ N(0.7, 0.4²): where the chain starts decides the mean it samples.

    A leading chain of 5 steps starts at t = 800, where it treats pure noise as holding
    √ᾱ₈₀₀ ≈ 0.3 of signal, and pulls every sample towards 0; a trailing chain starts at t = 999.
    """
    mu, s, shape = 0.7, 0.4, (64, 4, 16, 16)

    def mean_of_samples(steps, spacing):
        return D.sample(_gaussian_denoiser(mu, s), shape, SCHEDULE, sampler=sampler, sampling_steps=steps,
                        spacing=spacing, generator=torch.Generator().manual_seed(0),
                        show_progress=False).sample.mean().item()

    for steps in (5, 20):
        assert abs(mean_of_samples(steps, "trailing") - mu) < 0.005
    assert abs(mean_of_samples(5, "leading") - mu) > 0.05


def test_unknown_samplers_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="dpm\\+\\+2m"):
        D.sample(lambda x, t: x, (1, 1, 2, 2), SCHEDULE, sampler="euler", show_progress=False)


def test_samplers_are_discovered_one_class_per_module_behind_one_interface():
    assert (D.SAMPLERS["ddpm"], D.SAMPLERS["ddim"], D.SAMPLERS["dpm++2m"]) == (D.DDPM, D.DDIM, D.DPMSolver)
    machinery = {"base", "schedule", "thresholds", "sampling"}
    owners = sorted(cls.__module__.rpartition(".")[2] for cls in D.SAMPLERS.values())
    assert owners == sorted(set(D.MODULES) - machinery)  # every other module is one sampler, found on import
    for name, cls in D.SAMPLERS.items():
        assert issubclass(cls, D.Sampler) and cls.name == name
        sampler = D.make_sampler(name, SCHEDULE, 5, "trailing")
        assert sampler.timesteps() == D.sampling_timesteps(1000, 5, "trailing")


def test_a_new_sampler_is_one_subclass_that_names_itself():
    class Jump(D.Sampler, name="jump-to-x0"):
        """Straight to the clean estimate, whatever the step: a sampler in five lines."""

        def step(self, x_t, x0, t, t_prev):
            return x0

    try:
        assert D.SAMPLERS["jump-to-x0"] is Jump
        mu = torch.full((1, 4, 4, 4), 0.5)
        result = D.sample(_point_mass_denoiser(mu), (1, 4, 4, 4), SCHEDULE, sampler="jump-to-x0", sampling_steps=2,
                          show_progress=False)
        assert torch.allclose(result.sample, mu, atol=1e-4)
        with pytest.raises(ValueError, match="two samplers are named"):
            type("Again", (D.Sampler,), {}, name="jump-to-x0")
    finally:
        del D.SAMPLERS["jump-to-x0"]
