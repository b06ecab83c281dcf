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
# # 03 · Autoencoders and CNNs: learning to remove bone from pairs
#
# Given pairs of radiographs and their dual-energy soft-tissue images, can a network
# simply *learn* the subtraction? This notebook trains the two oldest families of
# learned bone suppression on the same data with the same loop: autoencoders that
# squeeze the chest through a bottleneck (Gusarev-style, VAE, VQ-VAE) and
# convolutional networks that keep detail (ResNet-BS, U-Net, UNet++ with deep
# supervision). You will see what the bottleneck costs, why skip connections and
# residual learning matter, how MS-SSIM changes what a network cares about, and
# where each model fails.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/03_autoencoders_cnns.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 45 s (phantom at 64², six tiny models, 60 steps each) |
# | `colab` | one T4 GPU | ≈ 1 h (SZCH-X-Rays at 256², 3000 steps each) |
# | `full` | one A100/H100 | hours (1024², 30 000 steps each) |
#
# ## Learning goals
# - write down the supervised objective and the MS-SSIM + L1 hybrid loss, and say what each term rewards;
# - explain the bottleneck of an autoencoder, the KL term of a VAE and the codebook of a VQ-VAE;
# - explain why ResNet-BS never downsamples, why a U-Net has skips, and what deep supervision adds in UNet++;
# - train all six with one config each and compare them with the identity baseline on the same test split;
# - find and read the failure cases of each model.

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
# `papermill 03_autoencoders_cnns.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from bs_lib import evaluate, losses, metrics
from bs_lib.claims import check
from bs_lib.datasets import profile_dataset, usable_dataset
from bs_lib.models.supervised import count_parameters
from bs_lib.train import build_datasets, build_objective, fit_or_reuse

METHODS = ["gusarev_ae", "vae", "vq_vae", "resnet_bs", "unet", "unet_plus_plus"]
LABELS = {"identity": "identity", "gusarev_ae": "Gusarev AE", "vae": "VAE", "vq_vae": "VQ-VAE",
          "resnet_bs": "ResNet-BS", "unet": "U-Net", "unet_plus_plus": "UNet++"}
SIZE = run.profile.image_size
RUNS = config.runs_dir()  # checkpoints: a finished run is reused (by notebook 09 too), an interrupted one resumed

# %% [markdown]
# ## 1 · The data and the task
#
# In `smoke` the data is the course phantom: a synthetic chest whose radiograph
# $x$ is the sum of a soft-tissue image $s$ and a bone image $b$, so the target is
# exact. In `colab`/`full` it is the profile's real dual-energy dataset (SZCH-X-Rays);
# when that is not on this machine the notebook says so and stays on the phantom.
# Every model sees the same `train` split, and is measured on the same `test` split.

# %%
DATA = usable_dataset(run.profile.dataset)  # the phantom, saying so, when the real data is not on this machine
train_set = profile_dataset(run.profile, "train", seed=SEED)
test_set = profile_dataset(run.profile, "test", seed=SEED)
print(f"data: {DATA}, {len(train_set)} training and {len(test_set)} test images of {SIZE}²")

sample = test_set[0]
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, image, title in zip(axes, [sample["cxr"], sample["soft"], sample["cxr"] - sample["soft"]],
                            ["radiograph $x$", "soft tissue $s$ (target)", "bone $x - s$"], strict=True):
    ax.imshow(image[0], cmap="gray")
    ax.set_title(title)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %%
check(sample["cxr"].shape == sample["soft"].shape == (1, SIZE, SIZE), f"a pair is two images of 1×{SIZE}×{SIZE}")
check(0 <= float(sample["soft"].min()) and float(sample["cxr"].max()) <= 1, "both hold intensities in [0, 1]")

