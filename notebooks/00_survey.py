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
# # 00 · The field at a glance
#
# On a chest radiograph the ribs and clavicles lie over most of the lungs, and a
# small nodule behind a rib is easy to miss. *Bone suppression* removes the bones
# and keeps the soft tissue. This notebook tells the story of the field, from
# dual-energy X-ray machines to commercial software, to the "5 + 1" families of
# learned methods and to diffusion models such as BS-LDM, which the rest of the
# course rebuilds. Everything shown comes from the course's paper database
# (`papers/`, one checked YAML file per paper): at the end you can read the
# field's numbers critically and add a paper yourself.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/00_survey.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 10 s |
# | `colab` | one T4 GPU | ≈ 2 min, start-up only (estimated: benchmarks/results/colab_times.md) |
# | `full` | one A100/H100 | ≈ 10 s |
#
# ## Prerequisites
# - No earlier notebook: this is where the course starts.
# - Helpful, not required: what a radiograph is (a shadow of the body), the idea of
#   PSNR (a logarithm of the mean squared error), and reading a pandas table.
#
# ## Learning goals
# - tell the story of bone suppression: dual-energy hardware, conventional and
#   commercial software, the learned families and diffusion;
# - say for each family what it learns, what it needs, where it shines and how it fails;
# - read reported PSNR and BSR numbers critically (dataset, resolution, metric code, source);
# - find your way in the adjacent fields and pick the open problems worth working on;
# - add a paper to the database and rebuild the index.

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
# `papermill 00_survey.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %% [markdown]
# This notebook trains nothing, so every profile runs the same cells in seconds.
# The database lives in the repository's `papers/` folder, and every installed
# `bs_lib` carries a copy: `survey.PAPERS_DIR` is the clone's folder when you work
# in a clone, the packaged copy otherwise (on Colab). `load_papers` refuses to
# return anything when an entry is invalid.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bs_lib.claims import check
from bs_lib.course import survey

papers = survey.load_papers(survey.PAPERS_DIR)
by_id = {paper.id: paper for paper in papers}
table = survey.papers_frame(papers)
print(f"{len(papers)} entries from {survey.PAPERS_DIR.name}/")
table.groupby(["group", "category"], sort=False).size().rename("papers").to_frame()

# %%
check(len(papers) >= 80, f"the survey holds {len(papers)} papers, at least 80")
check(set(table["category"]) <= set(survey.CATEGORIES),
      f"every paper sits in one of the survey's {len(survey.CATEGORIES)} categories")
check({"gusarev-2017", "mca-net-2018", "resnet-bs-2021", "bs-diff-2024", "bs-ldm-2025"} <= set(by_id),
      "the papers this course rebuilds, from Gusarev et al. to BS-LDM, are all in the database")

# %% [markdown]
# ## 1 · Why suppress bones?
# A radiograph is a shadow: every structure along a ray adds its attenuation. Ribs
# and clavicles are dense, so their shadows cross the lung fields and hide what
# lies behind them. Readers miss nodules there, and computer-aided detection
# finds false positives on rib crossings. Reader studies of bone-suppressed
# images, collected in the database, show what removing the bones buys:

# %%
reader_studies = survey.metrics_frame(
    [by_id[i] for i in ("freedman-softview-2011", "li-bsi-nodules-2011", "schalekamp-2012", "von-berg-2016")]
)
reader_studies[["id", "metric", "value", "unit", "dataset", "note"]]

# %% [markdown]
# The numbers rise, but modestly: Li et al. report a reader AUC of 0.840 → 0.863
# with commercial bone suppression on 151 JSRT images; Schalekamp et al. a
# sensitivity of 67 % → 72 % at 90 % specificity. BS-LDM's clinical study reports
# F1 for lesion detection of 0.51 → 0.63 (junior reader) and 0.60 → 0.75 (senior)
# when the soft-tissue image replaces the radiograph. Each entry says how well
# its numbers are sourced (the Freedman study, for one, is known only from news
# pages).

