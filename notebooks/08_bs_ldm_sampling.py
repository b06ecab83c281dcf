# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · BS-LDM sampling: steps, thresholds and ablations
#
# A trained diffusion model is only half of BS-LDM; the other half is how it
# is sampled. The official sampler takes 1 000 DDPM steps (85 s per image at
# 1024²) and clamps its running estimate of the clean latent with *temporal
# adaptive thresholding*. This notebook opens the sampler: it follows a sample
# from noise to soft tissue, compares thresholds by the intensity histograms
# they produce, measures speed against quality for DDIM with few steps, and
# switches off BS-LDM's ingredients one at a time to see what each one buys.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/08_bs_ldm_sampling.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 90 s (reuses notebooks 06–07 when they ran; short ablation runs) |
# | `colab` | one T4 GPU | ≈ 17 min after 06–07 on Drive, 86 alone (estimated: colab_times.md) |
# | `full` | one A100/H100 | hours (1 000-step DDPM at 1024²) |
#
# ## Prerequisites
# - notebook 07: the forward process, ε-prediction, $\hat x_0$ from $\hat\varepsilon$, DDPM and DDIM, offset noise;
# - notebook 06: the ML-VQGAN's decoder, which turns a sampled latent into an image;
# - notebook 01: PSNR, SSIM, the bone suppression ratio and the identity baseline;
# - statistics: a mean and its spread, a paired difference between two methods on the same images.
#
# ## Learning goals
# - follow the predicted clean image along a sampling trajectory;
# - explain temporal adaptive thresholding, static and dynamic (percentile) thresholding, and read their
#   effect in intensity histograms;
# - measure the trade-off between sampling steps, time per image and quality;
# - explain why a short chain should start from pure noise at $t = T-1$ (trailing timesteps);
# - read an ablation: what offset noise, thresholding, the clean condition and EMA weights each contribute.

# %% [markdown]
# ## Setup
# Installs the course library `bs_lib` only when it is missing (on Colab, or in a
# fresh environment); torch is left as it is.

# %%
import importlib.util
import pathlib
import subprocess
import sys

if importlib.util.find_spec("bs_lib") is None:
    clone = pathlib.Path.cwd().parent
    in_clone = (clone / "bs_lib").is_dir()
    source = ["-e", str(clone)] if in_clone else ["git+https://github.com/bone-suppression/course"]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *source], check=True)
    if in_clone:
        sys.path.insert(0, str(clone))
    importlib.invalidate_caches()

from bs_lib import config

# %% [markdown]
# ## Parameters
# `PROFILE` scales everything: `smoke` (CPU, seconds), `colab` (one GPU, minutes),
# `full` (the paper's scale). Run as a report with
# `papermill 08_bs_ldm_sampling.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %%
import inspect
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from bs_lib import datasets, diffusion, metrics, runs
from bs_lib.claims import check
from bs_lib.configs import load_config
from bs_lib.interactive import explore
from bs_lib.suppress import load_suppressor
from bs_lib.train import train_or_reuse

SIZE = run.profile.image_size
NUM_EVAL = run.pick({"smoke": 4, "colab": 32, "full": 64})  # validation images scored per setting
STEP_COUNTS = run.pick({"smoke": [2, 5, 10, 20], "colab": [5, 10, 20, 50, 100], "full": [10, 20, 50, 100, 250]})
ABLATION_STEPS = run.pick({"smoke": 20, "colab": 4000, "full": 100_000})  # training steps per variant
DDPM_TIMED = run.pick({"smoke": 100, "colab": 1000, "full": 1000})  # steps of the official DDPM chain timed

# %% [markdown]
# ## 1. The trained model
# Notebooks 06 and 07 trained the two stages; when they ran on this machine
# with this profile their checkpoints are reused, otherwise both are trained
# here first. Sampling uses the EMA weights (the official code computed them
# but saved the raw weights).

# %%
train_set = datasets.profile_dataset(run.profile, "train", seed=SEED)
val_set = datasets.profile_dataset(run.profile, "val", seed=SEED)
stage1, stage2 = runs.bs_ldm(run.profile.name, train_set, seed=SEED, image_size=SIZE, own_suffix=runs.NOTEBOOK_08)
ldm, ldm_config = load_suppressor(stage2, device=run.device)
print(f"stage 1: {stage1}\nstage 2: {stage2}")

count = min(NUM_EVAL, len(val_set))
cxr = torch.stack([val_set[i]["cxr"] for i in range(count)]).to(run.device)
soft = torch.stack([val_set[i]["soft"] for i in range(count)]).to(run.device)


def score(prediction, label):
    """Every metric of the course for one setting, with the identity baseline's radiograph as reference."""
    return {"setting": label, **metrics.evaluate(prediction.cpu(), soft.cpu(), cxr.cpu())}


def seeded():
    return torch.Generator(device=run.device).manual_seed(SEED)


# %% [markdown]
# ## 2. A sampling trajectory
# At every step the sampler holds an estimate $\hat x_0$ of the clean latent.
# Decoding a few of them shows the image emerging: coarse brightness first,
# bone-free structure next, fine detail last.

