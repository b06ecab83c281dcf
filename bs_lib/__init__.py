"""bs_lib: the small library behind the bone-suppression course.

Each module owns one idea of the course and reads like the chapter it serves:

============= ===================================================================
config        profiles (smoke | colab | full), seeding, device and precision
phantom       the synthetic dual-energy chest phantom (radiograph, soft tissue, bone, masks)
metrics       BSR (official and symmetric), MSE, PSNR, SSIM, MS-SSIM, optional LPIPS
io            reading PNG/JPEG/TIFF/DICOM/raw JSRT, polarity, clear errors for bad files
datasets      dataset classes with one sample shape, patient-wise splits, one ``get_dataset`` switch
fetch         how bytes arrive: resumable, checksummed downloads, offline switch, local mirrors
download      the dataset registry: Kaggle / Hugging Face / public-file downloads, safe extraction
resources     the course files outside the package (papers, cards, results), found in a clone or a wheel
losses        L1/MSE, MS-SSIM + L1, adversarial losses
diffusion     noise schedule, offset noise, thresholds, one class per sampler (DDPM, DDIM, DPM-Solver++)
engine        one training loop for every method: the Objective interface and registry, run configs and
              recipes (``configs/``), checkpoints, the Trainer; it never imports a model
models        one module per method family, and BS-LDM's two stages; each registers with the engine
train         ``python -m bs_lib train``: the engine's command line, every method registered
runs          the names of the course's training runs, and which finished run to reuse
evaluate      the benchmark and its leaderboard
suppress      bone suppression of your own radiographs with a checkpoint
course        the course's own tooling, above everything else: the ``papers/`` survey (validation, index,
              figures), the notebook conventions, the papermill report, the stress runs, the static site
claims        ``check(condition, claim)``: a notebook's claim, checked, in one readable line
diagrams      boxes and arrows for the notebooks' block diagrams
cli           ``python -m bs_lib ...`` and the ``bs-lib`` console script
============= ===================================================================

Importing the package is cheap: heavy dependencies (torch, MONAI, papermill)
load only in the modules that need them.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("bs-lib")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