# %% [markdown]
# ## 2 · Dual-energy subtraction: the hardware answer
# Bone and soft tissue attenuate X-rays differently, and bone's attenuation falls
# faster with energy. Take two exposures, at low and high tube voltage. By the
# Beer–Lambert law the log-intensity along a ray is a sum over materials,
#
# $$-\log I_E = \mu_s(E)\,t_s + \mu_b(E)\,t_b ,\qquad E \in \{L, H\},$$
#
# with $t_s, t_b$ the soft-tissue and bone thickness along the ray. The weighted
# difference
#
# $$S = -\log I_H + w \log I_L, \qquad w = \frac{\mu_b(H)}{\mu_b(L)},$$
#
# cancels bone and leaves $S = (\mu_s(H) - w\,\mu_s(L))\,t_s$: a soft-tissue
# image. Exactly so only for a beam of one energy; real tubes emit a spectrum,
# which hardens on its way through the body, and notebook 01 measures the bone
# that this leaves behind. A one-dimensional profile across a chest shows the
# ideal case (toy attenuation coefficients; notebook 01 does it properly with
# the phantom).

# %%
x = np.linspace(-1, 1, 600)
soft_thickness = 20 * np.sqrt(np.clip(1 - x**2, 0, None))  # cm of soft tissue, an ellipse
ribs = (np.sin(9 * np.pi * x) > 0.55) & (np.abs(x) < 0.9)
bone_thickness = 1.2 * ribs * np.abs(np.sin(9 * np.pi * x))  # cm of bone in the rib crossings
mu_soft = {"L": 0.25, "H": 0.18}  # toy coefficients, 1/cm: bone falls faster with energy
mu_bone = {"L": 0.90, "H": 0.45}
log_attenuation = {E: mu_soft[E] * soft_thickness + mu_bone[E] * bone_thickness for E in "LH"}
w = mu_bone["H"] / mu_bone["L"]
soft_image = log_attenuation["H"] - w * log_attenuation["L"]

fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharex=True, layout="constrained")
axes[0].plot(x, log_attenuation["L"], label="low kV")
axes[0].plot(x, log_attenuation["H"], label="high kV")
axes[0].set(title="two exposures (−log I)", xlabel="position across the chest")
axes[0].legend()
axes[1].plot(x, bone_thickness, color="grey")
axes[1].set(title="the bone we want to remove", xlabel="position")
axes[2].plot(x, soft_image, color="C2")
axes[2].set(title=f"weighted difference, w = {w:.2f}: ribs gone", xlabel="position")
plt.show()

# %%
inside = soft_thickness > 0
ratio = soft_image[inside] / soft_thickness[inside]
check(np.allclose(ratio, mu_soft["H"] - w * mu_soft["L"]),
      f"along the whole profile S = {ratio.mean():.3f} × t_s: for one energy the bone cancels exactly")

# %% [markdown]
# In practice it is not that clean: two exposures mean motion between them (or a
# special two-layer detector), extra dose, noise amplified by the subtraction,
# and a scanner few hospitals own. That is why the field tries to produce the
# soft-tissue image *from one ordinary radiograph*, and why dual-energy images
# are so valuable as training targets: SZCH-X-Rays (741 public pairs) and the
# 35 Gusarev pairs are real dual-energy data; BSE-JSRT's targets were made by an
# algorithm (Juhász et al. 2010).
#
# ## 3 · Conventional methods and commercial software
# Before deep learning, bone suppression meant modelling the bones. Suzuki et al.
# (2006) trained pixel-based neural networks (MTANN) with dual-energy bone
# images as teachers; Loog et al. (2006) regressed the bone image with k-nearest
# neighbours ("dual energy faking"); Hogeweg et al. (2013) modelled the profile
# of elongated structures across ribs and clavicles; the Budapest group
# segmented the rib cage and removed its shadow, which is how BSE-JSRT was made.
# Software followed: Riverain's ClearRead / SoftView produces a soft-tissue image
# beside the original, and reader studies from 2011 on measured its benefit.
#
# *Strengths*: explicit, inspectable, little or no paired data. *Failure modes*:
# every model of a rib is a simplification; unusual anatomy, devices and
# lesions that touch a rib break it, and edges of suppressed bones remain.

