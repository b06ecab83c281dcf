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
# # NN · TITLE
#
# One paragraph that tells the story of this notebook: the question a student
# arrives with, and what they can do at the end.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/NN_SLUG.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 10 s |
# | `colab` | one T4 GPU | ≈ 1 min |
# | `full` | one A100/H100 | ≈ 1 min |
#
# ## Prerequisites
# - notebook NN: what a student must know first, and where it is taught.
#
# ## Learning goals
# - state the first thing a student will be able to do;
# - and the second.

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
# `papermill NN_SLUG.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %% [markdown]
# ## The first idea
# Prose, a figure, the maths, then the few lines of code that implement it
# (imported from `bs_lib`). End a section with the claim it makes, checked:
# `check(condition, "what was shown")` prints `✓ what was shown` or stops the
# notebook. The tests run every cell, so the checks are the notebook's tests;
# a claim about what training achieved takes `trained=True`.

# %%
from bs_lib.claims import check

check(run.profile.name == PROFILE, f"this run uses the {PROFILE} profile")

# %% [markdown]
# ## Summary
# - what was learned, in three to five bullets.
#
# ## Exercises
# ★ easy, ★★ medium, ★★★ hard.
#
# 1. ★ A question with a concrete task.
#
#    <details><summary>Solution</summary>
#
#    The answer, or the code cell below.
#    </details>
#
# ## References
# - Author et al., *Title*, Venue Year. [papers/entry-id](../papers/entry-id.yaml)
