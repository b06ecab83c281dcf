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
# # 07 · BS-LDM training: conditional latent diffusion
#
# A diffusion model learns to turn noise into images by learning to *undo*
# noise, one small step at a time. BS-LDM asks for a particular image: the
# soft-tissue image that belongs to a given radiograph. This notebook first
# builds the idea from nothing on points in a plane — the forward noising, the
# ε-prediction objective, DDPM and DDIM sampling — then moves to the latent
# space of notebook 06, adds the radiograph as a condition and offset noise for
# brightness, and trains stage 2 of BS-LDM with the course's engine.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/07_bs_ldm_training.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 60 s (2-D primer, phantom 64², 300 steps) |
# | `colab` | one T4 GPU | ≈ 25 min after 06 on Drive, 70 alone (estimated: colab_times.md) |
# | `full` | one or more A100/H100 | days (1024², the paper's 2 500 epochs) |
#
# ## Prerequisites
# - notebook 06: the ML-VQGAN, its latent space and why stage 2 works in it;
# - notebook 01: PSNR, the bone suppression ratio, the identity baseline, and why a uint8 PSNR flatters;
# - probability: the Gaussian $\mathcal N(\mu, \sigma^2)$, sums of independent Gaussians, expectations and a
#   conditional expectation; the gradient of a log-density (the *score*);
# - PyTorch basics: `nn.Module`, `backward()`, an optimiser step.
#
# ## Learning goals
# - derive the closed form of the forward process and explain why predicting the noise ε is enough;
# - sample with DDPM (ancestral, 1 000 steps) and DDIM (deterministic, few steps) and compare them;
# - explain why BS-LDM diffuses in a latent space and how it conditions on the radiograph (channel concatenation);
# - explain what offset noise changes and why it helps with image brightness;
# - train stage 2 of BS-LDM with the engine and read its loss curve.

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
# `papermill 07_bs_ldm_training.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %%
import contextlib
import copy
import inspect
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

from bs_lib import datasets, diffusion, metrics, runs
from bs_lib.claims import check
from bs_lib.evaluate import paired_difference
from bs_lib.interactive import explore
from bs_lib.models.unet import EpsilonUNet, ResBlock, timestep_embedding
from bs_lib.train import Trainer, build_objective, discard_stale_run

SIZE = run.profile.image_size
TOY_STEPS = run.pick({"smoke": 400, "colab": 3000, "full": 3000})  # primer training steps

# %% [markdown]
# ## 1. A diffusion primer in two dimensions
# ### 1.1 The forward process
# Take a data point $x_0$ and add Gaussian noise in $T = 1000$ small steps,
# $q(x_t\mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)$, that is
# $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon_t$ with fresh noise
# $\varepsilon_t$ at every step. Unroll two steps: $x_t$ is a scaled $x_{t-2}$ plus a
# sum of two independent Gaussians, and a sum of independent Gaussians is
# Gaussian, its variances adding up. Every step is such a linear-Gaussian map,
# so any step can be reached in one jump:
#
# $$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad
#   \varepsilon\sim\mathcal N(0, I),\qquad \bar\alpha_t = \prod_{s\le t}(1-\beta_s).$$
#
# $\bar\alpha_t$ falls from 1 (clean) to almost 0 (pure noise). BS-LDM uses the
# cosine schedule of Nichol & Dhariwal, which destroys information more evenly
# than the original linear one; it is defined through $\bar\alpha$ itself:
#
# $$f(\tau) = \cos^2\Big(\frac{\tau + s}{1 + s}\cdot\frac{\pi}{2}\Big),\quad s = 0.008,\qquad
#   \bar\alpha_t = \frac{f(t/T)}{f(0)},\qquad \beta_t = \min\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\ 0.999\Big),
#   \qquad t = 1, \dots, T.$$
#
# The code counts $t$ from 0, so its $\bar\alpha$ at index $t$ is $f((t+1)/T)/f(0)$.
# Our data: 8 Gaussian blobs on a ring.

# %%
def ring(n, generator):
    """8 Gaussian blobs on a circle of radius 1.5: a distribution with structure, in 2-D."""
    angle = torch.randint(0, 8, (n,), generator=generator) * (2 * math.pi / 8)
    return 1.5 * torch.stack([angle.cos(), angle.sin()], dim=1) + 0.1 * torch.randn(n, 2, generator=generator)


generator = torch.Generator().manual_seed(SEED)
points = ring(4000, generator)
schedule = diffusion.NoiseSchedule.cosine(1000)

figure, axes = plt.subplots(1, 6, figsize=(15, 2.9), constrained_layout=True)
for axis, t in zip(axes[:5], (0, 100, 300, 600, 999), strict=True):
    noisy = schedule.add_noise(points, torch.randn(points.shape, generator=generator), torch.full((len(points),), t))
    axis.scatter(noisy[:, 0], noisy[:, 1], s=1)
    axis.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), title=f"t = {t}, √ᾱ = {math.sqrt(schedule.alpha_bar_at(t)):.2f}")
    axis.set_aspect("equal")
linear = diffusion.NoiseSchedule.linear(1000)
axes[5].plot(schedule.alpha_bar, label="cosine (BS-LDM)")
axes[5].plot(linear.alpha_bar, label="linear (DDPM)")
axes[5].set(xlabel="t", title="ᾱ_t")
axes[5].legend()
plt.show()

# %% [markdown]
# The formula, computed, against the library's schedule. The clip at 0.999 binds
# once, at the last step: there $f(1) = \cos^2(\pi/2) = 0$ would make
# $\bar\alpha$ exactly 0, and the clipped chain keeps a trace of the signal.

# %%
T = schedule.train_timesteps  # T, the training chain's length; a sampler visits sampling_steps of it


def f(tau, s=0.008):
    return math.cos((tau + s) / (1 + s) * math.pi / 2) ** 2


written = torch.tensor([f((t + 1) / T) / f(0) for t in range(T)], dtype=torch.float64)
gap = float((written - schedule.alpha_bar)[:-1].abs().max())
check(gap < 1e-12, f"ᾱ_t = f((t+1)/T) / f(0) is the library's cosine schedule to {gap:.0e} for every t < T − 1")
check(schedule.alpha_bar[-1] > 0, f"at t = T − 1 the clipped β leaves ᾱ = {float(schedule.alpha_bar[-1]):.1e} "
      f"(the unclipped formula: {float(written[-1]):.0e}), so √ᾱ = {float(schedule.alpha_bar[-1]) ** 0.5:.1e}")