# %%
survey.papers_frame([p for p in papers if p.category in ("manual", "commercial")])[
    ["year", "id", "authors", "venue", "category", "evidence"]
]

# %% [markdown]
# ## 4 · The 5 + 1 learned families, and diffusion
# The BS-LDM authors' survey list sorts the learned methods into five families
# (autoencoder, domain adaptation, distillation, GAN, CNN) plus manual
# suppression, and adds diffusion models. One row per idea:

# %%
fig = survey.plot_family_pipelines()
plt.show()

# %% [markdown]
# - **Autoencoder**: an encoder–decoder maps the CXR to its soft tissue.
#   *Strengths*: simple, fast, a reproducible baseline. *Fails*: blurs fine
#   vessels; the bottleneck drops detail. In `papers/`: `gusarev-2017`,
#   `kalisz-2021`, `lin-2020`.
# - **CNN**: a direct image-to-image network, often multi-scale, residual, or
#   working in the wavelet or gradient domain. *Strengths*: accurate on the data
#   it was trained on, cheap at inference. *Fails*: regression to the mean gives
#   over-smooth images; generalises poorly across scanners. `camsnet-2017`,
#   `resnet-bs-2021`, `debonet-2022`, `xu-netfullsharp-2025`.
# - **GAN**: a generator judged by a discriminator (often conditional,
#   pix2pix-style). *Strengths*: sharp, realistic texture. *Fails*: can invent or
#   erase structures; training is unstable. `mca-net-2018`, `eslami-2020`,
#   `rsgan-2022`.
# - **Domain adaptation**: transfer from a source where the bones are known
#   (CT-derived DRRs, another population) to real CXRs. *Strengths*: needs no
#   paired dual-energy data. *Fails*: the gap between simulated and real images
#   remains. `li-ct-priors-2020`, `decgan-2019`, `hashimoto-2024`.
# - **Distillation**: a student learns from a teacher's outputs. *Strengths*:
#   makes use of imperfect or scarce dual-energy targets. *Fails*: inherits the
#   teacher's errors. `liu-lateral-des-2023`.
# - **Diffusion**: denoise step by step towards the soft tissue, conditioned on
#   the CXR. *Strengths*: detail at high resolution, stable training. *Fails*:
#   slow sampling (hundreds of network calls); may hallucinate. `bs-diff-2024`,
#   `bs-ldm-2025`, `gl-lcm-2025`, `debonedit-2026`.
#
# The families overlap (Gusarev et al. test an autoencoder-like network and a
# CNN; one TMI 2025 paper is listed under both GAN and CNN, stored once with
# `also_in`). Our database follows the survey's grouping where it has one and
# marks our own assignment as unverified where it does not.

# %%
families = ["autoencoder", "domain-adaptation", "distillation", "gan", "cnn", "diffusion"]
family_counts = table[table["category"].isin(families)].groupby("category").size()
print(family_counts.reindex(families).to_string())
check((family_counts.reindex(families) >= 1).all(),
      f"each of the {len(families)} learned families has papers, the smallest {family_counts.min()}")

# %% [markdown]
# ### Diffusion and BS-LDM
# A diffusion model learns to undo noise: training adds Gaussian noise to the
# target, the network predicts that noise, and sampling starts from pure noise
# and removes it step by step, each step conditioned on the radiograph. BS-Diff
# (ISBI 2024) did this in pixel space; BS-LDM (JBHI 2025) moves it into the
# latent space of a VQ autoencoder (ML-VQGAN, 1024² → 4×128×128), adds offset
# noise in training and temporal adaptive thresholding in sampling; GL-LCM
# (MICCAI 2025) replaces the 1000-step sampler by a 50-step latent consistency
# model. Notebooks 06–08 rebuild BS-LDM.

