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
# # 06 · ML-VQGAN: the latent space of BS-LDM
#
# A 1024² radiograph has a million pixels, and a diffusion model walks a
# thousand denoising steps over every one of them. BS-LDM first learns a
# compact code: an autoencoder that turns a radiograph, or its soft-tissue
# image, into a 4 × 128 × 128 latent and back, keeping the detail a reader
# needs. This notebook builds that autoencoder, the ML-VQGAN, trains it with
# the course's engine, and looks inside its latent space — the space in which
# notebook 07 will learn to remove bone.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/06_ml_vqgan.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 40 s (phantom, 64², 250 steps) |
# | `colab` | one T4 GPU | ≈ 48 min, 6 000 steps (estimated: benchmarks/results/colab_times.md) |
# | `full` | one A100/H100 | days (1024², the paper's 1 000 epochs) |
#
# ## Prerequisites
# - notebook 03: autoencoders, strided and transposed convolutions, the VQ-VAE's codebook in brief;
# - notebook 04: a discriminator, the least-squares adversarial loss and the PatchGAN;
# - notebook 01: PSNR and SSIM, how a reconstruction is scored;
# - PyTorch basics: `nn.Module`, `backward()` and an optimiser step; the entropy of a probability distribution.
#
# ## Learning goals
# - explain what a factor-8 autoencoder keeps and loses, and why stage 2 of BS-LDM works in its latent space;
# - describe vector quantisation: the nearest codebook entry, the straight-through gradient, the commitment
#   term and the moving-average codebook;
# - write down the multi-level hybrid loss (pixel, perceptual, adversarial) and say what each term is for;
# - train the ML-VQGAN and judge it by its reconstructions, its codebook usage and its latent maps.

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
# `papermill 06_ml_vqgan.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from bs_lib import datasets, metrics
from bs_lib.claims import check
from bs_lib.configs import load_config
from bs_lib.models import vqgan
from bs_lib.models.vqgan import VQGAN_PRESETS, build_vqvae, laplacian_pyramid_loss, to_model_range
from bs_lib.train import Trainer, build_objective, discard_stale_run

SIZE = run.profile.image_size
RUN_NAME = f"ml_vqgan-{run.profile.name}"

# %% [markdown]
# ## 1. Why a latent space
# The encoder halves the image three times (a factor $f = 8$ per side), so a
# $1\times1024\times1024$ radiograph becomes a $4\times128\times128$ latent:
# **16 times fewer numbers**, and 64 times fewer spatial positions for the
# diffusion model's convolutions and attention to visit. The decoder maps a
# latent back to an image. If the autoencoder is good, every question about the
# image can be asked of the latent instead, at a fraction of the cost.
#
# The course has one autoencoder size per profile. `full` is the paper's
# (channels 128/256/512, two residual units per level, 512-channel residual
# convolutions); the others keep its shape at a teaching scale. Building them on
# PyTorch's `meta` device costs no memory, so we can count parameters and check
# shapes of the full model anywhere.

# %%
rows = []
for name, vq in VQGAN_PRESETS.items():
    side = {"smoke": 64, "colab": 256, "full": 1024}[name]
    with torch.device("meta"):
        model = build_vqvae(vq)
        latent = model.encode(torch.empty(1, 1, side, side))
    rows.append({"preset": name, "image": f"1×{side}²", "latent": "×".join(map(str, latent.shape[1:])),
                 "factor f": vq.downsampling_factor, "parameters": sum(p.numel() for p in model.parameters()),
                 "codebook": f"{vq.num_embeddings} × {vq.embedding_dim}"})
presets = pd.DataFrame(rows).set_index("preset")
presets

# %%
check(presets.loc["full", "parameters"] == 38_326_533,
      f"the full preset is the paper's ML-VQGAN: {presets.loc['full', 'parameters']:,} parameters, exactly")
check(presets.loc["full", "latent"] == "4×128×128", "it turns a 1024² radiograph into a 4×128×128 latent")

# %% [markdown]
# Stage 1 at a glance: the image goes down through the encoder, each latent
# vector is snapped to a codebook entry, the decoder brings it back up, and four
# terms score the result (section 4 writes them out).

# %%
from bs_lib.diagrams import arrow, box

figure, axis = plt.subplots(figsize=(13, 4.2))
axis.set(xlim=(-0.6, 15.0), ylim=(-0.4, 4.6))
axis.axis("off")
image = box(axis, 0.2, 2.4, "image $x$\n1×H×W", "white")
encoder = box(axis, 2.5, 2.4, "encoder $E$\nstrided convolutions\n+ residual units", "#cfe2f3")
quantiser = box(axis, 6.4, 2.4, "quantiser\nnearest codebook entry", "#fce5cd")
codebook = box(axis, 6.4, 4.1, "codebook $e_1 … e_{256}$ (moving averages)", "#fff2cc")
decoder = box(axis, 10.1, 2.4, "decoder\ntransposed convolutions\n+ residual units", "#cfe2f3")
rebuilt = box(axis, 12.5, 2.4, "reconstruction\n" r"$\hat x$: 1×H×W", "white")
judge = box(axis, 14.3, 2.4, "discriminator\n$D$ (PatchGAN)", "#f4cccc")
for source, target, text in [(image, encoder, ""), (encoder, quantiser, "$z_e$\n4×H/f×W/f"), (codebook, quantiser, ""),
                             (quantiser, decoder, "$z_q$\n4×H/f×W/f"), (decoder, rebuilt, ""), (rebuilt, judge, "")]:
    arrow(axis, source, target, text)