# %% [markdown]
# ### 1.2 The objective: name the noise
# Given $x_t$ and $t$, a network $\varepsilon_\theta(x_t, t)$ is trained to say
# which noise was added:
#
# $$\mathcal L(\theta) = \mathbb E_{x_0,\,t,\,\varepsilon}
#   \,\big\lVert \varepsilon_\theta(x_t, t) - \varepsilon\big\rVert^2 .$$
#
# Why is that enough? The closed form inverts: knowing $\varepsilon$ gives
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$.
# The minimiser of the loss is the *average* noise consistent with $x_t$,
# $\mathbb E[\varepsilon\mid x_t]$, and Tweedie's formula,
# $\mathbb E[\sqrt{\bar\alpha_t}\,x_0\mid x_t] = x_t + (1-\bar\alpha_t)\,\nabla_{x_t}\log p_t(x_t)$,
# turns it into the score:
#
# $$\mathbb E[\varepsilon\mid x_t] = \frac{x_t - \mathbb E[\sqrt{\bar\alpha_t}\,x_0\mid x_t]}{\sqrt{1-\bar\alpha_t}}
#   = -\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log p_t(x_t).$$
#
# The score points towards more probable data, so $\hat\varepsilon$ points *away*
# from it: the noise is what pushed $x_t$ off the data. The score is
# $-\hat\varepsilon/\sqrt{1-\bar\alpha_t}$, and every sampling step below moves
# $x_t$ by a multiple of $-\hat\varepsilon$. A small MLP with a sinusoidal time
# embedding learns $\hat\varepsilon$ for our ring; the loop is the whole algorithm.

# %%
class ToyDenoiser(nn.Module):
    """ε_θ(x_t, t) for 2-D points: the point and an embedding of t, through a small MLP."""

    def __init__(self, width: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 + 32, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, 2))

    def forward(self, x_t, t):
        return self.net(torch.cat([x_t, timestep_embedding(t, 32)], dim=1))


toy = ToyDenoiser()
optimiser = torch.optim.Adam(toy.parameters(), lr=2e-3)
losses = []
for _ in config.progress(range(TOY_STEPS), desc="toy diffusion"):
    x0 = points[torch.randint(0, len(points), (512,), generator=generator)]
    t = schedule.sample_timesteps(512, generator=generator)          # t ~ U{0, …, T−1}
    eps = torch.randn(x0.shape, generator=generator)                   # ε ~ N(0, I)
    loss = (toy(schedule.add_noise(x0, eps, t), t) - eps).square().mean()  # ‖ε_θ(x_t, t) − ε‖²
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    losses.append(loss.item())
print(f"loss: first 50 steps {np.mean(losses[:50]):.3f} → last 50 steps {np.mean(losses[-50:]):.3f}")

# %% [markdown]
# The sign, checked. Our ring is a mixture of 8 Gaussians $\mathcal N(\mu_k, 0.1^2 I)$,
# so $p_t$ is a mixture too, $\mathcal N(\sqrt{\bar\alpha_t}\mu_k, \sigma_t^2 I)$ with
# $\sigma_t^2 = 0.01\,\bar\alpha_t + 1 - \bar\alpha_t$, and its score is known in closed form:
# $\nabla\log p_t(x) = -\sum_k w_k(x)\,(x - \sqrt{\bar\alpha_t}\mu_k)/\sigma_t^2$, with $w_k$ the
# posterior weight of blob $k$. Compare it with the trained network's $\hat\varepsilon$ at
# $t = 700$.

# %%
centres = 1.5 * torch.stack([torch.cos(torch.arange(8) * math.pi / 4), torch.sin(torch.arange(8) * math.pi / 4)], 1)


def ring_score(x, t):
    """∇ log p_t(x) for the ring: a mixture of 8 Gaussians, noised."""
    a = schedule.alpha_bar_at(t)
    variance = 0.1**2 * a + 1 - a
    offsets = x[:, None, :] - math.sqrt(a) * centres[None]  # (n, 8, 2)
    weights = torch.softmax(-offsets.square().sum(-1) / (2 * variance), dim=1)  # w_k(x)
    return -(weights[..., None] * offsets).sum(1) / variance


t_check = 700
x_t = schedule.add_noise(points[:1000], torch.randn(1000, 2, generator=generator), torch.full((1000,), t_check))
with torch.no_grad():
    eps_hat = toy(x_t, torch.full((1000,), t_check))
score = ring_score(x_t, t_check)
cosine = float(nn.functional.cosine_similarity(eps_hat, score, dim=1).mean())
grid = torch.stack(torch.meshgrid(torch.linspace(-2.5, 2.5, 15), torch.linspace(-2.5, 2.5, 15), indexing="xy"),
                   -1).reshape(-1, 2)
with torch.no_grad():
    away = toy(grid, torch.full((len(grid),), t_check))
towards = ring_score(grid, t_check)
figure, axis = plt.subplots(figsize=(5, 5))
axis.scatter(*(math.sqrt(schedule.alpha_bar_at(t_check)) * centres).T, c="gray", s=60, label="blob centres at t")
axis.quiver(*grid.T, *(towards / towards.norm(dim=1, keepdim=True)).T, color="black", label="score (exact)")
axis.quiver(*grid.T, *(away / away.norm(dim=1, keepdim=True)).T, color="tab:orange", label="ε̂ (network)")
axis.set(title=f"t = {t_check}: ε̂ points away from the data", xlim=(-2.8, 2.8), ylim=(-2.8, 2.8))
axis.set_aspect("equal")
axis.legend(loc="lower right", fontsize=8)
plt.show()
check(cosine < -0.8, f"at t = {t_check} the network's ε̂ points against the exact score: mean cosine {cosine:.2f} "
                     f"over 1000 noised points (−1 would be exactly opposite)", trained=True)

# %% [markdown]
# ### 1.3 Sampling: DDPM and DDIM
# To generate, start from noise $x_T\sim\mathcal N(0, I)$ and walk back. Each step
# estimates $\hat x_0$ from $\hat\varepsilon$, then moves to an earlier $t$:
#
# * **DDPM** draws $x_{t-1}$ from the Gaussian posterior $q(x_{t-1}\mid x_t, \hat x_0)$, one step at a
#   time, 1 000 network calls;
# * **DDIM** moves deterministically along the same marginals,
#   $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\hat\varepsilon$, and can
#   jump: 20 steps instead of 1 000.
#
# Both go through one loop, `bs_lib.diffusion.sample`; each sampler is one class with one `step`
# (`bs_lib.diffusion.DDPM`, `bs_lib.diffusion.DDIM`, with the equations in their docstrings), chosen
# by name with `sampler=` and run for `sampling_steps=` steps (notebook 08 opens one up).

