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
# | `smoke` | CPU | ≈ 20 s (phantom at 64², six tiny models, 50 steps each) |
# | `colab` | one T4 GPU | ≈ 47 min, six models (estimated: benchmarks/results/colab_times.md) |
# | `full` | one A100/H100 | hours (1024², 30 000 steps each) |
#
# ## Prerequisites
# - notebook 01: the phantom ($x = s + b$), PSNR, SSIM and the bone suppression ratio, the identity baseline;
# - notebook 02: datasets and leakage-free train/test splits;
# - PyTorch basics: `nn.Module`, 2-D convolutions, a loss, `backward()` and an optimiser step.
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
from bs_lib.engine import count_parameters
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
# ### 3.1 · The U-Net, written out
#
# The library's U-Net is MONAI's `BasicUNet`. Here it is on one screen. One block is a
# 3×3 convolution, BatchNorm and a LeakyReLU (MONAI calls the block `Convolution` and keeps
# norm and activation in `adn`); two of them make a level. Going down, a level first
# halves the image with a 2×2 max-pool; coming up, a 2×2 transposed convolution doubles it
# and the encoder's features of the same size are concatenated before the two convolutions:
#
# $$u_k = \mathrm{TwoConv}\big([\,x_k,\ \mathrm{Up}(u_{k+1})\,]\big),\qquad
#   \hat b = \mathrm{Conv}_{1\times1}(u_0).$$
#
# Channels go $w, w, 2w, 4w, 8w$ down and back (the last level keeps $w$). The layers
# carry the library's names, so the library's weights load into this definition.

# %%
import copy
import inspect
import itertools
import math
from collections import OrderedDict

from torch import nn


class ConvBlock(nn.Module):
    """(Transposed) convolution → BatchNorm → activation; ``act=None`` leaves a plain convolution."""

    def __init__(self, c_in, c_out, act, kernel=3, stride=1, transposed=False):
        super().__init__()
        if transposed:
            self.conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride, kernel // 2, output_padding=stride - 1)
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2)
        if act is not None:
            self.adn = nn.Sequential(OrderedDict(N=nn.BatchNorm2d(c_out), A=act))

    def forward(self, x):
        x = self.conv(x)
        return self.adn(x) if hasattr(self, "adn") else x


