"""The small real test sets: the six SZCH sample pairs and Gusarev's dual-energy pairs.

Neither is enough to train on, and both are public (no account needed), so
they are the course's real **test** sets: every notebook that trains on the
phantom can still be measured on real radiographs. :func:`real_pairs` is the
notebooks' one call for them: it finds or downloads them, and otherwise says
in one line why they are missing and returns None. Both refuse a training
split (:func:`refuse_all_but_test`).

Gusarev's files have two quirks, handled openly: colour files are turned grey,
and pairs of slightly different sizes are cropped to their common size
(:func:`crop_to_common_size`), never interpolated; :func:`looks_conventional`
checks each image's polarity.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bs_lib import config
from bs_lib.datasets.folders import (
    DatasetNotFoundError,
    PairedFolder,
    default_root,
    find_folder,
    missing_error,
    show_tree,
)
from bs_lib.io import read_image


def local_copy(name: str) -> Path | None:
    """Where the files of a downloadable dataset already are on this machine, or None.

    Its local mirror first (for ``real-pairs``: :func:`bs_lib.config.real_pairs_dir`),
    else its folder in the data directory when it holds anything.
    """
    from bs_lib.download import DownloadError, get_entry

    try:
        entry = get_entry(name)
    except DownloadError:  # no registry: only the mirror of the sample pairs is known
        return config.real_pairs_dir() if name == "real-pairs" else None
    folder = entry.path()
    return entry.mirror() or (folder if folder.is_dir() and any(folder.iterdir()) else None)


#: Splits a test set answers to: both mean every pair.
TEST_SPLITS = ("test", "all")


def refuse_all_but_test(name: str, split: str, split_file) -> None:
    """A test set has one split: ``"test"``, which is ``"all"`` of it. Any other split is refused, loudly.

    Training on the few real pairs, or choosing a model with them, would make
    every number measured on them a number measured on training data.
    """
    if split not in TEST_SPLITS:
        raise ValueError(f"{name} is a test set: never train on it (nor choose a model with it). "
                         f"Use split='test' (or 'all', the same pairs), and train on another dataset.")
    if split_file is not None:
        raise ValueError(f"{name} is a test set as a whole: a split_file cannot pick from it. "
                         f"Leave split_file out.")


class RealSamplePairs:
    """The six real SZCH sample pairs (``szch-bsldm/`` and ``szch-bsdiff/``, each ``CXR/`` + ``BS/``).

    Ids are ``"<group>/<stem>"`` (``"szch-bsldm/0"``); every pair is its own patient, and
    ``meta["source"]`` names its group. ``root`` defaults to :func:`local_copy`. A test
    set: ``split`` is ``"test"`` or ``"all"`` (the same six pairs), never ``"train"``.
    """

    name = "real-pairs"
    test_only = True

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0):
        refuse_all_but_test(self.name, split, split_file)
        root = Path(root) if root is not None else local_copy(self.name)
        if root is None or not root.is_dir():
            raise missing_error(self.name, root or default_root(self.name, None), "the sample pairs are not present")
        groups = sorted(p for p in root.iterdir() if (p / "CXR").is_dir() and (p / "BS").is_dir())
        if not groups:
            raise missing_error(self.name, root, f"no <group>/CXR + <group>/BS folders ({show_tree(root)})")
        self.root, self.transform = root, transform
        self.parts = [(g.name, PairedFolder(g, size=size, seed=seed)) for g in groups]
        self.index = [(group, i) for group, part in self.parts for i in range(len(part))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        group, inner = self.index[index]
        sample = dict(self.parts)[group][inner]
        sample["id"] = sample["patient"] = f"{group}/{sample['id']}"
        sample["meta"]["source"] = group
        return self.transform(sample) if self.transform else sample

    def __repr__(self) -> str:
        return f"RealSamplePairs({len(self)} pairs, root={self.root})"


class GusarevDES(PairedFolder):
    """Gusarev's dual-energy pairs: radiographs in ``authentic/``, soft-tissue images in ``des/`` (JPEG).

    Two quirks of these files are handled openly, never silently:

    * some files are RGB; :func:`bs_lib.io.read_image` turns them into grey
      (ITU-R 601 luma) and records ``converted_from`` in the image's metadata;
    * in some pairs the radiograph and its target differ by a few pixels. Both
      images are then **cropped to their common size, centred**
      (:func:`crop_to_common_size`): no pixel is interpolated, at most a few
      border rows or columns are dropped, and ``meta["crop"]`` records the cut.

    The constructor prints one line when it finds either quirk. The polarity is
    assumed conventional (bone bright, like every dual-energy display); each
    image is checked with :func:`looks_conventional`, a warning names any that
    fails, and ``meta["polarity_check"]`` keeps the result.

    A test set, like the sample pairs: ``split`` is ``"test"`` or ``"all"`` (the
    same pairs), never ``"train"``.
    """

    name = "gusarev-des"
    test_only = True

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0, **kwargs):
        refuse_all_but_test(self.name, split, split_file)
        root = default_root(self.name, root)
        cxr = find_folder(root, ["authentic"]) if root.is_dir() else None
        if cxr is None or not (cxr.parent / "des").is_dir():
            raise missing_error(self.name, root, f"no authentic/ and des/ image folders ({show_tree(root)})")
        kwargs.setdefault("unpaired", "skip")  # 35 images (the Drive folder) cannot all be pairs
        super().__init__(cxr.parent, "authentic", "des", size=size, transform=transform, seed=seed, **kwargs)
        self.split = split
        summary = self.report()
        if summary:
            print(summary)

    def report(self) -> str:
        """One line on what loading changes (RGB files, pairs of different sizes), or "" when nothing."""
        from PIL import Image

        colour, uneven = 0, 0
        for _, cxr_path, target_path in self.pairs:
            sizes = []
            for path in (cxr_path, target_path):
                with Image.open(path) as image:  # reads the header only
                    colour += image.mode in ("RGB", "P")  # what read_image turns into grey
                    sizes.append(image.size)
            uneven += sizes[0] != sizes[1]
        notes = [f"{colour} colour file(s) converted to grey (ITU-R 601 luma)"] if colour else []
        if uneven:
            notes.append(f"{uneven} of {len(self)} pairs differ in size: both images cropped to their common "
                         f"size, centred, no pixel interpolated (sample['meta']['crop'])")
        return f"{self.name}: " + "; ".join(notes) + "." if notes else ""

    def _read(self, cxr_path: Path, target_path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        with warnings.catch_warnings():  # already reported once, by report()
            warnings.filterwarnings("ignore", message=".*colour image converted to grey")
            cxr, cxr_meta = read_image(cxr_path)
            soft, soft_meta = read_image(target_path)
        cxr, soft, crop = crop_to_common_size(cxr, soft)
        checks = {"cxr": looks_conventional(cxr), "soft": looks_conventional(soft)}
        for key, path in (("cxr", cxr_path), ("soft", target_path)):
            if not checks[key]:
                warnings.warn(f"{path}: the mediastinum is darker than the lungs, so the image may be a negative "
                              f"(bone dark); look at it before using it.", stacklevel=3)
        meta = {"cxr": cxr_meta, "target": soft_meta, "resized_target": False, "crop": crop,
                "polarity_check": {key: "conventional" if ok else "inverted?" for key, ok in checks.items()},
                "source": self.name}
        return cxr, soft, meta


def crop_to_common_size(cxr: np.ndarray, soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """Crop two ``(1, H, W)`` images to their common size, centred; no pixel is interpolated.

    An image ``d`` pixels too tall loses ``d // 2`` rows at the top and the rest
    at the bottom (the same for columns). Returns the two images and what was cut
    (None when the sizes already agree): the common size, and for each image the
    ``(top, left)`` offset of the kept window.
    """
    if cxr.shape == soft.shape:
        return cxr, soft, None
    height, width = min(cxr.shape[1], soft.shape[1]), min(cxr.shape[2], soft.shape[2])
    offsets = {}
    for key, image in (("cxr", cxr), ("soft", soft)):
        offsets[key] = ((image.shape[1] - height) // 2, (image.shape[2] - width) // 2)
    (ct, cl), (st, sl) = offsets["cxr"], offsets["soft"]
    crop = {"rule": "centred crop to the common size", "size": (height, width),
            "cxr_offset": offsets["cxr"], "soft_offset": offsets["soft"]}
    return cxr[:, ct:ct + height, cl:cl + width], soft[:, st:st + height, sl:sl + width], crop


def looks_conventional(image: np.ndarray) -> bool:
    """True when a PA chest image looks like conventional polarity (bone bright, lungs dark).

    The heuristic compares two regions of a PA chest radiograph or soft-tissue
    image: the central strip (spine, mediastinum, heart: dense, so bright) and
    the two lung fields (air, so dark). A negative image reverses the order.
    It assumes a roughly centred PA view; on the six SZCH pairs the strip is
    brighter by 0.25 or more.
    """
    picture = np.asarray(image, dtype=np.float64).reshape(image.shape[-2:])
    height, width = picture.shape
    rows = slice(int(0.3 * height), int(0.6 * height))
    centre = picture[rows, int(0.45 * width):int(0.55 * width)].mean()
    lungs = (picture[rows, int(0.15 * width):int(0.35 * width)].mean()
             + picture[rows, int(0.65 * width):int(0.85 * width)].mean()) / 2
    return bool(centre > lungs)


#: The small real test sets :func:`real_pairs` finds or downloads.
TEST_SETS = {"real-pairs": RealSamplePairs, "gusarev-des": GusarevDES}


def real_pairs(name: str = "real-pairs", size: int | None = None, download: bool = True, **kwargs):
    """The small real test set ``name`` (``"real-pairs"`` or ``"gusarev-des"``), or None when it cannot be had.

    The one call for notebooks. It uses the copy already on this machine (the
    local mirror, or the folder in the data directory); otherwise, when
    ``download`` is true, it downloads the public, checksummed files (no account
    needed) on first use. When neither works it prints **one** line saying why
    (offline, source unreachable, ...) and how to get them, and returns None: a
    missing network never raises. ``kwargs`` go to the dataset class.
    """
    from bs_lib import download as dl

    if name not in TEST_SETS:
        raise ValueError(f"real_pairs: {name!r} is not a downloadable real-pair set; use 'real-pairs' or "
                         f"'gusarev-des' (or get_dataset for the others).")
    root, reason = local_copy(name), "not downloaded (download=False)"
    if root is None and download:
        try:
            root = dl.download(name)
            print(f"{name}: downloaded into {root}")
        except dl.DownloadError as error:
            reason = _why_not_downloaded(error)
    if root is not None:
        try:
            return TEST_SETS[name](root=root, size=size, **kwargs)
        except DatasetNotFoundError:
            reason = f"{root} holds no usable pairs"
    print(f"{name}: the real pairs are not on this machine, and were not downloaded: {reason}. "
          f"Get them with `python -m bs_lib download {name}` (public files, no account needed).")
    return None


def _why_not_downloaded(error: Exception) -> str:
    """A few words for :func:`real_pairs`' one line."""
    from bs_lib import download as dl

    if isinstance(error, dl.OfflineError):
        return f"offline ({config.OFFLINE_ENV}=1)"
    if isinstance(error, dl.SourceUnavailableError):
        code = getattr(error.__cause__, "code", None)  # urllib's HTTPError carries the status
        if code:
            return f"the download source answered HTTP {code}"
        return "the download source is unreachable (no network?)"
    if isinstance(error, dl.ChecksumMismatchError):
        return "a downloaded file did not match its pinned SHA-256"
    return f"the download failed ({type(error).__name__}: {str(error).split('. ')[0]})"