terms = [box(axis, 1.8, 0.3, r"pixels: $\|\hat x - x\|_1$", "#d9ead3"),
         box(axis, 5.6, 0.3, r"commitment: $0.25\,\| z_e - sg(z_q)\|^2$", "#d9ead3"),
         box(axis, 9.6, 0.3, r"features: perceptual$(\hat x, x)$", "#d9ead3"),
         box(axis, 13.2, 0.3, r"patches: $0.01\,(D(\hat x) - 1)^2$", "#d9ead3")]
for source, term in [(rebuilt, terms[0]), (quantiser, terms[1]), (rebuilt, terms[2]), (judge, terms[3])]:
    arrow(axis, source, term, dashed=True)
axis.set_title("stage 1 of BS-LDM: the ML-VQGAN, and the terms of its multi-level hybrid loss (green)")
plt.show()

# %% [markdown]
# ## 2. One autoencoder for both kinds of image
# BS-LDM trains a single autoencoder on radiographs **and** soft-tissue images.
# Stage 2 then compares the two latents of a pair in one space: the difference
# between them is, in effect, the bone. Each training batch below stacks the
# radiographs and the soft-tissue images of its pairs.

# %%
train_set = datasets.profile_dataset(run.profile, "train", seed=SEED)
val_set = datasets.profile_dataset(run.profile, "val", seed=SEED)
print(f"{len(train_set)} training pairs, {len(val_set)} validation pairs at {SIZE}²")

figure, axes = plt.subplots(2, 4, figsize=(10, 5.4), constrained_layout=True)
for column in range(4):
    sample = val_set[column]
    for row, key in enumerate(("cxr", "soft")):
        axes[row, column].imshow(sample[key][0], cmap="gray", vmin=0, vmax=1)
        axes[row, column].set_title(f"{key} {sample['id']}", fontsize=9)
        axes[row, column].axis("off")
figure.suptitle("the autoencoder learns to reproduce both rows")
plt.show()

# %% [markdown]
# ### The networks, layer by layer
# The run is described by `bs_lib/configs/ml_vqgan.yaml`, and `build_objective`
# builds what it trains: MONAI's `VQVAE` (encoder, quantiser, decoder) and
# `PatchDiscriminator`, for this profile's preset. Forward hooks record the output
# of every block for one image: the encoder halves the side at each strided
# convolution, the quantiser keeps the shape, the decoder mirrors the encoder,
# and the discriminator ends in a grid of patch scores.

# %%
train_config = load_config("ml_vqgan", run.profile.name, output_dir=str(config.runs_dir()), seed=SEED,
                           image_size=SIZE)
discard_stale_run(train_config)  # a run of another config in the same folder would not fit this model
config.seed_everything(SEED)  # the same initial weights, whatever ran above
autoencoder = build_objective(train_config)


def block_shapes(network: nn.Module, names: list[str], image: torch.Tensor) -> pd.DataFrame:
    """Output shape and parameter count of the named blocks for one input, in execution order (forward hooks)."""
    modules, rows, hooks = dict(network.named_modules()), [], []
    for name in names:
        def record(module, inputs, output, name=name):
            output = output[-1] if isinstance(output, tuple | list) else output  # the quantiser returns (loss, z_q)
            rows.append({"block": name, "kind": type(module).__name__, "output (C×H×W)": "×".join(
                map(str, output.shape[1:])), "parameters": sum(p.numel() for p in module.parameters())})
        hooks.append(modules[name].register_forward_hook(record))
    with torch.no_grad():
        network.eval()(image)  # evaluation mode: neither the codebook nor BatchNorm's statistics move
    for hook in hooks:
        hook.remove()
    return pd.DataFrame(rows).set_index("block")


vqvae, one_image = autoencoder.autoencoder, to_model_range(val_set[0]["cxr"][None])
stages = [f"encoder.blocks.{i}" for i in range(len(vqvae.encoder.blocks))] + ["quantizer"] + \
    [f"decoder.blocks.{i}" for i in range(len(vqvae.decoder.blocks))]
shapes = pd.concat([block_shapes(vqvae, stages, one_image),
                    block_shapes(autoencoder.discriminator, [n for n, _ in autoencoder.discriminator.named_children()],
                                 one_image).rename(index=lambda name: f"discriminator.{name}")])
shapes

# %%
factor = autoencoder.config.downsampling_factor
check(shapes.loc["quantizer", "output (C×H×W)"] == f"4×{SIZE // factor}×{SIZE // factor}",
      f"this profile's autoencoder turns a {SIZE}² image into a 4×{SIZE // factor}² latent (f = {factor})")
