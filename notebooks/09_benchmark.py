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
# # 09 · The benchmark: every method, one split
#
# Notebooks 01–08 each measured their own methods, each on its own few images. Now the
# question a reader of any paper asks: *which method is best?* This notebook answers it
# the only fair way — every method of the course (the do-nothing baseline, the manual
# methods, the autoencoders, CNNs, GANs, the distilled student, the adapted network and
# BS-LDM) trained with one engine and tested on **the same saved test images** with
# **the same metric code**, beside its cost: parameters, time per image, training budget.
# Then it asks what such a table can and cannot say, and puts the published numbers
# beside ours, clearly apart, because they were measured on other data.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/09_benchmark.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 60–90 s (phantom, 64², a quarter of each smoke budget, 8 test images) |
# | `colab` | one T4 GPU | ≈ 5 min after 03–08 on Drive, 39 alone (estimated: colab_times.md) |
# | `full` | one A100/H100 | days (1024², every full config) |
#
# ## Prerequisites
# - notebook 01: PSNR, SSIM, the official and the symmetric BSR, the identity baseline;
# - notebook 02: patient-wise splits and leakage;
# - notebooks 03–08: the methods being compared (each row links back to its notebook's family).
#
# ## Learning goals
# - run a benchmark whose numbers can be compared: one split, one metric code, one baseline;
# - read a leaderboard with its cost columns, and say which differences it can resolve;
# - explain four ways a bone-suppression table misleads: the identity baseline, BSR's one-sided
#   clip, uint8 PSNR, and whole-image metrics that hide the lungs;
# - put published numbers beside your own without mixing them.

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
# `papermill 09_benchmark.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %%
import json
import tempfile
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from bs_lib import evaluate, metrics, runs
from bs_lib.claims import check

SIZE = run.profile.image_size
SMOKE = PROFILE == "smoke"
DATASET = "szch-x-rays" if PROFILE == "full" else "phantom"  # the test split of the data the configs train on
NUM_TEST = 8 if SMOKE else evaluate.DEFAULT_TEST_IMAGES[PROFILE]  # None: the whole test split
STEPS_SCALE = 1 / 4 if SMOKE else 1.0  # smoke: a quarter of each config's (already tiny) budget
SHORTENED = 1 / 4  # colab, run alone: methods without a finished run train a quarter of their steps (< 1 h on a T4)
OUTPUT = pathlib.Path(tempfile.mkdtemp(prefix="bs-09-")) / f"benchmark_{PROFILE}_{SIZE}"
started = time.perf_counter()

# %% [markdown]
# ## 1 · The rules
#
# A number in a leaderboard is only comparable with its neighbours when everything but
# the method is the same. The benchmark (`bs_lib.evaluate`) fixes:
#
# 1. **One split.** The test images are chosen once and saved (`*_split.json`, patients
#    never shared with training); every method predicts exactly these images.
# 2. **One metric code.** `bs_lib.metrics.evaluate` on each test image, over the whole image
#    and inside the lung mask; then mean ± standard deviation over the $n$ images,
#    $\bar m = \frac1n\sum_i m_i$, $\ \sigma = \sqrt{\frac1n\sum_i (m_i-\bar m)^2}$.
# 3. **The identity baseline** $\hat s = x$: the radiograph itself, no suppression. Every
#    method must beat it; a metric on which it scores well is a metric to distrust.
# 4. **Cost beside quality**: the parameters one prediction touches (a GAN's discriminator
#    or a distillation teacher are not counted), the time per image (one warm-up batch
#    first, no gradients, the GPU synchronised before the clock stops), and the training
#    budget — optimiser steps × batch = images seen, and wall time.
#
# The metrics, with prediction $p$, target $g$, radiograph $c$ and bone $b = c - g$:
#
# $$\mathrm{PSNR} = 10\log_{10}\frac{1}{\mathrm{mean}\,(g-p)^2},\qquad
#   \mathrm{BSR} = 1 - \frac{\sum \max(g - p',0)^2}{\sum b^2},\qquad
#   \mathrm{BSR}_{\text{sym}} = 1 - \frac{\sum (g - p')^2}{\sum b^2},$$
#
# where $p' = p + \mathrm{mean}(g - p)$ is the prediction shifted to the target's mean. The
# official BSR clips one side; the symmetric one (this course's) does not — section 5 shows
# why that matters. Here are the test images every method will see:

