r"""The benchmark: every method of the course, on one split, measured one way.

Papers on bone suppression rarely agree on data, resolution, split or metric
code, so their tables cannot be compared with each other, let alone with a
model trained on a laptop. This module measures the course's own methods under
one set of rules, so that their numbers *can* be compared:

* **one split**: every method is tested on the same saved test images
  (``<output>_split.json``, patients never shared with training);
* **one metric code**: :func:`bs_lib.metrics.evaluate` on every test image,
  over the whole image and inside the lung mask, then mean ± standard
  deviation over images (population std, :math:`\sqrt{\tfrac1n\sum (m_i -
  \bar m)^2}`);
* **the identity baseline**: the prediction :math:`\hat s = x` (the radiograph
  itself, no suppression at all). A method that does not beat it on a metric
  has learned nothing that the metric can see, and on some metrics (the
  official BSR, with its one-sided clip) doing nothing already scores well;
* **the cost beside the quality**: parameters used by one prediction,
  inference time per image (warm, without gradients, synchronised on a GPU),
  and the training budget (optimiser steps × batch = images seen, wall time).

Methods
-------
``identity``
    :math:`\hat s = x`.
manual / conventional
    the methods of :mod:`bs_lib.models.manual` (no training; the mask-guided
    one is given the phantom's bone masks, an advantage no learned method has).
learned
    every method with a config in ``bs_lib/configs/`` (``ml_vqgan`` excepted:
    it is BS-LDM's autoencoder, not a suppressor). Each is trained with
    :func:`bs_lib.train.train_or_reuse` from ``load_config(method, profile)``
    (a finished run of exactly that config is reused), with the benchmark's
    image size, seed and optional step overrides, and loaded for inference with
    :func:`bs_lib.suppress.load_suppressor` (EMA weights when the run has them).
    ``bs_ldm`` trains (or reuses) both stages with
    :func:`bs_lib.runs.bs_ldm`; ``distillation`` trains its
    teacher first, at the benchmark's image size, seed and step scale.

The leaderboard is sorted by mean whole-image PSNR (the one metric every paper
reports), best first; the identity row stays in that order, so every method
below it is visibly worse than doing nothing. The best mean of each metric
column is in bold. Beside it, the published table of the GL-LCM re-evaluation
(1024², real dual-energy data, full training) is printed *separately*, never
ranked with ours: different data, resolution and budget.

Command line::

    python -m bs_lib benchmark --profile smoke --image-size 128 --output benchmarks/results/benchmark_smoke_128
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bs_lib.engine.objective import accepts_generator  # re-exported: its home is the engine now

IDENTITY = "identity"
NOT_SUPPRESSORS = ("ml_vqgan",)  # stage 1 of BS-LDM: an autoencoder, not a bone suppressor
DEFAULT_TEST_IMAGES = {"smoke": 16, "colab": 64, "full": None}  # None: the whole test split

FAMILIES = {
    IDENTITY: "baseline", "gusarev_ae": "autoencoder", "vae": "autoencoder", "vq_vae": "autoencoder",
    "mask_guided_subtraction": "manual", "rib_band_filter": "manual",
    "resnet_bs": "CNN", "unet": "CNN", "unet_plus_plus": "CNN", "pix2pix": "GAN", "mca_net": "GAN",
    "distillation": "distillation", "domain_adaptation": "domain adaptation", "bs_ldm": "diffusion",
}
LABELS = {
    IDENTITY: "identity (x̂ = radiograph)", "mask_guided_subtraction": "mask-guided subtraction (bone masks given)",
    "rib_band_filter": "rib-band filter", "gusarev_ae": "Gusarev AE", "vae": "VAE", "vq_vae": "VQ-VAE",
    "resnet_bs": "ResNet-BS", "unet": "U-Net", "unet_plus_plus": "UNet++", "pix2pix": "pix2pix",
    "mca_net": "MCA-Net", "distillation": "distilled U-Net (student)", "domain_adaptation": "DANN U-Net",
    "bs_ldm": "BS-LDM",
}

#: metric key -> (column title, higher is better, display scale, decimals)
DISPLAY = {
    "psnr": ("PSNR (dB) ↑", True, 1.0, 2),
    "bsr_symmetric": ("BSR sym. (%) ↑", True, 100.0, 2),
    "bsr": ("BSR official (%) ↑", True, 100.0, 2),
    "mse": ("MSE (10⁻³) ↓", False, 1e3, 3),
    "ssim": ("SSIM ↑", True, 1.0, 4),
    "ms_ssim": ("MS-SSIM ↑", True, 1.0, 4),
    "psnr_uint8_official": ("PSNR uint8 official (dB)", None, 1.0, 2),
    "lpips": ("LPIPS ↓", False, 1.0, 3),
}
LUNG_PREFIX = "lung/"  # bs_lib.metrics names the lung-region variants lung/<metric>
SORT_KEY = "psnr"  # leaderboard order: mean whole-image PSNR, best first
BAR_METRICS = ("psnr", "bsr_symmetric")  # what a method must improve over the identity baseline


# =========================================================================== methods


@dataclass
class TrainingBudget:
    """What a method cost to train: optimiser steps × samples per step, and the wall time."""

    steps: int = 0
    batch_size: int = 0
    images_seen: int = 0
    wall_time_s: float | None = None
    note: str = ""

    def describe(self) -> str:
        if self.steps == 0:
            return "none (no training)"
        text = f"{self.steps} × {self.batch_size} = {self.images_seen:,} images"
        return f"{text}; {self.note}" if self.note else text


@dataclass
class Method:
    """A method ready to predict: ``predict(cxr, masks, generator)`` maps (N,1,H,W) radiographs to soft tissue."""

    name: str
    label: str
    family: str
    predict: Callable[[torch.Tensor, dict, torch.Generator | None], torch.Tensor]
    budget: TrainingBudget = field(default_factory=TrainingBudget)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def learned_methods() -> list[str]:
    """Methods with a training config, ``ml_vqgan`` (an autoencoder) left out."""
    from bs_lib.configs import available_methods

    return [name for name in available_methods() if name not in NOT_SUPPRESSORS]


def manual_methods() -> dict[str, Callable]:
    """The conventional methods of :mod:`bs_lib.models.manual`: name -> function (empty when not installed)."""
    try:
        from bs_lib.models import manual
    except ImportError:
        return {}
    return dict(getattr(manual, "MANUAL_METHODS", {}))


def all_methods() -> list[str]:
    """Every method the benchmark knows: the identity, the manual methods, then the learned ones by name."""
    return [IDENTITY, *manual_methods(), *learned_methods()]


def check_method_names(names: Sequence[str]) -> list[str]:
    """The names, checked; an unknown one is a :class:`ValueError` that lists the valid names."""
    known = all_methods()
    unknown = [name for name in names if name not in known]
    if unknown:
        hint = ""
        if any(name in NOT_SUPPRESSORS for name in unknown):
            hint = " ml_vqgan is BS-LDM's autoencoder, not a bone suppressor: benchmark bs_ldm instead."
        raise ValueError(f"Unknown benchmark method(s) {unknown}: choose from {', '.join(known)}.{hint}")
    if len(set(names)) != len(names):
        raise ValueError(f"Benchmark methods must not repeat, got {list(names)}.")
    return list(names)


def identity_method() -> Method:
    return Method(IDENTITY, LABELS[IDENTITY], FAMILIES[IDENTITY], lambda cxr, masks, generator: cxr.clone())


# --------------------------------------------------------------------------- learned methods


def scaled_steps(steps: int, method: str, steps_override: dict[str, int], steps_scale: float) -> int:
    """A method's benchmark steps: its override (by name, or ``"all"``), else its config's steps × scale."""
    if method in steps_override:
        return int(steps_override[method])
    if "all" in steps_override:
        return int(steps_override["all"])
    return max(1, round(steps * steps_scale))


def learned_config(method: str, profile: str, *, image_size: int | None, seed: int, runs: Path,
                   steps_override: dict[str, int] | None = None, steps_scale: float = 1.0, data: str | None = None,
                   **variant):
    """The benchmark's :class:`~bs_lib.train.TrainConfig` for ``method``: its profile config, our size, seed, steps.

    The run is named after everything that changes it, so two benchmarks with
    different settings never share (or resume) a run, and a notebook that
    trains with this config (notebook 03) hands its runs to the benchmark.
    ``data`` replaces the config's dataset (the benchmark keeps the config's);
    ``variant`` are further config overrides for a notebook's own variant of
    the method (give it its own ``name``).
    """
    from bs_lib.configs import config_dict, load_config, rescheduled

    steps_override = steps_override or {}
    base = config_dict(method, profile)
    size = image_size or base.get("image_size", 64)
    steps = scaled_steps(base.get("steps", 1000), method, steps_override, steps_scale)
    name = f"benchmark-{method}-{profile}-{size}px-{steps}steps-seed{seed}"
    overrides: dict[str, Any] = {"name": name, "seed": seed, "output_dir": str(runs), "image_size": size,
                                 **rescheduled(base, steps)}
    if data is not None and data != base.get("data"):
        overrides.update(data=data, name=f"{name}-{data}")
    overrides.update(variant)
    teacher = (base.get("method_args") or {}).get("teacher")
    if method == "distillation" and isinstance(teacher, dict):
        overrides["method_args"] = {"teacher": teacher_spec(teacher, name, size, seed, steps_override, steps_scale)}
    return load_config(method, profile, **overrides)


def teacher_spec(teacher: dict, student_name: str, size: int, seed: int, steps_override: dict[str, int],
                 steps_scale: float) -> dict:
    """The distillation teacher's spec, trained at the benchmark's size, seed and step scale, in its own run."""
    from bs_lib.configs import config_dict

    method, profile = teacher.get("method", "unet"), teacher.get("profile", "smoke")
    own = config_dict(method, profile)
    overrides = dict(teacher.get("overrides") or {})
    method_args = {**(own.get("method_args") or {}), **(overrides.get("method_args") or {})}
    teacher_steps = scaled_steps(own.get("steps", 1000), "distillation-teacher", steps_override, steps_scale)
    overrides.update(name=f"{student_name}-teacher", image_size=size, seed=seed, steps=teacher_steps,
                     method_args=method_args)
    return {**{k: v for k, v in teacher.items() if k != "checkpoint"}, "overrides": overrides,
            "train_if_missing": True}


def budget_of(checkpoint: Path, note: str = "") -> TrainingBudget:
    """Steps × batch (× gradient accumulation) of a finished run, from its ``state.json``."""
    from bs_lib.train import read_state, resolve_checkpoint

    state = read_state(resolve_checkpoint(checkpoint))
    config = state.get("config", {})
    steps, batch = int(state.get("step", 0)), int(config.get("batch_size", 0)) * int(config.get("grad_accum", 1))
    return TrainingBudget(steps, batch, steps * batch, note=note)


WALL_TIME_FILE = "benchmark_wall_time.json"


def timed_training(train: Callable[[], Path], run_dir: Path, reused: bool) -> tuple[Path, float | None]:
    """Run ``train`` and return (checkpoint, wall seconds); a reused run reports the time saved when it trained."""
    started = time.perf_counter()
    checkpoint = train()
    record = Path(run_dir) / WALL_TIME_FILE
    if not reused:
        wall = time.perf_counter() - started
        record.write_text(json.dumps({"wall_time_s": wall}))
        return checkpoint, wall
    if record.is_file():
        return checkpoint, float(json.loads(record.read_text())["wall_time_s"])
    return checkpoint, None


def written_before(checkpoint: Path, moment: float) -> bool:
    """True when a checkpoint's ``state.json`` was written before ``moment`` (a ``time.time()``)."""
    from bs_lib.train import resolve_checkpoint

    return (resolve_checkpoint(checkpoint) / "state.json").stat().st_mtime < moment


