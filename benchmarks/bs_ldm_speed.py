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

The headline measurement, official against ours on one model in one process, is one part at a
time (``bs_ldm_gpu.sh quick`` runs both and merges them):

    python benchmarks/bs_ldm_speed.py --headline sampling --preset full --json LOGDIR/sampling_full.json
    python benchmarks/bs_ldm_speed.py --headline training --preset full --json LOGDIR/training_full.json
    python benchmarks/bs_ldm_speed.py --merge LOGDIR --command "..."   # LOGDIR/bs_ldm_gpu.json and .md

* ``--headline sampling``: the official sampler (DDPM 1 000 steps + TAT, fp32, eager) against ours
  (DDIM 20 on trailing timesteps + TAT, half precision, the faster memory layout, CUDA graphs),
  both at batch 1, then ours at the largest batch that fits;
* ``--headline training``: the official loop (both images encoded by the frozen autoencoder at
  every step, fp32) against ours (latents encoded once, the fastest precision), images/s and peak
  memory of each.

Each part rewrites its JSON after every measurement, so a part stopped at its time limit still
leaves what it measured; ``--time-limit`` tells it that limit, and it skips or shortens what would
not fit.

The published reference is 84.62 s per 1024² image for the official 1 000-step sampler
(GL-LCM's table; GPU not stated). Results belong in ``benchmarks/results/`` with this command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from bs_ldm_gpu_summary import write_summary
from bs_ldm_headline import CompiledUNet, headline_sampling, headline_training
from bs_ldm_timing import (
    SIZES,
    TRAIN_STEPS,
    Fragment,
    build,
    cached,
    environment,
    half_precision,
    images,
    time_sampling,
    train_speed,
)

from bs_lib.engine import count_parameters

# --------------------------------------------------------------------------- the survey (all variants, printed)


def training_speed(preset: str, device: torch.device, batch: int, bf16: bool, channels_last: bool,
                   steps: int, cached_latents: bool = False) -> tuple[float, float | None]:
    """(images per second, peak GiB) of stage-2 training steps on a fresh model; ``cached_latents``: encoded first."""
    model = build(preset, device, channels_last=channels_last)
    data = images(preset, device, batch)
    if cached_latents:
        data = cached(model, data)
    return train_speed(model, data, half_precision(device) if bf16 else None, steps)


@torch.no_grad()
def sampling_speed(preset: str, device: torch.device, batch: int, sampler: str, steps: int | None, bf16: bool,
                   compile_mode: str | None) -> float:
    """Seconds per image of one sampling run (after a short warm-up)."""
    model = build(preset, device, channels_last=bf16).eval()
    if compile_mode:
        model.unet = CompiledUNet(model.unet, mode=compile_mode)
    size = SIZES[preset]
    cxr = torch.rand(batch, 1, size, size, device=device)
    _, seconds = time_sampling(model, cxr, half_precision(device) if bf16 else None,
                               sampler=sampler, sampling_steps=steps, threshold="tat")
    return seconds


def survey(args: argparse.Namespace, device: torch.device) -> None:
    """Every training and sampling variant of the preset, one printed line each."""
    fast = device.type == "cuda"
    variants = [("fp32", False, False, False), ("fp32, cached latents", False, False, True)]
    if fast:
        variants += [("bf16", True, False, False), ("bf16 + channels-last", True, True, False),
                     ("bf16, cached latents", True, False, True)]
    for label, bf16, channels_last, cached_latents in [] if args.skip_training else variants:
        speed, peak = training_speed(args.preset, device, args.batch, bf16, channels_last, args.train_steps,
                                     cached_latents)
        memory = f", peak {peak:.1f} GiB" if peak is not None else ""
        print(f"training, batch {args.batch}, {label}: {speed:.3g} images/s ({1 / speed:.3g} s per image){memory}")
    runs = [(f"DDIM {steps} + TAT, batch {batch}" + (", bf16 + channels-last" if fast else ""),
             batch, "ddim", steps, fast, args.compile if fast else None)
            for steps in args.ddim_steps for batch in (1, args.sample_batch)]
    if not args.skip_ddpm:  # last: the slowest
        runs.append(("DDPM 1000 (official, fp32), batch 1", 1, "ddpm", None, False, None))
    for label, batch, sampler, steps, bf16, compiled in [] if args.skip_sampling else runs:
        seconds = sampling_speed(args.preset, device, batch, sampler, steps, bf16, compiled)
        print(f"sampling, {label}{f', compiled ({compiled})' if compiled else ''}: {seconds:.3f} s per image")


# --------------------------------------------------------------------------- command line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(SIZES), default="full")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the best available)")
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
    headline = parser.add_argument_group("the headline measurement (bs_ldm_gpu.sh quick)")
    headline.add_argument("--headline", choices=["sampling", "training"], default=None,
                          help="official against ours for one part, instead of the survey")
    headline.add_argument("--json", type=Path, default=None, help="write the part's results here as they come")
    headline.add_argument("--time-limit", type=float, default=600, help="the part's time limit (s)")
    headline.add_argument("--ddpm-steps", type=int, default=TRAIN_STEPS,
                          help="official DDPM steps to time (fewer: extrapolated to 1000)")
    headline.add_argument("--reserve", type=float, default=30,
                          help="seconds kept for what follows the official sampler (else it is extrapolated)")
    headline.add_argument("--max-batch", type=int, default=64, help="cap of the largest sampling batch")
    headline.add_argument("--min-compile", type=float, default=60,
                          help="skip torch.compile with fewer seconds left than this")
    headline.add_argument("--keep-going", action="store_true",
                          help="an optional variant that fails becomes a note (for the GPU run; a dry run stops)")
    headline.add_argument("--merge", type=Path, default=None, metavar="LOGDIR",
                          help="merge the parts in LOGDIR into bs_ldm_gpu.json and .md, and stop")
    headline.add_argument("--command", default="", help="the command line to record (with --merge)")
    headline.add_argument("--end-to-end", type=Path, default=None, help="the benchmark's JSON (with --merge)")
    headline.add_argument("--dry-run", action="store_true", help="mark the merged summary as a dry run")
    args = parser.parse_args()

    if args.merge is not None:
        write_summary(args.merge, args.command, args.dry_run, args.end_to_end)
        return
    from bs_lib.config import detect_device, environment_report

    device = detect_device(args.device)
    print(environment_report())
    with torch.device("meta"):
        sizes = build(args.preset, torch.device("meta"), channels_last=False)
    print(f"\npreset {args.preset}: {SIZES[args.preset]}² images, UNet {count_parameters(sizes.unet):,} "
          f"+ autoencoder {count_parameters(sizes.autoencoder.autoencoder):,} parameters\n")
    if args.headline is None:
        survey(args, device)
        return
    fragment = Fragment(args.json, environment=environment(device), preset=args.preset,
                        image_size=SIZES[args.preset])
    part = headline_sampling if args.headline == "sampling" else headline_training
    part(args, device, fragment)
    print(f"\n{args.headline}: done" + (f", results in {args.json}" if args.json else ""))


if __name__ == "__main__":
    main()