# %% [markdown]
# ## 2 · One objective for six networks
#
# Every model here is a network $f_\theta$ trained on pairs $(x, s)$ to minimise a
# reconstruction loss $\ell$:
#
# $$\min_\theta\; \mathbb E_{(x,s)}\,\ell\big(\hat s, s\big),\qquad
#   \hat s = x - f_\theta(x)\quad\text{(residual estimate)}.$$
#
# With the **residual estimate** the network predicts the *bone* image and subtracts
# it. A network that outputs zeros is the identity baseline $\hat s = x$, so every
# model starts from it and can only learn to improve on it; and the bone image is
# sparse, which makes it easier to squeeze through a bottleneck than the whole chest.
# (`residual: false` in a config trains the direct estimate $\hat s = f_\theta(x)$.)
#
# **Which loss.** L1, $\frac1P\sum|\hat s - s|$, keeps edges sharper than the squared
# error. But neither sees *structure*: a faint rib edge left in the lung costs little.
# MS-SSIM compares local means $\mu$, contrasts $\sigma$ and correlations
# $\sigma_{xy}$ inside a Gaussian window, at $M$ scales:
#
# $$\text{MS-SSIM} = l_M^{\,w_M}\prod_{j=1}^{M} cs_j^{\,w_j},\qquad
#   l=\frac{2\mu_x\mu_y+C_1}{\mu_x^2+\mu_y^2+C_1},\quad
#   cs=\frac{2\sigma_{xy}+C_2}{\sigma_x^2+\sigma_y^2+C_2},$$
#
# and the hybrid of Zhao et al., used by several bone-suppression papers, mixes it
# with L1: $\ \ell = \alpha\,(1-\text{MS-SSIM}) + (1-\alpha)\,\text{L1}$, $\alpha = 0.84$.
# A 64² image fits three of the five standard scales (the coarsest must still hold the
# 11-pixel window), a 128² image four.
#
# The cell below makes two damaged copies of the target with *the same* L1 error: one
# blurred, one with fine noise. L1 cannot tell them apart; MS-SSIM can.

# %%
target = sample["soft"][None]
blurred = torch.nn.functional.avg_pool2d(target, 5, stride=1, padding=2, count_include_pad=False)
noise = torch.sign(torch.randn(target.shape, generator=torch.Generator().manual_seed(SEED)))
noisy = target + noise * losses.l1(blurred, target)  # same mean absolute error as the blur
table = pd.DataFrame({name: {"L1": losses.l1(image, target).item(), "MS-SSIM": losses.ms_ssim(image, target).item(),
                             "MS-SSIM + L1 loss": losses.ms_ssim_l1(image, target).item()}
                      for name, image in (("blurred", blurred), ("noisy", noisy))}).T
print(f"MS-SSIM scales at {SIZE}²: {losses.ms_ssim_scales(SIZE, SIZE)}")
table.round(4)

# %%
check(abs(table.loc["blurred", "L1"] - table.loc["noisy", "L1"]) < 1e-4,
      f"blur and noise cost the same L1, {table.loc['blurred', 'L1']:.4f}")
blur_loss, noise_loss = 1 - table.loc["blurred", "MS-SSIM"], 1 - table.loc["noisy", "MS-SSIM"]
apart = abs(blur_loss - noise_loss) / max(blur_loss, noise_loss)
check(apart > 0.05, f"MS-SSIM tells them apart: 1 − MS-SSIM is {blur_loss:.4f} for the blur, {noise_loss:.4f} "
                    f"for the noise, {apart:.0%} apart")
check(abs(losses.ms_ssim(target, target).item() - 1) < 1e-5, "an image compared with itself scores an MS-SSIM of 1")

# %% [markdown]
# ## 3 · Six networks, three shapes
#
# **Autoencoders** (`bs_lib.models.autoencoder`) halve the image several times into a
# small code and decode it back, with nothing bypassing the bottleneck.
# - *Gusarev-style AE*: strided convolutions down, transposed convolutions up.
# - *VAE*: the code is a Gaussian $q(z\mid x)=\mathcal N(\mu,\sigma^2)$; training decodes a
#   sample $z=\mu+\sigma\odot\varepsilon$ and adds $\lambda\,\mathrm{KL} =
#   \lambda\,\tfrac12\sum(\mu^2+\sigma^2-\log\sigma^2-1)$, with a small $\lambda = 10^{-6}$;
#   inference decodes $\mu$.
# - *VQ-VAE*: each code vector $z_e$ snaps to its nearest codebook entry $e_k$;
#   gradients pass straight through, a commitment term $0.25\,\lVert z_e-\mathrm{sg}(e_k)\rVert^2$
#   keeps the encoder near its codes, the codebook follows by a moving average.
#
# **CNNs** (`bs_lib.models.cnn`) keep the detail.
# - *ResNet-BS* never downsamples: residual blocks $h \leftarrow h + \gamma\,F(h)$ at full
#   resolution. Its receptive field grows by two pixels per 3×3 convolution, so depth buys context.
# - *U-Net* halves the image four times for context and concatenates each encoder level
#   to the decoder through a skip: the bottleneck carries *what*, the skips carry *where*.
# - *UNet++* nests the skips: node $x^{i,j} = H([x^{i,0},\dots,x^{i,j-1},\mathrm{Up}(x^{i+1,j-1})])$,
#   so the top row holds four full-size outputs, from a shallow U-Net to the full one.
#   **Deep supervision** puts the loss on all four (weight ¼ each).
#
# The figure traces the side length of the feature maps through each network (one point
# per convolution, measured with forward hooks on the networks actually trained below).

