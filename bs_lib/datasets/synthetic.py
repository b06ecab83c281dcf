"""The phantom as a dataset: rendered chests with a fixed train/val/test split by seed.

The other datasets of the course are read from files; this one is drawn by
:func:`bs_lib.phantom.render`, so it needs no download, and every split is as
large as asked. Its samples have the course's one shape, plus the ``bone``
image a real pair lacks.
"""

from __future__ import annotations

from typing import ClassVar

from bs_lib import phantom


class PhantomDataset:
    """Phantom chests as a torch dataset, with a fixed train/val/test split by seed.

    ``PhantomDataset(size=64, split="train", num_images=32, seed=0)``: image
    ``i`` of a split is ``phantom.render(SPLIT_SEEDS[split] + seed * 10_000 + i, size)``,
    so splits never share a chest and every run sees the same images. Samples
    follow the course's format: float32 tensors (1, H, W) in [0, 1].
    """

    DEFAULT_SIZES: ClassVar[dict[str, int]] = {"train": 200, "val": 40, "test": 40}

    def __init__(self, size: int = 64, split: str = "train", num_images: int | None = None, seed: int = 0,
                 transform=None, **render_options):
        if split not in phantom.SPLIT_SEEDS:
            raise ValueError(f"Unknown split {split!r}: choose train, val or test.")
        self.size, self.split, self.seed, self.transform = size, split, seed, transform
        self.num_images = num_images if num_images is not None else self.DEFAULT_SIZES[split]
        self.render_options = render_options
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.num_images

    def seed_of(self, index: int) -> int:
        return phantom.SPLIT_SEEDS[self.split] + self.seed * 10_000 + index

    def __getitem__(self, index: int) -> dict:
        import torch

        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} phantom images")
        if index not in self._cache:
            sample = phantom.render(self.seed_of(index), self.size, **self.render_options)
            self._cache[index] = {
                "cxr": torch.from_numpy(sample["cxr"]), "soft": torch.from_numpy(sample["soft"]),
                "bone": torch.from_numpy(sample["bone"]),
                "masks": {k: torch.from_numpy(v) for k, v in sample["masks"].items()},
                "id": sample["id"], "patient": sample["patient"], "meta": sample["meta"],
            }
        sample = dict(self._cache[index])
        return self.transform(sample) if self.transform else sample

    def __repr__(self) -> str:
        return (f"PhantomDataset(split={self.split!r}, num_samples={len(self)}, size={self.size}, seed={self.seed}, "
                f"options={self.render_options})")
