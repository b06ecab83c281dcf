"""Batches for the loop: an endless, seeded, resumable order of samples, stacked and sent to the device.

The order of the samples is a pure function of ``(seed, epoch)``, never of
how long the run has been going: a run killed at step 600 and resumed reads,
from step 601 on, exactly the batches an uninterrupted run reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from bs_lib.augment import randomised
from bs_lib.engine.config import TrainConfig, import_callable


class EpochBatchSampler(torch.utils.data.Sampler):
    """Endless batches of indices: epoch after epoch, each a fresh seeded permutation.

    The order is a pure function of ``(seed, epoch)``, so a run can restart at
    any batch (``start_batch`` counts batches this process already consumed).
    With several processes, each epoch's permutation is padded (or, with
    ``drop_last``, cut) to a multiple of the process count and dealt out
    round-robin, so every process sees the same number of batches.
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int, drop_last: bool,
                 rank: int = 0, world_size: int = 1, start_batch: int = 0) -> None:
        self.num_samples, self.batch_size, self.seed, self.drop_last = num_samples, batch_size, seed, drop_last
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"The training dataset has {num_samples} samples: too few for one batch of {batch_size} per "
                f"process on {world_size} process(es) with drop_last=True. Use a smaller batch_size or drop_last=False."
            )

    @property
    def samples_per_process(self) -> int:
        if self.drop_last:
            return self.num_samples // self.world_size
        return math.ceil(self.num_samples / self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return self.samples_per_process // self.batch_size
        return math.ceil(self.samples_per_process / self.batch_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        total = self.samples_per_process * self.world_size
        order = np.resize(order, total)  # repeats the start to pad, or cuts
        mine = order[self.rank :: self.world_size].tolist()
        return [mine[i : i + self.batch_size] for i in range(0, self.batches_per_epoch * self.batch_size,
                                                             self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = divmod(self.start_batch, self.batches_per_epoch)
        while True:
            yield from self.epoch_batches(epoch)[skip:]
            epoch, skip = epoch + 1, 0

    def __len__(self) -> int:  # endless; DataLoader only asks for it to report progress
        return 2**62


def collate_tensors(samples: list[dict]) -> dict:
    """Stack the tensor (and number) fields of sample dicts; drop the rest (``id``, ``patient``, ``meta`` strings).

    Nested dicts such as ``masks`` are collated recursively; a key missing from
    some samples is dropped.
    """
    if not samples or not all(isinstance(sample, Mapping) for sample in samples):
        kind = type(samples[0]).__name__ if samples else "nothing"
        raise TypeError(f"Training samples must be dicts like {{'cxr': tensor, 'soft': tensor}}, got {kind}.")
    batch = {}
    for key in samples[0]:
        values = [sample.get(key) for sample in samples]
        if all(isinstance(v, torch.Tensor) for v in values):
            batch[key] = torch.stack(values)
        elif all(isinstance(v, bool | int | float) for v in values):
            batch[key] = torch.tensor(values)
        elif all(isinstance(v, Mapping) for v in values):
            nested = collate_tensors(values)
            if nested:
                batch[key] = nested
    return batch


def move_to(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Send a (nested) batch to ``device`` without waiting for the copy."""
    if isinstance(batch, Mapping):
        return {key: move_to(value, device, channels_last) for key, value in batch.items()}
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


def build_datasets(config: TrainConfig) -> tuple[Any, Any]:
    """The training and (when ``val_every`` > 0) validation datasets of a config.

    ``config.data`` is a name for ``bs_lib.datasets.get_dataset`` or a
    ``"module:function"`` called as ``function(split=..., size=..., **data_args)``.
    ``data_args.randomise`` is the engine's, not the dataset's: the training
    pairs are seen through random imaging chains (:mod:`bs_lib.augment`), the
    validation pairs as they are.
    """
    if ":" in config.data:
        factory = import_callable(config.data, "dataset")
    else:
        try:
            from bs_lib.datasets import get_dataset
        except ImportError as error:
            raise ImportError(f"bs_lib.datasets could not be imported ({error}); it provides the dataset "
                              f"{config.data!r}. Reinstall bs_lib or name a 'module:function' in 'data'.") from error

        def factory(**kwargs):
            return get_dataset(config.data, **kwargs)

    data_args = dict(config.data_args)
    chain = data_args.pop("randomise", None)
    train = randomised(factory(split="train", size=config.image_size, **data_args), chain, seed=config.seed)
    val = factory(split="val", size=config.image_size, **data_args) if config.val_every > 0 else None
    return train, val