# %%
configs = {method: evaluate.learned_config(method, run.profile.name, image_size=SIZE, seed=SEED, runs=RUNS, data=DATA)
           for method in METHODS}  # the benchmark's configs: notebook 09 reuses these runs
objectives = {}
for method, cfg in configs.items():
    torch.manual_seed(SEED)
    objectives[method] = build_objective(cfg)


def feature_sizes(network: torch.nn.Module, size: int) -> list[int]:
    """Side length of the output of every convolution, in execution order."""
    sides, hooks = [], []
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            hooks.append(module.register_forward_hook(lambda m, i, o: sides.append(o.shape[-1])))
    with torch.no_grad():
        network.eval()(torch.zeros(1, 1, size, size))
    for hook in hooks:
        hook.remove()
    return sides


fig, axes = plt.subplots(1, len(METHODS), figsize=(15, 2.6), sharey=True)
for ax, method in zip(axes, METHODS, strict=True):
    sides = feature_sizes(objectives[method].network, SIZE)
    ax.plot(sides, marker=".", lw=1)
    ax.set_yscale("log", base=2)
    ax.set_title(f"{LABELS[method]}\n{count_parameters(objectives[method]):,} parameters", fontsize=9)
    ax.set_xlabel("convolution #")
axes[0].set_ylabel("feature-map side (pixels)")
plt.tight_layout()
plt.show()

# %%
check(min(feature_sizes(objectives["resnet_bs"].network, SIZE)) == SIZE,
      f"ResNet-BS never downsamples: every feature map is {SIZE}², "
      f"and each output pixel sees {objectives['resnet_bs'].network.receptive_field}² input pixels")
check(min(feature_sizes(objectives["unet"].network, SIZE)) == SIZE // 16,
      f"the U-Net halves the image four times, from {SIZE}² down to {SIZE // 16}²")

# %% [markdown]
# ## 4 · Training, one config each
#
# Each method has a YAML file in `bs_lib/configs/` with a `base` section and one
# section per profile; `load_config(method, profile)` merges them. The same files
# drive `python -m bs_lib train` and the benchmark of notebook 09, so the numbers
# here are the ones the leaderboard reports. The loop is `bs_lib.train.Trainer`
# (one AdamW optimiser, checkpoints, exact resume).

# %%
pd.DataFrame({LABELS[m]: {"loss": c.method_args["loss"], "residual": c.method_args["residual"],
                          "steps": c.steps, "batch": c.batch_size, "lr": c.lr,
                          "parameters": count_parameters(objectives[m])} for m, c in configs.items()}).T

# %%
histories, train_seconds = {}, {}
for method in config.progress(METHODS, desc="training"):
    torch.manual_seed(SEED)
    start = time.perf_counter()
    result = fit_or_reuse(objectives[method], configs[method], build_datasets(configs[method])[0])
    train_seconds[method] = time.perf_counter() - start
    histories[method] = pd.DataFrame(result.history).set_index("step")

fig, ax = plt.subplots(figsize=(6, 3.5))
for method, history in histories.items():
    ax.plot(history.index, history["log/l1_final"], label=LABELS[method])
ax.set_xlabel("step")
ax.set_ylabel("training L1 of $\\hat s$")
ax.set_yscale("log")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
fell = {LABELS[m]: 1 - h["log/l1_final"].dropna().iloc[-1] / h["log/l1_final"].dropna().iloc[0]
        for m, h in histories.items()}