check(shapes["output (C×H×W)"].iloc[len(stages) - 1] == f"1×{SIZE}×{SIZE}", "and its decoder gives back a "
      f"1×{SIZE}² image; {shapes['parameters'].sum():,} parameters in all, discriminator included")

# %% [markdown]
# ## 3. Vector quantisation
# The encoder $E$ gives one 4-dimensional vector $z_e(i, j)$ per latent
# position. Quantisation replaces it by the nearest of $K = 256$ codebook
# vectors $e_1, \dots, e_K$:
#
# $$k^*(i,j) = \arg\min_k \lVert z_e(i,j) - e_k \rVert_2,\qquad z_q(i,j) = e_{k^*(i,j)}.$$
#
# The arg-min has no gradient, so the encoder is trained *as if* quantisation
# were the identity (the straight-through estimator,
# $z_q = z_e + \mathrm{sg}(z_q - z_e)$ with $\mathrm{sg}$ = stop-gradient), and a
# commitment term $0.25\,\lVert z_e - \mathrm{sg}(z_q)\rVert^2$ keeps the encoder's
# outputs close to their codes. The codebook itself is not trained by gradients:
# each entry moves to the running mean of the vectors assigned to it,
# $e_k \leftarrow m_k / N_k$ with $N_k \leftarrow \gamma N_k + (1-\gamma)\,n_k$ and
# $m_k \leftarrow \gamma m_k + (1-\gamma)\sum_{z_e \mapsto k} z_e$ ($\gamma = 0.5$ in BS-LDM).
#
# In two dimensions the nearest-entry rule is easy to see: every codebook vector
# owns a cell of the plane (a Voronoi cell), and every vector in the cell is
# replaced by it.

# %%
generator = torch.Generator().manual_seed(SEED)
codebook = torch.randn(16, 2, generator=generator)
vectors = torch.randn(2000, 2, generator=generator) * 1.2
nearest = torch.cdist(vectors, codebook).argmin(dim=1)  # the whole quantiser, in one line

figure, axis = plt.subplots(figsize=(5, 5))
axis.scatter(vectors[:, 0], vectors[:, 1], c=nearest, cmap="tab20", s=6)
axis.scatter(codebook[:, 0], codebook[:, 1], c="black", marker="x", s=80, label="codebook entries")
axis.set_title("each vector is replaced by its nearest entry")
axis.legend(loc="lower right")
axis.set_aspect("equal")
plt.show()

# %% [markdown]
# The whole quantiser, written out. `forward` takes the encoder's output $z_e$
# (N × 4 × h × w), finds every vector's nearest entry with the squared distance
# expanded, $\lVert z - e_k\rVert^2 = \lVert z\rVert^2 + \lVert e_k\rVert^2 - 2\,z\cdot e_k$
# (one matrix product for all pairs), moves the codebook when training, and returns
# the commitment loss and $z_q$ with the straight-through gradient. The moving
# averages get a little Laplace smoothing, so that an entry nobody chose is not
# divided by zero.

# %%
class VectorQuantiser(nn.Module):
    """z_e → (commitment loss, z_q): nearest codebook entry, straight-through gradient, moving-average codebook."""

    def __init__(self, num_embeddings=256, dim=4, commitment=0.25, decay=0.5, epsilon=1e-5):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, dim).requires_grad_(False)  # e_1 … e_K, moved by averages
        self.register_buffer("ema_cluster_size", torch.zeros(num_embeddings))  # N_k
        self.register_buffer("ema_w", self.embedding.weight.clone())  # m_k
        self.commitment, self.decay, self.epsilon = commitment, decay, epsilon

    def nearest(self, z_e):
        vectors = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])  # one row per latent position
        codebook = self.embedding.weight
        distance = vectors.square().sum(1, keepdim=True) + codebook.square().sum(1) - 2 * vectors @ codebook.T
        return vectors, distance.argmin(dim=1)  # k* for every position

    def quantize(self, z_e):  # the code indices, (N, h, w): what MONAI's VQVAE.index_quantize asks for
        return self.nearest(z_e)[1].view(z_e.shape[0], *z_e.shape[2:])

    def forward(self, z_e):
        vectors, index = self.nearest(z_e)
        z_q = self.embedding(index).view(*z_e.movedim(1, -1).shape).movedim(-1, 1)
        if self.training:
            self.update_codebook(vectors, index)
        commitment = self.commitment * F.mse_loss(z_q.detach(), z_e)  # 0.25 ‖z_e − sg(z_q)‖²
        z_q = z_e + (z_q - z_e).detach()  # straight through: the forward value is z_q, the gradient z_e's
        return commitment, z_q

    @torch.no_grad()
    def update_codebook(self, vectors, index):
        chosen = F.one_hot(index, len(self.ema_w)).float()  # (positions, K)
        self.ema_cluster_size.mul_(self.decay).add_((1 - self.decay) * chosen.sum(0))  # N_k ← γ N_k + (1−γ) n_k
        self.ema_w.mul_(self.decay).add_((1 - self.decay) * chosen.T @ vectors)  # m_k ← γ m_k + (1−γ) Σ z_e
        total = self.ema_cluster_size.sum()
        size = (self.ema_cluster_size + self.epsilon) / (total + len(self.ema_w) * self.epsilon) * total
        self.embedding.weight.copy_(self.ema_w / size[:, None])  # e_k ← m_k / N_k


