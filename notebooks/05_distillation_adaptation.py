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
# paired phantom images and adapts, without a single real target, to unpaired real
# radiographs, and shows the gap before and after.
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
# - explain domain shift and how a gradient reversal layer turns domain-adversarial training into one
#   minimisation;
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
import tempfile

import matplotlib.pyplot as plt
import pandas as pd
import torch

from bs_lib import metrics
from bs_lib.configs import load_config
from bs_lib.datasets import get_dataset
from bs_lib.models import adaptation, distillation
from bs_lib.train import Trainer, build_datasets, build_objective

RUNS = tempfile.mkdtemp(prefix="bs-distill-") if PROFILE == "smoke" else "runs"  # checkpoints
SIZE = run.profile.image_size
test_set = get_dataset(run.profile.dataset, split="test", size=SIZE, num_images=16 if PROFILE == "smoke" else None)


def train(method, **overrides):
    """Train ``method`` with its config for this profile; returns the objective (eval mode) and the result."""
    overrides.setdefault("data", run.profile.dataset)
    cfg = load_config(method, PROFILE, output_dir=RUNS, seed=SEED, **overrides)
    config.seed_everything(SEED)
    model = build_objective(cfg)
    result = Trainer(model, cfg, *build_datasets(cfg)).fit()
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
assert speed["speedup"] > 1 and speed["student_parameters"] < speed["teacher_parameters"]

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
assert distilled.loc["student, distilled", "psnr"] > distilled.loc["identity", "psnr"]
quality_cost = distilled.loc["teacher", "psnr"] - distilled.loc["student, distilled", "psnr"]
print(f"the student is {speed['speedup']:.1f}× faster and costs {quality_cost:+.2f} dB PSNR")

# %%
history = pd.DataFrame([h for h in student_result.history if "log/target" in h]).set_index("step")
history[[c for c in ["log/target", "log/teacher", "log/features"] if c in history]].plot(
    subplots=True, figsize=(7, 4.5), title="the three terms of the student's loss")
plt.show()

# %% [markdown]
# ## 2 · Domain adaptation: from the phantom to real radiographs
#
# Synthetic pairs are free; real ones are rare. A model trained on the phantom meets a
# **domain shift** on real radiographs: other anatomy, texture, noise and contrast.
# Real radiographs *without* targets are plentiful. **Domain-adversarial training**
# (DANN) uses them: a domain classifier $C$ learns to tell from the encoder's features
# whether an image is synthetic or real, and the encoder learns to make that impossible.
# A **gradient reversal layer** $R_\lambda$ (identity forward, $-\lambda$ times the
# gradient backward) turns the min-max game into one minimisation:
#
# $$\min_{E,\,D,\,C}\ \mathcal L_1\big(D(E(x_s)), s\big)
#   + w\,\mathrm{BCE}\Big(C\big(R_\lambda(E(x))\big),\ \text{domain}(x)\Big),
#   \qquad \lambda_p = \frac{2}{1+e^{-10p}} - 1 .$$
#
# The target domain here: the radiographs of the real sample pairs when this machine has
# them (their targets only *measure* the gap), otherwise a labelled **synthetic stand-in**:
# other phantom chests seen through another detector (more blur, another contrast curve,
# quantum noise).

# %%
data_args = load_config("domain_adaptation", PROFILE).data_args
target_name = adaptation.resolve_target(data_args.get("target", "auto"))
target_pairs = adaptation.target_domain_pairs(target_name, split="test", size=SIZE,
                                              num_images=16 if PROFILE == "smoke" else None, seed=SEED)
domain_label = getattr(target_pairs, "domain", target_name)
print("target domain:", domain_label, f"({len(target_pairs)} labelled pairs to measure the gap)")
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
axes[0].imshow(test_set[0]["cxr"][0], cmap="gray", vmin=0, vmax=1)
axes[0].set_title("source: phantom")
axes[1].imshow(target_pairs[0]["cxr"][0], cmap="gray", vmin=0, vmax=1)
axes[1].set_title(f"target: {target_name}")
for images, label in ((test_set, "source"), (target_pairs, "target")):
    values = torch.cat([images[i]["cxr"].flatten() for i in range(min(8, len(images)))])
    axes[2].hist(values.numpy(), bins=50, alpha=0.6, density=True, label=label)