# %%
toy.eval()
results = {}
for label, sampler, steps in (("DDPM, 1000 steps", "ddpm", None), ("DDIM, 20 steps", "ddim", 20)):
    started = time.perf_counter()
    samples = diffusion.sample(toy, (2000, 2), schedule, sampler=sampler, sampling_steps=steps,
                               generator=torch.Generator().manual_seed(SEED)).sample
    results[label] = (samples, time.perf_counter() - started)

figure, axes = plt.subplots(1, 3, figsize=(11, 3.8), constrained_layout=True)
axes[0].scatter(points[:2000, 0], points[:2000, 1], s=1, color="gray")
axes[0].set_title("data")
for axis, (label, (samples, seconds)) in zip(axes[1:], results.items(), strict=True):
    axis.scatter(samples[:, 0], samples[:, 1], s=1)
    axis.set_title(f"{label} ({seconds:.2f} s)")
for axis in axes:
    axis.set(xlim=(-3, 3), ylim=(-3, 3))
    axis.set_aspect("equal")
plt.show()

# %%
for label, (samples, _) in results.items():
    radius = samples.norm(dim=1)
    check(abs(radius.median().item() - 1.5) < 0.25,
          f"{label}: the samples lie on the ring, radius {radius.mean():.2f} ± {radius.std():.2f} "
          f"(data: 1.50 ± 0.10)", trained=True)

# %% [markdown]
# ## 2. From points to radiographs: the latent space and the condition
# BS-LDM runs the same algorithm on the 4-channel latents of notebook 06's
# autoencoder, $z_s = \mathcal E(\text{soft tissue})$, and asks not for *any*
# soft-tissue latent but for the one that belongs to a radiograph. The
# radiograph's latent $z_c = \mathcal E(\text{radiograph})$ is simply placed
# beside the noisy latent, channel by channel:
#
# $$\hat\varepsilon = \varepsilon_\theta\big([\,x_t \,\Vert\, z_c\,],\ t\big),\qquad
#   x_t = \sqrt{\bar\alpha_t}\,z_s + \sqrt{1-\bar\alpha_t}\,\varepsilon .$$
#
# Eight channels in, four out. The official code noises all eight channels at
# once, so the network sees $\sqrt{\bar\alpha_t}\,z_c$ in training but the clean
# $z_c$ at sampling; `bs_lib` feeds the clean condition in both
# (`condition="clean"`, the default) and keeps `condition="official"` to compare.
#
# One training step of stage 2, at a glance:

# %%
from bs_lib.diagrams import arrow, box

figure, axis = plt.subplots(figsize=(13, 4.6))
axis.set(xlim=(-0.7, 14.9), ylim=(0.2, 5.5))
axis.axis("off")
soft = box(axis, 0.3, 3.4, "soft tissue $s$", "white")
cxr = box(axis, 0.3, 1.2, "radiograph $c$", "white")
encode_soft = box(axis, 2.6, 3.4, "encoder $\\mathcal{E}$\n(frozen, notebook 06)", "#cfe2f3")
encode_cxr = box(axis, 2.6, 1.2, "encoder $\\mathcal{E}$\n(frozen, notebook 06)", "#cfe2f3")
noise = box(axis, 6.9, 4.85, "$t \\sim U\\{0, …, T-1\\}$\n"
            r"$\varepsilon = \varepsilon_0 + \lambda\,\varepsilon_b$ (offset noise)", "#fff2cc")
forward = box(axis, 6.9, 3.4, "forward process $q(x_t \\mid z_s)$\n"
              r"$\sqrt{\bar\alpha_t}\,z_s + \sqrt{1-\bar\alpha_t}\,\varepsilon$", "#fce5cd")
stack = box(axis, 9.6, 2.3, "$[\\,x_t\\ ;\\ z_c\\,]$\n8 channels", "white")
unet = box(axis, 11.7, 2.3, "UNet $\\varepsilon_\\theta(\\cdot, t)$\n(time by FiLM)", "#d9d2e9")
loss = box(axis, 13.9, 3.6, r"loss $\|\hat\varepsilon - \varepsilon\|^2$", "#d9ead3")
for source, target, text in [(soft, encode_soft, ""), (cxr, encode_cxr, ""), (encode_soft, forward, "$z_s$\n4×h×w"),
                             (noise, forward, ""), (forward, stack, "$x_t$"), (encode_cxr, stack, "$z_c$\n4×h×w"),
                             (stack, unet, ""), (unet, loss, r"$\hat\varepsilon$")]:
    arrow(axis, source, target, text)
arrow(axis, noise, loss, r"$\varepsilon$, the target", dashed=True)
arrow(axis, noise, unet, "$t$", dashed=True)
axis.set_title("stage 2 of BS-LDM: one training step (only the UNet learns)")
plt.show()

# %% [markdown]
# We need notebook 06's autoencoder. If notebook 06 has run on this machine with
# the same profile, its run is reused; otherwise a copy is trained now.

# %%
train_set = datasets.profile_dataset(run.profile, "train", seed=SEED)
val_set = datasets.profile_dataset(run.profile, "val", seed=SEED)
# bs_lib.runs owns the course's run names: notebook 06's run when it finished, else this notebook's copy
stage1, suffix = runs.autoencoder(run.profile.name, train_set, seed=SEED, image_size=SIZE)
print(f"stage 1 (ML-VQGAN): {stage1}")

# %%
ldm_config = runs.stage2_config(run.profile.name, stage1, seed=SEED, image_size=SIZE, suffix=suffix)
discard_stale_run(ldm_config)  # a run of another config in the same folder would not fit this model
ldm = build_objective(ldm_config).to(run.device)
batch = {key: torch.stack([val_set[i][key] for i in range(4)]).to(run.device) for key in ("cxr", "soft")}
z_soft, z_cxr = ldm.latents(batch)
t = torch.tensor([50, 300, 600, 950], device=run.device)
noisy = ldm.schedule.add_noise(z_soft, torch.randn_like(z_soft), t)
network_input = ldm.network_input(noisy, z_cxr, t)
print(f"latents {tuple(z_soft.shape[1:])}; the network sees {tuple(network_input.shape[1:])}")