class TwoConv(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(OrderedDict(conv_0=ConvBlock(c_in, c_out, nn.LeakyReLU(0.1)),
                                     conv_1=ConvBlock(c_out, c_out, nn.LeakyReLU(0.1))))


class Down(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(OrderedDict(max_pooling=nn.MaxPool2d(2), convs=TwoConv(c_in, c_out)))


class UpCat(nn.Module):
    def __init__(self, c_in, c_skip, c_out, halves=True):
        super().__init__()
        c_up = c_in // 2 if halves else c_in
        self.upsample = nn.Sequential(OrderedDict(deconv=nn.ConvTranspose2d(c_in, c_up, 2, stride=2)))
        self.convs = TwoConv(c_skip + c_up, c_out)

    def forward(self, x, skip):
        return self.convs(torch.cat([skip, self.upsample(x)], dim=1))  # the skip: encoder features beside decoder's


class UNet(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.conv_0 = TwoConv(1, w)
        self.down_1, self.down_2, self.down_3, self.down_4 = Down(w, w), Down(w, 2 * w), Down(2 * w, 4 * w), \
            Down(4 * w, 8 * w)
        self.upcat_4, self.upcat_3 = UpCat(8 * w, 4 * w, 4 * w), UpCat(4 * w, 2 * w, 2 * w)
        self.upcat_2, self.upcat_1 = UpCat(2 * w, w, w), UpCat(w, w, w, halves=False)
        self.final_conv = nn.Conv2d(w, 1, kernel_size=1)

    def forward(self, x):
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4 = self.down_4(x3)  # the bottleneck: 1/16 of the side
        u = self.upcat_4(x4, x3)
        u = self.upcat_3(u, x2)
        u = self.upcat_2(u, x1)
        u = self.upcat_1(u, x0)
        return self.final_conv(u)


# %% [markdown]
# Proof that this *is* the network the library trains: load the library U-Net's weights
# (every name and shape must match, `strict=True`) and compare the outputs on a batch, in
# training mode (BatchNorm uses the batch's statistics) and in evaluation mode (its running
# averages).

# %%
WIDTH = configs["unet"].method_args["width"]
library_unet = copy.deepcopy(objectives["unet"].network)  # a copy: a forward pass in training mode moves BatchNorm
ours = UNet(WIDTH)
ours.load_state_dict(library_unet.state_dict(), strict=True)
batch_cxr = torch.stack([train_set[i]["cxr"] for i in range(4)])
with torch.no_grad():
    gaps = [(ours.train(mode)(batch_cxr) - library_unet.train(mode)(batch_cxr)).abs().max().item()
            for mode in (True, False)]
check(max(gaps) < 1e-5, f"the written-out U-Net, with the library's weights, gives the library's output to "
                        f"{max(gaps):.1e} ({sum(p.numel() for p in ours.parameters()):,} parameters, width {WIDTH})")


def block_shapes(network: torch.nn.Module, names: list[str], size: int) -> pd.DataFrame:
    """Output shape and parameter count of the named blocks, in execution order (forward hooks)."""
    modules, rows, hooks = dict(network.named_modules()), [], []
    for name in names:
        def record(module, inputs, output, name=name):
            output = output[0] if isinstance(output, tuple | list) else output
            rows.append({"block": name, "output (C×H×W)": "×".join(map(str, output.shape[1:])),
                         "parameters": sum(p.numel() for p in module.parameters())})
        hooks.append(modules[name].register_forward_hook(record))
    with torch.no_grad():
        network.eval()(torch.zeros(1, 1, size, size))
    for hook in hooks:
        hook.remove()
    return pd.DataFrame(rows).set_index("block")


block_shapes(ours, [name for name, _ in ours.named_children()], SIZE)

# %% [markdown]
# ### 3.2 · ResNet-BS and UNet++
#
# ResNet-BS is written in the library itself (MONAI has no such network); its code is
# the lesson:

# %%
from bs_lib.models import autoencoder, cnn

print(inspect.getsource(cnn.ResidualBlock))
print(inspect.getsource(cnn.ResNetBS))

# %% [markdown]
# UNet++ is MONAI's `BasicUNetPlusPlus`. Its nodes $x^{i,j}$ form a triangle: row $i$ is
# the depth (the image halved $i$ times), column $j$ the number of convolutions along the
# skip. The table holds each node's output shape (forward hooks); the top row's four
# nodes each feed a 1×1 head, the deep-supervision outputs.

# %%
upp_nodes = [name for name, _ in objectives["unet_plus_plus"].network.unet.named_children()
             if not name.startswith("final")]
upp_shapes = block_shapes(objectives["unet_plus_plus"].network.unet, upp_nodes, SIZE)
grid = pd.DataFrame("", index=[f"i={i}" for i in range(5)], columns=[f"j={j}" for j in range(5)])
for name, shape in upp_shapes["output (C×H×W)"].items():
    i, j = map(int, name.split("_")[1:])
    grid.iloc[i, j] = shape
grid

# %% [markdown]
# ### 3.3 · The autoencoders: a bottleneck, a KL term, a codebook
#
# The Gusarev-style autoencoder is MONAI's `AutoEncoder`: strided convolutions (BatchNorm,
# PReLU) down, transposed ones up, nothing around the bottleneck. Written out with the
# block above, and checked against the library's weights in the same way:

# %%
class GusarevAE(nn.Module):
    def __init__(self, width, depth, kernel):
        super().__init__()
        c = [1] + [width * 2**level for level in range(depth)]
        self.encode, self.decode = nn.Sequential(), nn.Sequential()
        for level in range(depth):
            self.encode.add_module(f"encode_{level}", ConvBlock(c[level], c[level + 1], nn.PReLU(), kernel, 2))
        for i, level in enumerate(reversed(range(depth))):  # mirrored; the last layer is a plain convolution
            up = ConvBlock(c[level + 1], c[level], nn.PReLU() if level else None, kernel, 2, transposed=True)
            self.decode.add_module(f"decode_{i}", nn.Sequential(OrderedDict(conv=up)))

    def forward(self, x):
        return self.decode(self.encode(x))


args = configs["gusarev_ae"].method_args
ae = GusarevAE(args["width"], args["depth"], args["kernel_size"])
ae.load_state_dict(objectives["gusarev_ae"].network.state_dict(), strict=True)
with torch.no_grad():
    gap = (ae.eval()(batch_cxr) - objectives["gusarev_ae"].network.eval()(batch_cxr)).abs().max().item()
check(gap < 1e-5, f"the written-out autoencoder gives the library's output to {gap:.1e}")
block_shapes(ae, [f"encode.encode_{k}" for k in range(args["depth"])]
             + [f"decode.decode_{k}" for k in range(args["depth"])], SIZE)

# %% [markdown]
# The VAE and the VQ-VAE are MONAI's `AutoencoderKL` and `VQVAE`, too large to write out
# here; what makes them what they are is in the library's wrapper. The VAE samples its code
# while training and pays the KL divergence:

# %%
print(inspect.getsource(autoencoder.VariationalAutoencoder.training_outputs))
print(inspect.getsource(autoencoder.kl_divergence))
block_shapes(objectives["vae"].network.vae, ["encoder", "quant_conv_mu", "quant_conv_log_sigma", "decoder"], SIZE)

# %% [markdown]
# The VQ-VAE's quantiser, by hand: every code vector $z_e$ (one per latent pixel) is
# replaced by the nearest of the $K$ codebook entries, $k^\star = \arg\min_k \lVert z_e - e_k\rVert$.
# The check compares this one line with MONAI's quantiser.

# %%
vq = objectives["vq_vae"].network.vqvae.eval()
with torch.no_grad():
    z_e = vq.encode(batch_cxr)  # (N, D, h, w)
    codebook = vq.quantizer.quantizer.embedding.weight  # (K, D)
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
    nearest = torch.cdist(vectors, codebook).argmin(dim=1)
    library_codes = vq.index_quantize(batch_cxr).flatten()
agree = (nearest == library_codes).float().mean().item()
check(agree > 0.999, f"nearest-entry lookup picks MONAI's code for {agree:.1%} of the {len(nearest):,} latent "
                     f"vectors ({codebook.shape[0]} entries of dimension {codebook.shape[1]}, a "
                     f"{z_e.shape[-1]}² code)")

# %% [markdown]
# ## 4 · Training, one config each
#
# Each method has a YAML file in `bs_lib/configs/` with a `base` section and one
# section per profile; `load_config(method, profile)` merges them. The same files
# drive `python -m bs_lib train` and the benchmark of notebook 09, so the numbers
# here are the ones the leaderboard reports.

# %%
pd.DataFrame({LABELS[m]: {"loss": c.method_args["loss"], "residual": c.method_args["residual"],
                          "steps": c.steps, "batch": c.batch_size, "lr": c.lr,
                          "parameters": count_parameters(objectives[m])} for m, c in configs.items()}).T

# %% [markdown]
# ### 4.1 · The loop, by hand
#
# One training step takes a batch of pairs, asks the objective for its loss
# (`SupervisedObjective.losses`: the residual estimate $\hat s = x - f_\theta(x)$ and the
# config's loss against $s$), backpropagates, and lets AdamW move the weights. Here are the
# first steps of the U-Net's config, written out, training the U-Net of section 3.1: change
# a layer there, run the cells again, and watch what happens to the loss.

# %%
from bs_lib.models.supervised import SupervisedObjective

HAND_STEPS = min(20, config.max_steps() or 20)  # capped like every training run under BS_MAX_STEPS
unet_config = configs["unet"]
hand_data = build_datasets(unet_config)[0]  # the U-Net's training pairs


def train_by_hand(network: nn.Module, steps: int = HAND_STEPS) -> list[float]:
    """The first ``steps`` steps of the U-Net's config, written out; returns the loss at every step."""
    objective = SupervisedObjective(network, loss=unet_config.method_args["loss"],
                                    residual=unet_config.method_args["residual"]).to(run.device)
    optimiser = torch.optim.AdamW(objective.parameters(), lr=unet_config.lr, betas=unet_config.betas,
                                  weight_decay=unet_config.weight_decay)
    loader = torch.utils.data.DataLoader(hand_data, batch_size=unet_config.batch_size, shuffle=True,
                                         collate_fn=lambda pairs: {key: torch.stack([p[key] for p in pairs])
                                                                   for key in ("cxr", "soft")})
    batches = (batch for _ in range(steps) for batch in loader)  # a new shuffle every epoch
    objective.train()
    seen = []
    for step, batch in enumerate(itertools.islice(batches, steps)):
        batch = {key: value.to(run.device) for key, value in batch.items()}
        loss = objective.losses(batch, step)["model"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seen.append(loss.item())
    return seen


torch.manual_seed(SEED)
hand_losses = train_by_hand(UNet(WIDTH))
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.plot(range(1, len(hand_losses) + 1), hand_losses, marker=".")
ax.set(xlabel="step", ylabel=f"training loss ({unet_config.method_args['loss']})", title="the U-Net of 3.1, by hand")
plt.tight_layout()
plt.show()
late = float(np.mean(hand_losses[-5:]))
check(late < hand_losses[0], f"{len(hand_losses)} hand-written steps take the loss from {hand_losses[0]:.4f} to "
                             f"{late:.4f} (mean of the last five)", trained=True)

# %% [markdown]
# ### 4.2 · The long run: the library's `Trainer`
#
# `fit_or_reuse` runs the same loop in `bs_lib.train.Trainer` (or reuses a finished run),
# which adds what a long run needs: mixed precision, an exponential moving average of the
# weights, checkpoints with exact resume, several processes, learning-rate schedules, and
# several parameter groups updated in order (notebook 04's GANs).

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
# PSNR, SSIM and the bone suppression ratio, in two forms (notebook 01). The official BSR
# shifts the prediction $p$ to the target's mean, $p' = p + \mathrm{mean}(s - p)$, and counts
# only where the prediction is *darker* than the target, $1 - \sum\max(s - p', 0)^2/\sum b^2$.
# Bone left in makes the prediction *brighter*, which that one-sided clip forgives: a model
# can score well by leaving bone in. The symmetric BSR drops the clip, so residual bone
# counts too. The cell below scores made-up predictions: doing nothing, half the bone left
# in, and the perfect answer.

# %%
test_cxr = torch.stack([test_set[i]["cxr"] for i in range(len(test_set))])
test_soft = torch.stack([test_set[i]["soft"] for i in range(len(test_set))])
test_bone = test_cxr - test_soft
made_up = {"radiograph (do nothing)": test_cxr, "soft + ½ bone (half the bone left in)": test_soft + 0.5 * test_bone,
           "soft (perfect)": test_soft}
bsr_table = pd.DataFrame({name: {"official BSR": metrics.bsr(p, test_soft, test_cxr),
                                 "symmetric BSR": metrics.bsr_symmetric(p, test_soft, test_cxr)}
                          for name, p in made_up.items()}).T
bsr_table.round(3)

# %%
nothing, left_in = bsr_table.iloc[0], bsr_table.iloc[1]
check(min(row["official BSR"] - row["symmetric BSR"] for row in (nothing, left_in)) > 0.02,
      f"the official BSR forgives bone left in: doing nothing scores {nothing['official BSR']:.3f} on it "
      f"({nothing['symmetric BSR']:.3f} symmetric), half the bone left in {left_in['official BSR']:.3f} "
      f"({left_in['symmetric BSR']:.3f} symmetric)")

# %%

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
# - Every network here fits on a screen: the U-Net and the autoencoder written out in the notebook carry
#   the library's weights and give its outputs; one training step is a batch, `objective.losses`,
#   `backward()` and an optimiser step, and the `Trainer` runs the same loop for the long run.
# - Always measure against the identity baseline on the same split, and look at the worst case; the
#   official BSR forgives bone left in, the symmetric BSR does not.
#
# ## Exercises
# ★ easy, ★★ medium, ★★★ hard. Each solution's cell computes its answer in seconds in the smoke profile.
#
# 1. ★ ResNet-BS sees a square of `receptive_field` pixels. Compute it for the `full` config
#    and compare it with a rib's length at 1024². What does that say about a network that
#    never downsamples?
#
#    <details><summary>Solution</summary>
#
#    The first cell below builds the `full` network and reads `receptive_field`:
#    $1 + 2(2\cdot16 + 3) = 71$ pixels for 16 blocks. A rib spans hundreds of pixels at
#    1024², so each output pixel decides "bone or not" from a local window; long, faint rib
#    segments are where it fails. A U-Net's bottleneck sees the whole image after four halvings.
#    </details>
#
# 2. ★ Change a layer: replace BatchNorm by InstanceNorm (MONAI's default) in every block of the
#    written-out U-Net of section 3.1 and run the hand-written loop of section 4.1 again.
#
#    <details><summary>Solution</summary>
#
#    The second cell below swaps `adn.N` in every `ConvBlock` for `nn.InstanceNorm2d`, trains
#    the same number of steps from the same initial weights and batches, and plots both loss
#    curves; then it trains the library's U-Net with `norm: instance` (an argument of
#    `build_unet`) for the whole budget and prints the test PSNR of both. Instance
#    normalisation rescales every image's features to zero mean and unit variance, so the
#    network no longer sees how bright an image is (the reason `build_unet` chooses
#    BatchNorm). Twenty steps are too few to tell the two apart reliably; how much the whole
#    budget tells is in the printed PSNRs. The phantom's images all share one brightness
#    range, real radiographs do not.
#    </details>
#
# 3. ★★ Train the U-Net with `residual: false` (same steps). How far is it from the residual
#    version, and why?
#
#    <details><summary>Solution</summary>
#
#    The third cell below trains the variant with the benchmark's config and prints the test
#    PSNR of both estimates beside the identity baseline. The direct network must first learn
#    to copy the whole chest (a randomly initialised network outputs nothing like it) before it
#    can start removing bone; the residual one only has to learn the bone. How large the gap is
#    at this budget is the cell's output.
#    </details>
#
# 4. ★★ Train ResNet-BS with `loss: l1` instead of `ms_ssim_l1` and compare SSIM and PSNR
#    with the run above.
#
#    <details><summary>Solution</summary>
#
#    The fourth cell below trains the variant (`method_args={"loss": "l1"}`) and prints PSNR,
#    SSIM and the symmetric BSR of both runs. L1 optimises the pixel error, which PSNR
#    measures; the hybrid's MS-SSIM term rewards local structure, which SSIM measures. Which
#    way each metric moves at this small budget is in the printed table (with one seed, a
#    difference of a few tenths of a dB is within run-to-run noise).
#    </details>
#
# 5. ★★★ Prune UNet++: how much cheaper is head $x^{0,2}$ than $x^{0,4}$? Count the work each head needs.
#
#    <details><summary>Solution</summary>
#
#    Head $x^{0,j}$ needs the nodes $x^{i,k}$ with $i + k \le j$: 3 nodes for $j=1$, 6 for 2,
#    10 for 3 and 15 for 4. The last cell below counts every convolution's multiply-adds with
#    forward hooks, sums them over the nodes each head needs, and prints each head's share of the
#    full network's work beside its test PSNR from section 7. The deep nodes work on small
#    images, so the full-resolution row dominates the cost.
#    </details>

# %% tags=["solution"]
# Solution to exercise 1
from bs_lib.configs import config_dict

full_blocks = config_dict("resnet_bs", "full")["method_args"]["num_blocks"]
full_field = cnn.build_resnet_bs(width=4, num_blocks=full_blocks).receptive_field
print(f"ResNet-BS in the full config: {full_blocks} blocks, each output pixel sees {full_field}×{full_field} "
      f"input pixels, {full_field / 1024:.0%} of a 1024-pixel side")

# %% tags=["solution"]
# Solution to exercise 2
torch.manual_seed(SEED)  # the same initial weights and batches as in section 4.1
instance_unet = UNet(WIDTH)
for block in instance_unet.modules():
    if isinstance(block, ConvBlock) and hasattr(block, "adn"):
        block.adn.N = nn.InstanceNorm2d(block.conv.out_channels, affine=True)
instance_losses = train_by_hand(instance_unet)
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.plot(hand_losses, label="BatchNorm (section 4.1)")
ax.plot(instance_losses, label="InstanceNorm")
ax.set(xlabel="step", ylabel="training loss")
ax.legend()
plt.show()
print(f"mean loss of the last five hand-written steps: BatchNorm {np.mean(hand_losses[-5:]):.4f}, "
      f"InstanceNorm {np.mean(instance_losses[-5:]):.4f}")


def variant(method: str, suffix: str, **method_args):
    """Train a variant of a method's benchmark config (its own run) and return it in evaluation mode."""
    cfg = evaluate.learned_config(method, run.profile.name, image_size=SIZE, seed=SEED, runs=RUNS, data=DATA,
                                  name=f"{configs[method].name}-{suffix}", method_args=method_args)
    torch.manual_seed(SEED)
    objective = build_objective(cfg)
    fit_or_reuse(objective, cfg, build_datasets(cfg)[0])
    return objective.eval()


def test_scores(predict) -> dict[str, float]:
    with torch.no_grad():
        estimate = predict(test_cxr.to(run.device)).cpu()
    return {k: float(v) for k, v in metrics.evaluate(estimate, test_soft, test_cxr).items() if k in COLUMNS}


instance_norm = variant("unet", "instance-norm", norm="instance")
print(f"test PSNR after the whole budget: BatchNorm {test_scores(objectives['unet'].predict)['psnr']:.2f} dB, "
      f"InstanceNorm {test_scores(instance_norm.predict)['psnr']:.2f} dB")

# %% tags=["solution"]
# Solution to exercise 3
direct = variant("unet", "direct", residual=False)
pd.DataFrame({"identity": test_scores(lambda cxr: cxr), "U-Net, residual": test_scores(objectives["unet"].predict),
              "U-Net, direct": test_scores(direct.predict)}).T.round(3)

# %% tags=["solution"]
# Solution to exercise 4
resnet_l1 = variant("resnet_bs", "l1", loss="l1")
pd.DataFrame({f"ResNet-BS, {configs['resnet_bs'].method_args['loss']}": test_scores(objectives["resnet_bs"].predict),
              "ResNet-BS, l1": test_scores(resnet_l1.predict)}).T[["psnr", "ssim", "bsr_symmetric"]].round(3)

# %% tags=["solution"]
# Solution to exercise 5
network, work, hooks = objectives["unet_plus_plus"].network.unet, {}, []
for node, module in network.named_children():
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d | nn.ConvTranspose2d):
            def count(m, inputs, output, node=node):  # a transposed convolution works once per input pixel
                pixels = (inputs[0] if m.transposed else output).shape[-2:].numel()
                work[node] = work.get(node, 0) + pixels * m.in_channels * m.out_channels * math.prod(m.kernel_size)
            hooks.append(conv.register_forward_hook(count))
with torch.no_grad():
    network.eval()(torch.zeros(1, 1, SIZE, SIZE))
for hook in hooks:
    hook.remove()


def needed(node: str, head: int) -> bool:
    """Does head x^{0,head} need this node? Nodes x^{i,k} with i + k <= head, and the head's own 1×1 convolution."""
    if node.startswith("final_conv"):
        return node == f"final_conv_0_{head}"
    i, k = map(int, node.split("_")[1:])
    return i + k <= head


cost = {head: sum(v for node, v in work.items() if needed(node, head)) for head in range(1, 5)}
pd.DataFrame({"nodes": [sum(needed(n, h) for n in work if not n.startswith("final")) for h in cost],
              "multiply-adds": list(cost.values()),
              "share of x^0,4": [c / cost[4] for c in cost.values()],
              "test PSNR (dB)": head_psnr}, index=[f"x^0,{h}" for h in cost]).round(3)

# %% [markdown]
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
