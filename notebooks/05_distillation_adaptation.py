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
# # 05 · Distillation and domain adaptation
#
# Two practical problems stand between a bone-suppression network and a hospital: the
# best networks are large and slow, and the pairs they learn from are rare, synthetic, or
# from another machine. This notebook answers both with the two remaining families of the
# survey. **Distillation** teaches a large U-Net's skill to a small, fast student and
# measures the speed-up and what it costs in quality. **Domain adaptation** trains on
# paired phantom images and adapts, without a single target label, to unpaired
# radiographs of another domain, by aligning images or features, and measures the gap
# before and after.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/05_distillation_adaptation.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 45 s (phantom, 64², five small training runs) |
# | `colab` | one T4 GPU | ≈ 1 h (256², teacher + student + two adaptation runs) |
# | `full` | one A100/H100 | hours (1024², SZCH-X-Rays) |
#
# ## Learning goals
# - write the distillation loss (target, output and feature terms) and say what each term teaches;
# - train a teacher, distil it into a student, and report the student's speed-up and quality cost;
# - explain domain shift, and the two places to adapt: the images (restyle the source to the target's grey
#   levels and noise) or the features (a gradient reversal layer turns domain-adversarial training into one
#   minimisation);
# - measure the gap between a source and a target domain before and after adaptation;
# - name the failure modes: a student that inherits its teacher's errors, features aligned without being right.

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
# `papermill 05_distillation_adaptation.ipynb out.ipynb -p PROFILE colab`.

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

from bs_lib import metrics
from bs_lib.claims import check
from bs_lib.configs import load_config
from bs_lib.datasets import get_dataset, usable_dataset
from bs_lib.models import adaptation, distillation
from bs_lib.train import build_datasets, build_objective, fit_or_reuse

RUNS = config.runs_dir()  # checkpoints: a finished run is reused, an interrupted one resumed
SIZE = run.profile.image_size
DATA = usable_dataset(run.profile.dataset)  # the phantom, saying so, when the real data is not on this machine
test_set = get_dataset(DATA, split="test", size=SIZE, num_images=16 if PROFILE == "smoke" else None)


def train(method, **overrides):
    """Train ``method`` with its config for this profile; returns the objective (eval mode) and the result."""
    overrides.setdefault("data", DATA)
    cfg = load_config(method, PROFILE, output_dir=str(RUNS), seed=SEED, **overrides)
    config.seed_everything(SEED)
    model = build_objective(cfg)
    result = fit_or_reuse(model, cfg, *build_datasets(cfg))
    print(f"{cfg.name}: {result.final_step} steps in {result.wall_time_s:.1f} s")
    return model.eval(), result


def scores_of(predict, dataset):
    """Mean course metrics of a prediction function over a labelled dataset."""
    rows = []
    for i in range(len(dataset)):
        item = dataset[i]
        estimate = predict(item["cxr"][None].to(run.device)).cpu()[0]
        rows.append({k: float(v) for k, v in metrics.evaluate(estimate, item["soft"], item["cxr"]).items()})
    return pd.DataFrame(rows).mean()


identity = scores_of(lambda cxr: cxr, test_set)

# %% [markdown]
# ## 1 · Distillation: a large teacher, a small student
#
# A large network is accurate but slow; a workstation beside an X-ray unit may need an
# answer in milliseconds. **Knowledge distillation** trains a small *student* $S$ to
# imitate a large, already trained *teacher* $T$ (frozen):
#
# $$\mathcal L_S = \alpha\,\mathcal L_1\big(S(x), s\big) + \beta\,\mathcal L_1\big(S(x), T(x)\big)
#   + \gamma \sum_l \frac{\lVert A_l(f^S_l) - f^T_l\rVert^2}{\lVert f^T_l\rVert^2}.$$
#
# - the **target** term is ordinary supervision;
# - the **output** term asks for the teacher's answer, a smoother target the student can
#   actually reach, defined for every radiograph, also those without a dual-energy pair;
# - the **feature** term (FitNets) asks the student's intermediate features, mapped by a
#   learned 1×1 convolution $A_l$ to the teacher's channel count, to match the teacher's at
#   the same layer (the bottleneck `down_4` and a decoder level `upcat_2`).
#
# The teacher comes first: the distillation config names the teacher's run
# (`bs_lib/configs/distillation.yaml`), and the builder trains it there when its checkpoint
# is missing, then loads it from the checkpoint's own config.

