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
# # 02 · Datasets: where paired data comes from
#
# A bone-suppression model learns from pairs: a radiograph and the same chest without
# its bones. Such pairs are rare. This notebook shows where they come from (dual-energy
# hardware, a suppression algorithm, or a simulation), how to get each public collection,
# and how to read it without falling into the three traps that silently ruin results:
# images with the wrong polarity, pairs that do not line up, and splits that leak the
# same patient into training and test. At the end you write a patient-wise split file
# and read it back the way the datasets and the benchmark do.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bone-suppression/course/blob/main/notebooks/02_datasets.ipynb)
#
# | profile | hardware | run time |
# |---|---|---|
# | `smoke` | CPU | ≈ 20 s (phantom + the real sample pairs when present) |
# | `colab` | one T4 GPU | ≈ 7 min with a 5 min download (estimated: colab_times.md) |
# | `full` | one A100/H100 | as `colab` |
#
# ## Prerequisites
# - Notebook 01: the phantom, `cxr = soft + bone`, polarity (bone bright) and PSNR.
# - Image files as arrays of integers (8 or 16 bits); training, validation and test sets.
# - Python: paths, dicts, pandas tables.
#
# ## Learning goals
# - tell dual-energy, algorithmic and synthetic targets apart, and say what each means for a result;
# - download a dataset into the course's data directory, with credentials kept out of the notebook;
# - read PNG, DICOM and raw JSRT images into one convention (float in [0, 1], bone bright) and check polarity;
# - check a pair's alignment and look at its difference image;
# - show with numbers why a random split of an augmented set cheats, and build a patient-wise split;
# - write a split file, and say which parts of the course read one.

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
# `papermill 02_datasets.ipynb out.ipynb -p PROFILE colab`.

# %% tags=["parameters"]
PROFILE = config.default_profile()  # "smoke" | "colab" | "full"
SEED = 0

# %%
run = config.setup(PROFILE, seed=SEED)
print(config.environment_report())
print(run)

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from bs_lib import datasets as bsd
from bs_lib import download, io, metrics
from bs_lib.claims import check

REAL_PAIRS = bsd.real_pairs(size=256)  # the six real sample pairs, downloaded on first use; None offline
HAS_RG1 = importlib.util.find_spec("data_store") is not None  # pip install pydicom-data
print("real sample pairs:", REAL_PAIRS or "not available")
print("pydicom-data (one real DICOM chest radiograph):", "installed" if HAS_RG1 else "not installed")

# %% [markdown]
# ## 1 · Where paired data comes from
#
# - **Dual-energy subtraction (DES).** Two exposures at two tube voltages; a weighted
#   log subtraction cancels bone. SZCH-X-Rays (741 pairs), Gusarev (35 images). Closest
#   to truth, but motion between the exposures leaves artefacts.
# - **Algorithmic.** An existing suppression program applied to a radiograph: BSE-JSRT
#   (≈ 241 pairs, made with the BME software). A model trained on it learns to imitate
#   that program, blur and artefacts included.
# - **Synthetic.** Rendered from a model or from CT (digitally reconstructed radiographs):
#   the course phantom, DRR sets. Exact targets, but simpler than anatomy.
#
# Every dataset the course knows is listed in `bs_lib/data/registry.yaml`, with a card
# per dataset (licence, citation, layout, pitfalls). The status column says what is
# on this machine; `python -m bs_lib datasets` prints the same table.

# %%
registry = download.load_registry()
catalogue = pd.DataFrame(
    [{"name": e.name, "source": e.source, "status": download.status(e), "pairs": e.details.get("pairs", "")}
     for e in registry.values()]
).set_index("name")
print("data directory:", config.data_dir())
catalogue

# %%
check({"phantom", "szch-x-rays", "bse-jsrt", "jsrt-bone-masks", "jsrt-bse-baidu", "jsrt"} <= set(catalogue.index),
      f"the registry knows {len(catalogue)} datasets, from the phantom to SZCH-X-Rays and the JSRT family")
check(catalogue.loc["phantom", "status"] == "built in", "the phantom is built in: it never needs a download")

