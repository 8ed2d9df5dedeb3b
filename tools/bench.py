"""Time every solution notebook end to end and every checker on the reference; write bench.md and the README table.

    python -m tools.bench                       # everything (what `make bench` runs)
    python -m tools.bench part1 --no-notebooks  # only part 1's checkers

Notebooks run in a fresh kernel exactly as a learner's "Run all" would (full step counts), on the
device `utils.device.get_device()` picks. Checkers are timed on the CPU on their second call: the first
call in a process also pays one-off costs a learner has already paid in the notebook (imports, loading
section 6's model). Each section's time budget comes from its issue (see LIMITS). Results are kept per
section in bench.json, so timing one section leaves the other rows as they were.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import time
from datetime import date

import nbformat
import torch

from tools.notebooks import build, execute, section, sections
from utils.device import get_device
from utils.paths import ROOT, check_calls

BENCH_FILE = ROOT / "bench.md"
BENCH_JSON = ROOT / "bench.json"
README = ROOT / "README.md"
MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")
CHECKER_LIMIT_S = 2.0
# Run-time budgets for the solution notebooks on a 2-core CPU, in seconds.
LIMITS = {
    "part1_superposition": 120,
    "part2_privileged_basis": 120,
    "part3_feature_geometry": 180,
    "part4_double_descent": 480,
    "part5_toy_saes": 300,
    "part5a_sae_architectures": 480,
    "part5b_absorption": 360,
    "part6_lm_saes": 300,
    "part6b_circuits": 300,
    "part7_open_problems": 360,
    "part8_parameter_decomposition": 240,
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
    for module, func, arg in check_calls(sec.name):
        checker = getattr(importlib.import_module(f"tests.{module}"), func)
        impl = eval(arg, vars(reference)) if arg.strip() else None
        checker(impl, device="cpu")  # warm-up: one-off imports and model loading
        start = time.perf_counter()
        checker(impl, device="cpu")
        rows.append((func, time.perf_counter() - start))
    return rows


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()}-core {platform.machine()} CPU, torch {torch.__version__}, device {get_device()}, "
        f"load {load:.1f} at start, {date.today().isoformat()}"
    )


def table(results: dict[str, dict]) -> str:
    """Markdown for the README: one row per section, then every checker in a collapsible block."""
    lines = [
        "| section | solution notebook (s) | budget (s) | checkers | slowest checker (s) | measured on |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in sorted(results):
        r = results[name]
        nb = f"{r['notebook_s']:.0f}" if r.get("notebook_s") is not None else "–"
        rows = r.get("checkers", [])
        slowest = max(rows, key=lambda row: row[1]) if rows else None
        slow = f"{slowest[1]:.2f} (`{slowest[0]}`)" if slowest else "–"
        where = r["machine"] + (f"; checkers re-timed at load {r['checkers_load']}" if "checkers_load" in r else "")
        lines.append(f"| `{name}` | {nb} | {LIMITS.get(name, '–')} | {len(rows)} | {slow} | {where} |")
    lines += ["", "<details><summary>Every checker</summary>", "", "| checker | time (s) |", "| --- | ---: |"]
    for name in sorted(results):
        lines += [f"| `{name}.{func}` | {t:.2f} |" for func, t in results[name].get("checkers", [])]
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
    results = json.loads(BENCH_JSON.read_text(encoding="utf-8")) if BENCH_JSON.exists() else {}
    for name in names:
        row = {"machine": machine(), "checkers": time_checkers(name), "notebook_s": None}
        if not args.no_notebooks:
            row["notebook_s"] = time_notebook(name, write=args.write_notebooks)
            print(f"{name}: notebook {row['notebook_s']:.1f}s", flush=True)
        elif name in results:  # keep the last notebook time and the conditions it was measured in
            row["notebook_s"] = results[name].get("notebook_s")
            row["machine"] = results[name]["machine"]
            row["checkers_load"] = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"
        results[name] = row
    over = [n for n, r in results.items() if (r.get("notebook_s") or 0) > LIMITS.get(n, float("inf"))]
    over += [f"{n}.{f}" for n, r in results.items() for f, t in r["checkers"] if t > CHECKER_LIMIT_S]
    text = table(results)
    print(text)
    if over:
        print(f"\nover budget: {', '.join(over)}")
    if not args.no_write:
        BENCH_JSON.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        BENCH_FILE.write_text(f"# Benchmark\n\nMeasured with `make bench`.\n\n{text}\n", encoding="utf-8")
        update_readme(text)


if __name__ == "__main__":
    main()