# %%
timings = pd.DataFrame(
    {"steps": [1000, 1000, 50], "parameters (M)": [254.7, 421.3, 436.9],
     "seconds per image": [108.86, 84.62, 8.54]},
    index=["BS-Diff", "BS-LDM", "GL-LCM"],
)
timings  # GL-LCM README, SZCH-X-Rays; the hardware is not stated

# %% [markdown]
# ## 5 · The field in numbers
# Papers per year, by category: conventional methods until about 2016, then the
# learned families from 2017, with diffusion from 2024.

# %%
fig = survey.plot_papers_per_year(papers)
plt.show()

# %%
learned = table[table["category"].isin(families)]
check(learned["year"].min() >= 2017,
      f"learned methods begin in {learned['year'].min()}, with CamsNet and Gusarev et al.")
check(table.loc[table["category"] == "diffusion", "year"].min() == 2024, "diffusion arrives in 2024, with BS-Diff")

# %% [markdown]
# Which data does the field rest on? The entries name datasets as their sources
# do; `survey.dataset_family` groups the names. JSRT with its algorithmic
# BSE-JSRT targets and private dual-energy sets dominate; SZCH-X-Rays is the
# largest public set of real dual-energy pairs.

# %%
fig = survey.plot_datasets(papers)
plt.show()

# %% [markdown]
# ### Reported PSNR and BSR, read with care
# Below are the PSNR and BSR (bone suppression ratio) values the entries report.
# **These numbers are not comparable across rows.** They come from different
# datasets and splits (private dual-energy sets, JSRT/BSE-JSRT, SZCH-X-Rays),
# different resolutions (256² to 1024²), different intensity conventions and
# different metric code. Filled markers are a paper's own numbers; hollow
# markers are re-evaluations by other authors (here mostly GL-LCM's table, which
# re-ran every baseline at 1024² with the same float metric code: the only
# like-for-like comparison in the figure).

# %%
fig = survey.plot_reported_metrics(papers)
plt.show()

# %% [markdown]
# One example makes the point. BS-LDM's paper reports PSNR 33.22 dB on
# SZCH-X-Rays; the same authors' later re-evaluation with corrected float code
# gives 31.95 dB for the same method.

# %%
reported = survey.metrics_frame(papers)
bs_ldm_psnr = reported[(reported["id"] == "bs-ldm-2025") & (reported["metric"] == "PSNR")
                       & (reported["dataset"] == "SZCH-X-Rays")]
bs_ldm_psnr[["value", "source", "resolution"]]

# %%
own = bs_ldm_psnr.loc[bs_ldm_psnr["source"] == "paper", "value"].item()
rerun = bs_ldm_psnr.loc[bs_ldm_psnr["source"] == "re-evaluation", "value"].item()
print(f"BS-LDM, SZCH-X-Rays: paper {own:.2f} dB, re-evaluation {rerun:.2f} dB, gap {own - rerun:.2f} dB")
check(own - rerun > 1.0, f"BS-LDM's own PSNR is {own - rerun:.2f} dB above its re-evaluation: more than 1 dB")

# %% [markdown]
# One candidate explanation for a gap of that sign (a different test split could
# explain part of it) is the official metric script. It stores both images as
# 8-bit integers and computes the mean of `(g - p) ** 2` in 8-bit arithmetic.
# The difference wraps around first (−3 is stored as 253), but that is not what
# flatters: squared as an ordinary integer, $253^2 = 64009$ would make the error
# look *larger*, and modulo 256 it gives $64009 \equiv 9$, the right square. What
# inflates the PSNR is the wrapped **square**: every squared error is taken
# modulo 256, so it can never exceed 255, and an error of $e$ grey levels counts
# as $e^2 \bmod 256$ instead of $e^2$: right below 16 grey levels, too small
# from 16 on. Notebook 09 measures every method the same way, in float.