# %% [markdown]
# ## 2 · Getting a dataset
#
# Downloads land in one data directory (`$BS_DATA_DIR`, default `~/.cache/bs_lib/data`):
# first under a temporary name, then renamed once complete and verified, so a dataset
# is either all there or not there. An interrupted download resumes on the next run.
#
# **Credentials never go into a notebook.** Kaggle reads `KAGGLE_USERNAME` and
# `KAGGLE_KEY` (or `KAGGLE_API_TOKEN`) from the environment, from `~/.kaggle/kaggle.json`
# or, on Colab, from *secrets* (the key icon in the left bar: add the names, switch on
# notebook access). Hugging Face reads `HF_TOKEN` the same way. The library only ever
# reports *where* it found a credential, never its value.
#
# The cell below downloads the profile's dataset when it is a real one; when it cannot
# (no credentials, no network), it says in one line how to get it, and the rest of the
# notebook uses the phantom. The smoke profile uses the phantom and never downloads.

# %%
wanted = run.profile.dataset
if wanted == "phantom":
    print("This profile uses the built-in phantom: nothing to download.")
else:
    entry = download.get_entry(wanted)
    try:
        print(f"{wanted}: ready in {download.download(wanted)}")
    except download.DownloadError as error:
        print(f"{wanted}: not downloaded ({type(error).__name__}); this notebook uses the phantom instead. "
              f"{entry.how_to_get()}")
        wanted = "phantom"

print("\nKaggle credentials:", download.kaggle_credentials_source() or "none found")
for name in ("bse-jsrt", "jsrt-bse-baidu", "jsrt"):
    print(f"- {name}: {registry[name].how_to_get()}")

# %% [markdown]
# ## 3 · One convention for every file format
#
# `bs_lib.io.read_image` turns every format into a float32 array shaped `(1, H, W)` in
# [0, 1], **bone bright**, and returns what it decided in a metadata dict. Integer images
# are divided by their full range, $x' = x / (2^b - 1)$ with $b$ the stored bits; DICOM
# goes through its rescale ($\text{slope}\cdot x + \text{intercept}$) and window; and the
# two inverted sources, raw JSRT `.IMG` files and DICOM `MONOCHROME1`, are flipped,
# $x' = 1 - x$.
#
# The one real DICOM chest radiograph on PyPI (`RG1_UNCR.dcm` in `pydicom-data`) is
# stored as MONOCHROME1: shown as stored, bones are dark.

# %%
if HAS_RG1:
    from pydicom.data import get_testdata_file

    rg1_path = get_testdata_file("RG1_UNCR.dcm")
    rg1, rg1_meta = io.read_image(rg1_path)
    rg1_stored, _ = io.read_image(rg1_path, invert=False)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.4))
    axes[0].imshow(rg1_stored[0], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("as stored (MONOCHROME1): bones dark")
    axes[1].imshow(rg1[0], cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("read_image: bones bright")
    for ax in axes:
        ax.axis("off")
    plt.show()
    print({k: rg1_meta[k] for k in ("format", "bit_depth", "photometric_interpretation", "window", "inverted")})
    # conventional polarity: the mediastinum is brighter than the lungs beside it
    rows = slice(700, 1100)
    mediastinum, lung = rg1[0, rows, 880:960].mean(), rg1[0, rows, 450:600].mean()
    check(mediastinum > lung, f"read as bone bright, the mediastinum ({mediastinum:.2f}) outshines the lung "
                              f"beside it ({lung:.2f})")
else:
    print("pip install pydicom-data to see a real DICOM radiograph here (34 MB, then offline).")

# %% [markdown]
# Bad files fail loudly, naming the file and what is wrong, instead of producing a
# black image three cells later. A few examples, made in a temporary folder:

# %%
scratch = Path(tempfile.mkdtemp())
(scratch / "empty.png").write_bytes(b"")
(scratch / "JPCLN001.IMG").write_bytes(b"\0" * 1000)
(scratch / "notes.txt").write_text("not an image")
Image.fromarray(np.full((8, 8), 128, np.uint8)).save(scratch / "flat.png")
for name in ("missing.png", "empty.png", "JPCLN001.IMG", "flat.png", "notes.txt"):
    try:
        io.read_image(scratch / name)
    except (FileNotFoundError, io.ImageReadError) as error:
        print(f"{type(error).__name__}: {str(error).replace(str(scratch) + '/', '')}")

# %% [markdown]
# ## 4 · Looking at pairs
#
# Phantom pairs, the six real SZCH sample pairs (dual-energy targets, 1024² PNG,
# downloaded on first use, no account needed) and, when downloaded, the profile's
# dataset. One switch, `bsd.get_dataset(name, ...)`, serves them all; every sample is a
# dict with `cxr`, `soft`, `id` and `patient`.

# %%
SIZE = run.profile.image_size
phantom = bsd.get_dataset("phantom", split="train", size=SIZE, num_images=4, seed=SEED)
shown = {"phantom": [phantom[i] for i in range(2)]}
if REAL_PAIRS is not None:
    shown["real (SZCH samples)"] = [REAL_PAIRS[0], REAL_PAIRS[3]]
if wanted != "phantom":
    profile_data = bsd.get_dataset(wanted, split="all", size=256, num_images=2)
    shown[wanted] = [profile_data[0], profile_data[1]]

rows = [(name, s) for name, samples in shown.items() for s in samples]
fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)))
for (name, sample), row in zip(rows, axes, strict=True):
    cxr, soft = sample["cxr"][0].numpy(), sample["soft"][0].numpy()
    row[0].imshow(cxr, cmap="gray", vmin=0, vmax=1)
    row[0].set_title(f"{name} {sample['id']}: radiograph", fontsize=9)
    row[1].imshow(soft, cmap="gray", vmin=0, vmax=1)
    row[1].set_title("soft-tissue target", fontsize=9)
    row[2].imshow(cxr - soft, cmap="gray")
    row[2].set_title("difference (≈ bone + offset)", fontsize=9)
    for ax in row:
        ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Polarity check by eye:** in the radiograph the ribs and clavicles are bright and the
# lungs dark; in the target the ribs are gone; the difference image shows the bones.
# If the ribs in the difference image were *dark*, one of the two images would be
# inverted, and BSR (which treats $\text{cxr} - \text{target}$ as bone) would be meaningless.
#
# **Histograms** show the second difference between sources: the soft-tissue image of a
# dual-energy pair has a different global brightness and contrast from its radiograph.

# %%
fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3), squeeze=False)
for ax, (name, samples) in zip(axes[0], shown.items(), strict=True):
    sample = samples[0]
    for key in ("cxr", "soft"):
        ax.hist(sample[key].numpy().ravel(), bins=64, range=(0, 1), alpha=0.6, label=key)
    ax.set_title(f"{name}: intensity histogram")
    ax.set_xlabel("value in [0, 1]")
    ax.legend()
plt.show()

summary = pd.DataFrame(
    [{"source": name, "id": s["id"], "shape": tuple(s["cxr"].shape),
      "cxr mean": float(s["cxr"].mean()), "soft mean": float(s["soft"].mean())}
     for name, samples in shown.items() for s in samples]
)
summary.round(3)

# %% [markdown]
# **Alignment.** A pair is only useful if the two images share one grid. Phase
# correlation estimates the shift $(\Delta y, \Delta x)$ that best maps the target onto the
# radiograph; for a good pair it is a fraction of a pixel. (A pair whose images differ
# in size is refused by `read_pair` unless you ask for `resize_mismatch=True`.)

# %%
from skimage.registration import phase_cross_correlation

shifts = []
for name, sample in rows:
    shift, _, _ = phase_cross_correlation(sample["cxr"][0].numpy(), sample["soft"][0].numpy(), upsample_factor=10)
    shifts.append({"source": name, "id": sample["id"], "shift y (px)": shift[0], "shift x (px)": shift[1]})
shifts = pd.DataFrame(shifts)
print(shifts.round(2).to_string(index=False))
largest_shift = shifts[["shift y (px)", "shift x (px)"]].abs().max().max()
check(largest_shift <= 2.0, f"every pair shown is aligned: the largest shift is {largest_shift:.1f} px")

