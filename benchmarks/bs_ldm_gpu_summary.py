"""Merging the headline parts into one summary: ``bs_ldm_speed.py --merge LOGDIR``.

Reads the parts' JSON fragments (``sampling_full.json``, ``training_full.json``),
the outcomes ``bs_ldm_gpu.sh`` logs in ``parts.tsv`` and the end-to-end
benchmark's JSON, and writes ``LOGDIR/bs_ldm_gpu.json`` and its Markdown
summary ``LOGDIR/bs_ldm_gpu.md``.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from bs_ldm_timing import gib


def ratio(numerator, denominator) -> float | None:
    return numerator / denominator if numerator and denominator else None


def outcomes(logdir: Path) -> dict:
    """Each part's last outcome, from the ``parts.tsv`` that ``bs_ldm_gpu.sh`` appends to."""
    found = {}
    table = logdir / "parts.tsv"
    for line in table.read_text().splitlines() if table.is_file() else []:
        name, limit, status, seconds = line.split("\t")
        status = int(status)
        outcome = {0: "finished", 124: "stopped at its time limit", 137: "killed at its time limit"}.get(
            status, "skipped: the budget was spent" if status < 0 else "failed")
        found[name] = {"limit_s": int(limit), "exit": status, "seconds": int(seconds), "outcome": outcome}
    return found


def end_to_end(path: Path | None) -> dict | None:
    """BS-LDM and identity from the benchmark's JSON: quality, cost and the gain over identity."""
    if path is None or not path.is_file():
        return None
    written = json.loads(path.read_text())
    keys = ("label", "psnr_mean", "bsr_symmetric_mean", "ssim_mean", "seconds_per_image", "budget_steps",
            "budget_wall_time_s", "budget_note", "psnr_gain_over_identity", "beats_identity")
    rows = {row["method"]: {key: row.get(key) for key in keys} for row in written["summary"]}
    settings = written["settings"]
    return {"command": settings["command"], "image_size": settings["image_size"], "num_test": settings["num_test"],
            "steps_scale": settings["steps_scale"],
            "train_steps": settings.get("train_steps", settings.get("steps_override")),  # older runs: steps_override
            "device": settings["device"], "methods": rows}


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def merge(logdir: Path, command: str, dry_run: bool, end_to_end_json: Path | None = None) -> dict:
    """The parts' fragments as one flat summary: the headline numbers first, their details after."""
    sampling, training = load(logdir / "sampling_full.json"), load(logdir / "training_full.json")
    env = sampling.get("environment") or training.get("environment") or {}
    if not env:
        gpu = "unknown (no part reached its first measurement)"
    elif env["device"] != "cuda":
        gpu = "none (a CPU dry run)" if dry_run else f"none ({env['device']})"
    else:
        gpu = env["device_name"]
    official = sampling.get("official") or {}
    batch1 = [v for v in sampling.get("variants", []) if v["settings"]["batch"] == 1]
    ours = min(batch1, key=lambda v: v["s_per_image"], default={})  # the fastest variant at batch 1
    largest = sampling.get("largest_batch") or {}
    train_official = training.get("official") or {}
    train_ours = max(training.get("variants", []), key=lambda v: v["images_per_s"], default={})
    captured = [v for v in sampling.get("variants", []) if v["settings"]["graphs"].startswith("CUDA graph")]
    notes = sampling.get("notes", []) + training.get("notes", [])
    if "compile_started_s_left" in sampling and "compile_s" not in sampling:
        notes.append(f"torch.compile started with {sampling['compile_started_s_left']:.0f} s left in its part "
                     "and did not finish")
    return {
        "gpu": gpu,
        "command": command,
        "dry_run": dry_run,
        "date": datetime.date.today().isoformat(),
        "preset": sampling.get("preset") or training.get("preset"),
        "image_size": sampling.get("image_size") or training.get("image_size"),
        "sampling_official_s_per_image": official.get("s_per_image"),
        "sampling_official_settings": official.get("settings"),
        "sampling_official_steps_timed": official.get("steps_timed"),
        "sampling_official_extrapolated_from_steps": official.get("extrapolated_from_steps"),
        "sampling_ours_s_per_image": ours.get("s_per_image"),
        "sampling_ours_settings": ours.get("settings"),
        "sampling_speedup": ratio(official.get("s_per_image"), ours.get("s_per_image")),
        "sampling_channels_last": sampling.get("channels_last"),
        "sampling_compile_mode": sampling.get("compile_mode"),
        "sampling_compile_s": sampling.get("compile_s"),
        "sampling_capture_s": captured[0]["warmup_s"] if captured else None,
        "sampling_largest_batch": largest.get("batch"),
        "sampling_largest_batch_s_per_image": largest.get("s_per_image"),
        "sampling_largest_batch_speedup": ratio(official.get("s_per_image"), largest.get("s_per_image")),
        "sampling_largest_batch_peak_gib": largest.get("peak_gib"),
        "sampling_largest_batch_stopped_by": largest.get("stopped_by"),
        "sampling_variants": sampling.get("variants", []),
        "training_batch": training.get("batch"),
        "training_official_images_per_s": train_official.get("images_per_s"),
        "training_official_peak_gib": train_official.get("peak_gib"),
        "training_official_settings": train_official.get("settings"),
        "training_ours_images_per_s": train_ours.get("images_per_s"),
        "training_ours_peak_gib": train_ours.get("peak_gib"),
        "training_ours_settings": train_ours.get("settings"),
        "training_speedup": ratio(train_ours.get("images_per_s"), train_official.get("images_per_s")),
        "training_latent_cache_s_per_pair": training.get("latent_cache_s_per_pair"),
        "training_variants": training.get("variants", []),
        "end_to_end": end_to_end(end_to_end_json),
        "parts": outcomes(logdir),
        "environment": env,
        "notes": notes,
    }


def number(value, digits: int = 3, unit: str = "") -> str:
    return "not measured" if value is None else f"{value:.{digits}g}{unit}"


def markdown(summary: dict) -> str:
    """The summary in the style of ``benchmarks/results/bs_ldm_gpu.md``, ready to be kept there."""
    env = summary["environment"]
    machine = summary["gpu"]
    if env.get("device") == "cuda":
        tf32 = "may use TF32 (torch's default, as in the official code)" if env["tf32_convolutions"] else "in full fp32"
        machine += (f" ({env['memory_gib']} GiB, compute capability {env['compute_capability']}), CUDA {env['cuda']}; "
                    f"fp32 convolutions {tf32}")
    lines = [f"# BS-LDM on one GPU: the headline measurement ({summary['date']})", ""]
    if summary["dry_run"]:
        lines += ["**Dry run** on the CPU at smoke sizes: it checks the script and its code paths; its numbers "
                  "say nothing about BS-LDM's speed.", ""]
    lines += [f"Machine: {machine}; Python {env.get('python', '?')}, torch {env.get('torch', '?')}, "
              f"bs_lib {env.get('bs_lib', '?')}.", "", f"Command: `{summary['command']}`", "",
              f"Model: the `{summary['preset']}` preset at {summary['image_size']}², random weights (speed does "
              "not depend on them), official and ours on the same model in the same process.", ""]
    if summary["preset"] == "full":
        lines += ["Published reference: 84.62 s per 1024² image for the official 1 000-step sampler (GL-LCM's "
                  "table; GPU not stated).", ""]
    lines += [*speed_table(summary), "", *variant_lines(summary), "", *end_to_end_lines(summary["end_to_end"])]
    lines += ["", "## Parts", "", "| part | limit (s) | exit | time (s) | outcome |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {p['limit_s']} | {p['exit']} | {p['seconds']} | {p['outcome']} |"
              for name, p in summary["parts"].items()]
    if summary["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"


def speed_table(s: dict) -> list[str]:
    official, ours = s["sampling_official_settings"] or {}, s["sampling_ours_settings"] or {}
    train_official, train_ours = s["training_official_settings"] or {}, s["training_ours_settings"] or {}
    chain = (f"; extrapolated from {s['sampling_official_extrapolated_from_steps']} steps"
             if s["sampling_official_extrapolated_from_steps"] else "; the full chain timed" if official else "")
    largest = s["sampling_largest_batch"]
    return ["## Speed", "",
            "| measurement | official | ours | ours faster by |",
            "|---|---|---|---|",
            f"| sampling, s per image, batch 1 | {number(s['sampling_official_s_per_image'])} "
            f"({official.get('label', '—')}{chain}) | {number(s['sampling_ours_s_per_image'])} "
            f"({ours.get('label', '—')}) | **{number(s['sampling_speedup'], unit='×')}** |",
            f"| sampling, s per image, largest batch ({largest or '—'}) | — | "
            f"{number(s['sampling_largest_batch_s_per_image'])} (eager; stopped by "
            f"{s['sampling_largest_batch_stopped_by'] or '—'}; peak {gib(s['sampling_largest_batch_peak_gib'])}) | "
            f"{number(s['sampling_largest_batch_speedup'], unit='×')} |",
            f"| training, images/s, batch {s['training_batch']} | {number(s['training_official_images_per_s'])} "
            f"({train_official.get('label', '—')}; peak {gib(s['training_official_peak_gib'])}) | "
            f"{number(s['training_ours_images_per_s'])} ({train_ours.get('label', '—')}; peak "
            f"{gib(s['training_ours_peak_gib'])}) | **{number(s['training_speedup'], unit='×')}** |"]


def variant_lines(s: dict) -> list[str]:
    lines = ["Every variant measured:", "", "| variant | result | warm-up (compile, capture) |", "|---|---|---|"]
    lines += [f"| sampling, {v['settings']['label']} | {number(v['s_per_image'])} s per image | "
              f"{v['warmup_s']:.1f} s |" for v in s["sampling_variants"]]
    lines += [f"| training, {v['settings']['label']} | {number(v['images_per_s'])} images/s, peak "
              f"{gib(v['peak_gib'])} | — |" for v in s["training_variants"]]
    if s["training_latent_cache_s_per_pair"] is not None:
        lines += ["", f"Encoding a pair once for the cache costs {s['training_latent_cache_s_per_pair']:.3g} s, "
                  "once per training run instead of at every step."]
    return lines


def end_to_end_lines(e2e: dict | None) -> list[str]:
    lines = ["## End to end on the phantom", ""]
    if e2e is None:
        return [*lines, "Not completed in this run (see the parts below): no quality numbers."]
    lines += [f"`{e2e['command']}` ({e2e['num_test']} test images at {e2e['image_size']}², device "
              f"{e2e['device']}, step scale ×{e2e['steps_scale']:g}, "
              f"training-step overrides {e2e['train_steps'] or 'none'}):",
              "", "| method | PSNR (dB) | BSR sym. (%) | SSIM | Δ PSNR against identity (dB) [95 % CI] | s per image | "
              "training |", "|---|---|---|---|---|---|---|"]
    for row in e2e["methods"].values():
        gain = row["psnr_gain_over_identity"]
        gain = f"{gain[0]:+.2f} [{gain[1]:+.2f}, {gain[2]:+.2f}]" if gain else "—"
        training = f"{row['budget_steps']} steps, {number(row['budget_wall_time_s'])} s" if row["budget_steps"] else "—"
        lines.append(f"| {row['label']} | {row['psnr_mean']:.2f} | {100 * row['bsr_symmetric_mean']:.2f} | "
                     f"{row['ssim_mean']:.4f} | {gain} | {number(row['seconds_per_image'])} | {training} |")
    return lines


def write_summary(logdir: Path, command: str, dry_run: bool, end_to_end_json: Path | None) -> dict:
    """``LOGDIR/bs_ldm_gpu.json`` and ``LOGDIR/bs_ldm_gpu.md`` from the parts' fragments."""
    summary = merge(logdir, command, dry_run, end_to_end_json)
    (logdir / "bs_ldm_gpu.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    (logdir / "bs_ldm_gpu.md").write_text(markdown(summary))
    print(f"wrote {logdir / 'bs_ldm_gpu.json'} and {logdir / 'bs_ldm_gpu.md'}")
    return summary