# %%
errors = np.array([3, 10, 15, 16, 20, 40], dtype=np.uint8)
target = np.full(len(errors), 100, dtype=np.uint8)
prediction = target + errors  # a prediction e grey levels too bright
difference = target - prediction  # uint8: wraps around
squared = difference**2  # uint8: wraps around again, modulo 256
pd.DataFrame({"e": errors, "e²": errors.astype(int) ** 2, "uint8 g − p": difference,
              "(g − p)² in int": difference.astype(int) ** 2, "uint8 (g − p)²": squared})

# %% [markdown]
# On a whole image: a target of random grey values and a prediction that misses
# every pixel by ±20 grey levels, scored both ways (`bs_lib.metrics` holds the
# official formula as `psnr_uint8_official`, next to the float `psnr`).

# %%
from bs_lib import metrics

flat_target = np.random.default_rng(SEED).uniform(0.2, 0.8, (64, 64))
off_by_20 = flat_target + np.random.default_rng(SEED + 1).choice([-20, 20], flat_target.shape) / 255
float_psnr, official_psnr = metrics.psnr(off_by_20, flat_target), metrics.psnr_uint8_official(off_by_20, flat_target)
print(f"±20 grey levels everywhere: float PSNR {float_psnr:.1f} dB, official uint8 PSNR {official_psnr:.1f} dB")
check((squared.astype(int) == errors.astype(int) ** 2 % 256).all()
      and (difference.astype(int) ** 2 >= errors.astype(int) ** 2).all(),
      "the uint8 square is e² mod 256, while the wrapped difference squared in int is never below e²: "
      "the inflation comes from the square")
check(official_psnr > float_psnr + 3,
      f"an error of 20 grey levels counts as 144 instead of 400: the official PSNR is "
      f"{official_psnr - float_psnr:.1f} dB too high")

# %% [markdown]
# ## 6 · Adjacent fields
# Bone suppression borrows from, and lends to, neighbouring problems. The
# database keeps them as their own categories:
#
# - **cross-modality synthesis** (MR ↔ CT, low-dose → standard-dose, CT kernel
#   conversion): the same image-to-image problem with other physics;
# - **medical diffusion models** (PET, MRI, echocardiography): the techniques
#   BS-LDM builds on;
# - **segmentation** (UNet++, learned augmentation): lung masks for lung-region
#   metrics, and the nested U-Net of notebook 03;
# - **X-ray pre-training and report generation**: foundation models trained on
#   millions of radiographs, and the text a bone-suppressed image might feed;
# - **datasets** beyond chest radiographs, such as the BS-80K bone-scan set.
#
# Most adjacent entries are plain citations whose expansions and venues still
# need checking: their `evidence` says so.

# %%
adjacent = table[table["group"] == "adjacent field"]
adjacent.groupby("category", sort=False).agg(papers=("id", "size"), first=("year", "min"), last=("year", "max"))

# %%
check(set(adjacent["category"]) >= {"cross-modality-synthesis", "medical-diffusion", "report-generation"},
      f"{len(adjacent)} papers of adjacent fields, from cross-modality synthesis to report generation")