# %% [markdown]
# ## 5 · The leakage trap, with numbers
#
# The BSE-JSRT Kaggle set ships ≈ 4,100 *augmented* pairs: 17 shifted and re-scaled copies
# of each of ≈ 241 patients. Split those images at random and nearly every test patient
# has copies in training. A model that merely **remembers** its training images then
# looks excellent on "unseen" data.
#
# We simulate this with the phantom: a few patients, several augmented copies each
# (small shifts and a brightness change applied to both images of a pair), and the
# most forgetful "model" there is, a 1-nearest-neighbour lookup that returns the
# target of the most similar training radiograph. Its score under a random image split
# is compared with a patient-wise split.

# %%
N_PATIENTS, COPIES, SIM_SIZE = 16, 6, 64
source = bsd.get_dataset("phantom", split="train", size=SIM_SIZE, num_images=N_PATIENTS, seed=SEED)


def augmented_copies(index, copies, rng):
    """``copies`` shifted and re-scaled versions of source pair ``index``, the same change to both images."""
    sample = source[index]
    cxr, soft = sample["cxr"].numpy(), sample["soft"].numpy()
    pairs = []
    for _ in range(copies):
        dy, dx = rng.integers(-2, 3, size=2)
        gain = rng.uniform(0.9, 1.1)
        pairs.append([np.clip(np.roll(image, (dy, dx), axis=(1, 2)) * gain, 0, 1) for image in (cxr, soft)])
    return pairs


def augment(copies, seed=SEED):
    """Every patient's copies, as ``{"P03_2": [cxr, soft], ...}`` (copy 2 of patient 3)."""
    rng = np.random.default_rng(seed)
    return {f"P{i:02d}_{copy}": pair for i in config.progress(range(len(source)), desc="augmenting")
            for copy, pair in enumerate(augmented_copies(i, copies, rng))}


def patient_of(image_id):
    return image_id.split("_")[0]


# %%
def nearest_neighbour_psnr(split, pairs):
    """Mean PSNR of a 1-NN 'model' that copies the target of the closest training radiograph."""
    train = np.stack([pairs[i][0].ravel() for i in split["train"]])
    scores = []
    for image_id in split["test"]:
        cxr, soft = pairs[image_id]
        nearest = split["train"][int(np.argmin(((train - cxr.ravel()) ** 2).sum(axis=1)))]
        scores.append(float(metrics.psnr(pairs[nearest][1], soft, data_range=1.0)))
    return float(np.mean(scores))


def two_splits(pairs):
    """The same images split two ways: at random over images, and patient-wise (lists of image ids)."""
    ids = list(pairs)
    by_patient = bsd.make_patient_split([patient_of(i) for i in ids], fractions=(0.75, 0.0, 0.25), seed=SEED)
    return {"random over images": bsd.random_image_split(ids, fractions=(0.75, 0.0, 0.25), seed=SEED),
            "patient-wise": {name: [i for i in ids if patient_of(i) in set(patients)]
                             for name, patients in by_patient.items()}}


def leakage_table(pairs):
    """For each split: test images, test patients also in training, and the 1-NN memoriser's PSNR."""
    return pd.DataFrame(
        [{"split": kind,
          "test images": len(split["test"]),
          "test patients also in train": len(bsd.shared_patients(split, patient_of)["train&test"]),
          "1-NN PSNR on test (dB)": nearest_neighbour_psnr(split, pairs)}
         for kind, split in two_splits(pairs).items()]
    ).set_index("split")


# %%
augmented = augment(COPIES)
leak = leakage_table(augmented)
leak.round(2)

# %%
leaked = leak.loc["random over images", "test patients also in train"]
flattery_db = leak["1-NN PSNR on test (dB)"]["random over images"] - leak["1-NN PSNR on test (dB)"]["patient-wise"]
check(leak.loc["patient-wise", "test patients also in train"] == 0,
      "the patient-wise split keeps every test patient out of training")
check(leaked > 0, f"the random split shows {leaked} test patients in training too")
check(flattery_db > 0, f"the random split flatters a model that only remembers by {flattery_db:.1f} dB")

# %% [markdown]
# The memoriser did not learn anything about bones; the random split simply let it see
# the test patients. The same happens, less visibly, to a network trained on leaked
# splits. Rules the course follows:
# - split **patients**, never images; augmented copies follow their patient;
# - evaluate on **non-augmented** pairs only (for BSE-JSRT: `JSRT/JSRT` + `BSE_JSRT/BSE_JSRT`);
# - make the split once, seeded, and save it to a file that the data loading reads.