# %% [markdown]
# Proof that this is the quantiser the library trains: load the state of the
# library's quantiser (every name and shape must match, `strict=True`), give both
# the same batch of encoder outputs in training mode, and compare the commitment
# loss, $z_q$, the gradient that reaches $z_e$, and the codebook after the update.

# %%
library_quantiser = copy.deepcopy(vqvae.quantizer)  # a copy: a training-mode call moves the codebook
ours = VectorQuantiser(autoencoder.config.num_embeddings, autoencoder.config.embedding_dim)
ours.load_state_dict(library_quantiser.quantizer.state_dict(), strict=True)
pairs = [val_set[i] for i in range(4)]
with torch.no_grad():
    z_e = vqvae.encode(to_model_range(torch.stack([p[key] for p in pairs for key in ("cxr", "soft")])))


def quantise_once(quantiser, codebook):
    z = z_e.clone().requires_grad_()
    commitment, z_q = quantiser.train()(z)
    (z_q.square().sum() + commitment).backward()  # any loss will do: the gradients must agree
    return {"commitment": commitment, "z_q": z_q, "gradient": z.grad, "codebook": codebook.weight}


theirs = quantise_once(library_quantiser, library_quantiser.quantizer.embedding)
mine = quantise_once(ours, ours.embedding)
gaps = {name: (theirs[name] - mine[name]).abs().max().item() for name in theirs}
check(max(gaps.values()) < 1e-5, f"the written-out quantiser gives the library's commitment loss, z_q, gradient and "
      f"updated codebook on {z_e.shape[0]} latents of {'×'.join(map(str, z_e.shape[1:]))} (largest gap "
      f"{max(gaps.values()):.1e})")

# %% [markdown]
# ## 4. The multi-level hybrid loss
# The autoencoder (generator) and a PatchGAN discriminator $D$ are trained
# together:
#
# $$\mathcal L_G = \underbrace{\lVert\hat x - x\rVert_1}_{\text{pixels}} + \mathcal L_{quant}
#   + \lambda_{per}\underbrace{\mathcal L_{per}(\hat x, x)}_{\text{features}}
#   + 0.01\,\underbrace{\mathrm{mean}\big((D(\hat x)-1)^2\big)}_{\text{patches}},\qquad
#   \mathcal L_D = 0.01\cdot\tfrac12\Big[\mathrm{mean}\big(D(\hat x)^2\big) + \mathrm{mean}\big((D(x)-1)^2\big)\Big]$$
#
# L1 alone gives blurry reconstructions: blur is the cheapest way to be roughly
# right everywhere. The perceptual term compares edges and textures, and the
# least-squares adversarial term punishes any patch that does not look like a
# real radiograph patch. BS-LDM's perceptual term is LPIPS on a VGG16 backbone,
# whose weights must be downloaded; where they are not on the machine (as on
# the course's CI), `bs_lib` uses an L1 distance between Laplacian-pyramid
# bands instead. Like LPIPS's early layers it looks at detail at several
# scales and ignores overall brightness, which L1 already covers:

# %%
image = val_set[0]["cxr"][None]
blurred = torch.nn.functional.avg_pool2d(image, 3, stride=1, padding=1)
comparison = pd.DataFrame(
    {"L1": [(image + 0.05 - image).abs().mean().item(), (blurred - image).abs().mean().item()],
     "Laplacian pyramid": [laplacian_pyramid_loss(image + 0.05, image).item(),
                           laplacian_pyramid_loss(blurred, image).item()]},
    index=["brighter by 0.05", "blurred (3×3 mean)"])
comparison.round(4)

# %%
brighter, blurred_away = comparison["Laplacian pyramid"]
check(brighter < 1e-5, f"the Laplacian pyramid is blind to brightness (distance {brighter:.0e})")
check(blurred_away > 0, f"and sees the detail a blur removes (distance {blurred_away:.4f})")

# %% [markdown]
# ## 5. Training
# The config holds the paper's Adam learning rates, 1e-4 for the autoencoder and
# 5e-4 for the discriminator, at the full scale. `MLVQGAN.losses(batch, step)`
# returns one loss per parameter group: the autoencoder's hybrid loss first, then
# the discriminator's on detached reconstructions (the short `smoke` run lets the
# discriminator join only for its last 100 steps: L1 alone gets the
# reconstructions up faster, and stage 2 is bounded by them).
#
# ### 5.1 The first steps, by hand
# A copy of the library's model, with its quantiser replaced by the written-out
# one above, trained for a few steps by the loop every method of the course
# shares: a batch, the losses, and for each group a backward pass restricted to
# its own parameters and an optimiser step. Change a line of `VectorQuantiser`,
# run the cells again, and the loss below is your version's.