# %%
z_cxr = ldm.autoencoder.encode(cxr[:1])
trajectory = ldm.sample_latent(z_cxr, seeded(), snapshots=6, sampler="ddim", sampling_steps=20).trajectory
figure, axes = plt.subplots(1, len(trajectory) + 1, figsize=(2.2 * (len(trajectory) + 1), 2.6),
                            constrained_layout=True)
for axis, (t, x0) in zip(axes, trajectory, strict=False):
    axis.imshow(ldm.autoencoder.decode(x0)[0, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    axis.set_title(f"x̂₀ at t = {t}", fontsize=9)
axes[-1].imshow(soft[0, 0].cpu(), cmap="gray", vmin=0, vmax=1)
axes[-1].set_title("truth", fontsize=9)
for axis in axes:
    axis.axis("off")
plt.show()

# %% [markdown]
# ### The sampler, written out
# One DDIM step from $x_t$ to the next timestep $t'$ of the chain, with the
# threshold on $\hat x_0$ in the middle:
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}}
#   \;\xrightarrow{\text{clamp to }\pm s_j}\; \hat x_0,\qquad
#   \hat\varepsilon \leftarrow \frac{x_t - \sqrt{\bar\alpha_t}\,\hat x_0}{\sqrt{1-\bar\alpha_t}},\qquad
#   x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\hat\varepsilon .$$
#
# $\hat\varepsilon$ is recomputed from the clamped $\hat x_0$, so that the two stay
# consistent; after the last step ($t' = -1$, $\bar\alpha_{-1} = 1$) the chain lands
# on $\hat x_0$ itself. The whole sampler of this notebook's default setting is
# that step in a loop over trailing timesteps, with BS-LDM's temporal adaptive
# clamp $s_j = \omega + b\,j\,(T-1)/(n-1)$ (section 3):

# %%
def ddim_step(x_t, eps_hat, t, t_next, limit):
    """x_t → x_t': estimate x̂₀, clamp it to ±limit, make ε̂ agree with it, and move along the marginals."""
    a, a_next = schedule.alpha_bar_at(t), schedule.alpha_bar_at(t_next)  # ᾱ_{−1} = 1: the clean end
    x0_hat = ((x_t - math.sqrt(1 - a) * eps_hat) / math.sqrt(a)).clamp(-limit, limit)
    eps_hat = (x_t - math.sqrt(a) * x0_hat) / math.sqrt(1 - a)
    return math.sqrt(a_next) * x0_hat + math.sqrt(1 - a_next) * eps_hat


@torch.no_grad()
def sample_by_hand(z_cxr, steps, generator, omega=1.4, rate=0.003, start=None):
    """DDIM on trailing timesteps with temporal adaptive thresholding, from pure noise to a soft-tissue latent.

    ``omega`` and ``rate`` may be tensors shaped (N, 1, 1, 1): one clamp per sample. ``start`` replaces x_T.
    """
    T = schedule.train_timesteps  # the training chain's length, 1 000
    chain = [round(T - j * T / steps) - 1 for j in range(steps)]  # trailing: T−1 first
    x = torch.randn(z_cxr.shape, generator=generator, device=z_cxr.device) if start is None else start  # x_T
    for j, t in enumerate(chain):
        t_next = chain[j + 1] if j + 1 < steps else -1
        eps_hat = ldm.unet(torch.cat([x, z_cxr], dim=1), torch.full((len(x),), t, device=x.device))
        x = ddim_step(x, eps_hat, t, t_next, limit=omega + rate * j * (T - 1) / max(steps - 1, 1))
    return x


schedule = ldm.schedule
chain_steps = ldm.settings.sampling_steps or 50
ours = sample_by_hand(z_cxr, chain_steps, seeded())
theirs = ldm.sample_latent(z_cxr, seeded(), sampler="ddim", sampling_steps=chain_steps, spacing="trailing",
                           threshold="tat", threshold_options={"omega": 1.4, "rate": 0.003}).sample
gap = float((ours - theirs).abs().max())
check(gap < 1e-3 * max(1.0, float(theirs.abs().max())),
      f"the written-out sampler draws the library's latent: {chain_steps} DDIM steps with TAT from the same noise, "
      f"largest difference {gap:.1e}")

# %% [markdown]
# ### The library's samplers: one class each, one interface
# In `bs_lib.diffusion` each sampler is one class in its own file (`ddpm.py`,
# `ddim.py`, `dpm_solver.py`), behind one small interface, `diffusion.Sampler`:
#
# * `timesteps()`: the decreasing timesteps it visits (`sampling_steps` of them, placed by `spacing`);
# * `step(x_t, x0, t, t_prev)`: one move $x_t \to x_{t'}$ given the (thresholded) $\hat x_0$;
# * `reset()`: forget any state before the next sample (DPM-Solver++ keeps the previous $\hat x_0$).
#
# The loop around them, `diffusion.sample`, is the same for all: predict
# $\hat\varepsilon$, estimate and threshold $\hat x_0$, step. A class names
# itself when it is defined, and that registers it: `sampler="ddim"` finds it.
# Here is DDIM's: the step written out above, less the clamp (the loop's
# job, before the step) and plus $\eta$, fresh noise per step (0 in BS-LDM):