# %% [markdown]
# ## 6 · A split file, and who reads it
#
# `make_patient_split` shuffles the distinct patients with a seed and cuts them into train /
# val / test; `save_split` refuses a split in which any patient appears twice and writes it
# as JSON. A split file is worth something only where it is read. In the course, two things
# read one:
# - the **folder datasets**: `PairedFolder` and the named datasets built on it (`BSEJSRT`,
#   `SZCHXRays`, `GusarevDES`, `JSRTBSEBaidu`) take `split="train"`, `"val"` or `"test"`
#   with `split_file=...` and keep that part's patients;
# - the **benchmark**: `python -m bs_lib benchmark --dataset NAME --split FILE` measures
#   every method on the file's test patients only (and, with `--output`, saves the test
#   split it used beside its report).
#
# Two datasets need no file of yours. The phantom splits by seed: its train, val and test
# chests are drawn from disjoint seeds. SZCH-X-Rays ships official 592 / 74 / 75 lists, and
# `SZCHXRays(split=...)` turns them into `split-official.json` next to the data when the
# download holds them. For BSE-JSRT this notebook draws DeBoneDiT's counts, 192 / 24 / 25
# of its 241 patients, with its own seed: the counts match, the patients need not.
#
# Here is the whole round trip on the augmented phantom pairs of section 5: written to a
# folder in the usual layout (`CXR/` and `BS/`, one PNG per image, `P03_2.png` for copy 2 of
# patient 3), split by patient, saved, and read back through `PairedFolder`. Both land in a
# temporary folder, so the notebook leaves no trace.

# %%
folder = Path(tempfile.mkdtemp()) / "phantom-augmented"
for image_id, pair in augmented.items():
    for part, image in zip(("CXR", "BS"), pair, strict=True):
        (folder / part).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / part / f"{image_id}.png")

patients = [patient_of(i) for i in augmented]
shared = bsd.make_patient_split(patients, fractions=(0.625, 0.125, 0.25), seed=SEED)
split_path = bsd.save_split(bsd.default_split_path("phantom-augmented", SEED, folder.parent), shared,
                            dataset="phantom-augmented", seed=SEED, note="patient-wise split of notebook 02")
document = bsd.load_split(split_path)
test_part = bsd.PairedFolder(folder, split="test", split_file=split_path, patient_of=patient_of)
print(f"{split_path.name}: {document['counts']} patients; the test part read back: {test_part}")

# %%
test_patients = document["splits"]["test"]
check(all(not found for found in bsd.shared_patients(document["splits"]).values()),
      f"no patient appears in two parts of {split_path.name}")
check(sum(document["counts"].values()) == len(set(patients)),
      f"all {len(set(patients))} patients are placed: {document['counts']}")
check(bsd.make_patient_split(patients, fractions=(0.625, 0.125, 0.25), seed=SEED) == shared,
      "the same seed makes the same split")
check(sorted(set(test_part.patients)) == sorted(test_patients) and len(test_part) == COPIES * len(test_patients),
      f"read through the split file, the folder yields the {len(test_part)} images of its "
      f"{len(test_patients)} test patients, all copies included, and nothing else")

# %% [markdown]
# With a real dataset on this machine (the `colab` and `full` profiles download
# SZCH-X-Rays), the next cell finds its official split, or makes and saves one in
# `<data dir>/splits/`, and prints the benchmark command that uses it.

# %%
if wanted == "phantom":
    print("No real dataset here: the phantom's splits come from its seeds, so there is no file to write.")
else:
    real_split = None
    if wanted == "szch-x-rays":
        try:
            bsd.SZCHXRays(split="test")  # reads the official lists and writes split-official.json beside the data
            real_split = download.get_entry(wanted).path() / "split-official.json"
        except bsd.DatasetNotFoundError as missing:
            print(str(missing).splitlines()[0])
    if real_split is None:
        real_patients = bsd.get_dataset(wanted, split="all").patients
        counts = {"bse-jsrt": (192, 24, 25), "szch-x-rays": (592, 74, 75)}.get(wanted)
        counts = counts if counts is not None and sum(counts) == len(set(real_patients)) else None
        real_split = bsd.save_split(bsd.default_split_path(wanted, SEED),
                                    bsd.make_patient_split(real_patients, counts=counts, seed=SEED),
                                    dataset=wanted, seed=SEED, note="course patient-wise split")
    print(f"{wanted}: {real_split}, {bsd.load_split(real_split)['counts']} patients")
    print(f"measure every method on its test patients: python -m bs_lib benchmark --dataset {wanted} "
          f"--split {real_split}")

