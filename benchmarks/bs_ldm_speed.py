"""Speed of BS-LDM: training images/s and sampling seconds per image, for a preset.

    python benchmarks/bs_ldm_speed.py --preset full            # the paper's model at 1024² (needs a GPU)
    python benchmarks/bs_ldm_speed.py --preset smoke --batch 2  # a quick CPU check of the script itself

Prints, for the chosen preset and its image size:

* training: images/s and peak GPU memory of one stage-2 step (frozen autoencoder encode + UNet
  forward/backward + AdamW), at ``--batch`` (the paper's 4 by default), fp32 as the official loop,
  bf16 autocast, bf16 autocast + channels-last, and with the latents encoded beforehand
  (``cache_latents``: the frozen encoder leaves the loop);
* sampling: seconds per image for DDPM with all 1 000 steps (the official sampler, fp32) and for
  DDIM with each of ``--ddim-steps`` (20 and 50) steps and temporal adaptive thresholding (bf16,
  channels-last, optionally ``torch.compile``), at batch 1 and at ``--sample-batch``. On the
  benchmark's model DDIM 20 on trailing timesteps matches the official sampler's quality
  (``results/bs_ldm_samplers_smoke_128.md``); the spacing does not change the time.

The published reference is 84.62 s per 1024² image for the official 1 000-step sampler
(GL-LCM's table; GPU not stated). Results belong in ``benchmarks/results/`` with this command line.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from bs_lib.models.ldm import UNET_PRESETS, ConditionalLDM, DiffusionSettings, count_parameters
from bs_lib.models.vqgan import MLVQGAN, VQGAN_PRESETS

SIZES = {"smoke": 64, "colab": 256, "full": 1024}


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def build(preset: str, device: torch.device, channels_last: bool) -> ConditionalLDM:
    model = ConditionalLDM(MLVQGAN(VQGAN_PRESETS[preset], prefer_lpips=False), UNET_PRESETS[preset],
                           DiffusionSettings()).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def training_speed(preset: str, device: torch.device, batch: int, bf16: bool, channels_last: bool,
                   steps: int, cached: bool = False) -> tuple[float, float]:
    """(images per second, peak GiB) of stage-2 training steps; ``cached``: latents encoded beforehand."""
    model = build(preset, device, channels_last=channels_last).train()
    optimiser = torch.optim.AdamW(model.unet.parameters(), lr=2e-4)
    size = SIZES[preset]
    data = {"cxr": torch.rand(batch, 1, size, size, device=device),
            "soft": torch.rand(batch, 1, size, size, device=device)}
    if cached:  # what ConditionalLDM.prepare_dataset does once per dataset with cache_latents
        with torch.no_grad():
            data = dict(zip(("z_soft", "z_cxr"), model.latents(data), strict=True))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            synchronise(device)
            started = time.perf_counter()
        with autocast(device, bf16):
            loss = model.losses(data, step)["unet"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    synchronise(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return batch * steps / seconds, peak


@torch.no_grad()
def sampling_speed(preset: str, device: torch.device, batch: int, sampler: str, steps: int | None, bf16: bool,
                   compile_mode: str | None) -> float:
    """Seconds per image of one sampling run (after a short warm-up)."""
    model = build(preset, device, channels_last=bf16).eval()
    if compile_mode:
        model.unet = torch.compile(model.unet, mode=compile_mode)
    size = SIZES[preset]
    cxr = torch.rand(batch, 1, size, size, device=device)
    with autocast(device, bf16):
        model.predict(cxr, sampler="ddim", sampling_steps=2)  # warm-up (and compilation)
        synchronise(device)
        started = time.perf_counter()
        model.predict(cxr, torch.Generator(device=device).manual_seed(0), sampler=sampler, sampling_steps=steps,
                      threshold="tat")
        synchronise(device)
    return (time.perf_counter() - started) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(SIZES), default="full")
    parser.add_argument("--batch", type=int, default=4, help="training batch (the paper's is 4)")
    parser.add_argument("--sample-batch", type=int, default=8, help="a larger sampling batch")
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        choices=["default", "reduce-overhead", "max-autotune"],
                        help="torch.compile the UNet for DDIM sampling, in this mode (reduce-overhead: CUDA graphs)")
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[20, 50], help="DDIM step counts to time")
    parser.add_argument("--skip-ddpm", action="store_true", help="skip the slow 1000-step DDPM measurement")
    parser.add_argument("--skip-training", action="store_true", help="measure sampling only")
    parser.add_argument("--skip-sampling", action="store_true", help="measure training only")
    args = parser.parse_args()

    from bs_lib.config import detect_device, environment_report

    device = detect_device()
    print(environment_report())
    with torch.device("meta"):
        sizes = build(args.preset, torch.device("meta"), channels_last=False)
    print(f"\npreset {args.preset}: {SIZES[args.preset]}² images, UNet {count_parameters(sizes.unet):,} "
          f"+ autoencoder {count_parameters(sizes.autoencoder.autoencoder):,} parameters\n")
    fast = device.type == "cuda"
    variants = [("fp32", False, False, False), ("fp32, cached latents", False, False, True)]
    if fast:
        variants += [("bf16", True, False, False), ("bf16 + channels-last", True, True, False),
                     ("bf16, cached latents", True, False, True)]
    for label, bf16, channels_last, cached in [] if args.skip_training else variants:
        speed, peak = training_speed(args.preset, device, args.batch, bf16, channels_last, args.train_steps, cached)
        print(f"training, batch {args.batch}, {label}: {speed:.3g} images/s ({1 / speed:.3g} s per image), "
              f"peak {peak:.1f} GiB")
    runs = [(f"DDIM {steps} + TAT, batch {batch}" + (", bf16 + channels-last" if fast else ""),
             batch, "ddim", steps, fast, args.compile if fast else None)
            for steps in args.ddim_steps for batch in (1, args.sample_batch)]
    if not args.skip_ddpm:  # last: the slowest
        runs.append(("DDPM 1000 (official, fp32), batch 1", 1, "ddpm", None, False, None))
    for label, batch, sampler, steps, bf16, compiled in [] if args.skip_sampling else runs:
        seconds = sampling_speed(args.preset, device, batch, sampler, steps, bf16, compiled)
        print(f"sampling, {label}{f', compiled ({compiled})' if compiled else ''}: {seconds:.3f} s per image")


if __name__ == "__main__":
    main()
