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
# # 04 · GANs: conditional adversarial suppression
#
# A network trained with L1 alone learns the *average* soft-tissue image that fits a
# radiograph, and where several answers are plausible the average is a blur. A
# conditional GAN adds a critic that has seen real soft-tissue images and calls out
# anything that does not look like one. This notebook builds pix2pix (a U-Net generator
# and a PatchGAN discriminator) and the multi-scale idea of MCA-Net, one of the strongest
# baselines in the published comparison, trains both on the phantom with the course's
# training engine, measures them against the do-nothing baseline, and shows how GANs fail:
# they invent what is not there.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/04_gans.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 40 s (phantom, 64², 100 steps per model) |
# | `colab` | one T4 GPU | ≈ 30 min (256², 4000 steps per model) |
# | `full` | one A100/H100 | hours (1024², SZCH-X-Rays) |
#
# ## Learning goals
# - explain why a pixel loss blurs and what an adversarial term adds, with the two losses written out;
# - build a conditional GAN from a config and say which network each parameter group trains, and in which order;
# - explain the multi-scale idea of MCA-Net: estimates at several resolutions, one discriminator per scale;
# - measure a GAN against the identity baseline with the course metrics;
# - recognise GAN failure modes: hallucinated structure and an adversarial term that overpowers the pixel loss.

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
# `papermill 04_gans.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from bs_lib import metrics
from bs_lib.claims import check
from bs_lib.configs import load_config
from bs_lib.datasets import get_dataset, usable_dataset
from bs_lib.train import build_datasets, build_objective, fit_or_reuse

RUNS = config.runs_dir()  # checkpoints: a finished run is reused, an interrupted one resumed
SIZE = run.profile.image_size
DATA = usable_dataset(run.profile.dataset)  # the phantom, saying so, when the real data is not on this machine
test_set = get_dataset(DATA, split="test", size=SIZE, num_images=16 if PROFILE == "smoke" else None)
print(f"test split: {len(test_set)} pairs of {DATA} at {SIZE}²; checkpoints in {RUNS}")

# %% [markdown]
# ## 1 · Why a pixel loss blurs
#
# Suppose the same radiograph is compatible with several soft-tissue images: a vessel
# edge could sit at any of a few positions behind a rib. For a fixed input, the loss
# $\mathbb E_s\,\ell(\hat s, s)$ is minimised by the **mean** of the possible
# targets when $\ell$ is the squared error, and by their pixel-wise **median** for
# L1. Averaging edges at different positions gives a ramp: the network's "best" answer
# is an image that never occurs. The figure makes that concrete in one dimension.

# %%
positions = np.arange(40, 61, 5)
x = np.arange(100)
edges = np.stack([(x >= p).astype(float) for p in positions])  # equally likely sharp answers
fig, ax = plt.subplots(figsize=(7, 2.6))
for edge in edges:
    ax.plot(x, edge, color="0.75", lw=1)
ax.plot(x, edges.mean(0), color="C3", lw=2, label="MSE optimum: the mean (a ramp)")
ax.plot(x, np.median(edges, 0), color="C0", lw=2, ls="--", label="L1 optimum: the median (one sharp edge)")
ax.set(xlabel="pixel", ylabel="intensity", title="five plausible edges and what a pixel loss prefers")
ax.legend(loc="lower right", fontsize=8)
plt.show()
check(np.all(np.isin(np.median(edges, 0), [0.0, 1.0])) and 0 < edges.mean(0)[50] < 1,
      f"the L1 optimum is one sharp edge; the MSE optimum is a ramp, {edges.mean(0)[50]:.1f} at pixel 50")


# %% [markdown]
# L1 is less blurry than MSE, but in two dimensions, with many uncertain pixels, even the
# median is smooth. A GAN adds a loss that **rewards looking real** instead of being
# close on average.
#
# ## 2 · The conditional GAN (pix2pix)
#
# The discriminator $D$ sees a radiograph $x$ **beside** a soft-tissue image,
# real ($s$) or generated ($G(x)$), and outputs one score per patch. With the
# least-squares losses of `bs_lib.losses`:
#
# $$\mathcal L_D = \tfrac12\,\mathbb E\big[(D(x, s) - 1)^2\big]
#   + \tfrac12\,\mathbb E\big[D(x, \mathrm{sg}[G(x)])^2\big],$$
#
# $$\mathcal L_G = \mathcal L_1\big(G(x), s\big)
#   + \lambda_{adv}\,\mathbb E\big[(D(x, G(x)) - 1)^2\big], \qquad \lambda_{adv} = 0.01.$$
#
# $\mathrm{sg}$ (stop gradient, `.detach()`) keeps the discriminator's step away from
# the generator. Conditioning on $x$ matters: an unconditional critic would accept
# *any* realistic soft-tissue image, not the one that belongs to this patient. The L1 term
# keeps the output tied to the target; the adversarial term only sharpens it (pix2pix
# weighs them 100 : 1).
#
# The engine (`bs_lib.train`) updates the parameter groups in the order the objective
# returns them: the generator first, then the discriminator on detached fakes.

