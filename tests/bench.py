"""Time every solution notebook end to end and every checker on the reference; write bench.md and the README table.

    python -m tests.bench                       # everything (what `make bench` runs)
    python -m tests.bench part1 --no-notebooks  # only part 1's checkers

Notebooks run in a fresh kernel exactly as a learner's "Run all" would (full step counts), on the
device `utils.device.get_device()` picks. Checkers are timed on the CPU, one cold call each, as a
learner first meets them. Each section's time budget comes from its issue (see LIMITS).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import time
from datetime import date

import nbformat
import torch

from utils.device import get_device
from utils.notebooks import ROOT, build, check_calls, execute, section, sections

BENCH_FILE = ROOT / "bench.md"
README = ROOT / "README.md"
MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")
CHECKER_LIMIT_S = 2.0
# Run-time budgets for the solution notebooks on a 2-core CPU, in seconds.
LIMITS = {
    "part1_superposition": 120,
    "part2_privileged_basis": 120,
    "part3_feature_geometry": 180,
    "part4_double_descent": 480,
    "part5_toy_saes": 480,
    "part6_lm_saes": 300,
    "part7_open_problems": 360,
}


def time_notebook(name: str, write: bool = False) -> float:
    """Seconds to run a solution notebook end to end; `write` also commits its outputs (one run, not two)."""
    sec = section(name)
    start = time.perf_counter()
    done = execute(build(sec, exercise=False), cwd=sec.source.parent, env={"CURRICULUM_FAST": "0"}, timeout=1800)
    seconds = time.perf_counter() - start
    if write:
        nbformat.write(done, sec.solution_notebook)
    return seconds


def time_checkers(name: str) -> list[tuple[str, float]]:
    sec = section(name)
    reference = importlib.import_module(f"solutions.{sec.name}")
    rows = []
    for module, func, arg in check_calls(sec):
        checker = getattr(importlib.import_module(f"tests.{module}"), func)
        impl = eval(arg, vars(reference)) if arg.strip() else None
        start = time.perf_counter()
        checker(impl, device="cpu")
        rows.append((func, time.perf_counter() - start))
    return rows


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"device {get_device()}, load average {load:.1f} at start, {date.today().isoformat()}"
    )


def table(notebooks: dict[str, float], checkers: dict[str, list[tuple[str, float]]], context: str) -> str:
    lines = [
        f"Measured with `make bench` on: {context}.",
        "",
        "| section | solution notebook (s) | budget (s) | checkers | slowest checker (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in sorted(set(notebooks) | set(checkers)):
        nb = f"{notebooks[name]:.0f}" if name in notebooks else "–"
        budget = str(LIMITS.get(name, "–"))
        rows = checkers.get(name, [])
        slowest = max(rows, key=lambda r: r[1]) if rows else None
        slow = f"{slowest[1]:.2f} (`{slowest[0]}`)" if slowest else "–"
        lines.append(f"| `{name}` | {nb} | {budget} | {len(rows)} | {slow} |")
    lines += ["", "<details><summary>Every checker</summary>", "", "| checker | time (s) |", "| --- | ---: |"]
    for name in sorted(checkers):
        lines += [f"| `{name}.{func}` | {t:.2f} |" for func, t in checkers[name]]
    lines += ["", "</details>"]
    return "\n".join(lines)


def update_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    start, end = MARKERS
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    README.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", readme), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the solution notebooks and checkers.")
    parser.add_argument("sections", nargs="*", help="section names or prefixes (default: all)")
    parser.add_argument("--no-notebooks", action="store_true", help="time only the checkers")
    parser.add_argument("--no-write", action="store_true", help="print the table, don't write bench.md/README")
    parser.add_argument(
        "--write-notebooks",
        action="store_true",
        help="also save the executed solution notebooks (what `make notebooks` would do)",
    )
    args = parser.parse_args(argv)
    names = [section(n).name for n in args.sections] if args.sections else [s.name for s in sections()]
    context = machine()
    notebooks, checkers = {}, {}
    for name in names:
        checkers[name] = time_checkers(name)
        if not args.no_notebooks:
            notebooks[name] = time_notebook(name, write=args.write_notebooks)
            print(f"{name}: notebook {notebooks[name]:.1f}s", flush=True)
    text = table(notebooks, checkers, context)
    over = [n for n, t in notebooks.items() if t > LIMITS.get(n, float("inf"))]
    over += [f"{n}.{f}" for n, rows in checkers.items() for f, t in rows if t > CHECKER_LIMIT_S]
    print(text)
    if over:
        print(f"\nover budget: {', '.join(over)}")
    if not args.no_write:
        BENCH_FILE.write_text(f"# Benchmark\n\n{text}\n", encoding="utf-8")
        update_readme(text)


if __name__ == "__main__":
    main()
