"""The test images every method is measured on, and what to call the data they come from.

``dataset`` is a registered name (``"phantom"``, ``"real-pairs"``, ...) or
the path of any folder of radiograph / soft-tissue pairs: two image folders
matched by file name (``CXR/`` + ``BS/``, ``authentic/`` + ``des/``, found by
:func:`bs_lib.datasets.discover_pair_folders`), or several such groups, one
folder each (``<group>/CXR`` + ``<group>/BS``, like the real sample pairs).
Every sample says where it comes from (``meta["source"]``), so the report can
break a mixed test set down by source.

Each number of a report is labelled with its data (:func:`data_label`): the
phantom, the real development pairs, or another dataset, named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bs_lib.config import max_images
from bs_lib.datasets import (
    DATASETS,
    PairedFolder,
    RealSamplePairs,
    discover_pair_folders,
    get_dataset,
    load_split,
    save_split,
)

PHANTOM = "phantom"
REAL_PAIRS = "real-pairs"


def is_folder(dataset: str) -> bool:
    """True when ``dataset`` names a folder of pairs rather than a registered dataset."""
    return dataset != PHANTOM and dataset not in DATASETS


def data_label(dataset: str) -> str:
    """What the numbers were measured on, as every table of a report says it."""
    if dataset == PHANTOM:
        return "phantom (synthetic chests)"
    if dataset == REAL_PAIRS:
        return "real development pairs (SZCH-X-Rays samples)"
    if is_folder(dataset):
        return f"other: your pairs in {dataset}"
    return f"other: {dataset}"


class FolderPairs:
    """The pairs of a folder as one test set: every pair, each with ``meta["source"]``.

    A folder whose sub-folders each hold a ``CXR/`` + ``BS/`` pair layout is
    read group by group (:class:`bs_lib.datasets.RealSamplePairs`, the source is
    the group's name); any other layout is found by
    :func:`~bs_lib.datasets.discover_pair_folders`, and its source is the folder's name.
    """

    def __init__(self, root: str | Path, size: int | None = None) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"--dataset {root}: no such folder (give a registered dataset, e.g. "
                                    f"{PHANTOM} or {REAL_PAIRS}, or a folder of radiograph / soft-tissue pairs).")
        groups = [p for p in sorted(root.iterdir()) if (p / "CXR").is_dir() and (p / "BS").is_dir()]
        if groups:
            self.parts: Any = RealSamplePairs(root=root, split="test", size=size)
            self.source = None
        else:
            cxr, soft = discover_pair_folders(root)
            self.parts = PairedFolder(root, str(cxr.relative_to(root)), str(soft.relative_to(root)), size=size)
            self.source = root.name

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, index: int) -> dict:
        sample = self.parts[index]
        if self.source is not None:
            sample["meta"]["source"] = self.source
        return sample


def held_out_set(dataset: str, image_size: int, seed: int, num_images: int | None) -> Any:
    """The test split of ``dataset`` (a name or a folder of pairs) at ``image_size``."""
    if is_folder(dataset):
        return FolderPairs(dataset, size=image_size)
    longer = {"num_images": num_images} if dataset == PHANTOM and num_images else {}
    return get_dataset(dataset, split="test", size=image_size, seed=seed, **longer)


def load_test_samples(dataset: str, image_size: int, seed: int, num_images: int | None,
                      split_file: str | Path | None = None) -> list[dict]:
    """The test samples every method is measured on: the dataset's test split, first ``num_images``.

    With ``split_file`` (written by :func:`bs_lib.datasets.save_split`), only
    the test patients listed there are kept. The phantom's test split is as
    long as asked (40 images by default); longer ones start with the same 40.
    A sample without ``meta["source"]`` gets the dataset's name as its source.
    ``$BS_MAX_IMAGES`` (:func:`bs_lib.config.max_images`) caps ``num_images``.
    """
    if (cap := max_images()) is not None:
        num_images = min(num_images or cap, cap)
    images = held_out_set(dataset, image_size, seed, num_images)
    allowed = set(load_split(split_file)["splits"]["test"]) if split_file is not None else None
    samples = []
    for index in range(len(images)):
        if num_images is not None and len(samples) == num_images:
            break
        sample = images[index]
        if allowed is None or str(sample.get("patient", sample.get("id"))) in allowed:
            sample.setdefault("meta", {}).setdefault("source", Path(dataset).name if is_folder(dataset) else dataset)
            samples.append(sample)
    if not samples:
        raise ValueError(f"No test images: the {dataset!r} test split at {image_size}² is empty"
                         f"{' after filtering by ' + str(split_file) if split_file else ''}.")
    return samples


def sources(samples: list[dict]) -> list[str]:
    """The sources of the test images (``meta["source"]``), in order of first appearance."""
    return list(dict.fromkeys(str(sample.get("meta", {}).get("source", "?")) for sample in samples))


def has_lung_mask(sample: dict) -> bool:
    """True when this image has its own lung mask (the phantom's, or a real dataset's)."""
    return sample.get("masks", {}).get("lungs") is not None


def has_bone_masks(sample: dict) -> bool:
    """True when this image has the rib and clavicle masks that mask-guided subtraction is given."""
    masks = sample.get("masks", {})
    return masks.get("ribs") is not None and masks.get("clavicles") is not None


def save_benchmark_split(path: Path, dataset: str, seed: int, samples: list[dict]) -> Path:
    """Save the test patients with :func:`bs_lib.datasets.save_split`; ``--split`` reads them back."""
    patients = sorted({str(sample.get("patient", sample["id"])) for sample in samples})
    return save_split(path, {"test": patients}, dataset, seed, note="benchmark test split (bs_lib.benchmark)")