# %%
def train(method, **overrides):
    """Train ``method`` with its config for this profile; returns the objective and its history."""
    cfg = load_config(method, PROFILE, data=DATA, output_dir=str(RUNS), seed=SEED, **overrides)
    config.seed_everything(SEED)
    model = build_objective(cfg)
    result = fit_or_reuse(model, cfg, *build_datasets(cfg))
    print(f"{cfg.name}: {result.final_step} steps in {result.wall_time_s:.1f} s")
    return model.eval(), pd.DataFrame([h for h in result.history if "loss/generator" in h]).set_index("step")


pix2pix, pix2pix_history = train("pix2pix")
groups = {name: sum(p.numel() for p in params) for name, params in pix2pix.parameter_groups().items()}
print("parameter groups (update order):", groups)
check(list(groups) == ["generator", "discriminator"],
      f"the generator ({groups['generator']:,} parameters) steps first, "
      f"then the discriminator ({groups['discriminator']:,})")

# %% [markdown]
# The PatchGAN's output is a grid of scores, one per overlapping patch of the pair: it
# judges local texture (rib edges, vessel sharpness) and leaves the global layout to L1.

# %%
sample = test_set[0]
pair = torch.cat([sample["cxr"], sample["soft"]])[None]
scores = pix2pix.discriminators[0](pair)[-1]
print(f"input {tuple(pair.shape)} → patch scores {tuple(scores.shape)}")
fig, axes = plt.subplots(1, 4, figsize=(11, 3))
for ax, image, title in zip(axes[:3], [sample["cxr"], sample["soft"], pix2pix.predict(sample["cxr"][None])[0]],
                            ["radiograph x", "target s", "pix2pix G(x)"], strict=True):
    ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
axes[3].imshow(scores[0, 0].detach(), cmap="magma")
axes[3].set_title("D(x, s): one score per patch")
axes[3].axis("off")
plt.show()
check(scores.shape[-1] > 1, f"the discriminator returns a {scores.shape[-2]}×{scores.shape[-1]} grid of patch scores, "
                            "not one number")

# %% [markdown]
# The losses: the generator's pixel term should fall; the adversarial terms of a healthy
# GAN hover (neither side wins for good).

# %%
columns = [c for c in ["log/l1", "log/adversarial", "loss/discriminator"] if c in pix2pix_history]
pix2pix_history[columns].plot(subplots=True, figsize=(7, 5), title="pix2pix training")
plt.show()
first_l1, last_l1 = pix2pix_history["log/l1"].iloc[0], pix2pix_history["log/l1"].iloc[-1]
check(last_l1 < first_l1, f"the generator's pixel loss fell from {first_l1:.4f} to {last_l1:.4f}", trained=True)

# %% [markdown]
# ## 3 · MCA-Net: right at every scale
#
# MCA-Net generates virtual dual-energy images with a **multi-scale** conditional GAN, so
# that the result is accurate at the coarse scale and sharp in fine detail. The course's
# version (`bs_lib.models.gan.MultiScaleGenerator`) makes an estimate at full, half and
# quarter size, coarse to fine, each refining the one below:
#
# $$\hat s_k = \mathrm{pool}_k(x) + \Delta_k, \qquad \Delta_k = \mathrm{up}(\Delta_{k+1}) + h_k(f_k),$$
#
# and one PatchGAN $D_k$ judges each scale against the pooled target:
#
# $$\mathcal L_G = \sum_k 2^{-k}\,\mathcal L_1(\hat s_k, s_k)
#   + \lambda_{adv}\,\tfrac1K \sum_k \ell_G\big(D_k(x_k, \hat s_k)\big).$$
#
# The same 4×4 patches cover a quarter of the chest at the coarsest scale, so the
# discriminators together check both global density and fine texture.

# %%
mca_net, mca_history = train("mca_net")
estimates = [e[0, 0].detach() for e in mca_net.generate(sample["cxr"][None])]
fig, axes = plt.subplots(1, len(estimates), figsize=(9, 3))
for ax, estimate in zip(axes, estimates, strict=True):
    ax.imshow(estimate.clamp(0, 1), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"scale {estimate.shape[-1]}²")
    ax.axis("off")
