"""The public datasets: BSE-JSRT, SZCH-X-Rays, the raw JSRT images, JSRT's bone masks, and Baidu's JSRT pairs.

Each class knows its dataset's layout as published (or, for the Baidu archive,
finds it) and nothing else: reading, pairing, resizing and splitting are
:class:`PairedFolder`'s. Constructors follow torchxrayvision,
``Dataset(root=None, split=..., split_file=None, size=None, transform=None,
seed=0)``; ``root`` defaults to the dataset's folder in the data directory
(``python -m bs_lib download NAME`` puts it there).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bs_lib.datasets.folders import (
    DatasetNotFoundError,
    PairedFolder,
    default_root,
    discover_pair_folders,
    find_folder,
    match_pairs,
    missing_error,
    show_tree,
    to_tensor,
)
from bs_lib.datasets.splits import save_split, select_split
from bs_lib.io import read_image, read_pair, resize


class BSEJSRT(PairedFolder):
    """JSRT radiographs and their BSE-JSRT bone-suppressed targets (Kaggle ``hmchuong``).

    The targets are *algorithmic* soft-tissue estimates, not dual-energy images.
    Only the non-augmented pairs (``JSRT/JSRT`` + ``BSE_JSRT/BSE_JSRT``) are served;
    the ``augmented/`` copies leak patients across splits and are left out
    (see :func:`augmented_pairs` to add them to a training split safely).
    Radiographs without a target are skipped.
    """

    name = "bse-jsrt"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0, **kwargs):
        root = default_root(self.name, root)
        if not root.is_dir():
            raise missing_error(self.name, root, "the dataset folder does not exist")
        cxr = find_folder(root, ["JSRT"], exclude=["augmented"])
        target = find_folder(root, ["BSE_JSRT"], exclude=["augmented"])
        if cxr is None or target is None:
            raise missing_error(self.name, root, f"no JSRT/ and BSE_JSRT/ image folders ({show_tree(root)})")
        kwargs.setdefault("unpaired", "skip")
        super().__init__(root, cxr.relative_to(root), target.relative_to(root), split=split,
                         split_file=split_file, size=size, transform=transform, seed=seed, **kwargs)


def augmented_pairs(root: Path, patients: Iterable[str]) -> list[tuple[str, Path, Path]]:
    """Augmented BSE-JSRT pairs that belong to ``patients`` (e.g. the training split).

    Each augmented file must name its patient as a prefix of its stem
    (``JPCLN001_3.png``); otherwise the set cannot be used without leakage and
    an error says so, with examples of the names found.
    """
    source = find_folder(root, ["source"])
    target = find_folder(root, ["target"])
    if source is None or target is None:
        raise missing_error("bse-jsrt", root, f"no augmented source/ and target/ folders ({show_tree(root)})")
    pairs = match_pairs(source, target, unpaired="skip")
    known = sorted(set(patients), key=len, reverse=True)
    kept = [pair for pair in pairs if any(pair[0].startswith(patient) for patient in known)]
    if pairs and not kept:
        raise ValueError(
            f"{source}: augmented file names (e.g. {[s for s, _, _ in pairs[:3]]}) do not name their patient, "
            f"so they cannot be assigned to a split without leaking test patients into training. "
            f"Train on the non-augmented pairs only."
        )
    return kept


class SZCHXRays(PairedFolder):
    """SZCH-X-Rays: 741 real dual-energy radiograph / soft-tissue pairs (``CXR/`` + ``BS/``).

    ``split`` is ``"train"``, ``"val"``, ``"test"`` (from the official split text
    files when present, or from ``split_file``) or ``"all"``.
    """

    name = "szch-x-rays"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0, **kwargs):
        root = default_root(self.name, root)
        if not root.is_dir():
            raise missing_error(self.name, root, "the dataset folder does not exist")
        cxr = find_folder(root, ["CXR"])
        if cxr is None or not (cxr.parent / "BS").is_dir():
            raise missing_error(self.name, root, f"no CXR/ and BS/ image folders ({show_tree(root)})")
        base = cxr.parent
        if split != "all" and split_file is None:
            split_file = official_szch_split(root, base)
        super().__init__(base, "CXR", "BS", split=split, split_file=split_file, size=size,
                         transform=transform, seed=seed, **kwargs)


def official_szch_split(root: Path, images: Path) -> Path:
    """Turn the official ``*train*.txt`` / ``*val*.txt`` / ``*test*.txt`` lists into a split file.

    Each list holds one file name per line. The JSON split is written next to
    the data (``<root>/split-official.json``) and reused.
    """
    out = root / "split-official.json"
    if out.is_file():
        return out
    lists = {name: sorted(root.rglob(f"*{key}*.txt")) for name, key in
             (("train", "train"), ("val", "val"), ("test", "test"))}
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*.txt"))
    if not all(lists.values()):
        raise DatasetNotFoundError(
            f"szch-x-rays: the official split lists (*train*.txt, *val*.txt, *test*.txt) were not all found "
            f"under {root}; text files present: {found or 'none'}. Use split='all' with make_patient_split."
        )
    splits = {name: [Path(line.strip()).stem for line in paths[0].read_text().splitlines() if line.strip()]
              for name, paths in lists.items()}
    save_split(out, splits, dataset="szch-x-rays", seed=None, note="official split lists")
    return out


class JSRTBoneMasks:
    """JSRT originals and "bone masks" (Kaggle ``yoctoman``), read through its index CSV.

    The index (``idx_JSRT_GOOD_MASKS_SHORT_KAGGLE.csv`` or any CSV whose first
    two columns are image paths) pairs a radiograph with a bone image. Whether
    that image is a soft-tissue estimate or a binary mask is not documented, so
    samples carry it as ``masks["bone"]`` and have no ``soft``. Every image is
    its own patient; ``split`` and ``split_file`` work as in :class:`PairedFolder`.
    """

    name = "jsrt-bone-masks"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0):
        self.root = default_root(self.name, root)
        if not self.root.is_dir():
            raise missing_error(self.name, self.root, "the dataset folder does not exist")
        self.size, self.transform, self.seed, self.split = size, transform, seed, split
        self.pairs = select_split(self._pairs_from_index(), str, split, split_file, self.name)

    def _pairs_from_index(self) -> list[tuple[str, Path, Path]]:
        for index in sorted(self.root.rglob("*.csv")):
            pairs = []
            with index.open(newline="") as handle:
                for row in csv.reader(handle):
                    if len(row) < 2 or not row[0].strip():
                        continue
                    cxr, mask = index.parent / row[0].strip(), index.parent / row[1].strip()
                    if not cxr.is_file():
                        cxr, mask = self.root / row[0].strip(), self.root / row[1].strip()
                    if cxr.is_file() and mask.is_file():
                        pairs.append((cxr.stem, cxr, mask))
            if pairs:
                return pairs
        raise missing_error(self.name, self.root, f"no index CSV listing image pairs ({show_tree(self.root)})")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        stem, cxr_path, mask_path = self.pairs[index]
        cxr, mask, meta = read_pair(cxr_path, mask_path, resize_mismatch=True)
        if self.size is not None:
            cxr, mask = resize(cxr, (self.size, self.size)), resize(mask, (self.size, self.size))
        sample = {"cxr": to_tensor(cxr), "masks": {"bone": to_tensor(mask)}, "id": stem,
                  "patient": stem, "meta": meta}
        return self.transform(sample) if self.transform else sample


class JSRTBSEBaidu(PairedFolder):
    """The 241 JSRT / bone-suppressed pairs from Baidu AI Studio (dataset 234557), downloaded by hand.

    The archive's layout is not documented; :func:`discover_pair_folders` finds it.
    """

    name = "jsrt-bse-baidu"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0, **kwargs):
        root = default_root(self.name, root)
        if not root.is_dir():
            raise missing_error(self.name, root, "the dataset folder does not exist")
        cxr, target = discover_pair_folders(root)
        kwargs.setdefault("unpaired", "skip")
        super().__init__(root, cxr.relative_to(root), target.relative_to(root), split=split,
                         split_file=split_file, size=size, transform=transform, seed=seed, **kwargs)


class JSRT:
    """The raw JSRT radiographs (``*.IMG``, 2048², 12-bit), unpaired: samples have ``cxr`` only.

    Every image is its own patient; ``split`` and ``split_file`` work as in :class:`PairedFolder`.
    """

    name = "jsrt"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0):
        self.root = default_root(self.name, root)
        found = self.root.rglob("*") if self.root.is_dir() else []
        files = sorted(p for p in found if p.suffix.lower() == ".img")
        if not files:
            raise missing_error(self.name, self.root, f"no .IMG files ({show_tree(self.root)})")
        chosen = select_split([(path.stem, path) for path in files], str, split, split_file, self.name)
        self.files = [path for _, path in chosen]
        self.size, self.transform, self.seed, self.split = size, transform, seed, split

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, meta = read_image(self.files[index])
        if self.size is not None:
            image = resize(image, (self.size, self.size))
        stem = self.files[index].stem
        sample = {"cxr": to_tensor(image), "masks": {}, "id": stem, "patient": stem, "meta": meta}
        return self.transform(sample) if self.transform else sample
