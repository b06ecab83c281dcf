"""One switch for every dataset, by name, and the ``datasets`` command.

:func:`get_dataset` builds any dataset from its name, so a notebook's
``PROFILE`` decides whether it trains on the phantom or on real data.
:func:`usable_dataset` and :func:`profile_dataset` let a GPU profile run before
any download: a dataset that is not on this machine gives way to the phantom,
saying so once, with how to get it. ``python -m bs_lib datasets`` lists the
registered datasets and whether each is here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bs_lib import config
from bs_lib.datasets.folders import DatasetNotFoundError, how_to_get
from bs_lib.datasets.public import BSEJSRT, JSRT, JSRTBoneMasks, JSRTBSEBaidu, SZCHXRays
from bs_lib.datasets.real import GusarevDES, RealSamplePairs, local_copy
from bs_lib.datasets.synthetic import PhantomDataset

DATASETS: dict[str, Callable[..., Any]] = {
    "bse-jsrt": BSEJSRT,
    "szch-x-rays": SZCHXRays,
    "jsrt-bse-baidu": JSRTBSEBaidu,
    "jsrt-bone-masks": JSRTBoneMasks,
    "jsrt": JSRT,
    "real-pairs": RealSamplePairs,
    "gusarev-des": GusarevDES,
}


def get_dataset(name: str, split: str | None = None, size: int | None = None, num_images: int | None = None,
                seed: int = 0, transform=None, **kwargs):
    """One call for every dataset: ``get_dataset(run.profile.dataset, split="train", size=run.profile.image_size)``.

    ``"phantom"`` builds :class:`bs_lib.datasets.PhantomDataset`; the other names
    are the real datasets of :data:`DATASETS`. Every dataset honours ``split``
    (``"train"``, ``"val"``, ``"test"`` or ``"all"``) or refuses it with a
    ``ValueError`` that says what to do: a real dataset takes its patients from
    ``split_file`` (SZCH-X-Rays from its official lists when no file is given),
    and the test sets (``real-pairs``, ``gusarev-des``) answer ``"test"`` and
    ``"all"`` with all their pairs and refuse the rest. ``split=None`` is the
    dataset's own default: ``"test"`` for a test set, ``"train"`` for any other.
    ``num_images`` keeps the first images only (a quick look at a big dataset);
    under ``$BS_MAX_IMAGES`` (:func:`bs_lib.config.max_images`) never more than that.
    """
    if name != "phantom" and name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose 'phantom' or one of {', '.join(DATASETS)}.")
    if (cap := config.max_images()) is not None:
        num_images = min(num_images or cap, cap)
    factory = DATASETS.get(name)
    if split is None:
        split = "test" if getattr(factory, "test_only", False) else "train"
    if name == "phantom":
        return PhantomDataset(size=size or 64, split=split, num_images=num_images, seed=seed,
                              transform=transform, **kwargs)
    dataset = factory(split=split, size=size, transform=transform, seed=seed, **kwargs)
    if num_images is not None:
        import torch.utils.data

        return torch.utils.data.Subset(dataset, range(min(num_images, len(dataset))))
    return dataset


_REPORTED_MISSING: set[str] = set()


def _say_missing(name: str, why: str = "is not on this machine") -> None:
    """One line, once per dataset and process: the phantom stands in, and how to get the real data."""
    if name not in _REPORTED_MISSING:
        _REPORTED_MISSING.add(name)
        print(f"{name} {why}: the synthetic phantom stands in for it. {how_to_get(name)}")


def usable_dataset(name: str) -> str:
    """``name`` when that dataset is on this machine, else ``"phantom"`` (saying so, once, with how to get it).

    What a notebook passes as ``data`` to a training config, so that a GPU
    profile runs without any download: ``DATA = usable_dataset(run.profile.dataset)``.
    """
    if name == "phantom" or local_copy(name) is not None:
        return name
    _say_missing(name)
    return "phantom"


def profile_dataset(profile, split: str = "train", seed: int = 0, **kwargs):
    """The dataset a profile asks for, or the phantom (saying so once) when that dataset is not on this machine.

    ``profile`` is a :class:`bs_lib.config.Profile` (``run.profile`` in a notebook).
    """
    name = usable_dataset(profile.dataset)
    try:
        return get_dataset(name, split=split, size=profile.image_size, num_images=profile.num_images,
                           seed=seed, **kwargs)
    except DatasetNotFoundError as missing:
        if name == "phantom":
            raise
        _say_missing(name, f"is incomplete ({str(missing).splitlines()[0]})")
        return get_dataset("phantom", split=split, size=profile.image_size, num_images=profile.num_images,
                           seed=seed, **kwargs)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (default: $BS_DATA_DIR)")


def run(args: argparse.Namespace) -> int:
    from bs_lib.download import DownloadError, load_registry, status

    try:
        registry = load_registry()
    except DownloadError as error:
        print(f"error: {error}")
        return 1
    data_dir = args.data_dir or config.data_dir()
    print(f"data directory: {data_dir}\n")
    print(f"{'name':<16} {'source':<12} {'status':<22} title")
    for entry in registry.values():
        print(f"{entry.name:<16} {entry.source:<12} {status(entry, data_dir):<22} {entry.title}")
    print("\nget one with: python -m bs_lib download NAME   (details: datasets/<name>.md)")
    return 0