# %%
student, student_result = train("distillation")
teacher = student.teacher
speed = distillation.speed_report(student, image_size=SIZE, batch_size=4)
print({k: f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" for k, v in speed.items()})
check(speed["student_parameters"] < speed["teacher_parameters"],
      f"the student has {speed['teacher_parameters'] / speed['student_parameters']:.0f}× fewer parameters "
      f"than its teacher")
check(speed["speedup"] > 1, f"the student is {speed['speedup']:.1f}× faster than its teacher")

# %% [markdown]
# What does the teacher add? The same small U-Net trained on the targets alone (the `unet`
# config at the student's width) is the fair comparison.

# %%
alone, _ = train("unet", name=f"unet-student-alone-{PROFILE}",
                 method_args={"width": load_config("distillation", PROFILE).method_args["width"]})
distilled = pd.DataFrame({"identity": identity, "teacher": scores_of(teacher.predict, test_set),
                          "student, distilled": scores_of(student.predict, test_set),
                          "student, targets only": scores_of(alone.predict, test_set)}).T
distilled["ms per image"] = [0.0, speed["teacher_ms_per_image"], speed["student_ms_per_image"],
                             speed["student_ms_per_image"]]
distilled["parameters"] = [0, speed["teacher_parameters"], speed["student_parameters"],
                           sum(p.numel() for p in alone.parameters())]
distilled

# %%
student_gain = distilled.loc["student, distilled", "psnr"] - distilled.loc["identity", "psnr"]
quality_cost = distilled.loc["teacher", "psnr"] - distilled.loc["student, distilled", "psnr"]
print(f"the student is {speed['speedup']:.1f}× faster and costs {quality_cost:+.2f} dB PSNR")
check(student_gain > 0, f"the distilled student beats doing nothing by {student_gain:.1f} dB PSNR", trained=True)

# %%
history = pd.DataFrame([h for h in student_result.history if "log/target" in h]).set_index("step")
history[[c for c in ["log/target", "log/teacher", "log/features"] if c in history]].plot(
    subplots=True, figsize=(7, 4.5), title="the three terms of the student's loss")
plt.show()

# %% [markdown]
# ## 2 · Domain adaptation: from the phantom to other radiographs
#
# Synthetic pairs are free; real ones are rare. A model trained on the phantom meets a
# **domain shift** on other radiographs: other grey-level curves, noise, sharpness and
# anatomy, and its quality drops. Radiographs of the new domain *without* targets are
# plentiful. Domain adaptation uses them, in one of two places:
#
# - **align the images** (image level): translate the source pairs into the target's look
#   and train on them, labels still exact. CyCADA learns that translation with a GAN;
#   here it is *measured* from the unlabelled target radiographs: a grey-level curve
#   $T = F_t^{-1}\circ F_s$ that matches the two intensity distributions (quantile
#   matching, the shape of a detector's look-up table) and the noise the target has and
#   the source lacks. A source pair $(x, s)$ becomes $(T(x) + n,\ T(s))$.
# - **align the features** (DANN): a domain classifier $C$ learns to tell from the
#   encoder's features whether an image is synthetic or from the target, and the encoder
#   learns to make that impossible. A **gradient reversal layer** $R_\lambda$ (identity
#   forward, $-\lambda$ times the gradient backward) turns the min-max game into one
#   minimisation:
#
# $$\min_{E,\,D,\,C}\ \mathcal L_1\big(D(E(x_s)), s\big)
#   + w\,\mathrm{BCE}\Big(C\big(R_\lambda(E(x))\big),\ \text{domain}(x)\Big),
#   \qquad \lambda_p = \frac{2}{1+e^{-10p}} - 1 .$$
#
# To *see* whether adaptation works we need a target domain whose answers we know, so the
# experiment below uses a labelled **synthetic stand-in**: other phantom chests seen
# through another detector (another contrast curve, more blur, quantum noise). Its
# targets are used only to measure; training sees its radiographs alone. Section 2.3 then
# tries the same on real radiographs.

# %%
STAND_IN = "shifted-phantom"
target_pairs = adaptation.target_domain_pairs(STAND_IN, split="test", size=SIZE,
                                              num_images=16 if PROFILE == "smoke" else None, seed=SEED)
print("target domain:", target_pairs.domain, f"({len(target_pairs)} labelled pairs to measure the gap)")
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
axes[0].imshow(test_set[0]["cxr"][0], cmap="gray", vmin=0, vmax=1)
axes[0].set_title("source: phantom")
axes[1].imshow(target_pairs[0]["cxr"][0], cmap="gray", vmin=0, vmax=1)
axes[1].set_title("target: stand-in")
for images, label in ((test_set, "source"), (target_pairs, "target")):
    values = torch.cat([images[i]["cxr"].flatten() for i in range(min(8, len(images)))])
    axes[2].hist(values.numpy(), bins=50, alpha=0.6, density=True, label=label)
axes[2].set_title("intensity histograms")
axes[2].legend()
for ax in axes[:2]:
    ax.axis("off")
plt.show()

# %% [markdown]
# ### 2.1 · Three runs of the same U-Net, same budget
# **Before** adaptation (trained on the phantom alone), **image-level** (the phantom pairs
# plus their restyled copies) and **feature-level** (DANN: the domain classifier behind
# gradient reversal). The table measures each on the source test images and on the
# stand-in's, beside doing nothing.

# %%
ADAPT = "bs_lib.models.adaptation:adaptation_dataset"


def adapt(name, target, restyle, domain_weight):
    model, result = train("domain_adaptation", name=f"{name}-{target}-{PROFILE}", data=ADAPT,
                          data_args={"target": target, "restyle": restyle},
                          method_args={"domain_weight": domain_weight})
    return model, result


source_only, _ = adapt("source-only", STAND_IN, restyle=False, domain_weight=0.0)
image_level, _ = adapt("image-level", STAND_IN, restyle=True, domain_weight=0.0)
dann, dann_result = adapt("dann", STAND_IN, restyle=False, domain_weight=0.1)
runs = {"identity": lambda cxr: cxr, "before": source_only.predict, "image-level": image_level.predict,
        "DANN": dann.predict}
gap = pd.DataFrame({(domain, name): scores_of(predict, images) for domain, images in
                    (("source (phantom)", test_set), ("target (stand-in)", target_pairs))
                    for name, predict in runs.items()}).T
gap[["psnr", "ssim", "bsr_symmetric"]].round(3)

# %% [markdown]
# The claims this experiment supports hold, with a margin, for every seed we tried
# (`python -m bs_lib notebooks stress`): restyling the source to the target's look
# gains on the target, and the source is not destroyed on the way.

# %%
psnr = gap["psnr"]
target_gain = psnr[("target (stand-in)", "image-level")] - psnr[("target (stand-in)", "before")]
source_cost = psnr[("source (phantom)", "before")] - psnr[("source (phantom)", "image-level")]
source_kept = psnr[("source (phantom)", "image-level")] - psnr[("source (phantom)", "identity")]
check(target_gain > 0.5, f"restyling the source gains {target_gain:.1f} dB on the target domain", trained=True)
check(source_cost < 3.0, f"and changes the source by only {-source_cost:+.1f} dB (a loss under 3 dB)",
      trained=True)
check(source_kept > 3.0, f"the adapted model still beats doing nothing on the source by {source_kept:.1f} dB",
      trained=True)

# %% [markdown]
# ### 2.2 · Feature alignment: what the domain classifier says
# DANN changed the target by the amount printed below. The domain classifier's accuracy
# tells whether the features were aligned: near 50 % means it can no longer tell the
# domains apart. Early on, while $\lambda$ is small, it learns; then the encoder fights
# back. Aligned is not the same as right: the encoder can satisfy the classifier by
# discarding information, the U-Net's skip connections bypass the aligned bottleneck, and
# the adversarial gradient is noise for the decoder. For dense regression such as bone
# suppression, feature-level alignment is known to be fragile; image-level alignment
# acts where the shift is: in the grey levels and the noise.

# %%
dann_target = psnr[("target (stand-in)", "DANN")] - psnr[("target (stand-in)", "before")]
dann_source = psnr[("source (phantom)", "DANN")] - psnr[("source (phantom)", "before")]
print(f"DANN: {dann_target:+.2f} dB on the target, {dann_source:+.2f} dB on the source")
history = pd.DataFrame([h for h in dann_result.history if "log/domain" in h]).set_index("step")
history[["log/task", "log/domain_accuracy", "log/reversal"]].plot(subplots=True, figsize=(7, 4.5),
                                                                 title="domain-adversarial training")
plt.show()

# %% [markdown]
# ### 2.3 · Real radiographs
# The real test: the six real radiograph / soft-tissue pairs (SZCH-X-Rays samples),
# downloaded on first use from their public repositories (no account needed). Their
# radiographs are the unlabelled target the style is measured on; their soft-tissue
# images only measure. Training and measuring use the same six radiographs, so this
# evaluation is *transductive*, and six images make a wide interval: a demonstration,
# not a benchmark. The paired interval says whether the change is real.

# %%
from bs_lib.datasets import real_pairs as get_real_pairs
from bs_lib.evaluate import paired_difference

real_pairs = get_real_pairs(size=SIZE)  # downloaded on first use (no account); None when offline
if real_pairs is not None:
    real_before, _ = adapt("source-only", "real", restyle=False, domain_weight=0.0)
    real_adapted, _ = adapt("image-level", "real", restyle=True, domain_weight=0.0)
    per_image = {name: [float(metrics.psnr(predict(real_pairs[i]["cxr"][None])[0], real_pairs[i]["soft"]))
                        for i in range(len(real_pairs))]
                 for name, predict in (("identity", lambda cxr: cxr), ("before", real_before.predict),
                                       ("image-level", real_adapted.predict))}
    for name in ("before", "image-level"):
        mean, low, high = paired_difference(per_image[name], per_image["identity"])
        print(f"real pairs, {name}: {sum(per_image[name]) / len(real_pairs):.2f} dB, against doing nothing "
              f"{mean:+.2f} dB [{low:+.2f}, {high:+.2f}]")
    mean, low, high = paired_difference(per_image["image-level"], per_image["before"])
    print(f"real pairs, image-level against before: {mean:+.2f} dB [{low:+.2f}, {high:+.2f}] (95 % interval)")
else:
    print("Section 2.3 needs the real pairs (see the line above): skipped.")

# %% [markdown]
# ## 3 · Failure cases
#
# - **A student that copies the teacher's mistakes.** The output term makes the teacher
#   the target: where the teacher is wrong, the student learns to be wrong. The worst test
#   image of the teacher is usually among the student's worst (below).
# - **Aligned features, wrong answers.** DANN makes features *indistinguishable*, not
#   *correct*: the encoder can satisfy the classifier by discarding information, and the
#   U-Net's skip connections bypass the aligned bottleneck altogether.
# - **A stand-in is not the real thing.** The stand-in's shift is a grey-level curve,
#   blur and noise, exactly what image-level adaptation models, so it is the easy case.
#   Real radiographs differ in anatomy, texture and processing too; only labelled target
#   pairs can tell, and six real pairs (used for adaptation too) make a demonstration,
#   not a benchmark.

# %%
def psnr_per_image(predict, dataset):
    return pd.Series([float(metrics.evaluate(predict(dataset[i]["cxr"][None]).cpu()[0], dataset[i]["soft"],
                                             dataset[i]["cxr"])["psnr"]) for i in range(len(dataset))])


teacher_psnr, student_psnr = psnr_per_image(teacher.predict, test_set), psnr_per_image(student.predict, test_set)
worst = int(teacher_psnr.idxmin())
print(f"teacher's worst image: {worst}; its rank among the student's images: "
      f"{int(student_psnr.rank().loc[worst])} of {len(student_psnr)} (1 = worst)")
item = test_set[worst]
panels = [(item["cxr"][0], "radiograph"), (item["soft"][0], "target"),
          (teacher.predict(item["cxr"][None])[0, 0], f"teacher {teacher_psnr[worst]:.1f} dB"),
          (student.predict(item["cxr"][None])[0, 0], f"student {student_psnr[worst]:.1f} dB")]
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, (image, title) in zip(axes, panels, strict=True):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()
shared_difficulty = teacher_psnr.corr(student_psnr)
check(shared_difficulty > 0.5, f"teacher and student find the same images hard: their per-image PSNRs "
                               f"correlate at r = {shared_difficulty:.2f}", trained=True)

# %% [markdown]
# ## Summary
# - Distillation trains a small student on the teacher's outputs and features as well as on the targets;
#   the student is several times faster, and the teacher's smooth targets often cost less quality than
#   training the small network alone.
# - The teacher is trained first and rebuilt from its checkpoint's own config, so the student always
#   imitates exactly the network that was trained.
# - Image-level adaptation restyles the labelled source pairs to the target's grey levels and noise,
#   measured on unlabelled target radiographs; on a shift of that kind it gains on the target and keeps
#   most of the source.
# - Domain-adversarial training aligns the encoder's features with a domain classifier behind a gradient
#   reversal layer; one optimiser, one backward pass. For dense regression it is fragile: aligned
#   features are not a guarantee of right answers.
# - Measure the gap on labelled target pairs, before and after adaptation, with paired intervals.
#
# ## Exercises
# 1. Distil with the teacher alone (`method_args={"target_weight": 0.0}`): the student never sees a
#    dual-energy target. How close does it get to the distilled student with targets?
#
#    <details><summary>Solution</summary>
#
#    `teacher_only, _ = train("distillation", name="student-teacher-only", method_args={"target_weight": 0.0})`
#    then `scores_of(teacher_only.predict, test_set)`. It usually lands close to the teacher-plus-target
#    student: the teacher's outputs carry most of the signal. This is how distillation uses *unlabelled*
#    radiographs: the teacher labels them.
#    </details>
#
# 2. Switch off feature distillation (`feature_weight: 0`) and then output distillation
#    (`output_weight: 0`). Which term matters more at this budget?
#
#    <details><summary>Solution</summary>
#
#    Train both variants with `train("distillation", name=..., method_args={...})` and compare PSNR. With
#    a student a quarter of the teacher's width, the output term usually matters more; feature matching
#    helps most when the student is deep enough to reproduce the teacher's intermediate representations.
#    </details>
#
# 3. Make the shift harder: `data_args={"target": "shifted-phantom", "shift": {"noise": 0.08, "gamma": 0.6}}`.
#    How do the gap before and after adaptation change? Try `domain_weight` 0.03, 0.1 and 0.3.
#
#    <details><summary>Solution</summary>
#
#    Pass the same `data_args` to `adaptation.target_domain_pairs` to measure. A stronger shift widens the
#    gap before adaptation; a larger domain weight aligns features harder but can cost source accuracy
#    (the task term loses weight). There is rarely one best weight: it trades the two gaps. Image-level
#    adaptation (`restyle=True`) follows a stronger curve and noise, but not a stronger blur: the measured
#    style has no sharpness term. Add one (compare the radial power spectra of the two domains).
#    </details>
#
# 4. Why does the gradient reversal layer multiply by $-\lambda$ in the backward pass only? What would a
#    forward-pass negation do?
#
#    <details><summary>Solution</summary>
#
#    The classifier must see the true features to learn to classify them; only the *encoder* should be
#    pushed the other way. Negating the forward pass would change what the classifier sees (and flip its
#    decision, not its learning): the two players would no longer oppose each other.
#    </details>
#
# ## References
# - G. Hinton, O. Vinyals, J. Dean, *Distilling the Knowledge in a Neural Network*, NIPS workshop 2015.
# - A. Romero et al., *FitNets: Hints for Thin Deep Nets*, ICLR 2015.
# - Y. Liu et al., *Bone suppression of lateral chest x-rays with imperfect and limited dual-energy
#   subtraction images*, CMIG 2023. [papers/liu-lateral-des-2023](../papers/liu-lateral-des-2023.yaml)
# - Y. Ganin, V. Lempitsky, *Unsupervised Domain Adaptation by Backpropagation*, ICML 2015.
# - H. Li et al., *High-Resolution Chest X-Ray Bone Suppression Using Unpaired CT Structural Priors*,
#   IEEE TMI 2020. [papers/li-ct-priors-2020](../papers/li-ct-priors-2020.yaml)
# - Z. Li et al., *Encoding CT Anatomy Knowledge for Unpaired Chest X-ray Image Decomposition*
#   (DecGAN), MICCAI 2019. [papers/decgan-2019](../papers/decgan-2019.yaml)
# - T. Hashimoto et al., *Unsupervised Domain Adaptation for Human and Animal Chest X-Ray Bone
#   Suppression*, ISBI 2024. [papers/hashimoto-2024](../papers/hashimoto-2024.yaml)