figure, axes = plt.subplots(2, 4, figsize=(10, 5.2), constrained_layout=True)
for column in range(4):
    axes[0, column].imshow(network_input[column, 0].cpu(), cmap="viridis")
    axes[0, column].set_title(f"noisy soft latent, t = {t[column].item()}", fontsize=8)
    axes[1, column].imshow(network_input[column, 4].cpu(), cmap="viridis")
    axes[1, column].set_title("condition: radiograph latent", fontsize=8)
for axis in axes.flat:
    axis.axis("off")
figure.suptitle("channel 0 of the 8-channel input: what changes with t, and what does not")
plt.show()

# %%
check(network_input.shape[1] == 8, "the network sees eight channels: four noisy, four of the condition")
check(torch.equal(network_input[:, 4:], z_cxr), "the condition is the clean radiograph latent, whatever t")

# %% [markdown]
# ### The noise estimator, layer by layer
# The UNet is the course's own compact rewrite of guided-diffusion's (the
# paper's); its code is the lesson. A residual block convolves twice and lets
# the timestep in by FiLM: the embedding of $t$ scales and shifts the normalised
# features, $h \leftarrow \mathrm{GN}(h)\,(1 + \gamma(t)) + \beta(t)$. The forward pass
# keeps every level's output for the skip connections of the way up.

# %%
print(inspect.getsource(ResBlock.forward))
print(inspect.getsource(EpsilonUNet.forward))


# %%
def block_shapes(network: nn.Module, names: list[str], *inputs) -> pd.DataFrame:
    """Output shape and parameter count of the named blocks, in execution order (forward hooks)."""
    modules, rows, hooks = dict(network.named_modules()), [], []
    for name in names:
        def record(module, arguments, output, name=name):
            rows.append({"block": name, "layers": " + ".join(type(m).__name__ for m in module.children())
                         or type(module).__name__, "output (C×H×W)": "×".join(map(str, output.shape[1:])),
                         "parameters": sum(p.numel() for p in module.parameters())})
        hooks.append(modules[name].register_forward_hook(record))
    with torch.no_grad():
        network(*inputs)
    for hook in hooks:
        hook.remove()
    return pd.DataFrame(rows).set_index("block")


unet_blocks = ["stem"] + [f"down.{i}" for i in range(len(ldm.unet.down))] + ["middle"] + \
    [f"up.{i}" for i in range(len(ldm.unet.up))] + ["head"]
unet_shapes = block_shapes(ldm.unet, unet_blocks, network_input, t)
unet_shapes

# %%
check(unet_shapes.loc["head", "output (C×H×W)"] == "×".join(map(str, z_soft.shape[1:])),
      f"the UNet maps the 8-channel input to a 4-channel ε̂ of the latent's shape; the coarsest level is "
      f"{unet_shapes.loc['middle', 'output (C×H×W)']}; {unet_shapes['parameters'].sum():,} parameters")

# %% [markdown]
# ## 3. Offset noise
# Follow a latent's *mean*, its lowest spatial frequency, through the forward
# process. Per-pixel noise barely moves it: the mean of $L\times L$ independent
# noise values has standard deviation $1/L$. So the mean of $x_t$ is
# $\sqrt{\bar\alpha_t}\,\mathrm{mean}(z_s) \pm \sqrt{1-\bar\alpha_t}/L$: its signal-to-noise
# ratio is $L^2$ times a single pixel's, $\bar\alpha_t/(1-\bar\alpha_t)$. The level of
# the clean latent survives long after its detail is gone, almost to the end of
# the chain (the table below), and on this discrete, clipped schedule it never
# quite vanishes ($\bar\alpha_{T-1} > 0$, section 1.1). In training, then, the level
# of $x_t$ gives away the level of $z_s$ at nearly every timestep: the network
# rarely has to *decide* the overall level, and learns to keep whatever level
# $x_t$ has. At sampling the chain starts from pure noise, whose mean is
# $0 \pm 1/L$, and a model that learned to keep the level keeps that one: it
# shifts the overall brightness badly. But removing bone is largely a change of
# level: bone adds brightness everywhere there are ribs.
#
# Offset noise adds one random constant per sample and channel,
#
# $$\varepsilon_{off} = \varepsilon + \lambda\,\varepsilon_b,\qquad
#   \varepsilon_b\sim\mathcal N(0, 1)^{B\times C\times1\times1},\qquad \lambda = 0.1,$$
#
# so the noise itself moves the level, the level of $x_t$ no longer gives away
# that of $z_s$, and the model must learn to set it, here from the condition. It
# is the flaw notebook 08 meets from the sampling side: a short chain on
# *leading* timesteps starts where training never saw pure noise and reads a
# signal that is not there; Lin et al. (2024) fix the schedule (zero terminal
# SNR) and sample on *trailing* timesteps, and offset noise is the cheaper patch
# on the training side.
#
# BS-LDM's sweep found λ = 0.1 best (PSNR 30.9 → 33.2 dB on SZCH-X-Rays). Those
# are the paper's numbers, from its official code, which computes PSNR on uint8
# images where squared errors wrap around modulo 256 (notebook 01): that adds
# several decibels (5–8 dB for doing nothing on the real sample pairs), and the
# same authors' float re-evaluation puts the final model at 31.95 dB
# ([papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)). The 2.3 dB gain is measured
# in the paper's own units and has not been re-measured in float.
#
# How long does the level survive? The last timestep at which the signal-to-noise
# ratio of one pixel, and of the mean, is still at least 1:

# %%
snr = schedule.alpha_bar / (1 - schedule.alpha_bar)  # one pixel's signal-to-noise ratio, ᾱ_t / (1 − ᾱ_t)
latent_side = z_soft.shape[-1]
sides = sorted({latent_side, 32, 128})
survival = pd.DataFrame({"last t, pixel SNR ≥ 1": [int((snr >= 1).nonzero().max())] * len(sides),
                         "last t, mean's SNR ≥ 1": [int((snr * side**2 >= 1).nonzero().max()) for side in sides],
                         "mean's SNR at t = T − 1": [float(snr[-1] * side**2) for side in sides]},
                        index=pd.Index(sides, name=f"latent side L (this run: {latent_side})"))
survival

# %%
pixel_end, mean_end = survival.loc[latent_side].iloc[:2]
check(mean_end > pixel_end, f"on this run's {latent_side}² latents the level of z_s outlives its pixels: the mean's "
                            f"SNR stays ≥ 1 up to t = {mean_end:.0f}, a pixel's only up to t = {pixel_end:.0f}")

