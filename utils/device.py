"""The one place that decides which device the curriculum runs on."""

import os

import torch

DEVICE_ENV = "CURRICULUM_DEVICE"


def get_device() -> torch.device:
    """CUDA if available, then Apple's MPS, then CPU; `CURRICULUM_DEVICE=cpu` (or any torch device) overrides."""
    override = os.environ.get(DEVICE_ENV)
    if override:
        return torch.device(override)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def notebook_device() -> torch.device:
    """`get_device()`, and on CPU a single torch thread.

    The toy models' tensors are tiny: a second thread only adds synchronisation, and several threads
    slow to a crawl when other programs compete for the cores. Sections with large matmuls use `get_device()`.
    """
    device = get_device()
    if device.type == "cpu":
        torch.set_num_threads(1)
    return device
