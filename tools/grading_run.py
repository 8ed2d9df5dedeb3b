"""Run one submission's grading plan in a sandbox: the grader's per-submission runner.

    python -m tools.grading_run JOB.json RESULT.json

`tools.grade` writes the job (the plan of cells to run and checks to make, the limits, where the pristine
curriculum is staged) and reads the result; this process is started for one submission and exits after it.

For each kernel it starts, the runner

* makes a disposable folder holding a fresh copy of the curriculum, every file checked against the hashes the
  grader took before any submission ran, with the notebook placed in `curriculum/submission/` (the setup
  cell finds the copy by walking up from there); it never sees the submission's own folder;
* starts an IPython kernel there through `tools/grading_sandbox.py` (memory limit, no privileges, Landlock
  confinement to that folder, no network) with a minimal environment: no variable of the grader's own;
* installs the grader's side (`tools/grading_kernel.py`) before the first cell, then runs the plan: each
  cell, and after the last cell that calls a check, the check itself, made by the grader.

A cell that runs past its limit is interrupted; one that ignores the interrupt, or a kernel that dies (a
crash, the memory watchdog), is recorded, and the runner starts a new kernel, replays the cells that had run
(without the one that hung or crashed) and goes on with the next step. The runner is the "child subreaper"
of everything the kernel starts, so after each kernel it ends the kernel's process group and every process
left behind, daemons included. The whole plan runs within the per-notebook limit.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from tools import grading_kernel, grading_sandbox

SANDBOX_SCRIPT = Path(grading_sandbox.__file__).resolve()
KERNEL_SOURCE = Path(grading_kernel.__file__).read_text(encoding="utf-8")
MAX_KERNEL_STARTS = 6
CAN_PRLIMIT = hasattr(psutil.Process, "rlimit") and hasattr(psutil, "RLIMIT_AS")
FLAT_BASELINE = 2 * 2**30  # without prlimit: address space allowed for Python, torch and the checkers themselves
INTERRUPT_GRACE = 5.0  # seconds a kernel gets to stop after an interrupt before it is killed
POLL = 0.2
_PR_SET_CHILD_SUBREAPER = 36


class KernelLost(Exception):
    """The kernel died, or hung and would not be interrupted; `reason` says which."""

    def __init__(self, reason: str, status: str):
        super().__init__(reason)
        self.reason, self.status = reason, status


def minimal_env(folder: Path, device: str) -> dict[str, str]:
    """Everything the kernel's environment holds: nothing from the grader's own environment."""
    home, tmp = folder / "home", folder / "tmp"
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "IPYTHONDIR": str(home / ".ipython"),
        "MPLCONFIGDIR": str(home / ".matplotlib"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PLOTLY_RENDERER": "plotly_mimetype",
        "CURRICULUM_FAST": "1",
        "CURRICULUM_DEVICE": device,
    }


def copy_curriculum(staging: Path, manifest: dict[str, str], target: Path) -> None:
    """Copy the staged curriculum, refusing any file whose bytes differ from the grader's hashes."""
    for rel, digest in manifest.items():
        data = (staging / rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise RuntimeError(f"the staged copy of {rel} changed during grading: refusing to grade with it")
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class Kernel:
    """One confined kernel in its own disposable folder."""

    def __init__(self, job: dict, base: Path, number: int):
        self.job, self.limits = job, job["limits"]
        self.folder = base / f"kernel{number}"
        root = self.folder / "curriculum"
        workdir = root / "submission"
        for sub in ("home", "tmp", "run"):
            (self.folder / sub).mkdir(parents=True)
        copy_curriculum(Path(job["staging"]), job["manifest"], root)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / job["notebook_name"]).write_text(job["notebook_text"], encoding="utf-8")
        connection = str(self.folder / "run" / "kernel.json")
        write_connection_file(connection, transport="ipc", ip=str(self.folder / "run" / "k"))
        spec = {
            # With prlimit, the memory limit is set once torch and the checkers are loaded (see `start`), so it means
            # the same whatever the torch build (a CUDA build maps several GB more); without it, a flat limit.
            "memory_bytes": 0 if CAN_PRLIMIT else self.limits["memory_bytes"] + FLAT_BASELINE,
            "file_bytes": self.limits["file_bytes"],
            "read": sorted(
                {sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
            ),
            "write": [str(self.folder)],
            "landlock": job["confine"],
        }
        command = [sys.executable, "-I", "-S", str(SANDBOX_SCRIPT), json.dumps(spec), "--", sys.executable,
                   "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", connection,
                   "--HistoryManager.enabled=False"]  # fmt: skip
        self.proc = psutil.Popen(
            command,
            env=minimal_env(self.folder, job["device"]),
            cwd=str(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # nothing the kernel prints can reach the grader
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        self.client = BlockingKernelClient(connection_file=connection)
        self.client.load_connection_file()
        self.client.start_channels(iopub=False, stdin=False, hb=False)
        self.root, self.entry = root, "_grader_" + secrets.token_hex(8)
        self.resident_limit = 0  # set once the grader's side is loaded: no submission code runs before

    def alive(self) -> bool:
        return self.proc.poll() is None

    def memory(self) -> int:
        total = 0
        try:
            for p in [self.proc, *self.proc.children(recursive=True)]:
                total += p.memory_info().rss
        except psutil.Error:
            pass
        return total

    def request(self, timeout: float, **content: Any) -> dict:
        """Send an execute request and wait for its reply; raise TimeoutError or KernelLost."""
        msg_id = self.client.execute(allow_stdin=False, stop_on_error=False, **content)
        end, next_memory_check = time.monotonic() + timeout, 0.0
        while True:
            if not self.alive():
                raise KernelLost("the kernel died", "dead")
            now = time.monotonic()
            if now >= next_memory_check and self.resident_limit:
                next_memory_check = now + 1.0
                if self.memory() > self.resident_limit:
                    self.kill()
                    gb = self.limits["memory_bytes"] / 2**30
                    raise KernelLost(f"the notebook used more than {gb:g} GB of memory and was stopped", "dead")
            if now >= end:
                raise TimeoutError
            try:
                reply = self.client.get_shell_msg(timeout=min(POLL, max(end - now, 0.01)))
            except Exception:  # queue.Empty
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return reply["content"]

    def run(self, timeout: float, limit_label: str, **content: Any) -> dict:
        """Like `request`, but a request past its time is interrupted, then killed if it won't stop."""
        try:
            return self.request(timeout, **content)
        except TimeoutError:
            pass
        try:
            os.kill(self.proc.pid, signal.SIGINT)
            self.request_reply_after_interrupt()
        except (TimeoutError, ProcessLookupError):
            raise KernelLost(
                f"still running after {limit_label}, and did not stop when interrupted", "timeout"
            ) from None
        return {"status": "timeout", "detail": f"stopped after {limit_label}"}

    def request_reply_after_interrupt(self) -> None:
        end = time.monotonic() + INTERRUPT_GRACE
        while time.monotonic() < end:
            if not self.alive():
                raise KernelLost("the kernel died when interrupted", "dead")
            try:
                reply = self.client.get_shell_msg(timeout=POLL)
            except Exception:  # queue.Empty
                continue
            if reply.get("msg_type", reply.get("header", {}).get("msg_type")) == "execute_reply":
                return
        raise TimeoutError

    def start(self, section: str, checks: list[str], timeout: float) -> None:
        end = time.monotonic() + timeout
        while True:  # wait until the kernel answers
            if not self.alive():
                raise RuntimeError("the grading kernel exited while starting")
            try:
                self.client.kernel_info()
                self.client.get_shell_msg(timeout=1.0)
                break
            except Exception:
                if time.monotonic() > end:
                    raise RuntimeError(f"the grading kernel did not start within {timeout:.0f} s") from None
        code = (
            "def _install_grader():\n"
            "    import types\n"
            "    module = types.ModuleType('grading_kernel')\n"
            f"    exec(compile({KERNEL_SOURCE!r}, 'grading_kernel.py', 'exec'), module.__dict__)\n"
            f"    module.install({str(self.root)!r}, {section!r}, {checks!r}, {self.entry!r})\n"
            "_install_grader()\n"
            "del _install_grader\n"
        )
        reply = self.request(max(end - time.monotonic(), 1.0), code=code, silent=True, store_history=False)
        if reply.get("status") != "ok":
            raise RuntimeError(f"the grader could not load its checkers: {reply.get('ename')}: {reply.get('evalue')}")
        extra = self.limits["memory_bytes"]
        if extra:
            loaded = self.proc.memory_info()
            self.resident_limit = loaded.rss + extra
            if CAN_PRLIMIT:  # lowering a same-user process's hard limit needs no privilege
                self.proc.rlimit(psutil.RLIMIT_AS, (loaded.vms + extra, loaded.vms + extra))

    def kill(self) -> None:
        """End the kernel's process group and every process it left behind (this runner is their subreaper)."""
        with contextlib.suppress(Exception):  # already stopped
            self.client.stop_channels()
        sweep(self.proc.pid)


def sweep(pgid: int | None = None) -> None:
    """Kill a process group, then every descendant of this process, until none is left."""
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for _ in range(20):
        children = psutil.Process().children(recursive=True)
        if not children:
            return
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(children, timeout=2)


def _error(reply: dict) -> dict:
    out = {"status": reply.get("status", "error")}
    if out["status"] == "error":
        out["ename"], out["evalue"] = str(reply.get("ename", ""))[:200], str(reply.get("evalue", ""))[:2000]
    if "detail" in reply:
        out["detail"] = reply["detail"]
    return out


def run_plan(job: dict) -> dict:
    """Run the plan's steps in kernels started as needed; the outcome of each step."""
    limits, steps = job["limits"], job["steps"]
    started = time.monotonic()
    deadline = started + limits["notebook_seconds"]
    outcomes: list[dict | None] = [None] * len(steps)
    fatal: set[int] = set()
    done_cells: list[int] = []
    result = {"outcomes": outcomes, "kernel_starts": 0, "error": "", "landlock": grading_sandbox.landlock_abi()}
    if not job["confine"]:
        result["landlock"] = 0
    base = Path(tempfile.mkdtemp(prefix="grade-"))
    kernel: Kernel | None = None
    i = 0
    try:
        while i < len(steps):
            if kernel is None:
                if result["kernel_starts"] >= MAX_KERNEL_STARTS:
                    _not_run(outcomes, i, f"not run: the kernel was restarted {MAX_KERNEL_STARTS - 1} times")
                    break
                if deadline - time.monotonic() <= 1:
                    break
                result["kernel_starts"] += 1
                kernel = Kernel(job, base, result["kernel_starts"])
                try:
                    kernel.start(
                        job["section"], job["checks"], min(limits["start_seconds"], deadline - time.monotonic())
                    )
                except RuntimeError:
                    if time.monotonic() < deadline - 1:
                        raise
                    break  # the notebook's time ran out while a kernel was starting
                lost = _replay(kernel, steps, done_cells, fatal, deadline, limits)
                if lost is not None:
                    kernel.kill()
                    kernel = None
                    if lost == "deadline":
                        break
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            step = steps[i]
            cell_limit = limits["cell_seconds"]
            timeout, label = (
                (cell_limit, f"{cell_limit:g} s")
                if cell_limit <= remaining
                else (remaining, "the notebook's time limit")
            )
            begin = time.monotonic()
            try:
                if step["kind"] == "cell":
                    reply = kernel.run(timeout, label, code=step["source"], store_history=True)
                    outcomes[i] = _error(reply)
                    if reply.get("status") != "timeout":
                        done_cells.append(i)
                else:
                    call = f"{kernel.entry}({step['func']!r}, {step['expression']!r})"
                    reply = kernel.run(timeout, label, code="", store_history=False, user_expressions={"verdict": call})
                    outcomes[i] = _verdict(reply)
            except KernelLost as lost:
                outcomes[i] = {"status": lost.status, "detail": lost.reason}
                fatal.add(i)
                kernel.kill()
                kernel = None
            outcomes[i]["seconds"] = round(time.monotonic() - begin, 2)
            i += 1
            if outcomes[i - 1]["status"] == "timeout" and label == "the notebook's time limit":
                break
        _not_run(outcomes, 0, "not run: the notebook's time limit was reached")
    except Exception as err:
        result["error"] = f"{type(err).__name__}: {err}"
        _not_run(outcomes, 0, "not run: the grader failed on this notebook")
    finally:
        if kernel is not None:
            kernel.kill()
        sweep()
        shutil.rmtree(base, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _replay(kernel: Kernel, steps: list[dict], done: list[int], fatal: set[int], deadline: float, limits: dict):
    """Re-run in a new kernel the cells that had run: None, "deadline", or "lost" (a replayed cell hung or crashed)."""
    for index in [d for d in done if d not in fatal]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "deadline"
        try:
            kernel.run(
                min(limits["cell_seconds"], remaining), "its limit", code=steps[index]["source"], store_history=True
            )
        except KernelLost:
            fatal.add(index)
            return "lost"
    return None


def _verdict(reply: dict) -> dict:
    if reply.get("status") == "timeout":
        return {"status": "timeout", "detail": reply["detail"]}
    value = reply.get("user_expressions", {}).get("verdict", {})
    if reply.get("status") != "ok" or value.get("status") != "ok":
        return {
            "status": "error",
            "ename": "GraderError",
            "evalue": str(value.get("evalue") or reply.get("evalue"))[:500],
        }
    try:
        import ast

        verdict = json.loads(ast.literal_eval(value["data"]["text/plain"]))
    except (KeyError, ValueError, SyntaxError) as err:
        return {"status": "error", "ename": "GraderError", "evalue": f"unreadable verdict ({err})"}
    if verdict.get("message") == "interrupted":
        return {"status": "timeout", "detail": "interrupted"}
    return {"status": "ok", "verdict": verdict}


def _not_run(outcomes: list, start: int, reason: str) -> None:
    for j in range(start, len(outcomes)):
        if outcomes[j] is None:
            outcomes[j] = {"status": "not run", "detail": reason}


def main(argv: list[str]) -> int:
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    result = run_plan(job)
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