plt.show()
check([e.shape[-1] for e in estimates] == [SIZE, SIZE // 2, SIZE // 4],
      f"MCA-Net estimates at {SIZE}², {SIZE // 2}² and {SIZE // 4}²")


# %% [markdown]
# ## 4 · Against the identity baseline
#
# Doing nothing (predicting the radiograph itself) already scores well on some metrics
# (notebook 01). Every method must beat it. The course metrics (`bs_lib.metrics`) per test
# image, then the mean.

# %%
def scores_of(predict, dataset):
    """Per-image metrics of a prediction function over a dataset (a DataFrame, one row per image)."""
    rows = []
    for i in range(len(dataset)):
        item = dataset[i]
        estimate = predict(item["cxr"][None].to(run.device)).cpu()[0]
        rows.append({k: float(v) for k, v in metrics.evaluate(estimate, item["soft"], item["cxr"]).items()})
    return pd.DataFrame(rows)


methods = {"identity": lambda cxr: cxr, "pix2pix": pix2pix.predict, "mca_net": mca_net.predict}
per_image = {name: scores_of(predict, test_set) for name, predict in methods.items()}
table = pd.DataFrame({name: frame.mean() for name, frame in per_image.items()}).T
table

# %%
for name in ("pix2pix", "mca_net"):
    gain = table.loc[name, "psnr"] - table.loc["identity", "psnr"]
    check(gain > 0, f"{name} beats doing nothing by {gain:.1f} dB PSNR on {len(test_set)} test images", trained=True)

# %% [markdown]
# In the published comparison at 1024² (the GL-LCM re-evaluation, shown beside our own
# leaderboard in notebook 09), MCA-Net is among the strongest methods on SZCH-X-Rays: BSR 95.44 %,
# PSNR 32.69 dB, LPIPS 0.079, ahead of BS-LDM on BSR and PSNR. Those numbers come from
# other data and a much larger budget; only the ranking idea carries over.
#
# ## 5 · How GANs fail
#
# **Hallucination.** The discriminator rewards images that *look* like soft tissue; it
# cannot know what is true. Give the generator an input without bones (the target
# itself): the ideal suppressor returns it unchanged. Whatever it changes is invented.

# %%
soft_batch = torch.stack([test_set[i]["soft"] for i in range(len(test_set))]).to(run.device)
invented = {name: (model.predict(soft_batch) - soft_batch).abs().mean().item()
            for name, model in (("pix2pix", pix2pix), ("mca_net", mca_net))}
print("mean change to an image that has no bones:", {k: f"{v:.4f}" for k, v in invented.items()})
worst = int(per_image["pix2pix"]["psnr"].idxmin())
item = test_set[worst]
estimate = pix2pix.predict(item["cxr"][None].to(run.device)).cpu()[0, 0]
hallucinated = pix2pix.predict(item["soft"][None].to(run.device)).cpu()[0, 0] - item["soft"][0]
panels = [(item["cxr"][0], "radiograph", "gray"), (estimate, f"pix2pix (worst, PSNR "
          f"{per_image['pix2pix']['psnr'][worst]:.1f})", "gray"), (estimate - item["soft"][0], "error", "coolwarm"),
          (hallucinated, "change to a bone-free input", "coolwarm")]
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, (image, title, cmap) in zip(axes, panels, strict=True):
    limits = dict(vmin=0, vmax=1) if cmap == "gray" else dict(vmin=-0.15, vmax=0.15)
    ax.imshow(image, cmap=cmap, **limits)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()
check(min(invented.values()) > 0, f"both GANs alter an image that has no bones (pix2pix by {invented['pix2pix']:.4f} "
                                  f"on average): whatever they change is invented", trained=True)

# %% [markdown]
# **An adversarial term that overpowers the pixel loss.** pix2pix's 100 : 1 balance is no
# accident. Raise the adversarial weight a hundredfold (1.0 instead of 0.01) and the
# generator is paid mostly for fooling the critic: it drifts toward whatever the current
# discriminator accepts, a moving target, instead of toward the patient's own image. On
# larger budgets this is where *mode collapse* sets in: many inputs, one output that fools
# the critic.

# %%
greedy, greedy_history = train("pix2pix", name=f"pix2pix-greedy-{PROFILE}",
                               method_args={"adversarial_weight": 1.0})
table.loc["pix2pix, adversarial ×100"] = scores_of(greedy.predict, test_set).mean()
spread = {name: model.predict(torch.stack([test_set[i]["cxr"] for i in range(8)]).to(run.device)).std(0).mean().item()
          for name, model in (("pix2pix", pix2pix), ("adversarial ×100", greedy))}
print("variation of the outputs across 8 patients:", {k: f"{v:.4f}" for k, v in spread.items()})
table[["psnr"] + [c for c in table.columns if c.startswith("bsr")]]

# %%
greedy_gain = table.loc["pix2pix, adversarial ×100", "psnr"] - table.loc["pix2pix", "psnr"]
check(greedy_gain < 1.0, f"a hundredfold adversarial weight does not pay: {greedy_gain:+.1f} dB PSNR against "
                         f"pix2pix's balance, not even +1 dB", trained=True)

# %% [markdown]
# ## Summary
# - A pixel loss is minimised by an average (MSE) or a median (L1) of the plausible answers, which blurs
#   wherever the answer is uncertain.
# - A conditional GAN adds a discriminator that scores (radiograph, soft tissue) pairs patch by patch;
#   the generator is trained to fool it, the discriminator on detached fakes, generator first.
# - MCA-Net's idea: estimates at several resolutions, coarse to fine, each judged by its own discriminator,
#   so the image is right at the coarse scale and sharp in detail.
# - Starting the generator as the identity (a residual output with a zero last layer) makes even a tiny
#   budget beat the do-nothing baseline.
# - GANs invent: an adversarial term rewards what looks real, not what is true. Keep the pixel term
#   dominant and check what the model does to inputs whose answer you know.
#
# ## Exercises
# 1. Train pix2pix with `adversarial_weight: 0` (pure L1, the same U-Net). Is it better or worse than the
#    GAN on PSNR? On sharpness (compare the mean absolute Laplacian of outputs and targets)?
#
#    <details><summary>Solution</summary>
#
#    `l1_only, _ = train("pix2pix", name="pix2pix-l1", method_args={"adversarial_weight": 0.0})`, then
#    `scores_of(l1_only.predict, test_set).mean()`. With budgets this small the two are close on PSNR
#    (the adversarial term is 1 % of the loss); the GAN's outputs are usually a little sharper, which
#    PSNR does not reward. Sharpness:
#    `torch.nn.functional.conv2d(img, torch.tensor([[[[0., 1, 0], [1, -4, 1], [0, 1, 0]]]])).abs().mean()`.
#    </details>
#
# 2. Switch pix2pix to its original cross-entropy loss (`method_args={"adversarial": "bce"}`). Which
#    formula from `bs_lib.losses` does the discriminator now minimise, and why is it halved?
#
#    <details><summary>Solution</summary>
#
#    `bce_discriminator`: ½[−log σ(D(x,s)) − log(1 − σ(D(x,G(x))))]. pix2pix halves the discriminator's
#    objective so that it learns more slowly than the generator and does not win too early, which
#    would leave the generator with vanishing gradients.
#    </details>
#
# 3. Give MCA-Net a single scale (`method_args={"scales": 1}`). What is left of the method, and how do
#    the coarse-scale errors (compare `F.avg_pool2d` of prediction and target by 4) change?
#
#    <details><summary>Solution</summary>
#
#    With one scale it is a pix2pix with a different U-Net: one estimate, one discriminator. Compute
#    `(F.avg_pool2d(pred, 4) - F.avg_pool2d(target, 4)).abs().mean()` for both models over the test
#    set; the multi-scale model is supervised directly at the coarse scales and typically has the
#    smaller coarse error, the point of the design.
#    </details>
#
# 4. Hallucination check on your own data: take a radiograph with a nodule-like blob added and look at
#    the difference between prediction and input. Does the GAN keep the blob?
#
#    <details><summary>Solution</summary>
#
#    Add `0.15 * exp(-r²/2σ²)` in a lung field to `cxr`, predict, and compare the blob's contrast in
#    prediction and input. A good suppressor keeps it (it is soft tissue); a model that removes it has
#    learned "remove bright round things", a dangerous failure the metrics on the test set never show.
#    </details>
#
# ## References
# - P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, *Image-to-Image Translation with Conditional Adversarial
#   Networks* (pix2pix), CVPR 2017.
# - B. Zhou et al., *Generation of Virtual Dual Energy Images from Standard Single-Shot Radiographs using
#   Multi-scale and Conditional Adversarial Network* (MCA-Net), ACCV 2018.
#   [papers/mca-net-2018](../papers/mca-net-2018.yaml)
# - M. Eslami et al., *Image-to-Images Translation for Multi-Task Organ Segmentation and Bone Suppression
#   in Chest X-Ray Radiography*, IEEE TMI 2020. [papers/eslami-2020](../papers/eslami-2020.yaml)
# - X. Mao et al., *Least Squares Generative Adversarial Networks*, ICCV 2017.
# - Y. Sun et al., *BS-LDM* (the published comparison table), IEEE JBHI 2025.
#   [papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)