# %%
HAND_STEPS = min(20, config.max_steps() or 20)  # capped like every training run under BS_MAX_STEPS


def train_by_hand(model, steps=HAND_STEPS):
    """The first ``steps`` steps of this config, written out; returns every step's losses."""
    groups = model.parameter_groups()  # {"autoencoder": [...], "discriminator": [...]}
    optimisers = {name: torch.optim.Adam(params, lr=train_config.groups.get(name, {}).get("lr", train_config.lr))
                  for name, params in groups.items()}
    generator, history = torch.Generator().manual_seed(SEED), []
    model.to(run.device).train()
    for step in range(steps):
        chosen = torch.randint(len(train_set), (train_config.batch_size,), generator=generator).tolist()
        batch = {key: torch.stack([train_set[i][key] for i in chosen]).to(run.device) for key in ("cxr", "soft")}
        losses = model.losses(batch, step)
        for name, loss in losses.items():
            if name in optimisers:  # "log/…" entries are only reported
                optimisers[name].zero_grad()
                loss.backward(inputs=groups[name])  # this group's parameters, and theirs only
                optimisers[name].step()
        history.append({name: loss.item() for name, loss in losses.items()})
    return pd.DataFrame(history)


untrained = copy.deepcopy(autoencoder)  # the library's model stays untouched for the long run below
student = copy.deepcopy(untrained)
student.autoencoder.quantizer = VectorQuantiser(autoencoder.config.num_embeddings, autoencoder.config.embedding_dim)
student.autoencoder.quantizer.load_state_dict(vqvae.quantizer.quantizer.state_dict())
by_hand = train_by_hand(student)
figure, axis = plt.subplots(figsize=(6, 2.8))
by_hand[["autoencoder", "log/l1"]].rename(columns={"autoencoder": "hybrid loss", "log/l1": "its L1 term"}).plot(
    ax=axis, marker=".", xlabel="step", title="the first steps, by hand")
plt.show()

# %%
early, late = by_hand["autoencoder"].iloc[:5].mean(), by_hand["autoencoder"].iloc[-5:].mean()
check(late < early, f"{len(by_hand)} hand-written steps take the autoencoder's loss from {early:.3f} to {late:.3f} "
                    f"(means of the first and last five)", trained=True)

# %% [markdown]
# ### 5.2 The long run: the library's `Trainer`
# `Trainer` runs the same loop for the whole budget and adds what a long run
# needs: mixed precision on GPUs, an exponential moving average of the weights,
# checkpoints with exact resume, several processes, and the parameter groups
# updated in the order `losses` returns them. The checkpoint lands in
# `config.runs_dir()`, where notebook 07 will find it. Run again, the notebook
# reuses the finished run, and an interrupted `colab` or `full` run resumes where
# it stopped.

# %%
print(f"perceptual term: {autoencoder.perceptual.kind} (weight {autoencoder.perceptual.weight})")
trainer = Trainer(autoencoder, train_config, train_set)
result = trainer.fit(resume=True)  # a finished run of this config is reused, an interrupted one resumed
print(f"{result.final_step} steps in {result.wall_time_s:.0f} s ({result.images_per_s:.1f} pairs/s); "
      f"checkpoint: {result.checkpoint}")

# %%
history = pd.DataFrame([h for h in result.history if "loss/autoencoder" in h]).set_index("step")
figure, axes = plt.subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
history[["loss/autoencoder", "log/l1"]].plot(ax=axes[0], logy=True, title="autoencoder")
history[[c for c in history if c in ("loss/discriminator", "log/adversarial")]].plot(ax=axes[1],
                                                                                      title="adversarial game")
plt.show()

# %% [markdown]
# ## 6. Judging the autoencoder
# A good stage 1 reconstructs both image kinds faithfully, uses many of its
# codes, and keeps the bone in the latent: if the latents of a radiograph and
# its soft-tissue image were the same, stage 2 would have nothing to learn.

# %%
autoencoder.eval()
val_cxr = torch.stack([val_set[i]["cxr"] for i in range(min(8, len(val_set)))]).to(run.device)
val_soft = torch.stack([val_set[i]["soft"] for i in range(min(8, len(val_set)))]).to(run.device)
reconstructed_cxr, reconstructed_soft = autoencoder.predict(val_cxr), autoencoder.predict(val_soft)
quality = pd.DataFrame({
    "PSNR (dB)": [metrics.psnr(reconstructed_cxr.cpu(), val_cxr.cpu()),
                  metrics.psnr(reconstructed_soft.cpu(), val_soft.cpu())],
    "SSIM": [metrics.ssim(reconstructed_cxr.cpu(), val_cxr.cpu()),
             metrics.ssim(reconstructed_soft.cpu(), val_soft.cpu())],
}, index=["radiographs", "soft tissue"])
quality.round(3)

# %%
figure, axes = plt.subplots(2, 3, figsize=(10, 6.6), constrained_layout=True)
for row, (original, rebuilt, label) in enumerate([(val_cxr, reconstructed_cxr, "radiograph"),
                                                  (val_soft, reconstructed_soft, "soft tissue")]):
    error = (rebuilt[0, 0] - original[0, 0]).cpu()
    for column, (shown, title) in enumerate([(original[0, 0].cpu(), label), (rebuilt[0, 0].cpu(), "reconstruction")]):
        axes[row, column].imshow(shown, cmap="gray", vmin=0, vmax=1)
        axes[row, column].set_title(title)
    reach = float(error.abs().max())
    shown = axes[row, 2].imshow(error, cmap="coolwarm", vmin=-reach, vmax=reach)
    axes[row, 2].set_title("reconstruction − original")
    figure.colorbar(shown, ax=axes[row, 2], shrink=0.8)
for axis in axes.flat:
    axis.axis("off")
plt.show()

# %% [markdown]
# How well is the codebook used? Count how often each entry $k$ is chosen over
# the validation latents, $n_k$, and turn the counts into frequencies
# $p_k = n_k / \sum_j n_j$. Their entropy $H = -\sum_k p_k \log p_k$ is largest,
# $\log K$, when all $K$ entries are used equally. The **perplexity** $e^{H}$ is
# the number of equally used entries that would have the same entropy: the
# *effective number of codes in use*. It is $K$ for a perfectly shared codebook
# and 1 for a collapsed one, whose every vector maps to the same entry.

# %%
counts, perplexity = autoencoder.codebook_usage(torch.cat([val_cxr, val_soft]))
used = int((counts > 0).sum())
frequencies = counts[counts > 0].double() / counts.sum()  # p_k (unused entries add 0 · log 0 = 0)
entropy = float(-(frequencies * frequencies.log()).sum())
figure, axis = plt.subplots(figsize=(9, 2.8))
axis.bar(range(len(counts)), counts.numpy(), width=1.0)
axis.set(xlabel="codebook entry", ylabel="times chosen", title=f"{used} of {len(counts)} entries used; "
         f"entropy H = {entropy:.2f} nats, perplexity e^H = {np.exp(entropy):.1f}")
plt.show()
check(abs(np.exp(entropy) - perplexity) < 1e-6 * perplexity,
      f"e^H of these counts is the library's perplexity, {perplexity:.1f}: about {perplexity:.0f} of the "
      f"{used} entries chosen carry the code")

# %%
z_cxr = autoencoder.encode(val_cxr[:1]).cpu()[0]
z_soft = autoencoder.encode(val_soft[:1]).cpu()[0]
figure, axes = plt.subplots(3, 4, figsize=(10, 7.6), constrained_layout=True)
for channel in range(4):
    for row, (latent, label) in enumerate([(z_cxr, "radiograph"), (z_soft, "soft tissue"),
                                           (z_cxr - z_soft, "difference")]):
        axes[row, channel].imshow(latent[channel], cmap="coolwarm" if row == 2 else "viridis")
        axes[row, channel].set_title(f"{label}, channel {channel}", fontsize=8)
        axes[row, channel].axis("off")
figure.suptitle(f"latents ({'×'.join(map(str, z_cxr.shape))}) of a radiograph, its soft tissue, and their difference")
plt.show()

# %% [markdown]
# Where do the latents of a pair differ? The bone image $x - s$ (radiograph minus
# soft tissue), averaged over the $f\times f$ pixels behind each latent position,
# puts it on the latent's grid. Beside it, the length of the latent difference
# $\lVert z_{cxr} - z_{soft}\rVert$ at each position, and their correlation over
# the validation images.

# %%
all_z_cxr, all_z_soft = autoencoder.encode(val_cxr).cpu(), autoencoder.encode(val_soft).cpu()
bone_on_grid = F.avg_pool2d((val_cxr - val_soft).cpu(), factor)  # (N, 1, H/f, W/f)
latent_difference = (all_z_cxr - all_z_soft).norm(dim=1, keepdim=True)
follows_bone = float(torch.corrcoef(torch.stack([latent_difference.flatten(), bone_on_grid.flatten()]))[0, 1])
figure, axes = plt.subplots(1, 3, figsize=(10, 3.4), constrained_layout=True)
for axis, (shown, title) in zip(axes, [((val_cxr - val_soft)[0, 0].cpu(), "bone: radiograph − soft tissue"),
                                       (bone_on_grid[0, 0], f"bone on the latent grid ({SIZE // factor}²)"),
                                       (latent_difference[0, 0], "‖z_cxr − z_soft‖")], strict=True):
    axis.imshow(shown, cmap="magma")
    axis.set_title(title, fontsize=9)
    axis.axis("off")
figure.suptitle(f"the latent difference follows the bone: r = {follows_bone:.2f} over {len(val_cxr)} images")
plt.show()

# %%
check(quality["PSNR (dB)"].min() > 25,
      f"the autoencoder rebuilds radiographs and soft tissue alike, at {quality['PSNR (dB)'].min():.1f} dB or better",
      trained=True)
check(used > 1 and perplexity > 1.5,
      f"the codebook has not collapsed: {used} entries in use, perplexity {perplexity:.1f}", trained=True)
