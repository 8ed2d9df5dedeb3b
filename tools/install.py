"""Install what the curriculum needs into the current Python, without multi-GB CUDA wheels on a CPU machine.

    python -m tools.install          # notebooks + tests
    python -m tools.install --lab    # also JupyterLab

torch is handled first and separately, because a plain `pip install torch` on Linux pulls the CUDA
build (several GB) even where there is no GPU:
* torch already importable (Colab, an existing environment): left exactly as it is;
* an NVIDIA GPU present (`nvidia-smi` works): the default build from PyPI;
* otherwise the CPU build: a local wheel if pip's configured find-links has one, else PyTorch's CPU index.
Then `requirements.txt`, whose torch range the installed torch already satisfies, so nothing is replaced.
Standard library only: this runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys

from utils.paths import ROOT

TORCH_CPU_VERSION = "2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def repository_url() -> str:
    """The repository the notebooks' setup cell clones in Colab: `[project.urls] Repository` in pyproject.toml,
    the one place it is configured (a fork changes it there and runs `make notebooks`; a learner can also set
    CURRICULUM_REPO_URL before running the setup cell)."""
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit('pyproject.toml has no [project.urls] Repository = "..." line')
    return match.group(1)


REPO_URL = repository_url()

# import name -> pip name: what the notebooks' setup cell installs when missing (torch never).
NOTEBOOK_PACKAGES = {
    "einops": "einops",
    "jaxtyping": "jaxtyping",
    "plotly": "plotly",
    "pandas": "pandas",
    "tqdm": "tqdm",
    "nbformat": "nbformat",
}
# The language-model stack, only for the sections that import it (a large install in Colab).
LM_PACKAGES = {
    "transformer_lens": "transformer_lens>=2.16,<4",  # 4.x has no HookedTransformer
    "safetensors": "safetensors",
    "tokenizers": "tokenizers",
}
# Extra packages only some sections' notebooks need (sae-lens pulls TransformerLens and much more).
SECTION_PACKAGES = {
    "part5b_absorption": {"sae_lens": "sae-lens>=6,<7"},
    "part6_lm_saes": LM_PACKAGES,
    "part6b_circuits": {**LM_PACKAGES, "sae_lens": "sae-lens>=6,<7"},
}


def pip(*args: str) -> int:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def has_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.call(["nvidia-smi", "-L"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def local_torch_wheel() -> str | None:
    """The version of a torch wheel in pip's configured find-links (no index consulted), if there is one."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--no-index",
        "--no-deps",
        "--quiet",
        "--report",
        "-",
        f"torch=={TORCH_CPU_VERSION}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    try:
        report = json.loads(result.stdout)
        return report["install"][0]["metadata"]["version"]
    except (json.JSONDecodeError, KeyError, IndexError):
        return None


def install_torch() -> None:
    if importlib.util.find_spec("torch") is not None:
        print("torch is already installed: leaving it as it is")
        return
    if has_nvidia_gpu():
        code = pip("torch>=2.2")
    elif (local := local_torch_wheel()) is not None:
        # Pin the exact local build (e.g. 2.13.0+cpu) so pip can't prefer a CUDA build of the same version;
        # torch's own dependencies still come from the package index.
        code = pip(f"torch=={local}")
    else:
        code = pip(f"torch=={TORCH_CPU_VERSION}", "--index-url", TORCH_CPU_INDEX)
    if code != 0:
        raise SystemExit("could not install torch; install it yourself (https://pytorch.org) and re-run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Install the curriculum's dependencies.")
    parser.add_argument("--lab", action="store_true", help="also install JupyterLab")
    args = parser.parse_args(argv)
    install_torch()
    extra = ["jupyterlab>=4"] if args.lab else []
    if pip("-r", str(ROOT / "requirements.txt"), *extra) != 0:
        raise SystemExit("pip could not install requirements.txt")


if __name__ == "__main__":
    main()