# %%
print(inspect.getsource(diffusion.DDIM))
print("registered:", ", ".join(f"{name!r} → {cls.__name__}" for name, cls in diffusion.SAMPLERS.items()))

# %% [markdown]
# And one step against it at a timestep in the middle of the chain, where the
# clamp does not bind:

# %%
x_t = torch.randn(z_cxr.shape, generator=seeded(), device=z_cxr.device)
t, t_next = 499, 449
step = torch.full((len(x_t),), t, device=x_t.device)
with torch.no_grad():
    eps_hat = ldm.unet(torch.cat([x_t, z_cxr], dim=1), step)
library_x0 = schedule.predict_x0(x_t, eps_hat, step)
library_next = diffusion.DDIM(schedule).step(x_t, library_x0, t, t_next)
our_next = ddim_step(x_t, eps_hat, t, t_next, limit=math.inf)
check(torch.allclose(our_next, library_next, atol=1e-4),
      f"one DDIM step, t = {t} → {t_next}: the same x_t' as diffusion.DDIM's step, to "
      f"{float((our_next - library_next).abs().max()):.0e}")

# %% [markdown]
# ## 3. Thresholding the predicted clean latent
# Early in sampling, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$
# divides by a tiny $\sqrt{\bar\alpha_t}$ and can be wildly out of range; an
# out-of-range $\hat x_0$ pushes every later step off course, and the decoded
# image saturates. Three remedies:
#
# | threshold | rule |
# |---|---|
# | static | $\hat x_0 \leftarrow \mathrm{clamp}(\hat x_0, -s, s)$, fixed $s$ |
# | dynamic (Imagen) | $s = \max(\mathrm{quantile}_{0.995}\lvert\hat x_0\rvert, 1)$, then clamp and divide by $s$ |
# | **temporal adaptive** (BS-LDM) | $\pm s_j$, $s_j = \omega + b\,j$ at step $j$; $\omega = 1.4$, $b = 0.003$ |
#
# The temporal adaptive clamp is tight while the sample is mostly noise and
# opens as its content settles: from 1.4 to 4.4 over 1 000 steps (with fewer
# steps, $b$ is rescaled so the clamp ends at the same value).

# %%
tat = diffusion.TemporalAdaptiveThreshold()
figure, axes = plt.subplots(1, 2, figsize=(11, 3.3), constrained_layout=True)
for steps in (1000, 50, 10):
    axes[0].plot(np.linspace(0, 1, steps), [tat.limit(j, steps) for j in range(steps)], label=f"{steps} steps")
axes[0].set(xlabel="fraction of the sampling walk", ylabel="clamp s_j", title="temporal adaptive threshold")
axes[0].legend()

settings = {"none": {}, "static": {"limit": 1.0}, "dynamic": {}, "tat": {}}
predictions = {}
for kind, options in settings.items():
    predictions[kind] = ldm.predict(cxr, seeded(), threshold=kind, threshold_options=options)
bins = np.linspace(0, 1, 51)
axes[1].hist(soft.cpu().flatten(), bins=bins, histtype="step", color="black", linewidth=2, label="truth")
for kind, prediction in predictions.items():
    axes[1].hist(prediction.cpu().flatten(), bins=bins, histtype="step", label=kind)
axes[1].set(title="intensities of the decoded images", xlabel="intensity")
axes[1].legend()
plt.show()

threshold_scores = pd.DataFrame([score(p, kind) for kind, p in predictions.items()]).set_index("setting")
threshold_scores[["psnr", "ssim", "bsr_symmetric"]].round(4)

# %%
clamped, unclamped = threshold_scores.loc["tat", "psnr"], threshold_scores.loc["none", "psnr"]
check(clamped > unclamped + 10, f"the temporal adaptive threshold keeps the sampler sane: {clamped:.1f} dB PSNR, "
                                f"against {unclamped:.1f} dB without a threshold", trained=True)

# %% [markdown]
# Try them yourself on the first validation radiograph: pick a threshold, its
# value (`limit` is the static clamp $s$ and TAT's starting clamp $\omega$;
# `percentile` is the dynamic threshold's quantile) and the number of DDIM steps.
# Each move samples one latent from the same noise and decodes it.

# %%
def draw_sample(threshold="tat", limit=1.4, percentile=0.995, steps=20):
    options = {"static": {"limit": limit}, "tat": {"omega": limit, "rate": 0.003},
               "dynamic": {"percentile": percentile}}.get(threshold, {})
    latent = ldm.sample_latent(z_cxr, seeded(), threshold=threshold, threshold_options=options, sampler="ddim",
                               sampling_steps=steps).sample
    image = ldm.autoencoder.decode(latent)[0, 0].cpu()
    truth = soft[0, 0].cpu()
    figure, axes = plt.subplots(1, 4, figsize=(13, 3.1), constrained_layout=True)
    for axis, (shown, title) in zip(axes[:2], [(image, "sample"), (truth, "soft tissue (truth)")], strict=True):
        axis.imshow(shown, cmap="gray", vmin=0, vmax=1)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    reach = float((image - truth).abs().max()) or 1.0
    axes[2].imshow(image - truth, cmap="coolwarm", vmin=-reach, vmax=reach)
    axes[2].set_title("sample − truth", fontsize=9)
    axes[2].axis("off")
    axes[3].hist(truth.flatten(), bins=np.linspace(0, 1, 51), histtype="step", color="black", linewidth=2,
                 label="truth")
    axes[3].hist(image.flatten(), bins=np.linspace(0, 1, 51), histtype="step", label="sample")
    axes[3].set(xlabel="intensity", title="histograms")
    axes[3].legend(fontsize=8)
    figure.suptitle(f"{threshold}, {steps} DDIM steps: PSNR {metrics.psnr(image, truth):.1f} dB, "
                    f"mean |latent| {float(latent.abs().mean()):.2f}")
    plt.show()