# %%
samples = evaluate.load_test_samples(DATASET, SIZE, SEED, NUM_TEST)
split_file = evaluate.save_benchmark_split(OUTPUT.with_name(OUTPUT.name + "_split.json"), DATASET, SEED, samples)
print(f"{len(samples)} test images of {SIZE}², split saved to {split_file.name}")

fig, axes = plt.subplots(2, 4, figsize=(10, 5))
for axis, sample in zip(axes.flat, samples, strict=False):
    axis.imshow(sample["cxr"][0], cmap="gray", vmin=0, vmax=1)
    axis.contour(sample["masks"]["lungs"][0].float(), levels=[0.5], colors="tab:cyan", linewidths=0.8)
    axis.set_title(str(sample["id"]), fontsize=8)
    axis.axis("off")
fig.suptitle("the test images (lung mask in cyan: the region metrics look only inside it)")
plt.tight_layout()
plt.show()

# %%
saved = json.loads(split_file.read_text())
check(saved["unit"] == "patient" and len(saved["splits"]["test"]) == len(samples),
      f"the saved split is by patient and lists these {len(samples)} test images")

# %% [markdown]
# ## 2 · Every method
#
# `evaluate.all_methods()` lists them: the identity, the manual methods of notebook 01, and
# every method with a training config in `bs_lib/configs/` — except `ml_vqgan`, BS-LDM's
# autoencoder, which reconstructs images rather than suppressing bones. Each learned method
# is trained by `train_or_reuse` from its profile config (a finished run of *exactly* that
# config is reused, so running this notebook twice trains once) and loaded with its EMA
# weights when it has them.
#
# In `smoke`, training everything at full smoke budget would take minutes on a CPU, so each
# method gets a quarter of its smoke steps, and BS-LDM joins only when notebooks 06–08 have
# left finished runs on this machine. In `colab`, the runs of notebooks 03–08 are reused when
# they are here (Drive mounted); run alone, every method without a finished run trains for a
# quarter of its colab steps, so the notebook fits in an hour on a T4. The cell says which
# methods that was, and their rows (Cost table) show the shorter budget: those numbers
# measure a quarter of the training, not the recipe. The committed results of section 6 use four times the
# smoke budgets, at 128². On the command line the run of this cell is
#
# ```
# python -m bs_lib benchmark --profile smoke --steps-scale 0.25 --num-test 8
# ```

# %%
methods = evaluate.all_methods()
bs_ldm_finished = runs.finished_bs_ldm(PROFILE, seed=SEED, image_size=SIZE, own_suffix=runs.NOTEBOOK_08) is not None
if SMOKE and not bs_ldm_finished:
    methods.remove("bs_ldm")
    print("BS-LDM left out: no finished runs of notebooks 06-08 here (run them first, or see section 6)")
TRAIN_STEPS = {}
if PROFILE == "colab":
    TRAIN_STEPS = evaluate.shortened_budgets(methods, PROFILE, image_size=SIZE, seed=SEED, runs=config.runs_dir(),
                                             fraction=SHORTENED, bs_ldm_suffix=runs.NOTEBOOK_08)
    shortened = [m for m in methods if m in TRAIN_STEPS]
    if shortened:
        print(f"no finished runs for {', '.join(shortened)}: trained here at a quarter of their colab steps, "
              f"so their rows measure that shorter training")
print("methods:", ", ".join(methods))