check(min(fell.values()) > 0, f"the training L1 fell for all six networks, by {min(fell.values()):.0%} "
                              f"({min(fell, key=fell.get)}) to {max(fell.values()):.0%} ({max(fell, key=fell.get)})",
      trained=True)

# %% [markdown]
# ## 5 · Evaluation against the identity baseline
#
# "Do nothing" ($\hat s = x$) is the baseline every model must beat. Each test image is
# measured with `bs_lib.metrics` (the course's one implementation of every metric):
# PSNR, SSIM and the bone suppression ratio. The symmetric BSR counts residual bone in
# both directions, so a model cannot score by making the lungs darker (notebook 01).

# %%
test_cxr = torch.stack([test_set[i]["cxr"] for i in range(len(test_set))])
test_soft = torch.stack([test_set[i]["soft"] for i in range(len(test_set))])


def predict(method: str, cxr: torch.Tensor) -> torch.Tensor:
    if method == "identity":
        return cxr
    objective = objectives[method].eval()
    return objective.predict(cxr.to(run.device)).cpu()


predictions = {method: predict(method, test_cxr) for method in ["identity", *METHODS]}

per_image = pd.DataFrame([
    {"method": LABELS[method], "image": i, **metrics.evaluate(prediction[i], test_soft[i], test_cxr[i])}
    for method, prediction in predictions.items() for i in range(len(test_set))
])
COLUMNS = [c for c in ("psnr", "ssim", "bsr_symmetric", "bsr", "mse") if c in per_image.columns]
summary = per_image.groupby("method", sort=False)[COLUMNS].agg(["mean", "std"])
summary[("parameters", "")] = [0, *(count_parameters(objectives[m]) for m in METHODS)]
summary[("train s", "")] = [0.0, *(round(train_seconds[m], 1) for m in METHODS)]
summary.round(3)

# %%
means = per_image.groupby("method", sort=False)[COLUMNS].mean()
better_psnr = [LABELS[m] for m in METHODS if means.loc[LABELS[m], "psnr"] > means.loc["identity", "psnr"]]
print("beat the identity on PSNR:", ", ".join(better_psnr))
cnn_gain = min(means.loc[name, "psnr"] for name in ("U-Net", "UNet++", "ResNet-BS")) - means.loc["identity", "psnr"]
check({"U-Net", "UNet++", "ResNet-BS"} <= set(better_psnr),
      f"the three CNNs beat doing nothing on PSNR, the weakest by {cnn_gain:.1f} dB", trained=True)

# %% [markdown]
# The same two test cases for every method, with the difference to the target
# (red: the estimate is brighter than the truth, i.e. bone left behind; blue: tissue removed).

# %%
cases = [0, 1]
columns = ["identity", *METHODS]
fig, axes = plt.subplots(2 * len(cases), len(columns), figsize=(2 * len(columns), 4.2 * len(cases)))
for row, case in enumerate(cases):
    for col, method in enumerate(columns):
        estimate = predictions[method][case, 0]
        axes[2 * row, col].imshow(estimate, cmap="gray", vmin=0, vmax=1)
        axes[2 * row, col].set_title(LABELS[method], fontsize=9)
        axes[2 * row + 1, col].imshow(estimate - test_soft[case, 0], cmap="RdBu_r", vmin=-0.15, vmax=0.15)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6 · Failure cases
#
# An average hides the worst case. For each model, the test image it handles worst
# (lowest PSNR) and the absolute error there. Typical failures: the autoencoders blur
# (everything passes the bottleneck, and fine structure is lost first), the VQ-VAE adds
# blocky quantisation artefacts, the full-resolution ResNet-BS leaves bone where an
# edge is longer than its receptive field, and every model struggles where bone is
# densest (clavicles, rib crossings).