explore(draw_sample, threshold=["tat", "none", "static", "dynamic"], limit=(0.5, 5.0, 0.1, 1.4),
        percentile=(0.9, 1.0, 0.005, 0.995), steps=(2, 100, 1, 20))

# %% [markdown]
# In BS-LDM's own ablation, dynamic (percentile) thresholding narrows the
# histogram and washes the image out — it assumes data in $[-1, 1]$ and divides
# the latent by $s$ — while no thresholding saturates intensities at 0 and 1.
# How much each matters here depends on the model's training budget: a short
# smoke run is far from the paper's regime.

# %% [markdown]
# ## 4. Steps against quality
# DDIM can take any number of steps. Each step costs one network call, so time
# grows linearly with steps while quality saturates. The official 1 000-step DDPM
# is timed on one image (in smoke, on 100 of its steps, times ten: one step costs
# the same in any chain).
#
# DDIM is a first-order solver of the deterministic path from noise to image:
# over each step it holds $\hat x_0$ constant. DPM-Solver++(2M) (Lu et al., 2022)
# walks the same path in the half log-SNR $\lambda_t = \log(\sqrt{\bar\alpha_t}/\sqrt{1-\bar\alpha_t})$
# and extrapolates $\hat x_0$ linearly from the previous step,
#
# $$x_{t'} = \frac{\sigma_{t'}}{\sigma_t}x_t
#   - \alpha_{t'}(e^{-h}-1)\Big[\big(1+\tfrac{1}{2r}\big)\hat x_0 - \tfrac{1}{2r}\hat x_0^{prev}\Big],
# \qquad h = \lambda_{t'}-\lambda_t,\ r = h_{prev}/h,$$
#
# a second-order method for the same one network call per step
# (`diffusion.DPMSolver`, whose state is that previous $\hat x_0$).

# %%
rows = []
for sampler in ("ddim", "dpm++2m"):
    for steps in STEP_COUNTS:
        started = time.perf_counter()
        prediction = ldm.predict(cxr, seeded(), sampler=sampler, sampling_steps=steps)
        seconds = (time.perf_counter() - started) / count
        rows.append({**score(prediction, f"{sampler} {steps}"), "sampler": sampler, "steps": steps,
                     "s/image": seconds})
started = time.perf_counter()  # the official 1000-step sampler on one image; every step costs one network call,
ldm.predict(cxr[:1], seeded(), sampler="ddpm", sampling_steps=DDPM_TIMED)  # so a shorter chain times it too
ddpm_seconds = (time.perf_counter() - started) * schedule.train_timesteps / DDPM_TIMED
speed = pd.DataFrame(rows).set_index("setting")

figure, axes = plt.subplots(1, 2, figsize=(11, 3.3), constrained_layout=True)
for sampler, own in speed.groupby("sampler"):
    axes[0].plot(own["steps"], own["psnr"], "o-", label=sampler)
    axes[1].plot(own["steps"], own["s/image"], "o-", label=sampler)
axes[0].set(xscale="log", xlabel="steps", ylabel="PSNR (dB)", title="quality")
axes[0].legend()
axes[1].axhline(ddpm_seconds, color="gray", linestyle="--", label=f"DDPM 1000: {ddpm_seconds:.2f} s")
axes[1].set(xscale="log", yscale="log", xlabel="steps", ylabel="seconds per image", title="time")
axes[1].legend()
for panel in axes:
    panel.set_xticks(STEP_COUNTS, [str(steps) for steps in STEP_COUNTS])
    panel.minorticks_off()
plt.show()
speed[["sampler", "steps", "s/image", "psnr", "bsr_symmetric"]].round(4)

# %%
for sampler, own in speed.groupby("sampler"):
    fewest, most = own.iloc[0], own.iloc[-1]
    check(most["s/image"] > fewest["s/image"], f"{sampler}: {most['steps']} steps take "
          f"{most['s/image'] / fewest['s/image']:.1f}× as long as {fewest['steps']}")
check(ddpm_seconds > speed["s/image"].max(), f"1000 DDPM steps take {ddpm_seconds:.2f} s an image, "
                                             f"longer than any short run ({speed['s/image'].max():.2f} s at most)")