# %% [markdown]
# ## 7 · A reading path
# Read in this order; each entry's file holds our summary (problem, method, key
# idea, results, limitations) and its links.
#
# 1. **The problem**: a reader study with commercial software,
#    [li-bsi-nodules-2011](../papers/li-bsi-nodules-2011.yaml), and a
#    conventional method, [suzuki-mtann-2006](../papers/suzuki-mtann-2006.yaml).
# 2. **Where the targets come from**: [juhasz-2010](../papers/juhasz-2010.yaml)
#    (BSE-JSRT) and the dual-energy data of
#    [gusarev-2017](../papers/gusarev-2017.yaml).
# 3. **The first learned methods**: [camsnet-2017](../papers/camsnet-2017.yaml)
#    and [gusarev-2017](../papers/gusarev-2017.yaml), then a GAN,
#    [mca-net-2018](../papers/mca-net-2018.yaml).
# 4. **Learning without paired data**: [li-ct-priors-2020](../papers/li-ct-priors-2020.yaml).
# 5. **Does it help a downstream task?**
#    [resnet-bs-2021](../papers/resnet-bs-2021.yaml) (tuberculosis findings).
# 6. **Diffusion**: [bs-diff-2024](../papers/bs-diff-2024.yaml),
#    [bs-ldm-2025](../papers/bs-ldm-2025.yaml), then the faster
#    [gl-lcm-2025](../papers/gl-lcm-2025.yaml).
#
# The survey list's highlights (⭐ in `papers/README.md`) are a good second pass:

# %%
table[table["highlighted"]][["year", "id", "authors", "category"]].sort_values(["year", "id"])

# %%
reading_path = ["li-bsi-nodules-2011", "suzuki-mtann-2006", "juhasz-2010", "gusarev-2017", "camsnet-2017",
                "mca-net-2018", "li-ct-priors-2020", "resnet-bs-2021", "bs-diff-2024", "bs-ldm-2025",
                "gl-lcm-2025"]
check(all(paper_id in by_id for paper_id in reading_path),
      f"all {len(reading_path)} papers of the reading path are in papers/")

# %% [markdown]
# ## 8 · Open problems
# - **Comparable numbers.** Few papers share a dataset, a split, a resolution and
#   metric code. A common benchmark with an identity baseline (notebook 09) is
#   the first step; BSR itself clips one-sidedly and deserves scrutiny.
# - **Real targets.** BSE-JSRT's targets are algorithmic; real dual-energy pairs
#   are few (SZCH-X-Rays, 741 public pairs) and come from single sites.
# - **Generalisation.** Other scanners, paediatric and lateral views, devices and
#   lines, and patients whose anatomy a model never saw.
# - **Faithfulness.** Generative models can remove a lesion with the bone or
#   invent texture; metrics that see this, and reader studies that test it,
#   matter more than another 0.3 dB.
# - **Speed.** Diffusion sampling takes seconds to minutes per image; consistency
#   models and fewer steps trade speed for quality.
# - **Clinical value.** The downstream gain in detection is modest and measured
#   on small reader studies.
#
# ## Summary
# - Bone suppression removes ribs and clavicles from a chest radiograph so that
#   lesions behind them show; dual-energy subtraction does it in hardware by
#   cancelling bone in a weighted difference of two exposures.
# - Conventional and commercial methods model the bones; learned methods fall
#   into five families plus manual suppression, and diffusion models now lead.
# - Reported PSNR and BSR values are not comparable across papers: datasets,
#   resolutions and metric code differ, and even one method's numbers move by
#   more than 1 dB between its paper and a re-evaluation.
# - The survey is data: `bs_lib.course.survey` validates every entry and rebuilds the
#   index and figures, so adding a paper takes three steps.
#
# ## Exercises
# ★ easy, ★★ medium, ★★★ hard.
#
# 1. ★★ Add a paper to a copy of the database with `survey.new_entry` (the library
#    behind `python -m bs_lib papers new`), check the copy, and rebuild its
#    index. Which section of the index does your paper land in?
#
#    <details><summary>Solution</summary>
#
#    The first solution cell below copies `papers/` to a temporary folder,
#    scaffolds an entry there, validates the folder and renders the index. It
#    prints the new file's name and the count of valid entries (one more than
#    `papers/`, no errors); the entry still carries TODO summaries, which
#    `papers check` reports as warnings, and it lands under *Generative
#    adversarial networks*, sorted by year.
#    On the command line: `python -m bs_lib papers new --folder /tmp/papers ...`,
#    then `python -m bs_lib papers build --folder /tmp/papers`.
#    </details>
#
# 2. ★ Which bone-suppression families have public code for at least one paper,
#    and which have none?
#
#    <details><summary>Solution</summary>
#
#    Group `survey.papers_frame(papers)` by category and take the maximum of
#    `has_code`: the second solution cell prints one line per category. In the
#    database, the manual, commercial, distillation and application entries have
#    no public code; every learned family but distillation has some.
#    </details>
#
# 3. ★★ BS-LDM's re-evaluated BSR on SZCH-X-Rays is stored as 94.159 %; another
#    source gives 0.976. Why can't you subtract them to measure an improvement?
#
#    <details><summary>Solution</summary>
#
#    The third solution cell prints BS-LDM's two BSR rows for SZCH-X-Rays with
#    their unit, source and note. They differ in unit (percent vs fraction:
#    `Metric.value_in` converts), but more importantly in source: 0.976 comes
#    from a third-party summary of the paper, 94.159 % from the authors' re-run
#    with different code. Look at each metric's `source` and `note` before
#    comparing.
#    </details>
#
# 4. ★★★ Plot the official uint8 PSNR of a prediction that misses every pixel
#    by ±e grey levels, for e = 1 … 60, beside the float PSNR. Is it even a
#    decreasing function of the error? Where does it say "perfect"?
#
#    <details><summary>Solution</summary>
#
#    The fourth solution cell draws both curves and prints where the official
#    one is infinite. The float PSNR falls steadily with e. The official one
#    follows it up to e = 15, then saw-tooths: it is infinite at e = 16, 32 and
#    48, where $e^2$ is a multiple of 256 and every wrapped square is 0, and
#    between those it climbs back to tens of dB. A metric that calls a
#    16-grey-level error perfect cannot rank methods.
#    </details>