# %% [markdown]
# How much does offset noise add? On an $L\times L$ latent the mean of plain noise has
# standard deviation $1/L$; the constant adds an independent $\lambda\,\varepsilon_b$,
# so the mean's standard deviation becomes $\sqrt{\lambda^2 + 1/L^2}$, larger by
# $\sqrt{1 + \lambda^2L^2}$: about 13 times at the paper's 128² latents, less than
# twice at 16². We measure it on 512 samples of 4 channels.

# %%
shape, strength = (512, 4, *z_soft.shape[-2:]), 0.1
plain = diffusion.offset_noise(shape, 0.0, generator=torch.Generator().manual_seed(SEED))
offset = diffusion.offset_noise(shape, strength, generator=torch.Generator().manual_seed(SEED))
level_shift = (z_cxr - z_soft).mean(dim=(2, 3)).flatten().cpu()

figure, axes = plt.subplots(1, 2, figsize=(10, 3.4), constrained_layout=True)
bins = np.linspace(-0.45, 0.45, 61)
axes[0].hist(plain.mean(dim=(2, 3)).flatten(), bins=bins, alpha=0.7, label="plain noise")
axes[0].hist(offset.mean(dim=(2, 3)).flatten(), bins=bins, alpha=0.7, label="offset noise, λ = 0.1")
axes[0].set(title="per-channel mean of one noise sample", xlabel="mean over the latent")
axes[0].legend()
axes[1].bar(range(len(level_shift)), level_shift.numpy())
axes[1].set(title="what bone adds: mean of z_cxr − z_soft per channel", xlabel="sample × channel")
plt.show()
print(f"std of the per-channel mean: plain {plain.mean(dim=(2, 3)).std():.3f}, "
      f"offset {offset.mean(dim=(2, 3)).std():.3f}; bone's level shift {level_shift.abs().mean():.3f} on average")

# %%
side = shape[-1]
widening = float(offset.mean(dim=(2, 3)).std() / plain.mean(dim=(2, 3)).std())
predicted_widening = math.sqrt(1 + strength**2 * side**2)
tolerance = 5 / math.sqrt(shape[0] * shape[1])  # five standard errors of a ratio of spreads over 2048 means
check(abs(widening / predicted_widening - 1) < tolerance,
      f"on {side}×{side} latents offset noise widens the spread of the mean {widening:.2f}-fold; "
      f"√(1 + λ²L²) predicts {predicted_widening:.2f} (within {tolerance:.0%})")

# %% [markdown]
# Move the sliders: $t$ and λ noise one soft-tissue latent 200 times. On the left,
# four of the noisy latents (channel 0) with their means; on the right, the spread
# of the mean over all 200, around the level the clean latent leaves,
# $\sqrt{\bar\alpha_t}\,\mathrm{mean}(z_s)$. With λ = 0 the mean of $x_t$ sits on that
# level until $t$ is close to $T$; with offset noise it wanders, by
# $\sqrt{1-\bar\alpha_t}\,\sqrt{\lambda^2 + 1/L^2}$.

# %%
level_noise = torch.randn(200, *z_soft.shape[1:], generator=torch.Generator().manual_seed(SEED))  # drawn once
level_offsets = torch.randn(200, z_soft.shape[1], 1, 1, generator=torch.Generator().manual_seed(SEED + 1))
clean = z_soft[:1].cpu()


def draw_level(t=600, strength=0.1):
    a = schedule.alpha_bar_at(t)
    noised = math.sqrt(a) * clean + math.sqrt(1 - a) * (level_noise + strength * level_offsets)  # x_t, 200 draws
    means = noised[:, 0].mean(dim=(1, 2))
    figure, axes = plt.subplots(1, 5, figsize=(14, 2.9), constrained_layout=True,
                                gridspec_kw={"width_ratios": [1, 1, 1, 1, 2.2]})
    for axis, latent, mean in zip(axes[:4], noised[:4, 0], means[:4], strict=True):
        axis.imshow(latent, cmap="viridis", vmin=-3, vmax=3)
        axis.set_title(f"mean {mean:+.2f}", fontsize=9)
        axis.axis("off")
    axes[4].hist(means, bins=np.linspace(-1, 1, 81), color="tab:blue")
    axes[4].axvline(math.sqrt(a) * clean[0, 0].mean(), color="black", linestyle="--", label="√ᾱ_t · mean(z_s)")
    axes[4].set(xlabel="mean of x_t, channel 0", title=f"spread {means.std():.3f}")
    axes[4].legend(fontsize=8)
    figure.suptitle(f"t = {t}, ᾱ_t = {a:.3g}, λ = {strength}")
    plt.show()


explore(draw_level, t=(0, 999, 1, 600), strength=(0.0, 1.0, 0.05, 0.1))

# %% [markdown]
# ## 4. Training stage 2
# The run is `bs_lib/configs/bs_ldm.yaml`: AdamW at 2e-4 with the paper's
# step decay, EMA of the weights (0.995 at full scale), offset noise 0.1 (0.5
# for the few hundred steps of `smoke`).
#
# ### 4.1 One training step, by hand
# Everything of the diagram above in a few lines: encode the pair, draw $t$ and
# the offset noise, jump to $x_t$ with the closed form, ask the UNet for
# $\hat\varepsilon$ and score it. The timesteps are drawn for the *actual* batch
# size, so the last, smaller batch of an epoch is fine (the official code crashed
# on it).

# %%
def training_step(unet, batch):
    """BS-LDM's ε-prediction loss on one batch, written out (random draws from torch's global generator)."""
    z_s, z_c = ldm.latents(batch)  # the frozen encoder: target and condition latents
    n, channels = z_s.shape[:2]
    t = torch.randint(0, ldm.schedule.train_timesteps, (n,), device=z_s.device)  # t ~ U{0, …, T−1}
    eps = torch.randn(z_s.shape, device=z_s.device)  # ε₀ ~ N(0, I)
    eps = eps + ldm.settings.offset_noise * torch.randn(n, channels, 1, 1, device=z_s.device)  # + λ ε_b
    a = ldm.schedule.alpha_bar.to(z_s)[t].view(n, 1, 1, 1)  # ᾱ_t
    x_t = a.sqrt() * z_s + (1 - a).sqrt() * eps  # q(x_t | z_s) in one jump
    eps_hat = unet(torch.cat([x_t, z_c], dim=1), t)  # ε̂ from [x_t ; z_c]
    return (eps_hat - eps).square().mean()  # ‖ε̂ − ε‖²