check(follows_bone > 0.4, f"the latents of a pair differ where the bone is: their difference correlates with "
                          f"the bone image on the latent grid, r = {follows_bone:.2f}", trained=True)

# %% [markdown]
# ## 7. What the paper's setting needs, and what we changed
# * **LPIPS weights.** The VGG16 backbone is downloaded at first use; offline
#   (and on the course's CI) the Laplacian-pyramid substitute above is used and
#   the notebook says so. On Colab, installing `lpips` and `torchvision` makes
#   `bs_lib` use LPIPS at the paper's weight 1e-3.
# * **Checkpoints** are `safetensors` files plus a JSON config, never pickled
#   models: loading them needs no `weights_only=False`.
# * **Decoding sampled latents** uses `decode` without re-quantising, as BS-LDM
#   does: a sampled latent lies between codes, and snapping it would add error.

# %% [markdown]
# ## Summary
# - Stage 1 of BS-LDM is a vector-quantised autoencoder with a factor of 8 per side: 1×1024² → 4×128².
# - Quantisation maps each latent vector to its nearest codebook entry; a straight-through gradient, a
#   commitment term and moving-average code updates make it trainable.
# - The multi-level hybrid loss joins pixels (L1), features (LPIPS, or a Laplacian-pyramid substitute
#   offline) and patches (a least-squares PatchGAN).
# - One autoencoder serves radiographs and soft tissue, so a pair's latents can be compared: their difference
#   follows the bone image brought to the latent grid (the correlation $r$ of section 6).
# - The perplexity $e^{H}$ of the codebook usage is the effective number of codes in use.
#
# ## Exercises
# ★ easy, ★★ medium, ★★★ hard.
#
# 1. ★ Count the bits: how many bits does the full model's quantised latent of a 1024² radiograph hold,
#    compared with the 8-bit image?
#
#    <details><summary>Solution</summary>
#
#    The first solution cell computes it from the `full` preset: 128 × 128 positions × log₂ 256 = 8 bits
#    each = 131 072 bits (16 KiB), against 1024² × 8 bits (1 MiB): a 64-fold compression. Stage 2 does not
#    use this discrete code: it samples latents between codes, and the decoder takes them as they are.
#    </details>
#
# 2. ★★ How large is the patch that one output of the discriminator judges, and how many patches does it
#    score? Measure it with the gradient of one output with respect to the input, and compare with the
#    receptive-field rule: start at 1 pixel and add $(k-1)\times$(product of the earlier strides) for every
#    convolution of kernel $k$.
#
#    <details><summary>Solution</summary>
#
#    The second solution cell back-propagates from the central patch score and measures the square of
#    input pixels that receive a gradient; the rule gives the same side (34 pixels for the `smoke`
#    discriminator, whose grid of 14 × 14 scores covers a 64² image), unless the patch is cut by the image
#    border. For the paper's three-layer discriminator the rule gives the classic 70 × 70 PatchGAN: each
#    score judges 70² pixels of a 1024² radiograph, and the cell prints how many scores there are.
#    </details>
#
# 3. ★★ Keep only the 16 most used codebook entries of the trained model, quantise the validation latents
#    to them (with `VectorQuantiser(16, 4)`) and decode. How much PSNR is lost, and what is the perplexity?
#
#    <details><summary>Solution</summary>
#
#    The third solution cell copies the 16 most used entries into a written-out quantiser, decodes, and
#    prints the share of vectors those entries had, both PSNRs and both perplexities. The perplexity can at
#    most reach 16. The decoder was trained with the whole codebook, so this is a lower bound on what a
#    16-entry model can do; the fair test retrains with
#    `dataclasses.replace(VQGAN_PRESETS[PROFILE], num_embeddings=16)` (a GPU exercise).
#    </details>
#
# 4. ★★★ Replace the moving-average codebook of `VectorQuantiser` by one trained by gradients, as in the
#    original VQ-VAE: make the codebook a parameter and add the codebook loss
#    $\lVert \mathrm{sg}(z_e) - z_q\rVert^2$. Run the hand-written steps of section 5.1 with it and compare
#    the loss and the codebook usage with the moving-average version.
#
#    <details><summary>Solution</summary>
#
#    The fourth solution cell subclasses `VectorQuantiser`, trains a copy of the untrained model with it
#    for the same steps as section 5.1, and prints the final loss, the entries in use and the perplexity of
#    both versions. Read the numbers, not a rule: after a few steps either can be ahead, and the
#    moving-average update (decay 0.5 here) moves entries much faster than a learning rate of 1e-3 does.
#    </details>
#