def method_from_objective(name: str, objective: nn.Module, budget: TrainingBudget, device: torch.device) -> Method:
    stochastic = accepts_generator(objective.predict)

    def predict(cxr, masks, generator):
        return objective.predict(cxr, generator=generator) if stochastic else objective.predict(cxr)

    return Method(name, LABELS.get(name, name), FAMILIES.get(name, "learned"), predict, budget, device)


def prepare_learned(name: str, profile: str, *, image_size: int | None, seed: int, runs: Path,
                    device: torch.device, steps_override: dict[str, int] | None = None,
                    steps_scale: float = 1.0) -> Method:
    """Train (or reuse) a learned method and load it for inference."""
    from bs_lib import config as course_config
    from bs_lib.suppress import load_suppressor
    from bs_lib.train import build_datasets, finished_run, train_or_reuse

    config = learned_config(name, profile, image_size=image_size, seed=seed, runs=runs,
                            steps_override=steps_override, steps_scale=steps_scale)
    reused = finished_run(config) is not None
    course_config.seed_everything(config.seed)  # the initial weights are drawn when the objective is built

    def train() -> Path:
        return train_or_reuse(config, build_datasets(config)[0])

    checkpoint, wall = timed_training(train, config.run_dir, reused)
    note = "trained earlier, time not recorded" if wall is None else ""
    if name == "distillation":
        teacher = config.method_args["teacher"]
        teacher_budget = budget_of(Path(runs) / teacher["overrides"]["name"])
        note = ", ".join(filter(None, [note, f"+ teacher {teacher_budget.steps} × {teacher_budget.batch_size}"]))
    budget = budget_of(checkpoint, note)
    budget.wall_time_s = wall
    objective, _ = load_suppressor(checkpoint, device)
    return method_from_objective(name, objective, budget, device)


def bs_ldm_suffix(image_size: int | None, profile: str) -> str:
    """The run-name suffix under which the benchmark trains its own BS-LDM when no finished run exists."""
    from bs_lib.configs import config_dict

    return f"-benchmark{image_size or config_dict('bs_ldm', profile).get('image_size', 64)}"


def bs_ldm_ready(profile: str, *, seed: int = 0, image_size: int | None = None, suffix: str | None = None) -> bool:
    """True when both BS-LDM stages of ``profile`` have finished runs (notebooks 06–08 or an earlier benchmark).

    Looks where :func:`bs_lib.runs.bs_ldm` looks, so that a
    notebook can leave BS-LDM out rather than train it within a short time budget.
    """
    from bs_lib.runs import finished_bs_ldm

    suffix = suffix if suffix is not None else bs_ldm_suffix(image_size, profile)
    return finished_bs_ldm(profile, seed=seed, image_size=image_size, own_suffix=suffix) is not None


@contextlib.contextmanager
def runs_folder(runs: Path | None) -> Iterator[None]:
    """Inside the block :func:`bs_lib.config.runs_dir` is ``runs`` (``None``: unchanged)."""
    from bs_lib.config import RUNS_DIR_ENV

    previous = os.environ.get(RUNS_DIR_ENV)
    if runs is not None:
        os.environ[RUNS_DIR_ENV] = str(runs)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RUNS_DIR_ENV, None)
        else:
            os.environ[RUNS_DIR_ENV] = previous


def bs_ldm_steps(profile: str, steps_override: dict[str, int] | None,
                 steps_scale: float) -> tuple[int, int] | None:
    """(stage 1, stage 2) steps when the benchmark changes BS-LDM's budget, else ``None`` (its configs' steps).

    Stage 1 answers to ``ml_vqgan=N``, stage 2 to ``bs_ldm=N``; ``all=N`` and
    ``steps_scale`` apply to both.
    """
    from bs_lib.configs import config_dict

    steps_override = steps_override or {}
    if steps_scale == 1.0 and not {"ml_vqgan", "bs_ldm", "all"} & set(steps_override):
        return None
    return (scaled_steps(config_dict("ml_vqgan", profile).get("steps", 1000), "ml_vqgan", steps_override, steps_scale),
            scaled_steps(config_dict("bs_ldm", profile).get("steps", 1000), "bs_ldm", steps_override, steps_scale))


def trained_bs_ldm(profile: str, *, image_size: int | None, seed: int, suffix: str | None = None,
                   runs: Path | None = None, steps_override: dict[str, int] | None = None,
                   steps_scale: float = 1.0) -> tuple[Path, TrainingBudget]:
    """BS-LDM's stage-2 checkpoint (stage 1 inside it) and what both stages cost: finished runs reused, else trained.

    Runs live in ``runs`` (default :func:`bs_lib.config.runs_dir`, where notebooks 06–08 leave theirs).
    With its configs' budgets, the notebooks' finished runs are reused; a changed
    budget (``steps_scale``, ``ml_vqgan=N``/``bs_ldm=N`` overrides) trains runs
    of its own, named after both budgets.
    """
    from bs_lib import config as course_config
    from bs_lib.configs import load_config
    from bs_lib.runs import bs_ldm
    from bs_lib.train import build_datasets, resolve_checkpoint

    size_override = {"image_size": image_size} if image_size else {}
    stage1_config = load_config("ml_vqgan", profile, seed=seed, **size_override)
    train_set = build_datasets(stage1_config)[0]
    suffix = suffix if suffix is not None else bs_ldm_suffix(image_size, profile)
    steps = bs_ldm_steps(profile, steps_override, steps_scale)
    if steps is not None:
        suffix += f"-{steps[0]}+{steps[1]}steps"
    course_config.seed_everything(seed)
    started, started_clock = time.perf_counter(), time.time()
    with runs_folder(runs):
        stage1, stage2 = bs_ldm(profile, train_set, seed=seed, image_size=image_size, own_suffix=suffix, steps=steps)
    first, second = budget_of(stage1), budget_of(stage2)
    reused = written_before(stage2, started_clock)  # a finished run of notebooks 06-08 or an earlier benchmark
    record = resolve_checkpoint(stage2).parent.parent / WALL_TIME_FILE
    if reused:
        wall = float(json.loads(record.read_text())["wall_time_s"]) if record.is_file() else None
    else:
        wall = time.perf_counter() - started
        record.write_text(json.dumps({"wall_time_s": wall}))
    note = f"stage 1 {first.steps} × {first.batch_size} + stage 2 {second.steps} × {second.batch_size}"
    budget = TrainingBudget(first.steps + second.steps, second.batch_size, first.images_seen + second.images_seen,
                            wall, note + ("; trained earlier, time not recorded" if wall is None else ""))
    return stage2, budget


def prepare_bs_ldm(profile: str, *, image_size: int | None, seed: int, device: torch.device,
                   suffix: str | None = None, runs: Path | None = None,
                   steps_override: dict[str, int] | None = None, steps_scale: float = 1.0) -> Method:
    """BS-LDM ready to predict with its config's sampler (see :func:`trained_bs_ldm` for the runs)."""
    from bs_lib.suppress import load_suppressor

    checkpoint, budget = trained_bs_ldm(profile, image_size=image_size, seed=seed, suffix=suffix, runs=runs,
                                        steps_override=steps_override, steps_scale=steps_scale)
    objective, _ = load_suppressor(checkpoint, device)
    return method_from_objective("bs_ldm", objective, budget, device)


# --------------------------------------------------------------------------- manual methods


def manual_method(name: str) -> Method:
    """A conventional method, run one image at a time through :func:`bs_lib.models.manual.predict`."""
    from bs_lib.models import manual

    def predict(cxr, masks, generator):
        estimates = []
        for index, image in enumerate(cxr.cpu()):
            own_masks = {key: value[index].cpu() for key, value in masks.items()}
            estimates.append(torch.as_tensor(manual.predict(name, image, own_masks), dtype=torch.float32))
        return torch.stack(estimates).reshape(cxr.shape).to(cxr.device)

    return Method(name, LABELS.get(name, name.replace("_", " ")), FAMILIES.get(name, "manual"), predict)


def prepare_method(name: str, profile: str, *, image_size: int | None, seed: int, runs: Path, device: torch.device,
                   steps_override: dict[str, int] | None = None, steps_scale: float = 1.0,
                   bs_ldm_suffix: str | None = None) -> Method:
    """The method ``name`` ready to predict (trained first when it learns)."""
    if name == IDENTITY:
        return identity_method()
    if name in manual_methods():
        return manual_method(name)
    if name == "bs_ldm":
        return prepare_bs_ldm(profile, image_size=image_size, seed=seed, device=device, suffix=bs_ldm_suffix,
                              runs=runs, steps_override=steps_override, steps_scale=steps_scale)
    return prepare_learned(name, profile, image_size=image_size, seed=seed, runs=runs, device=device,
                           steps_override=steps_override, steps_scale=steps_scale)


# =========================================================================== the test split


def load_test_samples(dataset: str, image_size: int, seed: int, num_images: int | None,
                      split_file: str | Path | None = None) -> list[dict]:
    """The test samples every method is measured on: the dataset's test split, first ``num_images``.

    With ``split_file`` (written by :func:`bs_lib.datasets.save_split`), only
    the test patients listed there are kept. The phantom's test split is as
    long as asked (40 images by default); longer ones start with the same 40.
    """
    from bs_lib.datasets import get_dataset, load_split

    longer = {"num_images": num_images} if dataset == "phantom" and num_images else {}
    test_set = get_dataset(dataset, split="test", size=image_size, seed=seed, **longer)
    allowed = set(load_split(split_file)["splits"]["test"]) if split_file is not None else None
    samples = []
    for index in range(len(test_set)):
        if num_images is not None and len(samples) == num_images:
            break
        sample = test_set[index]
        if allowed is None or str(sample.get("patient", sample.get("id"))) in allowed:
            samples.append(sample)
    if not samples:
        raise ValueError(f"No test images: the {dataset!r} test split at {image_size}² is empty"
                         f"{' after filtering by ' + str(split_file) if split_file else ''}.")
    return samples


def save_benchmark_split(path: Path, dataset: str, seed: int, samples: list[dict]) -> Path:
    """Save the test patients with :func:`bs_lib.datasets.save_split`; ``--split`` reads them back."""
    from bs_lib.datasets import save_split

    patients = sorted({str(sample.get("patient", sample["id"])) for sample in samples})
    return save_split(path, {"test": patients}, dataset, seed, note="benchmark test split (bs_lib.evaluate)")


# =========================================================================== measuring


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ParameterTally(torch.overrides.TorchFunctionMode):
    """Counts the parameters a computation touches: every ``nn.Parameter`` passed to a torch function.

    A GAN's discriminator, a distillation teacher or BS-LDM's training-only
    parts are never touched by ``predict``, so they are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[int, nn.Parameter] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in (*args, *kwargs.values()):
            for item in value if isinstance(value, list | tuple) else (value,):
                if isinstance(item, nn.Parameter):
                    self.seen[id(item)] = item
        return func(*args, **kwargs)

    @property
    def count(self) -> int:
        return sum(p.numel() for p in self.seen.values())


def batched(samples: list[dict], batch_size: int) -> list[dict]:
    """Stacked batches: ``cxr``, ``soft`` (N,1,H,W) and ``masks`` {name: (N,1,H,W)}."""
    batches = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        masks = {key: torch.stack([torch.as_tensor(s["masks"][key]) for s in chunk])
                 for key in chunk[0].get("masks", {})}
        batches.append({"cxr": torch.stack([s["cxr"] for s in chunk]),
                        "soft": torch.stack([s["soft"] for s in chunk]), "masks": masks})
    return batches


@torch.no_grad()
def predict_all(method: Method, samples: list[dict], batch_size: int, seed: int) -> tuple[torch.Tensor, float, int]:
    """Predictions for every test image, seconds per image, and parameters used.

    One warm-up batch first (allocations, lazy initialisation), then the timed
    pass over all images; on a GPU the clock waits for the device. Sampling
    methods get a generator seeded with ``seed``, so predictions repeat.
    """
    device = method.device
    batches = [{k: (v.to(device) if k != "masks" else {m: t.to(device) for m, t in v.items()})
                for k, v in batch.items()} for batch in batched(samples, batch_size)]

    def generator() -> torch.Generator:
        return torch.Generator(device=device).manual_seed(seed)

    tally = ParameterTally()
    with tally:
        method.predict(batches[0]["cxr"], batches[0]["masks"], generator())
    synchronize(device)
    shared = generator()
    started = time.perf_counter()
    predictions = [method.predict(batch["cxr"], batch["masks"], shared) for batch in batches]
    synchronize(device)
    seconds = (time.perf_counter() - started) / len(samples)
    predictions = torch.cat([p.float().cpu() for p in predictions]).clamp(0, 1)
    return predictions, seconds, tally.count


def image_metrics(prediction: torch.Tensor, sample: dict) -> dict[str, float]:
    """Every metric of :func:`bs_lib.metrics.evaluate`, whole image and (when the sample has one) lung region."""
    from bs_lib import metrics

    lungs = sample.get("masks", {}).get("lungs")
    scores = metrics.evaluate(prediction, sample["soft"], sample["cxr"], mask=lungs)
    return {key: float(value) for key, value in scores.items() if value is not None}


@dataclass
class MethodResult:
    name: str
    label: str
    family: str
    parameters: int
    seconds_per_image: float
    budget: TrainingBudget
    per_image: list[dict]  # one dict per test image: id, then metrics
    predictions: torch.Tensor  # (N,1,H,W), on the CPU

    def values(self, metric: str) -> np.ndarray:
        """``metric`` of every test image, in test-split order."""
        return np.array([row[metric] for row in self.per_image], dtype=float)

    def summary(self) -> dict[str, tuple[float, float]]:
        """metric -> (mean, population std) over the test images."""
        keys = [k for k in self.per_image[0] if k != "id"]
        return {k: (float(self.values(k).mean()), float(self.values(k).std())) for k in keys}


def evaluate_method(method: Method, samples: list[dict], *, batch_size: int = 8, seed: int = 0) -> MethodResult:
    """Predict every test image with ``method`` and measure each prediction."""
    from bs_lib.config import progress

    predictions, seconds, parameters = predict_all(method, samples, batch_size, seed)
    rows = []
    for prediction, sample in progress(list(zip(predictions, samples, strict=True)), desc=method.name, leave=False):
        rows.append({"id": str(sample["id"]), **image_metrics(prediction, sample)})
    return MethodResult(method.name, method.label, method.family, parameters, seconds, method.budget, rows,
                        predictions)


def paired_difference(method: Sequence[float], reference: Sequence[float], *, confidence: float = 0.95,
                      resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    r"""Mean per-image difference (method − reference) and its paired bootstrap confidence interval.

    With :math:`d_i = m_i - r_i` on the same :math:`n` test images, the estimate is
    :math:`\bar d`; the images are drawn with replacement ``resamples`` times, and
    the interval is the :math:`(1 \mp c)/2` quantiles of the resampled means
    (percentile bootstrap). Pairing removes the spread between images (an easy
    patient is easy for every method), which dominates a leaderboard's std, so
    small but consistent differences become visible. Returns
    ``(mean, low, high)``.
    """
    m, r = np.asarray(method, dtype=float), np.asarray(reference, dtype=float)
    if m.shape != r.shape or m.ndim != 1 or m.size == 0:
        raise ValueError(f"paired_difference needs two equally long, non-empty lists of per-image values; "
                         f"got shapes {m.shape} and {r.shape}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}.")
    differences = m - r
    draws = np.random.default_rng(seed).integers(0, differences.size, size=(resamples, differences.size))
    means = differences[draws].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(differences.mean()), float(low), float(high)


# =========================================================================== the benchmark


@dataclass
class BenchmarkResult:
    """Every method's per-image metrics on the same test images, and everything needed to report them."""

    results: list[MethodResult]
    samples: list[dict]
    settings: dict

    # ------------------------------------------------------------------ tables

    def result(self, name: str) -> MethodResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"No method {name!r} in this benchmark; it has {', '.join(r.name for r in self.results)}.")

    def per_image_rows(self) -> list[dict]:
        """Long format: one row per (method, test image)."""
        return [{"method": r.name, **row} for r in self.results for row in r.per_image]

    def per_image_frame(self):
        import pandas as pd

        return pd.DataFrame(self.per_image_rows())

    def metric_keys(self) -> list[str]:
        keys = [k for k in self.results[0].per_image[0] if k != "id"]
        return [k for k in keys if all(k in r.per_image[0] for r in self.results)]

    def ranked(self) -> list[MethodResult]:
        """Methods sorted by mean whole-image PSNR (:data:`SORT_KEY`), best first."""
        key = SORT_KEY if SORT_KEY in self.metric_keys() else self.metric_keys()[0]
        return sorted(self.results, key=lambda r: -r.summary()[key][0])

    def beats_identity(self, name: str) -> dict[str, bool]:
        """For :data:`BAR_METRICS`: is the method's mean better than the identity baseline's?"""
        identity, method = self.result(IDENTITY).summary(), self.result(name).summary()
        return {k: method[k][0] > identity[k][0] for k in BAR_METRICS if k in method and k in identity}

    def gain_over_identity(self, name: str, metric: str = SORT_KEY) -> tuple[float, float, float]:
        """Mean per-image gain of ``name`` over doing nothing, with its paired 95 % bootstrap interval."""
        return paired_difference(self.result(name).values(metric), self.result(IDENTITY).values(metric))

    def summary_rows(self) -> list[dict]:
        """One dict per method (ranked): mean and std of every metric, cost and budget."""
        rows = []
        for r in self.ranked():
            row = {"method": r.name, "label": r.label, "family": r.family, "parameters": r.parameters,
                   "seconds_per_image": r.seconds_per_image, **{f"budget_{k}": v for k, v in asdict(r.budget).items()}}
            for key, (mean, std) in r.summary().items():
                row[f"{key}_mean"], row[f"{key}_std"] = mean, std
            if r.name != IDENTITY and any(x.name == IDENTITY for x in self.results):
                row["beats_identity"] = self.beats_identity(r.name)
                row["psnr_gain_over_identity"] = self.gain_over_identity(r.name)
            rows.append(row)
        return rows

    def _metric_columns(self, region: str) -> list[str]:
        keys = self.metric_keys()
        if region == "lung":
            return [LUNG_PREFIX + k for k in DISPLAY if LUNG_PREFIX + k in keys]
        return [k for k in DISPLAY if k in keys]

    def table(self, region: str = "whole", html_output: bool = False) -> tuple[list[str], list[list[str]]]:
        """(header, rows) of the leaderboard; ``region`` is ``"whole"``, ``"lung"`` or ``"cost"``."""
        bold = ("<b>", "</b>") if html_output else ("**", "**")
        ranked = self.ranked()
        if region == "cost":
            header = ["method", "family", "parameters", "ms / image", "training (steps × batch)", "train time (s)"]
            rows = [[r.label, r.family, f"{r.parameters:,}", f"{1e3 * r.seconds_per_image:.2f}", r.budget.describe(),
                     "—" if r.budget.wall_time_s is None else f"{r.budget.wall_time_s:.1f}"] for r in ranked]
            return header, rows
        columns = self._metric_columns(region)
        summaries = {r.name: r.summary() for r in ranked}
        best = {}
        for column in columns:
            higher = DISPLAY[column.removeprefix(LUNG_PREFIX)][1]
            if higher is None:
                continue
            means = [summaries[r.name][column][0] for r in ranked]
            best[column] = max(means) if higher else min(means)
        header = ["method", *[DISPLAY[c.removeprefix(LUNG_PREFIX)][0] for c in columns]]
        show_bar = region == "whole" and IDENTITY in summaries
        if show_bar:
            header += ["Δ PSNR against identity (dB) [95 % CI]", "beats identity (PSNR, BSR sym.)"]
        rows = []
        for r in ranked:
            cells = [r.label]
            for column in columns:
                _, _, scale, decimals = DISPLAY[column.removeprefix(LUNG_PREFIX)]
                mean, std = summaries[r.name][column]
                text = f"{mean * scale:.{decimals}f}"
                if column in best and math.isclose(mean, best[column], rel_tol=0, abs_tol=1e-12):
                    text = f"{bold[0]}{text}{bold[1]}"
                cells.append(f"{text} ± {std * scale:.{decimals}f}")
            if show_bar and r.name == IDENTITY:
                cells += ["—", "—"]
            elif show_bar:
                cells.append(format_difference(*self.gain_over_identity(r.name)))
                cells.append("yes" if all(self.beats_identity(r.name).values()) else
                             "**no**" if not html_output else "<b>no</b>")
            rows.append(cells)
        return header, rows

    # ------------------------------------------------------------------ reports

    def leaderboard_markdown(self) -> str:
        """The leaderboard (whole image, lung region, cost) as Markdown tables."""
        parts = [f"Sorted by mean whole-image PSNR, best first; mean ± std over {len(self.samples)} test images; "
                 f"best mean per column in bold. The gain over identity is the mean per-image difference with "
                 f"its paired bootstrap interval.", "", "### Whole image", "", markdown_table(*self.table("whole"))]
        if self._metric_columns("lung"):
            parts += ["", "### Lung region", "", markdown_table(*self.table("lung"))]
        parts += ["", "### Cost", "", markdown_table(*self.table("cost"))]
        return "\n".join(parts)

    def report_markdown(self) -> str:
        """The whole report: command, settings, leaderboard, then the published table, apart."""
        s = self.settings
        lines = [f"# Benchmark: {s['profile']} profile, {s['dataset']} test split at {s['image_size']}²", "",
                 "Produced by:", "", "```", s["command"], "```", "",
                 settings_markdown(s), "", "## Leaderboard (our data)", "", self.leaderboard_markdown(), "",
                 published_markdown()]
        return "\n".join(lines) + "\n"

    def report_html(self) -> str:
        s = self.settings
        body = [f"<h1>Benchmark: {html.escape(s['profile'])} profile, {html.escape(s['dataset'])} test split at "
                f"{s['image_size']}²</h1>", f"<p>Produced by:</p><pre>{html.escape(s['command'])}</pre>",
                "<ul>" + "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>"
                                 for line in settings_markdown(s).splitlines()) + "</ul>",
                "<h2>Leaderboard (our data)</h2>",
                f"<p>Sorted by mean whole-image PSNR, best first; mean ± std over {len(self.samples)} test images; "
                f"best mean per column in bold.</p>"]
        for region, title in (("whole", "Whole image"), ("lung", "Lung region"), ("cost", "Cost")):
            if region == "lung" and not self._metric_columns("lung"):
                continue
            body += [f"<h3>{title}</h3>", html_table(*self.table(region, html_output=True))]
        body.append(published_html())
        style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
                 "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                 "td:first-child,th:first-child{text-align:left}.different-data{background:#f6f6f6;padding:1em}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>bs_lib benchmark</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def to_json(self) -> dict:
        return {"settings": self.settings, "summary": self.summary_rows(), "per_image": self.per_image_rows()}

    def save(self, stem: str | Path, figures: bool = True) -> list[Path]:
        """Write ``<stem>.md``, ``.html``, ``.csv`` (per image), ``.json`` and the figures; returns the paths."""
        import matplotlib.pyplot as plt

        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        written = []
        for suffix, text in ((".md", self.report_markdown()), (".html", self.report_html()),
                             (".json", json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")):
            path = stem.with_name(stem.name + suffix)
            path.write_text(text, encoding="utf-8")
            written.append(path)
        csv_path = stem.with_name(stem.name + ".csv")
        self.per_image_frame().to_csv(csv_path, index=False, float_format="%.6g")
        written.append(csv_path)
        if figures:
            for name, draw in (("_cases.png", case_grid), ("_differences.png", difference_maps)):
                figure = draw(self)
                path = stem.with_name(stem.name + name)
                save_compact_png(figure, path)
                plt.close(figure)
                written.append(path)
        return written


def save_compact_png(figure, path: Path, dpi: int = 72, colors: int = 256) -> None:
    """Save a figure as a palette PNG (``colors`` colours): a fraction of the size, fit to commit."""
    import io as byte_io

    from PIL import Image

    buffer = byte_io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    image = Image.open(buffer).convert("RGB")
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def settings_markdown(s: dict) -> str:
    lines = [f"- data: {s['dataset']} test split, {s['num_test']} images at {s['image_size']}², seed {s['seed']}; "
             f"split saved as `{s['split_file']}`",
             f"- training: each method's `{s['profile']}` config (`bs_lib/configs/<method>.yaml`) at "
             f"{s['image_size']}², seed {s['seed']}; step overrides: {s['steps_override'] or 'none'}, "
             f"step scale ×{s['steps_scale']:g} (BS-LDM: both stages; the notebooks' runs are reused only unscaled)",
             f"- device: {s['device']} ({s['torch_threads']} torch thread(s)); {s['versions']}",
             "- metrics: `bs_lib.metrics.evaluate` per image (float, data range 1); lung region = the phantom's "
             "lung mask; std is the population standard deviation over images",
             f"- this invocation: {s['total_time_s']:.0f} s (runs finished earlier with the same config are reused; "
             f"the Cost table gives each method's own training time)"]
    return "\n".join(lines)


def format_difference(mean: float, low: float, high: float, digits: int = 2) -> str:
    """A mean difference with its interval, as the result tables print it: ``+0.22 [-0.02, +0.41]``."""
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """A table whose cells may hold ``<b>`` (everything else escaped)."""

    def cell(text: str) -> str:
        return html.escape(text).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# =========================================================================== the published table

PUBLISHED_SOURCE = ("GL-LCM re-evaluation (MICCAI 2025, the BS-LDM authors): mean ± std at 1024² with fixed "
                    "(float) MSE/PSNR code; BSR in %, MSE in 10⁻³; LPIPS with AlexNet weights")
PUBLISHED_CAVEAT = ("Different data (real dual-energy radiographs of SZCH-X-Rays and JSRT), 1024² resolution, "
                    "full training budgets and the official (one-sided) BSR. These numbers are shown for "
                    "orientation only: they are not comparable with ours and never ranked with them.")
PUBLISHED_HEADER = ("Method", "BSR (%) ↑", "MSE (10⁻³) ↓", "PSNR ↑", "LPIPS ↓")
PUBLISHED: dict[str, list[tuple[str, str, str, str, str]]] = {
    "SZCH-X-Rays": [
        ("VAE", "91.281 ± 3.088", "1.169 ± 1.059", "30.018 ± 2.007", "0.237 ± 0.047"),
        ("VQ-VAE", "94.485 ± 2.407", "0.645 ± 0.596", "32.600 ± 2.071", "0.137 ± 0.029"),
        ("VQGAN", "94.330 ± 3.402", "0.923 ± 2.478", "32.096 ± 2.420", "0.083 ± 0.020"),
        ("Gusarev et al.", "94.142 ± 2.666", "1.028 ± 2.201", "31.369 ± 2.385", "0.156 ± 0.031"),
        ("MCA-Net", "95.442 ± 2.095", "0.611 ± 0.435", "32.689 ± 1.939", "0.079 ± 0.018"),
        ("ResNet-BS", "94.508 ± 1.733", "0.646 ± 0.339", "32.265 ± 1.635", "0.107 ± 0.022"),
        ("Wang et al.", "89.767 ± 6.079", "1.080 ± 0.610", "29.963 ± 1.378", "0.072 ± 0.016"),
        ("BS-Diff", "92.428 ± 3.258", "0.947 ± 0.510", "30.627 ± 1.690", "0.212 ± 0.041"),
        ("BS-LDM", "94.159 ± 2.751", "0.701 ± 0.293", "31.953 ± 1.969", "0.070 ± 0.018"),
        ("GL-LCM", "95.611 ± 1.529", "0.512 ± 0.293", "33.347 ± 1.829", "0.056 ± 0.015"),
    ],
    "JSRT": [
        ("VAE", "85.646 ± 9.327", "1.224 ± 0.749", "29.814 ± 2.364", "0.155 ± 0.032"),
        ("VQ-VAE", "86.445 ± 8.881", "0.986 ± 0.596", "30.712 ± 2.273", "0.062 ± 0.017"),
        ("VQGAN", "86.594 ± 8.916", "1.002 ± 0.606", "30.635 ± 2.255", "0.061 ± 0.017"),
        ("Gusarev et al.", "89.283 ± 8.288", "0.821 ± 0.570", "31.700 ± 2.594", "0.100 ± 0.024"),
        ("MCA-Net", "86.887 ± 9.825", "0.876 ± 0.625", "31.577 ± 2.905", "0.057 ± 0.017"),
        ("ResNet-BS", "88.782 ± 8.905", "0.960 ± 0.661", "31.021 ± 2.576", "0.060 ± 0.016"),
        ("Wang et al.", "89.679 ± 9.477", "1.013 ± 0.655", "30.681 ± 2.431", "0.075 ± 0.015"),
        ("BS-Diff", "88.707 ± 8.859", "1.003 ± 0.655", "30.765 ± 2.504", "0.154 ± 0.037"),
        ("BS-LDM", "89.322 ± 9.562", "0.783 ± 0.632", "32.307 ± 3.231", "0.058 ± 0.017"),
        ("GL-LCM", "90.056 ± 10.635", "0.746 ± 0.680", "32.951 ± 3.799", "0.052 ± 0.015"),
    ],
}
PUBLISHED_TITLE = "Published numbers: DIFFERENT DATA, resolution and training budget (not ranked with ours)"


def published_table(dataset: str = "SZCH-X-Rays"):
    """The published table of one dataset as a DataFrame, labelled in ``.attrs`` (title, source, caveat)."""
    import pandas as pd

    if dataset not in PUBLISHED:
        raise ValueError(f"No published table for {dataset!r}: choose one of {', '.join(PUBLISHED)}.")
    frame = pd.DataFrame(PUBLISHED[dataset], columns=list(PUBLISHED_HEADER)).set_index("Method")
    frame.attrs.update(title=f"{PUBLISHED_TITLE}: {dataset}", source=PUBLISHED_SOURCE, caveat=PUBLISHED_CAVEAT)
    return frame


def published_markdown() -> str:
    parts = [f"## {PUBLISHED_TITLE}", "", f"Source: {PUBLISHED_SOURCE}.", "", f"**{PUBLISHED_CAVEAT}**"]
    for dataset, rows in PUBLISHED.items():
        parts += ["", f"### {dataset} (published, 1024², real data)", "",
                  markdown_table(list(PUBLISHED_HEADER), [list(row) for row in rows])]
    return "\n".join(parts)


def published_html() -> str:
    parts = [f"<div class='different-data'><h2>{html.escape(PUBLISHED_TITLE)}</h2>",
             f"<p>Source: {html.escape(PUBLISHED_SOURCE)}.</p><p><b>{html.escape(PUBLISHED_CAVEAT)}</b></p>"]
    for dataset, rows in PUBLISHED.items():
        parts += [f"<h3>{html.escape(dataset)} (published, 1024², real data)</h3>",
                  html_table(list(PUBLISHED_HEADER), [list(row) for row in rows])]
    return "\n".join(parts) + "</div>"


# =========================================================================== figures


def chosen_cases(result: BenchmarkResult, count: int = 3) -> list[int]:
    """Test images to show: evenly spread over the test set (always the same ones for the same set)."""
    total = len(result.samples)
    return sorted({round(i * (total - 1) / max(1, count - 1)) for i in range(min(count, total))})


def case_grid(result: BenchmarkResult, cases: Sequence[int] | None = None):
    """The same test cases (columns) for the radiograph, the truth and every method (rows, leaderboard order)."""
    import matplotlib.pyplot as plt

    cases = list(cases) if cases is not None else chosen_cases(result)
    ranked = result.ranked()
    rows = [("radiograph", [result.samples[i]["cxr"] for i in cases]),
            ("truth (soft tissue)", [result.samples[i]["soft"] for i in cases])]
    rows += [(r.label, [r.predictions[i] for i in cases]) for r in ranked]
    figure, axes = plt.subplots(len(rows), len(cases), figsize=(1.9 * len(cases) + 1.6, 1.9 * len(rows)),
                                squeeze=False, constrained_layout=True)
    for row_axes, (title, images) in zip(axes, rows, strict=True):
        for axis, image in zip(row_axes, images, strict=True):
            axis.imshow(np.asarray(image)[0], cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
        row_axes[0].set_ylabel(title, fontsize=8)
    for axis, index in zip(axes[0], cases, strict=True):
        axis.set_title(str(result.samples[index]["id"]), fontsize=8)
    return figure


def difference_maps(result: BenchmarkResult, cases: Sequence[int] | None = None):
    """Prediction − truth for the same cases; red = too bright (bone left), blue = too dark; one shared scale."""
    import matplotlib.pyplot as plt

    cases = list(cases) if cases is not None else chosen_cases(result)
    ranked = result.ranked()
    differences = [[(r.predictions[i] - result.samples[i]["soft"])[0].numpy() for i in cases] for r in ranked]
    reach = float(np.percentile(np.abs(np.stack(differences)), 99.5)) or 1.0  # one outlier must not wash out the rest
    figure, axes = plt.subplots(len(ranked), len(cases), figsize=(1.9 * len(cases) + 2.2, 1.9 * len(ranked)),
                                squeeze=False, constrained_layout=True)
    shown = None
    for row_axes, r, row in zip(axes, ranked, differences, strict=True):
        for axis, difference in zip(row_axes, row, strict=True):
            shown = axis.imshow(difference, cmap="coolwarm", vmin=-reach, vmax=reach)
            axis.set_xticks([])
            axis.set_yticks([])
        row_axes[0].set_ylabel(r.label, fontsize=8)
    for axis, index in zip(axes[0], cases, strict=True):
        axis.set_title(str(result.samples[index]["id"]), fontsize=8)
    figure.colorbar(shown, ax=axes, shrink=0.6, label="prediction − truth")
    return figure


# =========================================================================== running it


def library_versions() -> str:
    import bs_lib

    return f"bs_lib {bs_lib.__version__}, torch {torch.__version__}, Python {platform.python_version()}"


def run_benchmark(methods: Sequence[str] | None = None, profile: str = "smoke", *, image_size: int | None = None,
                  num_test: int | None = -1, seed: int = 0, steps_override: dict[str, int] | None = None,
                  steps_scale: float = 1.0, runs: str | Path | None = None, device: str | torch.device | None = None,
                  dataset: str = "phantom", split_file: str | Path | None = None, split_out: str | Path | None = None,
                  batch_size: int = 8, bs_ldm_suffix: str | None = None, command: str = "") -> BenchmarkResult:
    """Train (or reuse) and evaluate ``methods`` (default: all) on one test split; returns the results.

    ``num_test=-1`` takes the profile's default number of test images
    (:data:`DEFAULT_TEST_IMAGES`), ``None`` the whole split. ``steps_override``
    maps method names (or ``"all"``, or ``"distillation-teacher"``) to steps;
    ``steps_scale`` multiplies every other config's steps. BS-LDM reuses
    finished runs of notebooks 06–08, else trains its own under
    ``bs_ldm_suffix`` (default ``-benchmark<size>``); the scale and the
    ``ml_vqgan``/``bs_ldm`` overrides set its two stages' steps (and then
    only its own runs, named after both budgets, are reused).
    """
    from bs_lib import config as course_config

    started = time.perf_counter()
    names = check_method_names(list(methods) if methods else all_methods())
    if IDENTITY not in names:
        names.insert(0, IDENTITY)  # the baseline is always measured
    if steps_scale <= 0:
        raise ValueError(f"steps_scale must be positive, got {steps_scale}.")
    chosen = course_config.get_profile(profile)
    size = image_size or chosen.image_size
    runs = Path(runs) if runs is not None else course_config.runs_dir()
    device = course_config.detect_device(str(device) if device is not None else None)
    num_test = DEFAULT_TEST_IMAGES.get(chosen.name) if num_test == -1 else num_test
    samples = load_test_samples(dataset, size, seed, num_test, split_file)
    if split_out is not None:
        split_file = save_benchmark_split(Path(split_out), dataset, seed, samples)
    results = []
    for name in names:
        course_config.seed_everything(seed)
        method = prepare_method(name, chosen.name, image_size=size, seed=seed, runs=runs, device=device,
                                steps_override=steps_override, steps_scale=steps_scale, bs_ldm_suffix=bs_ldm_suffix)
        results.append(evaluate_method(method, samples, batch_size=batch_size, seed=seed))
    settings = {"command": command or "bs_lib.evaluate.run_benchmark(...)", "profile": chosen.name,
                "dataset": dataset, "image_size": size, "num_test": len(samples), "seed": seed,
                "methods": names, "steps_override": dict(steps_override or {}), "steps_scale": steps_scale,
                "split_file": str(split_file) if split_file else "not saved", "device": str(device),
                "torch_threads": torch.get_num_threads(), "versions": library_versions(),
                "test_ids": [str(s["id"]) for s in samples],
                "total_time_s": time.perf_counter() - started}
    return BenchmarkResult(results, samples, settings)


# =========================================================================== command line


def parse_steps(values: Sequence[str]) -> dict[str, int]:
    """``["200", "unet=400"]`` -> ``{"all": 200, "unet": 400}``; bad items raise a clear error."""
    parsed = {}
    for value in values:
        name, sep, count = value.rpartition("=") if "=" in value else ("all", "=", value)
        try:
            steps = int(count)
        except ValueError:
            steps = 0
        if not sep or not name or steps < 1:
            raise ValueError(f"--steps {value!r}: give a positive step count, for every method (--steps 200) or "
                             f"one (--steps unet=200).")
        parsed[name] = steps
    return parsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="smoke", help="smoke | colab | full (configs, test images)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"methods to run (default: all); identity is always added. Known: "
                             f"{', '.join(all_methods())}")
    parser.add_argument("--image-size", type=int, default=None, help="image side (default: the profile's)")
    parser.add_argument("--num-test", type=int, default=-1,
                        help="test images (default: 16 in smoke, 64 in colab, all in full; 0 = all)")
    parser.add_argument("--steps", action="append", default=[], metavar="[METHOD=]N",
                        help="training steps for every method (N) or one (METHOD=N); repeatable")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every config's steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="phantom", help="dataset of the test split (default: phantom)")
    parser.add_argument("--split", type=Path, default=None, help="restrict the test set to a saved split file")
    parser.add_argument("--runs-dir", type=Path, default=None, help="training runs (default: $BS_RUNS_DIR)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--batch-size", type=int, default=8, help="inference batch size")
    parser.add_argument("--output", type=Path, default=None,
                        help="write <OUTPUT>.md/.html/.csv/.json/_cases.png/_differences.png/_split.json")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (``python -m bs_lib benchmark ...``), rebuilt from ``sys.argv``."""
    argv = sys.argv[1:]
    if "benchmark" in argv:
        return "python -m bs_lib " + shlex.join(argv[argv.index("benchmark"):])
    return "python -m bs_lib benchmark " + shlex.join(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                                                       if v not in (None, [], False))


def run(args: argparse.Namespace) -> int:
    from bs_lib import config as course_config

    try:
        check_method_names(args.methods or [])
        steps_override = parse_steps(args.steps)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    course_config.setup(args.profile, seed=args.seed, device=args.device)  # seeds; one torch thread in smoke on a CPU
    output = args.output
    result = run_benchmark(args.methods, args.profile, image_size=args.image_size,
                           num_test=None if args.num_test == 0 else args.num_test, seed=args.seed,
                           steps_override=steps_override, steps_scale=args.steps_scale, runs=args.runs_dir,
                           device=args.device, dataset=args.dataset, split_file=args.split,
                           split_out=output.with_name(output.name + "_split.json") if output else None,
                           batch_size=args.batch_size, command=command_line(args))
    print(result.leaderboard_markdown())
    if output is not None:
        written = result.save(output, figures=not args.no_figures)
        print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