# %% [markdown]
# A few test images make a noisy curve. `benchmarks/bs_ldm_sampler_quality.py`
# runs the same comparison properly on the benchmark's 128² model: 80 test
# images, and every sampler compared with the official DDPM 1000 + TAT *image by
# image*, with a bootstrap interval on the paired difference
# (`benchmarks/results/bs_ldm_samplers_smoke_128.md`). There, DDIM + TAT on
# trailing timesteps (this notebook's default, see below) is as good as the
# official sampler from 20 steps on (+0.22 dB PSNR, 95 % interval [−0.02, +0.41])
# with 50× fewer network calls; 10 steps lose 0.8 dB and 5 steps 3.0 dB.
# DPM-Solver++ does no better at 20 steps or more and gains 0.5 dB at 5: with the
# exact ε it is 15–50× more accurate than DDIM (see the exercises), so here the
# trained network, not the solver, limits few-step sampling. DDPM 1000 *without*
# a threshold collapses to 6.5 dB, far below doing nothing: at $t = 999$ the
# cosine schedule leaves $\sqrt{\bar\alpha_t} \approx 5\cdot10^{-5}$, so $\hat x_0$
# magnifies the network's error twenty-thousand-fold, and the clamp is what keeps
# the full chain sane.

# %% [markdown]
# ### Where the chain starts: leading or trailing timesteps
# A chain of $n$ steps visits one timestep in every $T/n$. *Leading* spacing ends
# at $t = 0$, so it starts at $t = T - T/n$: 800 for five steps, where
# $\sqrt{\bar\alpha_{800}} = 0.31$. The sampler starts from pure noise, which
# holds no signal, but its first step reads 31 % of a signal that is not there,
# and every sample is pulled towards zero. *Trailing* spacing starts at
# $t = T - 1$, where pure noise belongs, and stops at $t = T/n - 1$, whose
# $\hat x_0$ is the answer (Lin et al., 2024). It is the sampling side of the flaw
# notebook 07's offset noise patches on the training side: a model trained
# where $x_t$ still carries the data's level, asked to start where it does not. Starting there has a price: at
# $t = 999$ the first $\hat x_0$ carries the network's error twenty-thousand-fold,
# as in the full chain, and only a threshold keeps it in range. BS-LDM has one, so
# its settings sample on trailing timesteps by default (`spacing` in
# `DiffusionSettings`, `--spacing` for `python -m bs_lib sample`), while the bare
# `diffusion.sample`, which thresholds nothing unless told, keeps leading ones.
#
# The effect shows without any network. When every clean value is drawn from
# $\mathcal N(\mu, s^2)$, the perfect denoiser is known in closed form:
# $\mathbb E[x_0 \mid x_t] = \mu + \sqrt{\bar\alpha_t}\,s^2\,(x_t - \sqrt{\bar\alpha_t}\,\mu)
# /(\bar\alpha_t s^2 + 1 - \bar\alpha_t)$, and its $\varepsilon$ follows from it.
# Any error in the samples' mean then comes from the chain alone.

# %%
mu, spread = 0.7, 0.4


def perfect_denoiser(x_t, t):
    """The ε a perfect network predicts when every clean value is drawn from N(mu, spread²)."""
    a = schedule.alpha_bar.to(x_t.device)[t].view(-1, 1, 1, 1)
    clean_mean = mu + a.sqrt() * spread**2 * (x_t - a.sqrt() * mu) / (a * spread**2 + 1 - a)
    return schedule.predict_eps(x_t, clean_mean, t)


spacing_rows = []
for spacing in diffusion.SPACINGS:
    for steps in STEP_COUNTS:
        toy = diffusion.sample(perfect_denoiser, (16, 4, 16, 16), schedule, sampling_steps=steps, spacing=spacing,
                               generator=torch.Generator().manual_seed(SEED), show_progress=False).sample
        trained = ldm.predict(cxr, seeded(), sampler="ddim", sampling_steps=steps, spacing=spacing)
        spacing_rows.append({**score(trained, f"ddim {steps} {spacing}"), "spacing": spacing, "steps": steps,
                             "perfect denoiser: sample mean": toy.mean().item()})
spacings = pd.DataFrame(spacing_rows).set_index("setting")

figure, axes = plt.subplots(1, 2, figsize=(11, 3.3), constrained_layout=True)
for spacing, own in spacings.groupby("spacing"):
    axes[0].plot(own["steps"], own["perfect denoiser: sample mean"], "o-", label=spacing)
    axes[1].plot(own["steps"], own["psnr"], "o-", label=spacing)
axes[0].axhline(mu, color="gray", linestyle="--", label="the data's mean μ")
axes[0].set(xscale="log", xlabel="DDIM steps", ylabel="mean of the samples",
            title="perfect denoiser, clean values ~ N(0.7, 0.4²)")
axes[1].set(xscale="log", xlabel="DDIM steps", ylabel="PSNR (dB)", title="the trained BS-LDM")
for panel in axes:
    panel.set_xticks(STEP_COUNTS, [str(steps) for steps in STEP_COUNTS])
    panel.minorticks_off()
    panel.legend()
plt.show()
spacings[["spacing", "steps", "perfect denoiser: sample mean", "psnr", "bsr_symmetric"]].round(4)

# %%
trailing = spacings[spacings["spacing"] == "trailing"]["perfect denoiser: sample mean"]
leading = spacings[spacings["spacing"] == "leading"]["perfect denoiser: sample mean"]
check((trailing - mu).abs().max() < 0.01, f"with a perfect denoiser, trailing steps sample the mean μ = {mu} at every "
                                          f"step count, within {(trailing - mu).abs().max():.3f}")