torch.manual_seed(SEED)
ours = training_step(ldm.unet, batch)
torch.manual_seed(SEED)
theirs = ldm.losses(batch, step=0)["unet"]
check(abs(ours.item() - theirs.item()) < 1e-6, f"with the same random draws, the written-out step gives the "
                                               f"library's loss: {ours.item():.6f} and {theirs.item():.6f}")

# %% [markdown]
# The first steps of training, with AdamW at the config's learning rate, on a
# copy of the UNet: the library's stays untouched for the long run below. To
# change a layer, build another network, say
# `EpsilonUNet(dataclasses.replace(ldm.unet.config, attention_levels=()))`, give it
# to `train_by_hand`, and compare the losses.

# %%
HAND_STEPS = min(20, config.max_steps() or 20)  # capped like every training run under BS_MAX_STEPS


def train_by_hand(unet, steps=HAND_STEPS):
    """The first ``steps`` optimiser steps of stage 2, written out; returns the loss at every step."""
    optimiser = torch.optim.AdamW(unet.parameters(), lr=ldm_config.lr, weight_decay=ldm_config.weight_decay)
    picker, seen = torch.Generator().manual_seed(SEED), []
    torch.manual_seed(SEED)
    unet.to(run.device).train()
    for _ in range(steps):
        chosen = torch.randint(len(train_set), (ldm_config.batch_size,), generator=picker).tolist()
        pairs = {key: torch.stack([train_set[i][key] for i in chosen]).to(run.device) for key in ("cxr", "soft")}
        loss = training_step(unet, pairs)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seen.append(loss.item())
    return seen


hand_losses = train_by_hand(copy.deepcopy(ldm.unet))
figure, axis = plt.subplots(figsize=(6, 2.8))
axis.plot(hand_losses, marker=".")
axis.set(xlabel="step", ylabel="‖ε̂ − ε‖²", title="the first steps, by hand")
plt.show()
early, late = np.mean(hand_losses[:5]), np.mean(hand_losses[-5:])
check(late < early, f"{len(hand_losses)} hand-written steps take the loss from {early:.3f} to {late:.3f} (means of "
                    f"the first and last five; a zero-initialised UNet starts at E‖ε‖² = 1 + λ² = "
                    f"{1 + ldm.settings.offset_noise**2:.2f})", trained=True)

# %% [markdown]
# ### 4.2 The long run: the library's `Trainer`
# `Trainer` runs the same step for the whole budget and adds what a long run
# needs: mixed precision, the exponential moving average of the weights,
# checkpoints with exact resume, several processes, and parameter groups updated
# in order (here a single one, `unet`).
#
# The autoencoder is frozen, so a pair's latents never change: `cache_latents` encodes
# every pair once before the first step instead of twice per step. At 1024² that
# encoding is about four times the UNet's own arithmetic, so stage 2 trains several
# times faster on the same hardware, with the same result: measured on a CPU, 2.8×
# for the paper's model at 1024² and 4.9× for the `colab` model
# (`benchmarks/results/bs_ldm_gpu.md`).
#
# The `colab` and `full` configs say `mixed_precision: auto`: bf16 on GPUs with
# bf16 hardware (A100, L4, H100), fp16 with loss scaling on older ones such as
# Colab's T4, which only emulates bf16 and has no bf16 convolutions, and float32
# on a CPU. The cell below prints the precision this run trains in.

# %%
trainer = Trainer(ldm, ldm_config, train_set, val_set if ldm_config.val_every else None)
result = trainer.fit(resume=True)  # reuses a finished run of this config, resumes an interrupted one
print(f"{result.final_step} steps in {result.wall_time_s:.0f} s ({result.images_per_s:.1f} pairs/s, "
      f"{'float32' if trainer.precision == 'no' else trainer.precision}); checkpoint: {result.checkpoint}")

# %%
history = pd.DataFrame([h for h in result.history if "loss/unet" in h]).set_index("step")
figure, axis = plt.subplots(figsize=(8, 3.2))
history["loss/unet"].plot(ax=axis, logy=True)
axis.set(title="ε-prediction loss (MSE)", ylabel="loss")
plt.show()

# %% [markdown]
# ## 5. A first look
# Notebook 08 studies sampling in depth; here one DDIM run with temporal
# adaptive thresholding, with the EMA weights, on validation radiographs, against
# the do-nothing baseline (the radiograph itself). Beside the float PSNR the
# course reports stands the official code's uint8 PSNR (`psnr_uint8_official`):
# compare the two columns to see the inflation section 3 warns about.

# %%
ldm.eval()
with trainer.ema_scope() if trainer.ema else torch.no_grad():
    predicted = ldm.predict(batch["cxr"], torch.Generator(device=run.device).manual_seed(SEED))
scores = pd.DataFrame({
    "identity (do nothing)": metrics.evaluate(batch["cxr"].cpu(), batch["soft"].cpu(), batch["cxr"].cpu()),
    "BS-LDM": metrics.evaluate(predicted.cpu(), batch["soft"].cpu(), batch["cxr"].cpu()),
}).T
scores[[c for c in scores if c in ("psnr", "psnr_uint8_official", "ssim", "bsr", "bsr_symmetric", "mse")]].round(4)

# %%
figure, axes = plt.subplots(3, 4, figsize=(10, 7.8), constrained_layout=True)
for column in range(4):
    for row, (image, label) in enumerate([(batch["cxr"], "radiograph"), (predicted, "BS-LDM"),
                                          (batch["soft"], "soft tissue (truth)")]):
        axes[row, column].imshow(image[column, 0].cpu(), cmap="gray", vmin=0, vmax=1)
        axes[row, column].set_title(label, fontsize=9)
        axes[row, column].axis("off")
plt.show()

# %% [markdown]
# A smoke run trains for a few hundred steps on 32 phantom chests. On the
# phantom the radiograph itself already scores about 26 dB against the soft
# tissue, so doing nothing is a real baseline, and a run this short does not
# beat it reliably: depending on the seed, its PSNR on these four images lands
# anywhere from about 1 dB below doing nothing to 3 dB above. What every short
# run does learn, helped by strong offset noise (λ = 0.5 in the smoke config),
# is bone's level shift and where the bone lies: the cell below checks that the
# brightness it removes brings the images to the soft tissue's level, and that
# what it removes follows the bone. The `colab` profile keeps the paper's
# λ = 0.1 and trains far longer, which is where the decibels are earned.