# %% tags=["solution"]
# Solution to exercise 1
full = VQGAN_PRESETS["full"]
positions = (1024 // full.downsampling_factor) ** 2
latent_bits = positions * np.log2(full.num_embeddings)
image_bits = 1024**2 * 8
print(f"latent: {positions:,} positions × {np.log2(full.num_embeddings):.0f} bits = {latent_bits:,.0f} bits "
      f"({latent_bits / 8 / 1024:.0f} KiB); image: {image_bits:,} bits ({image_bits / 8 / 1024**2:.0f} MiB); "
      f"{image_bits / latent_bits:.0f}-fold")

# %% tags=["solution"]
# Solution to exercise 2
def receptive_field(network):
    """The receptive-field rule over the network's convolutions, in the order they run."""
    side, jump = 1, 1
    for layer in network.modules():
        if isinstance(layer, nn.Conv2d):
            side, jump = side + (layer.kernel_size[0] - 1) * jump, jump * layer.stride[0]
    return side


critic = copy.deepcopy(autoencoder.discriminator).cpu().eval()
probe = torch.randn(1, 1, SIZE, SIZE, requires_grad=True)
scores = critic(probe)[-1]
scores[0, 0, scores.shape[-2] // 2, scores.shape[-1] // 2].backward()
reached = probe.grad[0, 0].abs().sum(1).nonzero().flatten()  # the rows of input pixels that feed the score
print(f"this profile's discriminator: one score sees {reached.max() - reached.min() + 1} rows of input pixels; "
      f"the rule says {receptive_field(critic)}; {scores.shape[-2]}×{scores.shape[-1]} scores for a {SIZE}² image")
with torch.device("meta"):
    paper_critic = vqgan.build_discriminator(VQGAN_PRESETS["full"])
    paper_scores = paper_critic(torch.empty(1, 1, 1024, 1024))[-1]
print(f"the paper's discriminator: {receptive_field(paper_critic)}² pixels per score, "
      f"{paper_scores.shape[-2]}×{paper_scores.shape[-1]} scores for a 1024² radiograph")

# %% tags=["solution"]
# Solution to exercise 3
images = torch.cat([val_cxr, val_soft])
top = counts.argsort(descending=True)[:16]
small = VectorQuantiser(16, autoencoder.config.embedding_dim).to(run.device).eval()
with torch.no_grad():
    small.embedding.weight.copy_(vqvae.quantizer.quantizer.embedding.weight[top.to(run.device)])
    z_e = vqvae.encode(to_model_range(images))
    rebuilt_small = vqgan.to_image_range(vqvae.decode(small(z_e)[1]))
small_counts = torch.bincount(small.quantize(z_e).flatten().cpu(), minlength=16)
p_small = small_counts[small_counts > 0].double() / small_counts.sum()
print(f"the 16 most used entries held {counts[top].sum() / counts.sum():.0%} of the latent vectors")
pd.DataFrame({"PSNR (dB)": [metrics.psnr(autoencoder.predict(images).cpu(), images.cpu()),
                            metrics.psnr(rebuilt_small.cpu(), images.cpu())],
              "perplexity": [perplexity, float(torch.exp(-(p_small * p_small.log()).sum()))]},
             index=[f"all {len(counts)} entries", "the 16 most used"]).round(2)

# %% tags=["solution"]
# Solution to exercise 4
class GradientQuantiser(VectorQuantiser):
    """The original VQ-VAE's codebook: a parameter moved by the gradient of ‖sg(z_e) − z_q‖², not by averages."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.embedding.weight.requires_grad_(True)

    def forward(self, z_e):
        _, index = self.nearest(z_e)
        z_q = self.embedding(index).view(*z_e.movedim(1, -1).shape).movedim(-1, 1)
        codebook_loss = F.mse_loss(z_q, z_e.detach())  # moves the chosen entries towards their vectors
        commitment = self.commitment * F.mse_loss(z_q.detach(), z_e)
        return codebook_loss + commitment, z_e + (z_q - z_e).detach()


variant = copy.deepcopy(untrained)
variant.autoencoder.quantizer = GradientQuantiser(autoencoder.config.num_embeddings, autoencoder.config.embedding_dim)
variant.autoencoder.quantizer.load_state_dict(untrained.autoencoder.quantizer.quantizer.state_dict())
by_gradient = train_by_hand(variant)
rows = {}
for label, model, history in [("moving averages (5.1)", student, by_hand), ("gradient", variant, by_gradient)]:
    usage, effective = model.eval().codebook_usage(images)
    rows[label] = {"last loss": history["autoencoder"].iloc[-1], "entries in use": int((usage > 0).sum()),
                   "perplexity": effective}
pd.DataFrame(rows).T.round(3)

# %% [markdown]
# ## References
# - Y. Sun et al., *BS-LDM: Effective Bone Suppression in High-Resolution Chest X-Ray Images with Conditional
#   Latent Diffusion Models*, IEEE JBHI 2025. [papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)
# - Y. Sun et al., *GL-LCM*, MICCAI 2025 (same autoencoder lineage). [papers/gl-lcm-2025](../papers/gl-lcm-2025.yaml)
# - A. van den Oord, O. Vinyals, K. Kavukcuoglu, *Neural Discrete Representation Learning* (VQ-VAE), NeurIPS 2017.
# - P. Esser, R. Rombach, B. Ommer, *Taming Transformers for High-Resolution Image Synthesis* (VQGAN), CVPR 2021.
# - R. Zhang et al., *The Unreasonable Effectiveness of Deep Features as a Perceptual Metric* (LPIPS), CVPR 2018.