check(abs(leading.iloc[0] - mu) > abs(trailing.iloc[0] - mu),
      f"{STEP_COUNTS[0]} leading steps miss it by {leading.iloc[0] - mu:+.3f}, "
      f"{STEP_COUNTS[0]} trailing ones by {trailing.iloc[0] - mu:+.3f}")

# %% [markdown]
# With the perfect denoiser, trailing steps sample the right mean at every step
# count, and leading ones miss it more the fewer steps they take. (Both shrink the
# spread at few steps: that is DDIM's first-order error, which DPM-Solver++
# reduces.) On the benchmark's model, the study above finds trailing timesteps
# better at every step count: by 0.15 dB at 50 steps, 0.47 at 20, 0.72 at 10 and
# 2.55 at 5. Twenty leading steps lose 0.25 dB against the official sampler;
# twenty trailing ones lose nothing. The few validation images scored here cannot
# separate differences of a few tenths of a decibel; the large gaps at very few
# steps show at once.

# %% [markdown]
# ## 5. Ablations: what each ingredient buys
# Sampling-time switches cost nothing to try; training-time switches need a
# model trained without the ingredient, at the same budget. Here every variant
# is trained for `ABLATION_STEPS` steps from the same stage 1, so they compare
# fairly with each other (the smoke budget is tiny: read the smoke numbers as a
# demonstration of the procedure, the colab numbers as results).
#
# One sampling-time row changes the *output*, not the chain: the residual output
# returns the radiograph minus the difference of two decodings,
# $c - (\mathcal D(z_c) - \mathcal D(x_0))$, so whatever stage 1 cannot
# reconstruct is kept instead of lost. On the phantom, which stage 1 knows well,
# it costs about 1 dB; on real radiographs it is what keeps a phantom-trained
# BS-LDM from erasing structure that is not bone
# (`benchmarks/results/bs_ldm_real_128.md`), so `python -m bs_lib sample` returns it
# for a BS-LDM trained on the phantom alone (`--no-residual` for the decoding).

# %%
variants = {
    "BS-LDM (offset noise, clean condition)": {},
    "without offset noise": {"offset_noise": 0.0},
    "official (scaled) condition": {"condition": "official"},
}
ablation_rows = []
for label, change in variants.items():
    suffix = "-ablation-" + "-".join(f"{k}{v}" for k, v in change.items()) if change else "-ablation-base"
    variant_config = load_config("bs_ldm", run.profile.name, name=f"bs_ldm-{run.profile.name}{suffix}",
                                 steps=ABLATION_STEPS, output_dir=str(config.runs_dir()), seed=SEED,
                                 image_size=SIZE, method_args={"autoencoder": str(stage1), **change})
    variant, _ = load_suppressor(train_or_reuse(variant_config, train_set), device=run.device)
    ablation_rows.append(score(variant.predict(cxr, seeded()), label))
    if not change:  # sampling-time switches, on the same trained model
        ablation_rows.append(score(variant.predict(cxr, seeded(), threshold="none"), "without thresholding"))
        ablation_rows.append(score(variant.predict(cxr, seeded(), residual=True),
                                   "residual output: radiograph − (D(z_c) − D(x₀))"))
        raw, _ = load_suppressor(variant_config.run_dir, device=run.device, use_ema=False)
        ablation_rows.append(score(raw.predict(cxr, seeded()), "raw weights instead of EMA"))
ablation_rows.append(score(cxr, "identity (do nothing)"))
ablation = pd.DataFrame(ablation_rows).set_index("setting")
ablation[["psnr", "ssim", "bsr", "bsr_symmetric", "mse"]].round(4)

# %%
check(len(ablation) == 7 and ablation.notna().all().all(),
      "all seven settings of the ablation are scored, every metric defined")

# %% [markdown]
# ## 6. The published numbers, and how fast this can go
# BS-LDM reports 84.6 s per 1024² image for 1 000 DDPM steps (GL-LCM's
# table; the GPU is not stated) and PSNR 31.95 dB on SZCH-X-Rays in the same
# authors' corrected re-evaluation. `benchmarks/bs_ldm_speed.py` measures the
# full-size model: on one H200, DDIM with 50 steps and temporal adaptive
# thresholding takes 6.4 s per 1024² image at batch 1 and 0.46 s at batch 16
# (`benchmarks/results/bs_ldm_gpu.md`). Section 4's study says 20 trailing steps
# lose nothing against the 1 000-step sampler, which at the measured 128 ms per
# step makes about 2.6 s per image at batch 1, 33× faster than published (computed
# from the step time, not yet timed). Fewer steps and larger batches do the
# work; bf16 alone does not, because each step is thousands of small kernel
# launches (128 ms per step at batch 1, more than the published run's 85 ms).
# Notebook 09 puts BS-LDM on the course's leaderboard beside every other method.