# %%
bone, removed = batch["cxr"] - batch["soft"], batch["cxr"] - predicted
level_missed = float((predicted - batch["soft"]).mean(dim=(1, 2, 3)).abs().mean())
level_of_bone = float(bone.mean(dim=(1, 2, 3)).abs().mean())
follows = float(torch.corrcoef(torch.stack([removed.flatten(), bone.flatten()]))[0, 1])
check(level_missed < level_of_bone, f"BS-LDM removes bone's level shift: its images miss the soft tissue's mean "
                                    f"brightness by {level_missed:.3f}, the radiographs by {level_of_bone:.3f}",
      trained=True)
check(follows > 0.3, f"and what it removes follows the bone: correlation {follows:.2f}", trained=True)

# %% [markdown]
# Four images make a noisy number. The test split holds chests that neither
# stage saw; on sixteen of them the cell below measures the gain over doing
# nothing image by image, with a paired bootstrap interval
# (`evaluate.paired_difference`), over the whole image and inside each chest's
# lung mask (where the data has one). The smoke recipe, trained at seeds 0–3
# (`python -m bs_lib benchmark --methods bs_ldm --profile smoke --image-size 64 --num-test 16 --seed S`),
# gains +3.2 to +6.2 dB in the lungs at every seed, but over the whole image
# anywhere from +3.1 dB (interval [+2.4, +3.7]) down to +0.7 dB (interval
# [−0.6, +2.0], no detectable gain): the lungs are the claim this budget keeps.

# %%
held_out = datasets.profile_dataset(run.profile.with_overrides(num_images=16), "test", seed=SEED)
test_cxr, test_soft = (torch.stack([held_out[i][key] for i in range(len(held_out))]) for key in ("cxr", "soft"))
with trainer.ema_scope() if trainer.ema else torch.no_grad():
    test_predicted = ldm.predict(test_cxr.to(run.device), torch.Generator(device=run.device).manual_seed(SEED))
regions = {"whole image": None}
if "masks" in held_out[0]:  # the phantom draws each chest's lungs; a real dataset may not
    regions["lungs"] = torch.stack([held_out[i]["masks"]["lungs"] for i in range(len(held_out))])
gains = {}
for region, mask in regions.items():
    ours, nothing = (metrics.psnr(images.cpu(), test_soft, data_range=1.0, mask=mask, per_image=True)
                     for images in (test_predicted, test_cxr))
    gains[region] = paired_difference(ours, nothing)
pd.DataFrame(gains, index=["Δ PSNR against doing nothing (dB)", "95 % low", "95 % high"]).T.round(2)

# %%
if "lungs" in gains:
    gain, low, high = gains["lungs"]
    check(low > 0, f"on {len(held_out)} held-out chests BS-LDM beats doing nothing in the lungs by {gain:+.1f} dB "
                   f"(95 % interval [{low:+.1f}, {high:+.1f}])", trained=True)

# %% [markdown]
# ### What the network sees at each $t$
# Move the slider: the soft-tissue latent of the first validation pair, noised to
# $t$ (with offset noise, as in training); what that noisy latent decodes to; and
# the trained network's one-step estimate
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$, decoded.
# At small $t$ the estimate is nearly the truth; towards $T$ the division by a
# tiny $\sqrt{\bar\alpha_t}$ blows up every error of $\hat\varepsilon$, which is what
# notebook 08's thresholds are for.

# %%
z_s0, z_c0 = ldm.latents({key: value[:1] for key, value in batch.items()})
fixed_noise = diffusion.offset_noise(z_s0.shape, ldm.settings.offset_noise,
                                     generator=torch.Generator().manual_seed(SEED)).to(z_s0)


def draw_denoising(t=500):
    step = torch.tensor([t], device=z_s0.device)
    x_t = ldm.schedule.add_noise(z_s0, fixed_noise, step)
    with trainer.ema_scope() if trainer.ema else contextlib.nullcontext(), torch.no_grad():
        eps_hat = ldm.unet(torch.cat([x_t, z_c0], dim=1), step)
    x0_hat = ldm.schedule.predict_x0(x_t, eps_hat, step)
    error = float((x0_hat - z_s0).norm() / z_s0.norm())
    panels = [(x_t[0, 0], "x_t (channel 0)", "viridis", (None, None)),
              (ldm.autoencoder.decode(x_t)[0, 0], "x_t, decoded", "gray", (0, 1)),
              (ldm.autoencoder.decode(x0_hat)[0, 0], "x̂₀, decoded", "gray", (0, 1)),
              (batch["soft"][0, 0], "soft tissue (truth)", "gray", (0, 1))]
    figure, axes = plt.subplots(1, 4, figsize=(11, 3.1), constrained_layout=True)
    for axis, (shown, title, colours, (low, high)) in zip(axes, panels, strict=True):
        axis.imshow(shown.cpu(), cmap=colours, vmin=low, vmax=high)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    a = ldm.schedule.alpha_bar_at(t)
    figure.suptitle(f"t = {t}: ᾱ_t = {a:.3g}, √ᾱ_t = {math.sqrt(a):.3g}; ‖x̂₀ − z_s‖ / ‖z_s‖ = {error:.2f}")
    plt.show()


explore(draw_denoising, t=(0, 999, 1, 500))

