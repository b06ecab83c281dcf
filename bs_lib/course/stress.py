"""Do the notebooks' claims hold on any machine? Run every notebook under several seeds and thread counts.

A notebook checks what it teaches with claims (:func:`bs_lib.claims.check`):
"the adapted model gains on the target", "BS-LDM removes bone's level shift".
A claim that holds for seed 0 on one CPU and fails for seed 1 or with two
threads is a coin flip, not a lesson. ``python -m bs_lib notebooks stress`` executes every course notebook
in the ``smoke`` profile with papermill for each seed (default 0, 1, 2) and
each torch thread count (default 1, 2), and prints a pass/fail table; a
failing run shows the error of its first failing cell. ``--output FILE.md``
keeps the table with the command and the machine, for ``benchmarks/results/``.

Each run is its own process (a fresh kernel, ``OMP_NUM_THREADS`` set); runs go
side by side as long as their threads fit the machine's cores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bs_lib.course.listing import NOTEBOOKS_DIR, select_notebooks

SEEDS = (0, 1, 2)
THREADS = (1, 2)


@dataclass(frozen=True)
class StressRun:
    """One notebook under one seed and one thread count."""

    notebook: str
    seed: int
    threads: int
    seconds: float
    error: str | None  # None: every cell ran

    @property
    def passed(self) -> bool:
        return self.error is None


def first_error(executed: Path) -> str | None:
    """``Name: message`` of the first cell that raised in an executed notebook, or None."""
    import nbformat

    if not executed.exists():
        return None
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = " ".join(str(output.get("evalue", "")).split())
                return f"{output.get('ename', 'Error')}: {message}"[:200]
    return None


def run_once(notebook: Path, seed: int, threads: int, workdir: Path, environment: dict[str, str],
             timeout: float) -> StressRun:
    """Execute ``notebook`` in a fresh process with ``SEED=seed`` and ``threads`` torch threads."""
    executed = workdir / f"{notebook.stem}-seed{seed}-threads{threads}.ipynb"
    runs = workdir / f"runs-{notebook.stem}-seed{seed}-threads{threads}"  # a run is never reused across cases
    command = [sys.executable, "-m", "papermill", str(notebook), str(executed), "-k", "python3",
               "--cwd", str(notebook.parent), "--no-progress-bar", "-p", "PROFILE", "smoke", "-p", "SEED", str(seed)]
    env = {**os.environ, **environment, "BS_PROFILE": "smoke", "OMP_NUM_THREADS": str(threads),
           "BS_RUNS_DIR": str(runs)}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        error = None if done.returncode == 0 else (first_error(executed) or _last_line(done.stderr))
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:.0f} s"
    return StressRun(notebook.stem, seed, threads, round(time.perf_counter() - started, 1), error)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "failed without a message"


class CoreBudget:
    """At most ``cores`` torch threads at once: a run with two threads waits for two free cores.

    Oversubscribed cores make torch's threads spin against each other, and a
    run can take ten times longer than alone.
    """

    def __init__(self, cores: int):
        self.free, self.condition = cores, threading.Condition()

    def run(self, threads: int, work, *args):
        with self.condition:
            self.condition.wait_for(lambda: self.free >= threads)
            self.free -= threads
        try:
            return work(*args)
        finally:
            with self.condition:
                self.free += threads
                self.condition.notify_all()


def run_stress(notebooks: list[Path], seeds=SEEDS, threads=THREADS, cores: int | None = None,
               environment: dict[str, str] | None = None, timeout: float = 900.0) -> list[StressRun]:
    """Every notebook × seed × thread count, as many at a time as ``cores`` allows; prints each as it ends."""
    cases = [(notebook, seed, count) for notebook in notebooks for seed in seeds for count in threads]
    cores = max(cores or os.cpu_count() or 1, max(threads))
    budget = CoreBudget(cores)
    results = []
    with tempfile.TemporaryDirectory(prefix="bs-stress-") as scratch, \
            concurrent.futures.ThreadPoolExecutor(max_workers=cores) as pool:
        futures = [pool.submit(budget.run, case[2], run_once, *case, Path(scratch), environment or {}, timeout)
                   for case in cases]
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            results.append(result)
            mark = "pass" if result.passed else f"FAIL  {result.error}"
            print(f"[{len(results):>3}/{len(cases)}] {result.notebook} seed {result.seed}, "
                  f"{result.threads} thread(s): {result.seconds:.0f} s  {mark}", flush=True)
    return sorted(results, key=lambda r: (r.notebook, r.seed, r.threads))


def stress_table(results: list[StressRun]) -> str:
    """A Markdown table: one row per notebook, one column per (seed, threads); ✓ or ✗ with the run time."""
    columns = sorted({(r.seed, r.threads) for r in results})
    header = ["notebook", *(f"seed {seed}, {count} thread{'s' * (count > 1)}" for seed, count in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_key = {(r.notebook, r.seed, r.threads): r for r in results}
    for notebook in sorted({r.notebook for r in results}):
        cells = []
        for seed, count in columns:
            run = by_key.get((notebook, seed, count))
            cells.append("—" if run is None else f"{'✓' if run.passed else '✗'} {run.seconds:.0f} s")
        lines.append(f"| {notebook} | " + " | ".join(cells) + " |")
    failures = [r for r in results if not r.passed]
    lines += ["", f"**{len(results) - len(failures)} of {len(results)} runs passed.**"]
    lines += [f"- ✗ {r.notebook}, seed {r.seed}, {r.threads} thread(s): {r.error}" for r in failures]
    return "\n".join(lines)


def stress_report(results: list[StressRun], command: str, real_pairs: str) -> str:
    """The table with the command that made it and the machine it ran on."""
    import torch

    return "\n".join([
        "# Notebook claims under other seeds and thread counts",
        "",
        f"Produced on {dt.date.today().isoformat()} by:",
        "",
        "```",
        command,
        "```",
        "",
        f"- profile `smoke`, every notebook executed top to bottom with papermill in a fresh kernel; "
        f"real sample pairs: {real_pairs}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "",
        stress_table(results),
        "",
    ])


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notebooks", nargs="*", default=None, help="number prefixes to run, e.g. 05 09")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--threads", nargs="+", type=int, default=list(THREADS))
    parser.add_argument("--cores", type=int, default=None,
                        help="torch threads in use at once, over all runs (default: this machine's cores)")
    parser.add_argument("--without-real-pairs", action="store_true",
                        help="hide the real sample pairs, as on a machine that never downloaded them")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--output", type=Path, default=None, help="write the table to this Markdown file")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (what the results file records)."""
    words = ["python", "-m", "bs_lib", "notebooks", "stress"]
    if args.notebooks:
        words += ["--notebooks", *args.notebooks]
    if list(args.seeds) != list(SEEDS):
        words += ["--seeds", *map(str, args.seeds)]
    if list(args.threads) != list(THREADS):
        words += ["--threads", *map(str, args.threads)]
    words += ["--cores", str(args.cores)] if args.cores else []
    words += ["--without-real-pairs"] if args.without_real_pairs else []
    if args.output:
        words += ["--output", str(args.output)]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    notebooks = select_notebooks(NOTEBOOKS_DIR, args.notebooks)
    with tempfile.TemporaryDirectory(prefix="bs-stress-data-") as empty:
        environment = {"BS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "BS_QUIET": "1", "BS_STATIC": "1"}
        if args.without_real_pairs:
            environment |= {"BS_REAL_PAIRS": str(Path(empty) / "none"), "BS_DATA_DIR": empty}
        results = run_stress(notebooks, args.seeds, args.threads, args.cores, environment, args.timeout)
    table = stress_table(results)
    print("\n" + table)
    if args.output:
        hidden = "hidden (--without-real-pairs)" if args.without_real_pairs else "used when present"
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(stress_report(results, command_line(args), hidden), encoding="utf-8")
        print(f"written to {args.output}")
    return 0 if all(r.passed for r in results) else 1