# %% [markdown]
# ## Summary
# - Sampling walks from noise to a clean latent; the running estimate $\hat x_0$ shows the image emerging
#   coarse to fine.
# - Temporal adaptive thresholding clamps $\hat x_0$ to a range that opens from 1.4 to 4.4 along the walk;
#   static and percentile thresholding are the baselines it was compared with.
# - DDIM with tens of steps replaces 1 000 DDPM steps at a fraction of the time; quality saturates early.
#   DPM-Solver++ walks the same path to second order, for the same one network call per step.
# - A short chain must start where pure noise belongs, at $t = T-1$ (trailing timesteps); starting lower
#   (leading) pulls every sample towards zero, even with a perfect network.
# - "As good as" is a claim to test image by image: a paired difference with its interval, beside a
#   second draw of the reference itself.
# - Ablations separate what each ingredient contributes, but only at equal training budgets and seeds.
#
# ## Exercises
# ★ easy, ★★ medium, ★★★ hard.
#
# 1. ★★ Sweep ω ∈ {1.0, 1.4, 1.8, 2.2} and b ∈ {0, 0.0015, 0.003, 0.0045} (`threshold_options`) on the trained
#    model and draw the PSNR grid, as the paper's figure does.
#
#    <details><summary>Solution</summary>
#
#    The first solution cell samples two validation images once per setting, all 16 settings in one batch
#    of the written-out sampler (one clamp per sample, the same starting noise), and draws the grid of PSNRs
#    (ω down, b across). On the smoke model the differences are a few tenths of a decibel to a few
#    decibels and change with the seed; the paper's sweep, on its 1024² model, chose ω = 1.4, b = 0.003.
#    </details>
#
# 2. ★★ With DDIM, add noise back (`eta=1.0`): how do PSNR and the spread across seeds change?
#
#    <details><summary>Solution</summary>
#
#    η = 1 makes DDIM stochastic like DDPM: it adds fresh noise at every step, so the path depends on more
#    than the starting noise. The second solution cell samples two validation images with three seeds at
#    η = 0 and η = 1 and prints, for each η, the mean PSNR over the seeds, its spread, and how much the
#    samples of different seeds differ pixel by pixel. Read the numbers for your model: with a threshold
#    and few steps, the fresh noise can also pull a sample back towards the data, so neither direction is
#    a rule.
#    </details>
#
# 3. ★★★ On the Gaussian toy of `tests/test_diffusion.py` (clean values drawn from N(μ, s²), so the exact
#    ε-predictor and the exact end of the deterministic path are known), measure how the error of DDIM
#    and of DPM-Solver++ shrinks as steps double. Which one is first order, which second?
#
#    <details><summary>Solution</summary>
#
#    The third solution cell runs both samplers with the exact ε-predictor for 25 to 200 steps and prints
#    the largest error against the exact end of the path, with the ratio from one step count to the next.
#    Doubling the steps halves DDIM's error (the ratio stays close to 2): first order. DPM-Solver++ is one to
#    two orders of magnitude more accurate at every step count, but its error does not fall by a clean
#    factor of four: its last step, into t = 0, is first order across a large jump in λ (see
#    `diffusion.DPMSolver`) and sets the error.
#    </details>
#
# 4. ★★ Sample the trained model with 20 DDIM steps and no threshold (`threshold="none"`), once on trailing
#    and once on leading timesteps (`spacing=...`). Which one collapses? Compare $1/\sqrt{\bar\alpha_t}$ at
#    each chain's first timestep.
#
#    <details><summary>Solution</summary>
#
#    The fourth solution cell prints each chain's first timestep, its $1/\sqrt{\bar\alpha_t}$ and the PSNR of
#    the unthresholded samples, beside TAT on trailing steps. At $t = 999$, $1/\sqrt{\bar\alpha_t} \approx 2\cdot10^4$:
#    the first $\hat x_0$ carries the network's error twenty-thousand-fold, and the next DDIM step keeps
#    $7.8\,\%$ of it; at $t = 950$ the factor is 13. So the trailing chain collapses without a threshold (on
#    the benchmark's 128² model: about 6 dB, against 35 dB with TAT) and the leading one barely notices
#    (34.8 dB there). TAT clamps $\hat x_0$ to $\pm 1.4$ before that step, which is why BS-LDM pairs trailing
#    timesteps with it.
#    </details>
#
# 5. ★ Why is the 1 000-step DDPM sampler still the paper's choice, and when would you keep it?
#
#    <details><summary>Solution</summary>
#
#    It is the sampler the model was tuned with (the thresholds ω, b were swept for it). When quality per
#    image matters more than time — a reader study, a reference for a faster sampler — keep it and compare.
#    </details>
#

# %% tags=["solution"]
# Solution to exercise 1
omegas, rates = (1.0, 1.4, 1.8, 2.2), (0.0, 0.0015, 0.003, 0.0045)
few = slice(0, 2)  # two validation images; use more for a steadier grid
settings = [(w, b) for w in omegas for b in rates]
z_few = ldm.autoencoder.encode(cxr[few])
n_few = len(z_few)


def per_sample(values):  # one value per (setting, image), shaped to broadcast over a latent
    return torch.tensor([v for v in values for _ in range(n_few)], device=z_few.device).view(-1, 1, 1, 1)