# %% tags=["solution"]
# Solution to exercise 1
import shutil
import tempfile

with tempfile.TemporaryDirectory() as scratch:
    folder = pathlib.Path(scratch) / "papers"
    shutil.copytree(survey.PAPERS_DIR, folder, ignore=shutil.ignore_patterns("figures", "README.md"))
    new_path, warnings = survey.new_entry(
        folder, None, title="A Student's Bone Suppression GAN", authors=["A. Student", "et al."],
        year=2026, venue="arXiv", category="gan",
    )
    valid, problems = survey.check_folder(folder)
    index = survey.render_index(valid)
    print(new_path.name, "|", len(valid), "entries |", len(survey.errors_only(problems)), "errors")
    gan_section = index.split("### Generative adversarial networks")[1].split("### ")[0]
    check(new_path.name in gan_section, f"{new_path.name} lands in the index's GAN section")
    check(len(valid) == len(papers) + 1 and not survey.errors_only(problems),
          f"the copy holds {len(valid)} valid papers, one more than papers/, and no errors")
    check([w.severity for w in warnings] == ["warning"] * len(survey.SUMMARY_KEYS),
          f"its {len(survey.SUMMARY_KEYS)} TODO summaries are warnings, not errors")

# %% tags=["solution"]
# Solution to exercise 2
code_by_family = table[table["group"] == "bone suppression"].groupby("category")["has_code"].max()
print(code_by_family.to_string())
check(not code_by_family[["manual", "commercial", "distillation"]].any() and code_by_family["diffusion"],
      "no manual, commercial or distillation paper has public code; diffusion has")

# %% tags=["solution"]
# Solution to exercise 3
bs_ldm_bsr = reported[(reported["id"] == "bs-ldm-2025") & (reported["metric"] == "BSR")
                      & (reported["dataset"] == "SZCH-X-Rays")]
for _, row in bs_ldm_bsr.iterrows():
    print(f"{row['value']} {row['unit']} ({row['source']}): {row['note']}")

