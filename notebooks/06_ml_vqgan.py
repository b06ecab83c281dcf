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
# | `colab` | one GPU | ≈ 30 min (256², 6 000 steps; an estimate, not yet measured) |
# | `full` | one A100/H100 | days (1024², the paper's 1 000 epochs) |
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
import matplotlib.pyplot as plt
import pandas as pd
import torch

from bs_lib import datasets, metrics
from bs_lib.claims import check
from bs_lib.configs import load_config
from bs_lib.models.vqgan import VQGAN_PRESETS, build_vqvae, laplacian_pyramid_loss
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
# The run is described by `bs_lib/configs/ml_vqgan.yaml` (the paper's Adam
# learning rates 1e-4 for the autoencoder and 5e-4 for the discriminator, at the
# full scale) and trained by the course's engine, which updates the
# autoencoder first, then the discriminator on detached reconstructions (the
# short `smoke` run lets the discriminator join only for its last 100 steps:
# L1 alone gets the reconstructions up faster, and stage 2 is bounded by them). The
# checkpoint lands in `config.runs_dir()`, where notebook 07 will find it. Run
# again, the notebook reuses the finished run, and an interrupted `colab` or
# `full` run resumes where it stopped.

# %%
train_config = load_config("ml_vqgan", run.profile.name, output_dir=str(config.runs_dir()), seed=SEED,
                           image_size=SIZE)
discard_stale_run(train_config)  # a run of another config in the same folder would not fit this model
autoencoder = build_objective(train_config)
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

# %%
counts, perplexity = autoencoder.codebook_usage(torch.cat([val_cxr, val_soft]))
used = int((counts > 0).sum())
figure, axis = plt.subplots(figsize=(9, 2.8))
axis.bar(range(len(counts)), counts.numpy(), width=1.0)
axis.set(xlabel="codebook entry", ylabel="times chosen",
         title=f"{used} of {len(counts)} entries used; perplexity {perplexity:.1f}")
plt.show()

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
figure.suptitle(f"latents ({'×'.join(map(str, z_cxr.shape))}): the bone lives in the difference")
plt.show()

# %%
check(quality["PSNR (dB)"].min() > 25,
      f"the autoencoder rebuilds radiographs and soft tissue alike, at {quality['PSNR (dB)'].min():.1f} dB or better",
      trained=True)
check(used > 1 and perplexity > 1.5,
      f"the codebook has not collapsed: {used} entries in use, perplexity {perplexity:.1f}", trained=True)
latent_gap = float((z_cxr - z_soft).abs().mean())
check(latent_gap > 0.01, f"the latents of a pair differ by {latent_gap:.3f} on average: the bone is in the latent",
      trained=True)

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
# - One autoencoder serves radiographs and soft tissue, so their latents differ exactly where the bone is.
#
# ## Exercises
# 1. Count the bits: how many bits does the full model's quantised latent of a 1024² radiograph hold,
#    compared with the 8-bit image?
#
#    <details><summary>Solution</summary>
#
#    128 × 128 positions × log₂ 256 = 8 bits each = 131 072 bits = 16 KiB, against 1024² × 8 bits = 1 MiB:
#    a 64-fold compression. (The decoder is not re-quantising sampled latents, so stage 2 may use values
#    between codes.)
#    </details>
#
# 2. Retrain with a codebook of 16 entries (`VQGAN_PRESETS["smoke"]` with `num_embeddings=16`, via
#    `dataclasses.replace`) and compare reconstruction PSNR and perplexity.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    import dataclasses
#    from bs_lib.models.vqgan import MLVQGAN
#    small = MLVQGAN(dataclasses.replace(VQGAN_PRESETS["smoke"], num_embeddings=16))
#    small_config = load_config("ml_vqgan", PROFILE, name="vq16", output_dir=str(config.runs_dir()))
#    Trainer(small, small_config, train_set).fit()
#    print(small.codebook_usage(torch.cat([val_cxr, val_soft]))[1])  # perplexity
#    ```
#    Fewer codes mean coarser latents: PSNR drops, while the perplexity can at most reach 16.
#    </details>
#
# 3. Switch the adversarial term off (`method_args={"adversarial_start": 10**9}` in `load_config`) and
#    compare the reconstructions' fine detail with `laplacian_pyramid_loss` against the originals.
#
#    <details><summary>Solution</summary>
#
#    Without the discriminator the loss is dominated by L1, and the reconstructions lose high-frequency
#    energy: their Laplacian-pyramid distance to the originals grows, most visibly at rib edges.
#    </details>
#
# ## References
# - Y. Sun et al., *BS-LDM: Effective Bone Suppression in High-Resolution Chest X-Ray Images with Conditional
#   Latent Diffusion Models*, IEEE JBHI 2025. [papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)
# - Y. Sun et al., *GL-LCM*, MICCAI 2025 (same autoencoder lineage). [papers/gl-lcm-2025](../papers/gl-lcm-2025.yaml)
# - A. van den Oord, O. Vinyals, K. Kavukcuoglu, *Neural Discrete Representation Learning* (VQ-VAE), NeurIPS 2017.
# - P. Esser, R. Rombach, B. Ommer, *Taming Transformers for High-Resolution Image Synthesis* (VQGAN), CVPR 2021.
# - R. Zhang et al., *The Unreasonable Effectiveness of Deep Features as a Perceptual Metric* (LPIPS), CVPR 2018.