# the written-out sampler takes one clamp per sample: all 16 settings run as one batch, from the same noise
start = torch.randn(z_few.shape, generator=seeded(), device=z_few.device).repeat(len(settings), 1, 1, 1)
latents = sample_by_hand(z_few.repeat(len(settings), 1, 1, 1), chain_steps, None, start=start,
                         omega=per_sample([w for w, _ in settings]), rate=per_sample([b for _, b in settings]))
decoded = ldm.autoencoder.decode(latents).cpu().view(len(settings), n_few, *soft.shape[1:])
grid = pd.DataFrame(np.reshape([metrics.psnr(images, soft[few].cpu()) for images in decoded],
                               (len(omegas), len(rates))),
                    index=pd.Index(omegas, name="ω"), columns=pd.Index(rates, name="b"))
figure, axis = plt.subplots(figsize=(4.6, 3.6))
shown = axis.imshow(grid.to_numpy(), cmap="viridis")
axis.set(xticks=range(len(rates)), xticklabels=rates, yticks=range(len(omegas)), yticklabels=omegas, xlabel="b",
         ylabel="ω", title="PSNR (dB) of TAT settings")
for (row, column), value in np.ndenumerate(grid.to_numpy()):
    axis.text(column, row, f"{value:.1f}", ha="center", va="center", color="white", fontsize=8)
figure.colorbar(shown, ax=axis)
plt.show()

# %% tags=["solution"]
# Solution to exercise 2
spread_rows = {}
for eta in (0.0, 1.0):
    drawn = [ldm.predict(cxr[few], torch.Generator(device=run.device).manual_seed(seed), eta=eta).cpu()
             for seed in (SEED, SEED + 1, SEED + 2)]
    psnrs = [metrics.psnr(image, soft[few].cpu()) for image in drawn]
    spread_rows[f"η = {eta:g}"] = {"mean PSNR (dB)": np.mean(psnrs), "spread over seeds (dB)": np.std(psnrs),
                                   "pixel std across seeds": float(torch.stack(drawn).std(dim=0).mean())}
pd.DataFrame(spread_rows).T.round(4)

# %% tags=["solution"]
# Solution to exercise 3
mu_toy, s_toy = 0.7, 0.4
cosine = diffusion.NoiseSchedule.cosine()


def exact_eps(x, t):
    a = cosine.alpha_bar.to(x)[t].view(-1, 1, 1, 1)
    return (1 - a).sqrt() * (x - a.sqrt() * mu_toy) / (a * s_toy**2 + 1 - a)


errors = {}
for steps in (25, 50, 100, 200):
    start = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(SEED))
    a0 = cosine.alpha_bar_at(diffusion.sampling_timesteps(1000, steps)[0])
    exact = mu_toy + s_toy * (start - a0**0.5 * mu_toy) / (a0 * s_toy**2 + 1 - a0) ** 0.5
    errors[steps] = {sampler: (diffusion.sample(exact_eps, start.shape, cosine, sampler=sampler,
                                                sampling_steps=steps, generator=torch.Generator().manual_seed(SEED),
                                                show_progress=False).sample - exact).abs().max().item()
                     for sampler in ("ddim", "dpm++2m")}
orders = pd.DataFrame(errors).T.rename_axis("steps")
orders.join((orders.shift(1) / orders).add_suffix(": error ÷ error at half the steps")).round(6)

# %% tags=["solution"]
# Solution to exercise 4
collapse = {}
for spacing in diffusion.SPACINGS:
    first = diffusion.sampling_timesteps(1000, 20, spacing)[0]
    unclamped = ldm.predict(cxr, seeded(), sampler="ddim", sampling_steps=20, spacing=spacing, threshold="none")
    collapse[f"{spacing}, no threshold"] = {"first t": first, "1/√ᾱ_t": 1 / schedule.alpha_bar_at(first) ** 0.5,
                                            "PSNR (dB)": metrics.psnr(unclamped.cpu(), soft.cpu())}
with_tat = ldm.predict(cxr, seeded(), sampler="ddim", sampling_steps=20, spacing="trailing", threshold="tat")
first = diffusion.sampling_timesteps(1000, 20, "trailing")[0]
collapse["trailing, TAT"] = {"first t": first, "1/√ᾱ_t": 1 / schedule.alpha_bar_at(first) ** 0.5,
                             "PSNR (dB)": metrics.psnr(with_tat.cpu(), soft.cpu())}
pd.DataFrame(collapse).T.round(1)

# %% [markdown]
# ## References
# - Y. Sun et al., *BS-LDM*, IEEE JBHI 2025. [papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)
# - Y. Sun et al., *GL-LCM: Global-Local Latent Consistency Models for Fast High-Resolution Bone Suppression*,
#   MICCAI 2025. [papers/gl-lcm-2025](../papers/gl-lcm-2025.yaml)
# - C. Saharia et al., *Photorealistic Text-to-Image Diffusion Models with Deep Language Understanding*
#   (Imagen, dynamic thresholding), NeurIPS 2022.
# - J. Song, C. Meng, S. Ermon, *Denoising Diffusion Implicit Models*, ICLR 2021.
# - C. Lu et al., *DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models*,
#   arXiv:2211.01095, 2022.
# - S. Lin, B. Liu, J. Li, X. Yang, *Common Diffusion Noise Schedules and Sample Steps are Flawed*,
#   WACV 2024.