# %%
fig, axes = plt.subplots(2, len(METHODS), figsize=(2.2 * len(METHODS), 4.6))
worst = {}
for col, method in enumerate(METHODS):
    rows = per_image[per_image["method"] == LABELS[method]]
    case = int(rows.loc[rows["psnr"].idxmin(), "image"])
    worst[method] = case
    axes[0, col].imshow(predictions[method][case, 0], cmap="gray", vmin=0, vmax=1)
    axes[0, col].set_title(f"{LABELS[method]}\nimage {case}: {rows['psnr'].min():.1f} dB", fontsize=9)
    axes[1, col].imshow((predictions[method][case, 0] - test_soft[case, 0]).abs(), cmap="magma", vmin=0, vmax=0.15)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %%
mean_psnr = per_image.groupby("method", sort=False)["psnr"].mean()
worst_psnr = per_image.groupby("method", sort=False)["psnr"].min()
hidden = (mean_psnr - worst_psnr)[[LABELS[m] for m in METHODS]]
check((hidden > 0).all(), f"every model's worst image lies below its mean PSNR, by {hidden.min():.1f} to "
                          f"{hidden.max():.1f} dB: an average hides it")

# %% [markdown]
# ## 7 · Deep supervision: four models in one
#
# Deep supervision trained every head of UNet++ to suppress bone on its own, so the
# shallow heads are usable models: cutting the network after head $x^{0,j}$ (pruning)
# trades quality for speed. Here is the test PSNR of each head.

# %%
upp = objectives["unet_plus_plus"].eval()
with torch.no_grad():
    heads = upp.network.heads(test_cxr.to(run.device))
head_psnr = [float(np.mean([metrics.psnr(upp.soft_tissue(h, test_cxr.to(run.device)).clamp(0, 1)[i].cpu(),
                                         test_soft[i]) for i in range(len(test_set))])) for h in heads]
