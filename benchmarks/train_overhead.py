"""Per-step overhead of bs_lib.train's Trainer against a bare PyTorch loop, same model and data.

    .venv/bin/python benchmarks/train_overhead.py [--steps 200] [--size 64] [--batch 8]

Both loops train the same small convolutional net with AdamW on in-memory
pairs; the Trainer also logs every 10 steps and keeps an EMA (the bare loop
updates one too, so the comparison is fair). Prints milliseconds per step.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from bs_lib.train import EMA, Objective, TrainConfig, Trainer, collate_tensors


class Pairs(torch.utils.data.Dataset):
    def __init__(self, count: int, size: int) -> None:
        self.cxr = torch.rand(count, 1, size, size)

    def __len__(self) -> int:
        return len(self.cxr)

    def __getitem__(self, index: int) -> dict:
        return {"cxr": self.cxr[index], "soft": 0.7 * self.cxr[index], "id": str(index)}


def make_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 1, 3, padding=1))


class Regression(Objective):
    def __init__(self) -> None:
        super().__init__()
        self.net = make_net()

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        return {"model": F.l1_loss(self.net(batch["cxr"]), batch["soft"])}

    def predict(self, cxr: torch.Tensor) -> torch.Tensor:
        return self.net(cxr)


def bare_loop(dataset: Pairs, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    objective = Regression()
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-3)
    ema = EMA(objective, 0.99)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True,
                                         collate_fn=collate_tensors)
    done, started = 0, time.perf_counter()
    while done < steps:
        for sample in loader:
            loss = objective.losses(sample, done)["model"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update()
            done += 1
            if done % 10 == 0:
                loss.item()
            if done == steps:
                break
    return (time.perf_counter() - started) / steps


def engine_loop(dataset: Pairs, steps: int, batch: int, size: int) -> float:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(name="overhead", steps=steps, batch_size=batch, image_size=size, lr=1e-3,
                             weight_decay=0.01, ema_decay=0.99, log_every=10, output_dir=folder, drop_last=True)
        result = Trainer(Regression(), config, dataset).fit()
    return result.wall_time_s / steps  # includes the final checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    dataset = Pairs(64, args.size)
    bare_loop(dataset, 10, args.batch)  # warm-up
    bare = bare_loop(dataset, args.steps, args.batch)
    engine = engine_loop(dataset, args.steps, args.batch, args.size)
    print(f"{args.steps} steps, batch {args.batch}, {args.size}², CPU threads {torch.get_num_threads()}")
    print(f"bare loop: {1e3 * bare:7.2f} ms/step")
    print(f"Trainer  : {1e3 * engine:7.2f} ms/step  ({100 * (engine / bare - 1):+.1f} %, final checkpoint included)")


if __name__ == "__main__":
    main()
