"""One parameter, three contexts: profiles, seeding, device and precision.

Every notebook takes a single ``PROFILE`` parameter:

``smoke``
    CPU, the synthetic phantom at 64², seconds per notebook. What the tests
    (nbval) and the report job run.
``colab``
    One consumer GPU (a free Colab T4 is the reference), minutes per
    notebook, 256² images: a result worth looking at.
``full``
    The paper's scale: 1024² images, full schedules. GPU only, hours.

The default comes from the environment (:func:`default_profile`), papermill
overrides it with ``-p PROFILE ...``. Notebooks read their sizes from the
:class:`Profile` returned by :func:`setup` and derive everything else in the
cell after the ``parameters`` cell, because papermill does not re-run derived
assignments.
"""

from __future__ import annotations

import ast
import os
import platform
import random
import sys
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily: the CLI and the survey do not need it
    import torch

PROFILE_ENV = "BS_PROFILE"
QUIET_ENV = "BS_QUIET"
DATA_DIR_ENV = "BS_DATA_DIR"
RUNS_DIR_ENV = "BS_RUNS_DIR"
REAL_PAIRS_ENV = "BS_REAL_PAIRS"
OFFLINE_ENV = "BS_OFFLINE"
MAX_STEPS_ENV = "BS_MAX_STEPS"
MAX_SIZE_ENV = "BS_MAX_SIZE"
MAX_IMAGES_ENV = "BS_MAX_IMAGES"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Profile:
    """The knobs that scale a notebook from a CPU smoke run to the paper.

    Notebooks derive their own values from these (for example a model's
    width from ``image_size``); a profile never names a notebook. Training
    steps, batch sizes and sampler settings are not here: each method's recipe
    (``bs_lib/configs/<method>.yaml``) holds them, one section per profile.
    """

    name: str
    description: str
    image_size: int  # side of the square images models see
    dataset: str  # "phantom" or the name of a real dataset
    num_images: int | None  # images drawn from the dataset (None = all)
    num_workers: int  # DataLoader workers
    needs_gpu: bool
    quiet: bool  # progress bars off (nbval compares stderr)

    def with_overrides(self, **changes: Any) -> Profile:
        """A copy with some fields changed, e.g. ``profile.with_overrides(image_size=128)``."""
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise TypeError(f"Profile has no field(s) {sorted(unknown)}; fields are {sorted(asdict(self))}")
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CPU, synthetic phantom at 64², seconds per notebook (tests and reports)",
        image_size=64,
        dataset="phantom",
        num_images=32,
        num_workers=0,
        needs_gpu=False,
        quiet=True,
    ),
    "colab": Profile(
        name="colab",
        description="one consumer GPU (Colab T4), minutes per notebook, 256² images",
        image_size=256,
        dataset="szch-x-rays",
        num_images=None,
        num_workers=2,
        needs_gpu=True,
        quiet=False,
    ),
    "full": Profile(
        name="full",
        description="the paper's scale: 1024² images, full schedules, GPU hours",
        image_size=1024,
        dataset="szch-x-rays",
        num_images=None,
        num_workers=8,
        needs_gpu=True,
        quiet=False,
    ),
}


def get_profile(name: str | Profile) -> Profile:
    """Look a profile up by name; a misspelling gets the list of valid names."""
    if isinstance(name, Profile):
        return name
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}: choose one of {', '.join(PROFILES)}.")
    return PROFILES[key]


def default_profile() -> str:
    """The profile a notebook uses when nobody chose one.

    ``$BS_PROFILE`` when set (the tests set ``smoke``); otherwise ``colab`` on a
    machine with a GPU and ``smoke`` on a CPU, so a notebook opened anywhere
    runs in a sensible time.
    """
    chosen = os.environ.get(PROFILE_ENV)
    if chosen:
        return get_profile(chosen).name
    return "colab" if detect_device().type in ("cuda", "mps") else "smoke"


# --------------------------------------------------------------------------- devices