fig, ax = plt.subplots(figsize=(4.5, 3))
ax.plot(range(1, 5), head_psnr, marker="o", label="UNet++ heads")
ax.axhline(means.loc["identity", "psnr"], color="gray", ls="--", label="identity")
ax.set_xticks(range(1, 5), [f"$x^{{0,{j}}}$" for j in range(1, 5)])
ax.set_ylabel("test PSNR (dB)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
check(len(heads) == 4 and all(h.shape == test_cxr.shape for h in heads),
      f"UNet++ has four full-size heads, each {tuple(heads[0].shape[1:])}")
check(max(head_psnr) > means.loc["identity", "psnr"],
      f"its best head, x^0,{int(np.argmax(head_psnr)) + 1}, beats doing nothing by "
      f"{max(head_psnr) - means.loc['identity', 'psnr']:.1f} dB", trained=True)

# %% [markdown]
# ## 8 · Beside the published numbers
#
# The GL-LCM re-evaluation (MICCAI 2025) ran these baselines on SZCH-X-Rays at 1024²
# (mean over the test set): VAE 30.02 dB / BSR 91.3 %, VQ-VAE 32.60 dB / 94.5 %,
# Gusarev et al. 31.37 dB / 94.1 %, ResNet-BS 32.27 dB / 94.5 %, with BS-LDM at
# 31.95 dB / 94.2 %. Those are **different data** (real dual-energy pairs at 1024²,
# models trained for hundreds of epochs); the numbers above come from the phantom in
# `smoke`. Compare *rankings and gaps to the identity baseline*, not values; notebook 09
# puts every method on one leaderboard.

# %% [markdown]
# ## Summary
# - All six models share one objective: a reconstruction loss between $\hat s$ and the
#   dual-energy target, here on a residual estimate $\hat s = x - f_\theta(x)$ that starts at
#   the identity baseline.
# - The MS-SSIM + L1 hybrid rewards structure (rib edges) as well as intensity; L1 alone
#   cannot tell blur from noise of the same size.
# - Autoencoders pay for their bottleneck with blur; the VAE's KL term and the VQ-VAE's
#   codebook regularise the code but do not bring detail back.
# - ResNet-BS keeps full resolution and buys context with depth; U-Net and UNet++ get
#   context from downsampling and detail from skips; deep supervision makes every UNet++
#   head a usable, prunable model.
# - Always measure against the identity baseline on the same split, and look at the worst case.
#
# ## Exercises
# 1. Train the U-Net with `residual: false` (same steps). How far is it from the residual
#    version, and why?
#
#    <details><summary>Solution</summary>
#
#    ```python
#    cfg = load_config("unet", run.profile.name, seed=SEED, data=DATA, output_dir=RUNS, name="unet-direct",
#                      method_args={"residual": False})
#    torch.manual_seed(SEED)
#    direct = build_objective(cfg)
#    Trainer(direct, cfg, train_set).fit()
#    print(np.mean([metrics.psnr(p, t) for p, t in zip(direct.eval().predict(test_cxr), test_soft)]))
#    ```
#    The direct network must first learn to copy the whole chest (a randomly initialised
#    network outputs nothing like it) before it can start removing bone; the residual one
#    starts at the identity and only learns the bone. With a small budget the direct
#    estimate is usually worse than the identity itself.
#    </details>
#
# 2. Train ResNet-BS with `loss: l1` instead of `ms_ssim_l1` and compare SSIM and PSNR
#    with the run above.
#
#    <details><summary>Solution</summary>
#
#    Use `method_args={"loss": "l1"}` in `load_config`, as in exercise 1. L1 alone
#    usually gives a slightly higher PSNR (it optimises pixel error, which PSNR measures)
#    and a slightly lower SSIM; the hybrid trades a little of one for the other.
#    </details>
#
# 3. ResNet-BS sees a square of `receptive_field` pixels. Compute it for the `full`
#    config (16 blocks) and compare it with a rib's length at 1024². What does that say
#    about a network that never downsamples?
#
#    <details><summary>Solution</summary>
#
#    $1 + 2(2\cdot16 + 3) = 71$ pixels:
#    `cnn.build_resnet_bs(width=4, num_blocks=16).receptive_field`. A rib spans hundreds
#    of pixels at 1024², so each output pixel decides "bone or not" from a local window;
#    long, faint rib segments are where it fails. U-Nets reach the whole image after four halvings.
#    </details>
#
# 4. Prune UNet++: how much faster is head $x^{0,2}$ than $x^{0,4}$? (Hint: build a
#    `BasicUNet`-like forward that stops early, or time `heads` and count the nodes each needs.)
#
#    <details><summary>Solution</summary>
#
#    Head $x^{0,j}$ needs the nodes $x^{i,k}$ with $i + k \le j$: 3 nodes for $j=1$, 6 for 2,
#    10 for 3 and 15 for 4, and the deep nodes are the narrow, cheap ones at low resolution,
#    so the cost is dominated by the full-resolution row: roughly $(j+1)/5$ of the
#    full network's time. The quality cost is the gap in the plot of section 7.
#    </details>
#
# ## References
# - Gusarev et al., *Deep learning models for bone suppression in chest radiographs*, IEEE CIBCB 2017.
#   [papers/gusarev-2017](../papers/gusarev-2017.yaml)
# - Rajaraman et al., *Chest X-ray bone suppression for improving classification of
#   tuberculosis-consistent findings* (ResNet-BS), Diagnostics 2021.
#   [papers/resnet-bs-2021](../papers/resnet-bs-2021.yaml)
# - Zhou et al., *UNet++: a nested U-Net architecture for medical image segmentation*, DLMIA 2018.
#   [papers/unet-plus-plus-2018](../papers/unet-plus-plus-2018.yaml)
# - Kalisz & Marczyk, *Autoencoder-based bone removal algorithm from x-ray images of the lung*,
#   IEEE BIBE 2021. [papers/kalisz-2021](../papers/kalisz-2021.yaml)
# - Rajaraman et al., *DeBoNet*, PLOS ONE 2022. [papers/debonet-2022](../papers/debonet-2022.yaml)
# - GL-LCM (the re-evaluation of these baselines), MICCAI 2025. [papers/gl-lcm-2025](../papers/gl-lcm-2025.yaml)
# - Ronneberger, Fischer & Brox, *U-Net: convolutional networks for biomedical image segmentation*, MICCAI 2015.
# - Kingma & Welling, *Auto-encoding variational Bayes*, ICLR 2014.
# - van den Oord, Vinyals & Kavukcuoglu, *Neural discrete representation learning*, NeurIPS 2017.
# - Zhao, Gallo, Frosio & Kautz, *Loss functions for image restoration with neural networks*, IEEE TCI 2017.
# - Wang, Simoncelli & Bovik, *Multiscale structural similarity for image quality assessment*, Asilomar 2003.