# %% [markdown]
# ## Summary
# - Paired targets come from dual-energy hardware (closest to truth), from a suppression
#   algorithm (a model learns to imitate it), or from simulation (exact but simple); say
#   which one every number was measured on.
# - `bs_lib.io.read_image` reads PNG/JPEG, TIFF, DICOM and raw JSRT into one convention,
#   float in [0, 1] with bone bright, and records every decision; bad files fail with a
#   message naming the file.
# - Check polarity, histograms and alignment of a few pairs by eye before any training.
# - Random splits of augmented sets leak patients and inflate scores (here by several dB
#   for a model that only remembers); split by patient, once, into a saved file.
#
# ## Exercises
# ★ easy, ★★ medium, ★★★ hard.
#
# 1. ★ Make one copy per patient (`augment(1)`) and rebuild the leakage table. What happens
#    to the gap between the two splits, and why?
#
#    <details><summary>Solution</summary>
#
#    The first solution cell prints the table for one copy per patient. There is nothing to
#    leak: "test patients also in train" is 0 for both splits, because with one image per
#    patient a random image split *is* a patient split. Both PSNRs are now those of a
#    memoriser that never saw its test patients; with the same seed the two splits even draw
#    the same test images, so the two rows agree. The inflation came entirely from copies of
#    test patients in training.
#    </details>
#
# 2. ★★ Read `RG1_UNCR.dcm` with `apply_window=False` and compare its histogram with the
#    windowed version. Which one would you feed a model trained on 8-bit PNGs?
#
#    <details><summary>Solution</summary>
#
#    The second solution cell (it needs `pydicom-data`) draws both histograms and prints their
#    1st, 50th and 99th percentiles. Here they nearly coincide: the stored window (centre
#    15000, width 30000) covers almost the whole 15-bit range, so windowing only stretches
#    the values by $32767/30000 \approx 1.09$ about the white end; the anatomy spans about
#    0.24–0.93 windowed and 0.30–0.93 raw. With a narrow window the difference would be large.
#    Feed the model what its PNGs were made from, usually the windowed display, and state the
#    choice next to every result.
#    </details>
#
# 3. ★★ Make a folder with `CXR/0.png` of 64×64 and `BS/0.png` of 66×66 and load it with
#    `bsd.PairedFolder`. Read the error, then load it with `resize_mismatch=True`.
#
#    <details><summary>Solution</summary>
#
#    The third solution cell does it. The first load raises `PairMismatchError`, whose
#    message names both files and both sizes and says what to do; the second returns the pair
#    with the target resampled onto the radiograph's 64×64 grid, and warns that it did.
#    </details>
#
# 4. ★★★ A patient-wise split protects you only as far as the patient ids are right. A
#    follow-up radiograph filed under a new id is a new "patient" to `make_patient_split`.
#    Simulate one: new copies of a *training* patient, under the id `P99`, added to the test
#    side of the patient-wise split. Can you find them from the images alone, without the ids?
#    Try the plain RMS distance to the nearest training image, then a distance blind to the
#    augmentation's shifts and gains, such as the error `phase_cross_correlation` returns.
#
#    <details><summary>Solution</summary>
#
#    The fourth solution cell builds the follow-up and prints, per test patient, the median
#    over its images of both distances to the nearest training image. The plain RMS distance
#    cannot single out P99: shifts of two pixels and gains of ±10 % make copies of one chest
#    differ about as much as two chests do. The phase-correlation error, a normalised RMS
#    error after the best shift, is about 0.001 for P99 and above 0.05 for every genuine test
#    patient. A near-duplicate search between test and training images catches what the ids
#    hide.
#    </details>

# %% tags=["solution"]
# Solution to exercise 1
leakage_table(augment(1)).round(2)

# %% tags=["solution"]
# Solution to exercise 2
if HAS_RG1:
    rg1_raw, _ = io.read_image(rg1_path, apply_window=False)
    fig, ax = plt.subplots(figsize=(6, 3))
    for label, image in (("windowed (read_image's default)", rg1), ("apply_window=False", rg1_raw)):
        ax.hist(image.ravel(), bins=128, range=(0, 1), histtype="step", density=True, label=label)
        print(f"{label}: 1st, 50th, 99th percentiles {np.round(np.percentile(image, [1, 50, 99]), 3)}")
    ax.set(title="RG1_UNCR.dcm", xlabel="value in [0, 1]")
    ax.legend(fontsize=8)
    plt.show()
else:
    print("pip install pydicom-data to run this solution (34 MB, then offline).")

# %% tags=["solution"]
# Solution to exercise 3
import warnings

mismatched = Path(tempfile.mkdtemp())
for part, side in (("CXR", 64), ("BS", 66)):
    (mismatched / part).mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (side, side), dtype=np.uint8)
    Image.fromarray(pixels).save(mismatched / part / "0.png")
try:
    bsd.PairedFolder(mismatched)[0]
except io.PairMismatchError as error:
    print(f"PairMismatchError: {str(error).replace(str(mismatched) + '/', '')}")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    resized = bsd.PairedFolder(mismatched, resize_mismatch=True)[0]
print(f"resize_mismatch=True: cxr {tuple(resized['cxr'].shape)}, soft {tuple(resized['soft'].shape)}; warned: "
      f"{str(caught[0].message).replace(str(mismatched) + '/', '') if caught else 'nothing'}")

# %% tags=["solution"]
# Solution to exercise 4
split = two_splits(augmented)["patient-wise"]
twin = patient_of(split["train"][0])  # a training patient who comes back under a new id
follow_up = {f"P99_{copy}": pair for copy, pair in
             enumerate(augmented_copies(int(twin[1:]), COPIES, np.random.default_rng(SEED + 99)))}
pool = {**augmented, **follow_up}
train_images = [pool[i][0][0] for i in split["train"]]
distances = {"RMS": lambda a, b: float(np.sqrt(((a - b) ** 2).mean())),
             "phase-correlation error": lambda a, b: float(phase_cross_correlation(a, b, normalization=None)[1])}
nearest = pd.DataFrame({name: {i: min(distance(t, pool[i][0][0]) for t in train_images)
                               for i in split["test"] + list(follow_up)} for name, distance in distances.items()})
by_patient = nearest.groupby(patient_of).median().sort_values("phase-correlation error")
print(f"{twin} comes back as P99; median distance of each test patient's images to the nearest training image:")
print(by_patient.round(4).to_string())
phase_error = by_patient["phase-correlation error"]
closest_genuine = phase_error.drop("P99").min()
check(10 * phase_error["P99"] < closest_genuine,
      f"blind to shifts and gains, the disguised patient is {closest_genuine / phase_error['P99']:.0f}× "
      f"closer to training than any genuine test patient")

# %% [markdown]
# ## References
# - Sun et al., *BS-LDM: bone suppression in high-resolution chest X-ray images with
#   conditional latent diffusion models*, 2025. [papers/bs-ldm-2025](../papers/bs-ldm-2025.yaml)
# - DeBoneDiT and the SZCH-X-Rays release. [papers/debonedit-2026](../papers/debonedit-2026.yaml)
# - Juhász et al., the BSE-JSRT bone-shadow elimination software, MEDICON 2010.
#   [papers/juhasz-2010](../papers/juhasz-2010.yaml)
# - Gusarev et al., deep-learning bone suppression with dual-energy data, 2017.
#   [papers/gusarev-2017](../papers/gusarev-2017.yaml)
# - xU-NetFullSharp, with the Gusarev DES external test pairs, 2025.
#   [papers/xu-netfullsharp-2025](../papers/xu-netfullsharp-2025.yaml)
# - Shiraishi et al., *Development of a digital image database for chest radiographs with
#   and without a lung nodule*, AJR 174:71–74, 2000 (JSRT).
# - Dataset cards: [datasets/README.md](../datasets/README.md)