axes[2].set_title("intensity histograms")
axes[2].legend()
for ax in axes[:2]:
    ax.axis("off")
plt.show()

# %% [markdown]
# Two runs of the same U-Net: **before** adaptation (`domain_weight: 0`, trained on the
# phantom alone) and **after** (the domain classifier behind gradient reversal).

# %%
source_only, _ = train("domain_adaptation", name=f"source-only-{PROFILE}", data="bs_lib.models.adaptation:"
                       "adaptation_dataset", method_args={"domain_weight": 0.0})
adapted, adapted_result = train("domain_adaptation", data="bs_lib.models.adaptation:adaptation_dataset")
gap = pd.DataFrame({
    ("source (phantom)", "identity"): identity,
    ("source (phantom)", "before"): scores_of(source_only.predict, test_set),
    ("source (phantom)", "after"): scores_of(adapted.predict, test_set),
    (f"target ({target_name})", "identity"): scores_of(lambda cxr: cxr, target_pairs),
    (f"target ({target_name})", "before"): scores_of(source_only.predict, target_pairs),
    (f"target ({target_name})", "after"): scores_of(adapted.predict, target_pairs),
}).T
gap

# %%
before_gap = gap.loc[("source (phantom)", "before"), "psnr"] - gap.loc[(f"target ({target_name})", "before"), "psnr"]
after_gap = gap.loc[("source (phantom)", "after"), "psnr"] - gap.loc[(f"target ({target_name})", "after"), "psnr"]
print(f"PSNR gap source − target: {before_gap:.2f} dB before adaptation, {after_gap:.2f} dB after")
assert gap.loc[("source (phantom)", "after"), "psnr"] > gap.loc[("source (phantom)", "identity"), "psnr"]

# %% [markdown]
# The domain classifier's accuracy tells whether the features were aligned: near 50 %
# means it can no longer tell the domains apart. Early on, while $\lambda$ is small, it
# learns; then the encoder fights back.

# %%
history = pd.DataFrame([h for h in adapted_result.history if "log/domain" in h]).set_index("step")
history[["log/task", "log/domain_accuracy", "log/reversal"]].plot(subplots=True, figsize=(7, 4.5),
                                                                 title="domain-adversarial training")
plt.show()


# %% [markdown]
# ## 3 · Failure cases
#
# - **A student that copies the teacher's mistakes.** The output term makes the teacher
#   the target: where the teacher is wrong, the student learns to be wrong. The worst test
#   image of the teacher is usually among the student's worst (below).
# - **Aligned features, wrong answers.** DANN makes features *indistinguishable*, not
#   *correct*: the encoder can satisfy the classifier by discarding information, and the
#   U-Net's skip connections bypass the aligned bottleneck altogether. A small gap on a
#   stand-in domain says little about real radiographs; only labelled target pairs can
#   tell, and with six real pairs (used for adaptation too) the numbers here are a
#   demonstration, not a benchmark.

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
assert len(teacher_psnr) == len(test_set)

# %% [markdown]
# ## Summary
# - Distillation trains a small student on the teacher's outputs and features as well as on the targets;
#   the student is several times faster, and the teacher's smooth targets often cost less quality than
#   training the small network alone.
# - The teacher is trained first and rebuilt from its checkpoint's own config, so the student always
#   imitates exactly the network that was trained.
# - Domain-adversarial training aligns the encoder's features across synthetic and real radiographs with
#   a domain classifier behind a gradient reversal layer; one optimiser, one backward pass.
# - Measure the gap on labelled target pairs, before and after adaptation: aligned features are not a
#   guarantee of right answers.
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
#    (the task term loses weight). There is rarely one best weight: it trades the two gaps.
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