result = evaluate.run_benchmark(methods, PROFILE, image_size=SIZE, num_test=NUM_TEST, seed=SEED,
                                train_steps=TRAIN_STEPS, steps_scale=STEPS_SCALE, runs=config.runs_dir(),
                                device=run.device, dataset=DATASET, split_file=split_file,
                                bs_ldm_suffix=runs.NOTEBOOK_08,
                                command=f"notebooks/09_benchmark.ipynb (PROFILE={PROFILE!r}, SEED={SEED})")
print(f"benchmark done in {time.perf_counter() - started:.0f} s")

# %% [markdown]
# ## 3 · The leaderboard
#
# Sorted by mean whole-image PSNR, best first; the best mean of each column in bold. The
# identity row stays in that order, so everything below it is worse than doing nothing
# (on PSNR). The last column says whether a method beats the identity on both PSNR and the
# symmetric BSR — the course's bar for "has learned to suppress bone". The column before it
# is the same comparison image by image: the mean PSNR gain over doing nothing, with a 95 %
# bootstrap interval over the test images (`evaluate.paired_difference`). Pairing removes the
# spread between easy and hard images, which is most of each column's ±.

# %%
display(Markdown(result.leaderboard_markdown()))

# %%
ids = [str(s["id"]) for s in samples]
identity = result.result("identity")
direct = metrics.evaluate(samples[0]["cxr"], samples[0]["soft"], samples[0]["cxr"])
leader = result.ranked()[0]
check(all([row["id"] for row in r.per_image] == ids for r in result.results),
      f"all {len(result.results)} methods were scored on the same {len(ids)} images, in the same order")
check(abs(identity.per_image[0]["psnr"] - direct["psnr"]) < 1e-9,
      "the table's numbers are the metric code's own, to 1e-9 dB")
check(leader.name != "identity", f"doing nothing is not the best: {leader.label} leads by "
                                 f"{leader.summary()['psnr'][0] - identity.summary()['psnr'][0]:.1f} dB PSNR")

# %% [markdown]
# The same three test cases for every method (rows in leaderboard order), then the error
# maps $\hat s - s$: red where a prediction is too bright — bone left behind — and blue
# where it is too dark — bone removed that was not there, or soft tissue taken with it.

# %%
evaluate.case_grid(result)
plt.show()

# %%
evaluate.difference_maps(result)
plt.show()

# %% [markdown]
# ## 4 · Failure cases
#
# Means hide the worst image. For each method, the test image on which its PSNR is lowest,
# and how far that is below its mean: a method with a wide spread is one a radiologist
# cannot trust on *this* image, whatever its average.

# %%
frame = result.per_image_frame()
worst = frame.loc[frame.groupby("method")["psnr"].idxmin(), ["method", "id", "psnr"]].set_index("method")
worst["mean PSNR"] = frame.groupby("method")["psnr"].mean()
worst["gap (dB)"] = worst["psnr"] - worst["mean PSNR"]
best = result.ranked()[0]
case = ids.index(worst.loc[best.name, "id"])
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
error = (best.predictions[case] - samples[case]["soft"])[0]
reach = float(error.abs().max())
for axis, image, title, cmap, limits in [
        (axes[0], samples[case]["cxr"][0], "radiograph", "gray", (0, 1)),
        (axes[1], best.predictions[case][0], f"{best.label}: its worst case", "gray", (0, 1)),
        (axes[2], error, "prediction − truth", "coolwarm", (-reach, reach))]:
    axis.imshow(image, cmap=cmap, vmin=limits[0], vmax=limits[1])
    axis.set_title(title, fontsize=9)
    axis.axis("off")
plt.tight_layout()
plt.show()
worst.round(2)

# %%
check((worst["gap (dB)"] < 0).all(), f"every method has images below its mean PSNR; the leader's worst lies "
                                     f"{-worst.loc[leader.name, 'gap (dB)']:.1f} dB below")