# %% [markdown]
# ## Summary
# - The forward process has a closed form, $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon$,
#   because a chain of linear-Gaussian steps adds independent Gaussians; training picks a random $t$ and asks
#   the network for $\varepsilon$. BS-LDM's cosine schedule is $\bar\alpha_t = f(t/T)/f(0)$, clipped at the
#   last step.
# - Predicting the noise is predicting the clean sample, and it is the score in disguise:
#   $\mathbb E[\varepsilon\mid x_t] = -\sqrt{1-\bar\alpha_t}\,\nabla\log p_t(x_t)$, so $\hat\varepsilon$ points away
#   from probable data and each sampling step moves against it.
# - DDPM samples the posterior step by step; DDIM walks the same marginals deterministically and can skip steps.
# - BS-LDM diffuses 4-channel latents and conditions by concatenating the radiograph's latent; `bs_lib` feeds
#   the clean condition in training and sampling alike.
# - A latent's mean outlives its detail in the forward process, so a model trained on plain noise never learns
#   to set the overall level; offset noise moves the level with the noise, the training-side twin of notebook
#   08's trailing timesteps.
#
# ## Exercises
# ★ easy, ★★ medium, ★★★ hard.
#
# 1. ★ At which $t$ has the signal's amplitude $\sqrt{\bar\alpha_t}$ fallen to one half, and to one tenth, with
#    the cosine schedule and with the linear one?
#
#    <details><summary>Solution</summary>
#
#    The first solution cell reads both crossings off `schedule.alpha_bar`: the cosine schedule keeps half
#    the amplitude until $t = 664$ and a tenth until $t = 935$; the linear one loses them at $t = 368$ and
#    $t = 673$, and spends its last third on nearly pure noise.
#    </details>
#
# 2. ★★ Train the toy with the linear schedule (`diffusion.NoiseSchedule.linear`) and sample with DDIM in 20
#    steps. What changes?
#
#    <details><summary>Solution</summary>
#
#    The second solution cell trains the same network for the same steps under the linear schedule, samples
#    both with DDIM in 20 steps from the same noise, and prints each sample set's radius (mean ± spread,
#    the data: 1.50 ± 0.10) beside the share of training timesteps at which $\sqrt{\bar\alpha_t} < 0.1$, where
#    there is almost nothing left to learn. Read the radii against each other for your seed.
#    </details>
#
# 3. ★★ What share of the ε-loss is about the overall level? Split the target noise into its per-channel
#    mean and the rest, and compute the mean's share of $\lVert\varepsilon\rVert^2$ for λ = 0, 0.1 and 0.5 on
#    latents of 8², 32² and 128².
#
#    <details><summary>Solution</summary>
#
#    The level's share is $(\lambda^2 + 1/L^2)/(1 + \lambda^2)$; the third solution cell measures it on drawn
#    noise beside the formula. Without offset noise the level is $1/L^2$ of the loss: 1.6 % at 8², 0.006 % at
#    the paper's 128², so the network gets almost no gradient for it. λ = 0.1 makes it about 1 % on the
#    larger latents, λ = 0.5 about 20 %. Notebook 08 trains stage 2 without offset noise at an equal budget
#    and compares.
#    </details>
#
# 4. ★★★ Train with `condition="official"` (the condition noised with the target) and sample as usual. At
#    which timesteps does the network's input differ most from what it saw in training? Compute it.
#
#    <details><summary>Solution</summary>
#
#    In training the network saw $\sqrt{\bar\alpha_t}\,z_c$; at sampling it sees $z_c$. The gap,
#    $(1-\sqrt{\bar\alpha_t})\,z_c$, is nothing at small $t$ and the whole condition at large $t$: the mismatch
#    is largest at *large* $t$, the first steps of sampling, where the network meets a condition up to
#    $1/\sqrt{\bar\alpha_t}$ times larger than any it was trained on. The fourth solution cell prints the gap and
#    that factor along the 20 trailing DDIM steps of the smoke config. Those first steps set the sample's
#    coarse layout and level (notebook 08's trajectory); the late, small-$t$ steps see a condition close to
#    the one they were trained with. Notebook 08's ablation measures what the mismatch costs.
#    </details>
#

# %% tags=["solution"]
# Solution to exercise 1
crossings = {}
for label, chosen in (("cosine (BS-LDM)", schedule), ("linear (DDPM)", linear)):
    amplitude = chosen.alpha_bar.sqrt()
    crossings[label] = {f"√ᾱ_t < {level}": int((amplitude < level).nonzero()[0]) for level in (0.5, 0.1)}
pd.DataFrame(crossings).T

# %% tags=["solution"]
# Solution to exercise 2
def train_toy(chosen, steps=TOY_STEPS, seed=SEED):
    torch.manual_seed(seed)
    network, draws = ToyDenoiser(), torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(network.parameters(), lr=2e-3)
    for _ in range(steps):
        x0 = points[torch.randint(0, len(points), (512,), generator=draws)]
        t = chosen.sample_timesteps(512, generator=draws)
        eps = torch.randn(x0.shape, generator=draws)
        loss = (network(chosen.add_noise(x0, eps, t), t) - eps).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return network.eval()


radii = {}
for label, chosen in (("cosine", schedule), ("linear", linear)):
    network = toy if label == "cosine" else train_toy(linear)
    drawn = diffusion.sample(network, (2000, 2), chosen, sampler="ddim", sampling_steps=20,
                             generator=torch.Generator().manual_seed(SEED), show_progress=False).sample.norm(dim=1)
    radii[label] = {"radius": f"{drawn.mean():.2f} ± {drawn.std():.2f}",
                    "timesteps with √ᾱ_t < 0.1": f"{float((chosen.alpha_bar.sqrt() < 0.1).double().mean()):.0%}"}
pd.DataFrame(radii).T

# %% tags=["solution"]
# Solution to exercise 3
shares = {}
for side in (8, 32, 128):
    for strength in (0.0, 0.1, 0.5):
        eps = diffusion.offset_noise((64, 4, side, side), strength, generator=torch.Generator().manual_seed(SEED))
        level = eps.mean(dim=(2, 3), keepdim=True)  # the per-channel mean: the lowest frequency
        shares[(f"{side}²", strength)] = {"measured": float(level.square().mean() / eps.square().mean()),
                                          "(λ² + 1/L²)/(1 + λ²)": (strength**2 + 1 / side**2) / (1 + strength**2)}
pd.DataFrame(shares).T.rename_axis(["latent", "λ"]).map(lambda share: f"{share:.3%}")

# %% tags=["solution"]
# Solution to exercise 4
chain = diffusion.sampling_timesteps(T, 20, "trailing")
amplitude = [schedule.alpha_bar_at(t) ** 0.5 for t in chain]
pd.DataFrame({"t": chain, "gap (1 − √ᾱ_t), share of z_c": [1 - a for a in amplitude],
              "z_c / what training showed (1/√ᾱ_t)": [1 / a for a in amplitude]},
             index=pd.RangeIndex(1, len(chain) + 1, name="sampling step")).round(3)

# %% [markdown]
# ## References
# - Y. Sun et al., *BS-LDM*, IEEE JBHI 2025. [papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)
# - Z. Chen et al., *BS-Diff: Effective Bone Suppression Using Conditional Diffusion Models*, ISBI 2024.
#   [papers/bs-diff-2024](../papers/bs-diff-2024.yaml)
# - J. Ho, A. Jain, P. Abbeel, *Denoising Diffusion Probabilistic Models*, NeurIPS 2020.
# - J. Song, C. Meng, S. Ermon, *Denoising Diffusion Implicit Models*, ICLR 2021.
# - A. Nichol, P. Dhariwal, *Improved Denoising Diffusion Probabilistic Models* (cosine schedule), ICML 2021.
# - R. Rombach et al., *High-Resolution Image Synthesis with Latent Diffusion Models*, CVPR 2022.
# - N. Guttenberg, *Diffusion with Offset Noise*, Crosslabs blog, 2023.