# %% tags=["solution"]
# Solution to exercise 4
grey_levels = np.arange(1, 61)
mid_grey = np.random.default_rng(SEED).uniform(0.25, 0.75, (64, 64))  # room for ±60 grey levels inside [0, 1]
signs = np.random.default_rng(SEED + 1).choice([-1, 1], mid_grey.shape)
curves = {"float PSNR": [], "official uint8 PSNR": []}
for e in grey_levels:
    missed = mid_grey + signs * e / 255
    curves["float PSNR"].append(metrics.psnr(missed, mid_grey))
    curves["official uint8 PSNR"].append(metrics.psnr_uint8_official(missed, mid_grey))
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
for label, values in curves.items():
    values = np.array(values)
    ax.plot(grey_levels, np.where(np.isfinite(values), values, np.nan), label=label)
perfect = grey_levels[~np.isfinite(curves["official uint8 PSNR"])]
ax.vlines(perfect, 10, 60, colors="grey", linestyles=":", label="official PSNR infinite")
ax.set(xlabel="error e (grey levels)", ylabel="PSNR (dB)", ylim=(10, 60))
ax.legend(fontsize=8)
plt.show()
print("the official PSNR is infinite at e =", perfect.tolist())

# %% [markdown]
# ## References
# - K. Suzuki et al., *Image-Processing Technique for Suppressing Ribs in Chest
#   Radiographs by Means of MTANN*, IEEE TMI 2006.
#   [papers/suzuki-mtann-2006](../papers/suzuki-mtann-2006.yaml)
# - S. Juhász et al., *Segmentation of Anatomical Structures on Chest
#   Radiographs*, MEDICON 2010. [papers/juhasz-2010](../papers/juhasz-2010.yaml)
# - F. Li et al., *Improved Detection of Subtle Lung Nodules by Use of Chest
#   Radiographs With Bone Suppression Imaging*, AJR 2011.
#   [papers/li-bsi-nodules-2011](../papers/li-bsi-nodules-2011.yaml)
# - W. Yang et al., *Cascade of multi-scale convolutional neural networks for
#   bone suppression of chest radiographs in gradient domain*, Medical Image
#   Analysis 2017. [papers/camsnet-2017](../papers/camsnet-2017.yaml)
# - M. Gusarev et al., *Deep Learning Models for Bone Suppression in Chest
#   Radiographs*, IEEE CIBCB 2017. [papers/gusarev-2017](../papers/gusarev-2017.yaml)
# - B. Zhou et al., *Generation of Virtual Dual Energy Images from Standard
#   Single-Shot Radiographs using Multi-scale and Conditional Adversarial
#   Network*, ACCV 2018. [papers/mca-net-2018](../papers/mca-net-2018.yaml)
# - H. Li et al., *High-Resolution Chest X-Ray Bone Suppression Using Unpaired CT
#   Structural Priors*, IEEE TMI 2020. [papers/li-ct-priors-2020](../papers/li-ct-priors-2020.yaml)
# - S. Rajaraman et al., *Chest X-ray Bone Suppression for Improving
#   Classification of Tuberculosis-Consistent Findings*, Diagnostics 2021.
#   [papers/resnet-bs-2021](../papers/resnet-bs-2021.yaml)
# - Z. Chen et al., *BS-Diff: Effective Bone Suppression Using Conditional
#   Diffusion Models from Chest X-Ray Images*, ISBI 2024.
#   [papers/bs-diff-2024](../papers/bs-diff-2024.yaml)
# - Y. Sun et al., *BS-LDM: Effective Bone Suppression in High-Resolution Chest
#   X-Ray Images with Conditional Latent Diffusion Models*, IEEE JBHI 2025.
#   [papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)
# - Y. Sun et al., *GL-LCM: Global-Local Latent Consistency Models for Fast
#   High-Resolution Bone Suppression*, MICCAI 2025. [papers/gl-lcm-2025](../papers/gl-lcm-2025.yaml)
# - The full, generated index of every entry: [papers/README.md](../papers/README.md)