# %% [markdown]
# ## 5 · What the numbers can and cannot say
#
# **The identity baseline.** Doing nothing scores far from zero on every metric: the soft
# tissue is most of the radiograph, so PSNR and SSIM start high, and the official BSR of the
# identity is high too. A table without this row gives no scale.
#
# **BSR's one-sided clip.** The official BSR keeps only $\max(g - p', 0)$: pixels where the
# prediction is *darker* than the truth. Bone left in the image makes it *brighter*, which
# the clip ignores. The cell below leaves half of the bone in the prediction,
# $p = g + \tfrac12 b$, and compares both BSRs:

# %%
sample = samples[0]
half_left = (sample["soft"] + 0.5 * (sample["cxr"] - sample["soft"])).clamp(0, 1)
clip = pd.DataFrame({
    "identity (all bone left)": {"official BSR": metrics.bsr(sample["cxr"], sample["soft"], sample["cxr"]),
                                 "symmetric BSR": metrics.bsr_symmetric(sample["cxr"], sample["soft"], sample["cxr"])},
    "half the bone left": {"official BSR": metrics.bsr(half_left, sample["soft"], sample["cxr"]),
                           "symmetric BSR": metrics.bsr_symmetric(half_left, sample["soft"], sample["cxr"])},
}).T
clip.round(3)

# %%
check(clip.loc["half the bone left", "official BSR"] > clip.loc["half the bone left", "symmetric BSR"],
      f"with half the bone left, the official BSR reads {clip.loc['half the bone left', 'official BSR']:.2f}, "
      f"the symmetric one {clip.loc['half the bone left', 'symmetric BSR']:.2f}")
check(clip.loc["identity (all bone left)", "official BSR"] > 0.5,
      f"doing nothing scores an official BSR of {clip.loc['identity (all bone left)', 'official BSR']:.2f}")

# %% [markdown]
# **Float vs uint8 PSNR.** The official BS-LDM code computed the squared error on 8-bit
# arrays, where differences wrap around modulo 256: an error of 20 grey levels squared is
# 400, which wraps to 144, so large errors count as small ones and PSNR rises. The course
# computes in float (`psnr`) and keeps the old computation (`psnr_uint8_official`) only to
# show the inflation. Compare the two PSNR columns of the leaderboard: the inflation is not
# the same for every method — it is largest where the errors are large, the identity first —
# so the uint8 number can even reorder a table.
#
# **Whole image vs lungs.** Bone suppression exists for the lung field, where ribs hide
# nodules; the body outline and the mediastinum dominate a whole-image mean. The scatter
# compares each method's PSNR over the whole image with its PSNR inside the lungs.

# %%
summary = pd.DataFrame(result.summary_rows()).set_index("label")
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].scatter(summary["psnr_mean"], summary["psnr_uint8_official_mean"])
low, high = summary["psnr_mean"].min() - 1, summary["psnr_mean"].max() + 1
axes[0].plot([low, high], [low, high], "k:", lw=1)
axes[0].set(xlabel="PSNR, float (dB)", ylabel="PSNR, official uint8 code (dB)", title="uint8 wrap-around inflates")
axes[1].scatter(summary["psnr_mean"], summary["lung/psnr_mean"])
axes[1].plot([low, high], [low, high], "k:", lw=1)
axes[1].set(xlabel="PSNR, whole image (dB)", ylabel="PSNR, lungs only (dB)", title="whole image vs lung field")
for label, row in summary.iterrows():
    axes[0].annotate(label.split(" (")[0], (row["psnr_mean"], row["psnr_uint8_official_mean"]), fontsize=7)
    axes[1].annotate(label.split(" (")[0], (row["psnr_mean"], row["lung/psnr_mean"]), fontsize=7)
plt.tight_layout()
plt.show()

# %%
check({"psnr_uint8_official_mean", "lung/psnr_mean", "lung/bsr_symmetric_mean"} <= set(summary.columns),
      "the summary reports the uint8 PSNR and the lung region beside the whole-image numbers")