def detect_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple MPS, then the CPU.

    ``prefer`` forces one (``"cpu"`` to debug a GPU notebook on the CPU); asking
    for a device that is absent is an error rather than a silent fallback.
    """
    import torch

    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but no CUDA GPU is visible to torch.")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError("Apple MPS was requested but torch.backends.mps is not available.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def detect_precision(device: torch.device) -> str:
    """Mixed-precision mode for ``accelerate``: ``"bf16"``, ``"fp16"`` or ``"no"``.

    bf16 keeps float32's exponent range, so it needs no loss scaling: it is the
    choice on every GPU that supports it (Ampere and newer). Older CUDA GPUs
    (Colab's T4) get fp16 with loss scaling. MPS and CPU stay in float32, the
    one mode that behaves the same on every machine.
    """
    if device.type == "cuda":
        return "bf16" if native_bf16(device) else "fp16"
    return "no"


def native_bf16(device: torch.device) -> bool:
    """True when the CUDA GPU computes in bf16 in hardware (compute capability 8.0+, or ROCm).

    ``torch.cuda.is_bf16_supported()`` alone also says True on older GPUs that
    merely *emulate* bf16 (a T4 can hold bf16 tensors), where bf16 training is
    slow or fails in cuDNN's convolutions.
    """
    import torch

    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (all devices).

    ``deterministic=True`` also asks torch for deterministic kernels, which is
    slower on a GPU and raises on operations that have none.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- the legacy global generator is what old code draws from
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunConfig:
    """What :func:`setup` decided: the profile, the seed, the device and its precision."""

    profile: Profile
    seed: int
    device: torch.device
    precision: str

    def pick(self, table: dict[str, Any]) -> Any:
        """This run's entry of a per-profile table: ``run.pick({"smoke": 4, "colab": 32, "full": 64})``.

        Under a cap (:func:`is_capped`: a GPU profile's code path tried on a small
        machine) it is the ``smoke`` entry, the shortest loop, since the numbers
        of a capped run mean nothing anyway.
        """
        return table["smoke" if is_capped() else self.profile.name]

    def __str__(self) -> str:
        return (
            f"profile={self.profile.name} ({self.profile.description}); "
            f"device={self.device.type}; precision={self.precision}; seed={self.seed}"
        )


_active_profile: Profile | None = None


def setup(profile: str | Profile, seed: int = 0, device: str | None = None) -> RunConfig:
    """Start a notebook or script: check parameters, seed, choose device and precision.

    Called in the cell right after a notebook's ``parameters`` cell. It fails
    loudly when papermill injected a parameter the notebook does not declare
    (papermill itself only warns), warns when a GPU profile runs on a CPU, and
    makes :func:`progress` silent for the smoke profile.
    """
    global _active_profile
    check_injected_parameters()
    chosen = get_profile(profile)
    seed_everything(seed)
    run_device = detect_device(device)
    if chosen.needs_gpu and run_device.type == "cpu":
        warnings.warn(
            f"Profile {chosen.name!r} is meant for a GPU and this machine has none: expect it to be "
            f"very slow. Use PROFILE='smoke' on a CPU.",
            stacklevel=2,
        )
    chosen = capped_profile(chosen)
    if chosen.name != "smoke":
        print(runs_dir_note())
    _active_profile = chosen
    if chosen.name == "smoke" and run_device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)  # tiny models: one thread is as fast, and never fights a neighbour for cores
    return RunConfig(chosen, seed, run_device, detect_precision(run_device))


# --------------------------------------------------------------------------- caps for testing a profile


def _cap(variable: str) -> int | None:
    """The positive integer in ``$variable``, or None when unset."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"${variable} must be a positive whole number, got {text!r}; unset it to lift the cap.")
    return int(text)


def max_steps() -> int | None:
    """``$BS_MAX_STEPS``: the most optimiser steps any training run may take (None: no cap).

    A diffusion model's default sampling chain is cut to as many steps
    (:func:`bs_lib.engine.recipes.capped`).

    With :func:`max_size`, it runs a GPU profile's code path on a CPU in minutes:
    every config and notebook cell of ``colab`` runs, only smaller and shorter.
    A capped run tests the code, not the result.
    """
    return _cap(MAX_STEPS_ENV)


def max_size() -> int | None:
    """``$BS_MAX_SIZE``: the largest image side any profile or training run may use (None: no cap)."""
    return _cap(MAX_SIZE_ENV)


def max_images() -> int | None:
    """``$BS_MAX_IMAGES``: the most images any dataset may hold per split (None: no cap).

    :func:`bs_lib.datasets.get_dataset` applies it, so every loop over a dataset
    (phantoms drawn, validation, images scored) runs over at most this many and
    a capped run's evaluation is as short as its training. A capped config
    also records it (:func:`bs_lib.engine.recipes.capped`), so a capped run is
    never reused as a full one.
    """
    return _cap(MAX_IMAGES_ENV)


def is_capped() -> bool:
    """True when any cap (:func:`max_steps`, :func:`max_size`, :func:`max_images`) is set."""
    return any(cap is not None for cap in (max_steps(), max_size(), max_images()))


def capped_profile(profile: Profile) -> Profile:
    """``profile`` within the caps of :func:`max_size` and :func:`max_images`, saying so in one line when capped."""
    size, steps, images = max_size(), max_steps(), max_images()
    if size is None and steps is None and images is None:
        return profile
    if size is not None and profile.image_size > size:
        profile = profile.with_overrides(image_size=size)
    if images is not None and (profile.num_images is None or profile.num_images > images):
        profile = profile.with_overrides(num_images=images)
    caps = ", ".join(f"{name}={value}" for name, value in
                        ((MAX_SIZE_ENV, size), (MAX_STEPS_ENV, steps), (MAX_IMAGES_ENV, images)) if value is not None)
    print(f"capped by {caps}: images at most {profile.image_size}², {profile.num_images or 'all'} per split, "
          f"training runs and sampling chains at most {steps or 'their'} steps; "
          "this tests the code path, its numbers mean nothing.")
    return profile


def active_profile() -> Profile:
    """The profile of the last :func:`setup`, else the default one."""
    return _active_profile or get_profile(default_profile())


# --------------------------------------------------------------------------- papermill guard


class UnknownParameterError(ValueError):
    """A parameter was passed that the notebook does not declare."""


def _assigned_names(source: str) -> set[str]:
    """Names assigned at the top level of a cell's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name):
                names.add(target.id)
    return names


def unknown_parameters(parameters_source: str, injected_source: str) -> set[str]:
    """Names papermill injected that the ``parameters`` cell does not assign."""
    return _assigned_names(injected_source) - _assigned_names(parameters_source)


def check_injected_parameters() -> None:
    """Raise :class:`UnknownParameterError` when papermill injected an undeclared name.

    papermill executes an ``injected-parameters`` cell (its source starts with
    ``# Parameters``) right after the notebook's ``parameters`` cell. The kernel's
    input history holds both, so a misspelled ``-p PROFLE colab`` is caught here,
    inside the notebook, whoever launched papermill.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    history = list(shell.user_ns.get("In", [])) if shell is not None else []
    for index in range(len(history) - 1, 0, -1):
        if history[index].lstrip().startswith("# Parameters"):
            unknown = unknown_parameters(history[index - 1], history[index])
            if unknown:
                declared = sorted(_assigned_names(history[index - 1]))
                raise UnknownParameterError(
                    f"Unknown notebook parameter(s) {sorted(unknown)}: this notebook declares "
                    f"{declared}. Check the spelling of the -p options."
                )
            return


# --------------------------------------------------------------------------- helpers


def is_quiet() -> bool:
    """True when progress bars should stay silent (smoke profile or ``$BS_QUIET=1``)."""
    if os.environ.get(QUIET_ENV, "").strip() in ("1", "true", "yes"):
        return True
    return active_profile().quiet


def progress(iterable=None, **kwargs):
    """A ``tqdm.auto`` progress bar that stays silent in smoke runs.

    nbval compares stderr, and a bar's timings differ on every run, so the
    smoke profile turns bars off; every other profile shows them.
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", is_quiet())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def data_dir() -> Path:
    """Where datasets are downloaded: ``$BS_DATA_DIR``, else ``~/.cache/bs_lib/data``."""
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "bs_lib" / "data"


COLAB_DRIVE = Path("/content/drive/MyDrive")  # where Colab mounts Google Drive


def runs_dir() -> Path:
    """Where training runs (checkpoints, logs) go.

    ``$BS_RUNS_DIR`` when set; on Colab with Google Drive mounted,
    ``MyDrive/bs_lib/runs``, so a run survives a disconnect and resumes where it
    stopped; otherwise ``~/.cache/bs_lib/runs``.
    """
    root = os.environ.get(RUNS_DIR_ENV)
    if root:
        return Path(root).expanduser()
    if in_colab() and COLAB_DRIVE.is_dir():
        return COLAB_DRIVE / "bs_lib" / "runs"
    return Path.home() / ".cache" / "bs_lib" / "runs"


def runs_dir_note() -> str:
    """One line: where runs go, and whether they outlive this session."""
    folder = runs_dir()
    if in_colab() and not str(folder).startswith(str(COLAB_DRIVE)):
        return (f"training runs go to {folder}, which Colab deletes at a disconnect: mount Google Drive (Files "
                f"panel, 'Mount Drive') and run again to keep them and resume.")
    return f"training runs go to {folder} (a finished run is reused, an interrupted one resumed)."


def real_pairs_dir() -> Path | None:
    """The folder of real radiograph / soft-tissue sample pairs, or None when absent.

    ``$BS_REAL_PAIRS`` when set, else ``shared/data/real-pairs`` beside the
    repository. These pairs are optional: callers show or test them only when
    this returns a folder. The folder holds byte-identical copies of the
    published files, so ``python -m bs_lib download real-pairs`` copies them
    from here (checksums checked) instead of using the network.
    """
    chosen = os.environ.get(REAL_PAIRS_ENV)
    candidate = Path(chosen).expanduser() if chosen else REPO_ROOT.parent / "shared" / "data" / "real-pairs"
    return candidate if candidate.is_dir() else None


def offline() -> bool:
    """True when ``$BS_OFFLINE`` is ``1`` (or ``true``, ``yes``, ``on``): downloads must not use the network.

    The test suite sets it, so no test and no notebook run by the tests ever
    reaches the internet; files already on the machine keep working.
    """
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def environment_report() -> str:
    """Versions and hardware in a few lines, for the top of every notebook and report."""
    import numpy as np
    import torch

    import bs_lib

    device = detect_device()
    lines = [
        f"bs_lib {bs_lib.__version__} | Python {platform.python_version()} | torch {torch.__version__} "
        f"| numpy {np.__version__}",
        f"platform: {platform.platform(terse=True)} | CPU threads: {torch.get_num_threads()}",
    ]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.append(f"device: cuda ({props.name}, {props.total_memory / 2**30:.0f} GiB)")
    else:
        lines.append(f"device: {device.type}")
    lines.append(f"precision: {detect_precision(device)} | default profile: {default_profile()}")
    return "\n".join(lines)


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules
