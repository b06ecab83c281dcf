"""Running the benchmark: every chosen method, trained or reused, measured on one test split.

``num_test=-1`` takes the profile's default number of test images
(:data:`DEFAULT_TEST_IMAGES`), ``None`` the whole split; ``$BS_MAX_IMAGES``
caps either (:func:`bs_lib.benchmark.data.load_test_samples`). The identity baseline
is always measured, whichever methods were asked for.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bs_lib import config as course_config
from bs_lib.benchmark.data import data_label, has_bone_masks, has_lung_mask, load_test_samples, save_benchmark_split
from bs_lib.benchmark.measure import evaluate_method
from bs_lib.benchmark.methods import IDENTITY, NEEDS_BONE_MASKS, all_methods, check_method_names
from bs_lib.benchmark.report import BenchmarkResult
from bs_lib.benchmark.training import prepare_method, randomise_setting
from bs_lib.engine.checkpoint import library_versions

DEFAULT_TEST_IMAGES = {"smoke": 16, "colab": 64, "full": None}  # None: the whole test split


def lung_masks_note(samples: list[dict]) -> str:
    """Which images the lung-region numbers cover, for the report's settings."""
    count = sum(has_lung_mask(sample) for sample in samples)
    if count == 0:
        return "none (no lung masks for this dataset)"
    return "each image's own lung mask" + ("" if count == len(samples) else f" ({count} of {len(samples)} images)")


def usable_methods(names: list[str], samples: list[dict], asked: bool) -> list[str]:
    """The methods that can run on these images: those needing bone masks only where every image has them."""
    if all(has_bone_masks(sample) for sample in samples):
        return names
    blocked = [name for name in names if name in NEEDS_BONE_MASKS]
    if blocked and asked:
        raise ValueError(f"{', '.join(blocked)} needs bone masks (ribs, clavicles), and these test images have "
                         f"none: leave it out of --methods.")
    if blocked:
        print(f"left out: {', '.join(blocked)} (needs bone masks; these test images have none)")
    return [name for name in names if name not in blocked]


def run_benchmark(methods: Sequence[str] | None = None, profile: str = "smoke", *, image_size: int | None = None,
                  num_test: int | None = -1, seed: int = 0, train_steps: dict[str, int] | None = None,
                  steps_scale: float = 1.0, runs: str | Path | None = None, device: str | torch.device | None = None,
                  dataset: str = "phantom", split_file: str | Path | None = None, split_out: str | Path | None = None,
                  batch_size: int = 8, bs_ldm_suffix: str | None = None, randomise: bool | str = False,
                  command: str = "") -> BenchmarkResult:
    """Train (or reuse) and evaluate ``methods`` (default: all) on one test split; returns the results.

    ``dataset`` is a registered dataset (``"phantom"``, ``"real-pairs"``, ...)
    or a folder of radiograph / soft-tissue pairs. ``train_steps`` maps method
    names (or ``"all"``, or ``"distillation-teacher"``) to training steps;
    ``steps_scale`` multiplies every other config's steps. BS-LDM reuses
    finished runs of notebooks 06–08, else trains its own under
    ``bs_ldm_suffix`` (default ``-benchmark<size>``); the scale and the
    ``ml_vqgan``/``bs_ldm`` overrides set its two stages' steps (and then
    only its own runs, named after both budgets, are reused). ``randomise``
    trains the other learned methods through random imaging chains
    (:mod:`bs_lib.augment`; ``True`` or a chain's name), in runs of their own.
    """
    started = time.perf_counter()
    names = check_method_names(list(methods) if methods else all_methods())
    if IDENTITY not in names:
        names.insert(0, IDENTITY)  # the baseline is always measured
    if steps_scale <= 0:
        raise ValueError(f"steps_scale must be positive, got {steps_scale}.")
    randomise = randomise_setting(randomise)[0]  # True, a chain's name or False; an unknown name fails here
    chosen = course_config.get_profile(profile)
    size = image_size or chosen.image_size
    runs = Path(runs) if runs is not None else course_config.runs_dir()
    device = course_config.detect_device(str(device) if device is not None else None)
    num_test = DEFAULT_TEST_IMAGES.get(chosen.name) if num_test == -1 else num_test
    samples = load_test_samples(dataset, size, seed, num_test, split_file)
    names = usable_methods(names, samples, asked=bool(methods))
    if split_out is not None:
        split_file = save_benchmark_split(Path(split_out), dataset, seed, samples)
    results = []
    for name in names:
        course_config.seed_everything(seed)
        method = prepare_method(name, chosen.name, image_size=size, seed=seed, runs=runs, device=device,
                                train_steps=train_steps, steps_scale=steps_scale, bs_ldm_suffix=bs_ldm_suffix,
                                randomise=randomise)
        results.append(evaluate_method(method, samples, batch_size=batch_size, seed=seed))
    settings = {"command": command or "bs_lib.benchmark.run_benchmark(...)", "profile": chosen.name,
                "dataset": dataset, "data_label": data_label(dataset), "image_size": size,
                "num_test": len(samples), "seed": seed, "methods": names, "train_steps": dict(train_steps or {}),
                "steps_scale": steps_scale, "randomise": randomise,
                "split_file": str(split_file) if split_file else "not saved",
                "lung_masks": lung_masks_note(samples), "device": str(device),
                "torch_threads": torch.get_num_threads(), "versions": library_versions(),
                "test_ids": [str(s["id"]) for s in samples], "total_time_s": time.perf_counter() - started}
    return BenchmarkResult(results, samples, settings)