inflated, honest = identity.summary()["psnr_uint8_official"][0], identity.summary()["psnr"][0]
check(inflated > honest, f"the wrap-around lifts doing nothing from {honest:.1f} to {inflated:.1f} dB")

# %% [markdown]
# **Small budgets.** In `smoke` every learned method saw a few hundred images for a few
# dozen steps; the ranking says which *recipe* learns fastest on a toy, not which
# *architecture* is best. The standard deviations describe the spread over these few test
# images, not the uncertainty of the method: another seed or another training run moves
# the means too, often by more than the gaps between neighbours. Nor do overlapping ± bands
# make two rows a tie: the spread between easy and hard images is shared by every method. The
# question is answered image by image, with the paired bootstrap interval of the difference
# (`evaluate.paired_difference`): an interval that contains 0 means no detectable difference
# on these images, one that excludes 0 a difference of this sign (for this training run).

# %%
budget = pd.DataFrame({r.label: {"images seen": r.budget.images_seen, "train time (s)": r.budget.wall_time_s,
                                 "PSNR gain over identity (dB)": r.summary()["psnr"][0] - identity.summary()["psnr"][0]}
                       for r in result.results if r.budget.steps}).T
budget.sort_values("images seen").round(2)

# %%
first, second = result.ranked()[:2]
gap, low_gap, high_gap = evaluate.paired_difference(first.values("psnr"), second.values("psnr"))
verdict = "no detectable difference" if low_gap <= 0 <= high_gap else "a detectable difference"
print(f"{first.label} − {second.label}: {evaluate.format_difference(gap, low_gap, high_gap)} dB PSNR "
      f"(95 % paired bootstrap interval over {len(samples)} images): {verdict}")
check(low_gap <= gap <= high_gap, "the mean difference of the two leading rows lies inside its own interval")

# %% [markdown]
# ## 6 · A larger budget: the committed results
#
# `benchmarks/results/benchmark_smoke_128.md` holds the benchmark at 128² with every smoke
# budget ×4, produced by the command recorded at its top (a CPU run of a few tens of
# minutes). Its JSON twin ships with `bs_lib` (a clone reads its own copy), so the table
# is read here wherever the notebook runs, Colab included:

# %%
from bs_lib.resources import course_path

committed = course_path("benchmarks/results/benchmark_smoke_128.json")
document = json.loads(committed.read_text(encoding="utf-8"))
print(document["settings"]["command"])
table = pd.DataFrame(document["summary"]).set_index("label")
columns = ["psnr_mean", "bsr_symmetric_mean", "bsr_mean", "lung/psnr_mean", "parameters", "budget_images_seen"]
display(table[columns].round(3))

# %% [markdown]
# ## 7 · The same models on real radiographs
#
# Every model above learned from the phantom. What is that worth on a real radiograph?
# The six real sample pairs (SZCH-X-Rays radiographs with their dual-energy soft-tissue
# images, downloaded on first use from their public repositories, no account needed)
# answer it, measured by the same code, beside doing nothing. Six images make wide
# intervals, and these pairs have no lung masks, so only whole-image numbers are shown (the
# benchmark never lends the phantom's lung mask to a real image), per source as well.
# Read the gain column with its interval: a model that learned bone on the phantom may
# shift real grey levels or add structure that is not bone, and then does *worse* than
# doing nothing.

# %%
from bs_lib.datasets import real_pairs

if real_pairs(size=SIZE) is not None:
    maskless = [m for m in methods if m != "mask_guided_subtraction"]  # it needs bone masks: real images have none
    on_real = evaluate.run_benchmark(maskless, PROFILE, image_size=SIZE, num_test=None, seed=SEED,
                                     train_steps=TRAIN_STEPS, steps_scale=STEPS_SCALE, runs=config.runs_dir(),
                                     device=run.device, dataset="real-pairs", bs_ldm_suffix=runs.NOTEBOOK_08,
                                     command=f"notebooks/09_benchmark.ipynb, real pairs (PROFILE={PROFILE!r})")
    real_table = pd.DataFrame([{"method": row["label"], "PSNR (dB)": row["psnr_mean"],
                                "BSR sym.": row["bsr_symmetric_mean"],
                                "Δ PSNR vs identity [95 % CI]": evaluate.format_difference(
                                    *row["psnr_gain_over_identity"]) if "psnr_gain_over_identity" in row else "—"}
                               for row in on_real.summary_rows()]).set_index("method")
    print(f"data: {on_real.data}; {on_real.lung_note()}")
    display(real_table.round(3))
    if len(on_real.sources()) > 1:
        display(Markdown(evaluate.markdown_table(*on_real.table("source"))))
else:
    print("Section 7 needs the real sample pairs (see the line above): skipped.")

# %% [markdown]
# ## 8 · Beside the published table — not in it
#
# The best published comparison is the GL-LCM re-evaluation (the BS-LDM authors,
# MICCAI 2025): ten methods, real dual-energy radiographs (SZCH-X-Rays, JSRT), 1024², full
# training, float PSNR. It is shown **apart** from our leaderboard and never ranked with
# it: other data, another resolution, budgets thousands of times larger, the official
# (one-sided) BSR. Read it for the *order of magnitude* of a good result and for which
# families did well there; our phantom numbers answer a different question.

# %%
published = evaluate.published_table("SZCH-X-Rays")
print(published.attrs["title"])
print(published.attrs["caveat"])
published

# %%
check("DIFFERENT DATA" in published.attrs["title"] and "GL-LCM" in published.index,
      f"the published table, {len(published)} methods with GL-LCM, is labelled as different data")
check("GL-LCM" not in result.leaderboard_markdown(), "and none of it enters our leaderboard")

# %% [markdown]
# Everything is also written to disk as the command line writes it: Markdown and HTML
# leaderboards, the per-image CSV and JSON, the figures and the split.

# %%
written = result.save(OUTPUT)
print("\n".join(path.name for path in written))
check({p.suffix for p in written} >= {".md", ".html", ".csv", ".json", ".png"},
      f"{len(written)} files written: Markdown, HTML, CSV, JSON and figures")
plt.close("all")

# %% [markdown]
# ## Summary
# - A benchmark is a set of rules: one saved split, one metric code, the identity baseline,
#   and cost (parameters, time per image, training budget) beside quality.
# - `bs_lib.evaluate` trains (or reuses) every method with one engine and writes the
#   leaderboard as Markdown/HTML, per-image CSV/JSON and figures; `python -m bs_lib benchmark`
#   does the same from the command line.
# - Doing nothing scores well on PSNR, SSIM and especially on the official BSR, whose one-sided
#   clip ignores bone left behind; the symmetric BSR counts it.
# - uint8 PSNR inflates, whole-image metrics dilute the lungs, and on small budgets and few
#   images the gaps between neighbours are often within the noise.
# - Published tables measure other data at another scale: put them beside yours, never in it.
#
# ## Exercises
# ★ easy, ★★ medium, ★★★ hard.
#
# 1. ★ Rank the leaderboard by the lung-region symmetric BSR instead of PSNR. Which methods
#    move, and why might a method be good on the whole image but not in the lungs?
#
#    <details><summary>Solution</summary>
#
#    `pd.DataFrame(result.summary_rows()).sort_values("lung/bsr_symmetric_mean", ascending=False)[["label",
#    "lung/bsr_symmetric_mean", "psnr_mean"]]`. Methods that mostly fix the global brightness
#    (the body outline, the mediastinum) gain PSNR everywhere but leave rib edges in the lungs;
#    the lung metric sees the ribs, the whole-image mean barely does.
#    </details>
#
# 2. ★★ Repeat the benchmark with another seed for two methods, e.g.
#    `evaluate.run_benchmark(["unet", "resnet_bs"], PROFILE, image_size=SIZE, num_test=NUM_TEST, seed=1,
#    steps_scale=STEPS_SCALE, runs=config.runs_dir(), device=run.device)`. How far do their mean PSNRs
#    move, compared with the gap between them?
#
#    <details><summary>Solution</summary>
#
#    The seed changes both the initial weights and the phantom's test chests (its split is a
#    function of the seed), so the identity row moves too: compare each method's *gain over the
#    identity*. On tiny budgets the gains typically move by a few tenths of a dB to more than a dB,
#    often as much as the gap between neighbouring rows. One run per method cannot rank close
#    methods; report the spread over several seeds.
#    </details>
#
# 3. ★★ Leave a fraction $\alpha$ of the bone in the prediction, $p = g + \alpha b$, for
#    $\alpha = 0, 0.25, \dots, 1$, and plot both BSRs against $\alpha$. Where is the official BSR blind?
#
#    <details><summary>Solution</summary>
#
#    ```python
#    alphas = [0, 0.25, 0.5, 0.75, 1]
#    bone = sample["cxr"] - sample["soft"]
#    for name, metric in (("official", metrics.bsr), ("symmetric", metrics.bsr_symmetric)):
#        plt.plot(alphas, [metric(sample["soft"] + a * bone, sample["soft"], sample["cxr"]) for a in alphas],
#                 label=name)
#    plt.legend(); plt.xlabel("fraction of the bone left"); plt.show()
#    ```
#
#    With $p' = g + \alpha(b - \bar b)$, the error is $g - p' = \alpha(\bar b - b)$. The symmetric BSR is
#    $1 - \alpha^2 \sum (b-\bar b)^2/\sum b^2$; the official one keeps only the pixels where
#    $b < \bar b$ — mostly bone-free background, where the error is the small constant $\alpha\bar b$ —
#    so it stays high even at $\alpha = 1$, where nothing was suppressed at all.
#    </details>
#
# 4. ★ Time one method on the GPU with and without `torch.cuda.synchronize()` before stopping the
#    clock. Why does the unsynchronised time look much faster?
#
#    <details><summary>Solution</summary>
#
#    CUDA kernels run asynchronously: without synchronising, the clock stops when the kernels
#    are *queued*, not when they finish. `evaluate.predict_all` synchronises before and after
#    the timed pass, and runs one warm-up batch first (memory allocation, cuDNN autotuning).
#    </details>
#
# ## References
# - Y. Sun et al., *GL-LCM: Global-Local Latent Consistency Models for Fast High-Resolution Bone
#   Suppression*, MICCAI 2025 (the published comparison table). [papers/gl-lcm-2025](../papers/gl-lcm-2025.yaml)
# - Y. Sun et al., *BS-LDM: Effective Bone Suppression in High-Resolution Chest X-Ray Images with
#   Conditional Latent Diffusion Models*, IEEE JBHI 2025 (BSR, the official metric code).
#   [papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)
# - M. Gusarev et al., *Deep Learning Models for Bone Suppression in Chest Radiographs*, CIBCB 2017.
#   [papers/gusarev-2017](../papers/gusarev-2017.yaml)
# - S. Rajaraman et al., *Chest X-ray Bone Suppression for Improving Classification of
#   Tuberculosis-Consistent Findings*, Diagnostics 2021 (ResNet-BS).
#   [papers/resnet-bs-2021](../papers/resnet-bs-2021.yaml)
# - B. Zhou et al., *Generation of Virtual Dual Energy Images from Standard Single-Shot Radiographs
#   using Multi-scale and Conditional Adversarial Network*, ACCV 2018 (MCA-Net).
#   [papers/mca-net-2018](../papers/mca-net-2018.yaml)
# - Z. Chen et al., *BS-Diff: Effective Bone Suppression Using Conditional Diffusion Models from Chest
#   X-Ray Images*, ISBI 2024. [papers/bs-diff-2024](../papers/bs-diff-2024.yaml)
