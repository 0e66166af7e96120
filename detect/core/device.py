"""Torch device names checked before any work starts, so a missing GPU is one line, not torch's traceback."""

from __future__ import annotations

import re
from typing import Any

from imagery.errors import InputError

_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?|\d+)$")


def check_device(device: str) -> str:
    """``device`` if this machine has it (``cpu``, ``cuda``, ``cuda:N``, ``N`` for ``cuda:N``, ``mps``);
    else InputError saying what is missing and what to use instead."""
    d = str(device).strip().lower()
    if not _DEVICE_RE.match(d):
        raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps")
    if d == "cpu":
        return d
    import torch  # only for GPU names: a CPU run need not pay torch's start-up here

    if d == "mps":
        if not torch.backends.mps.is_available():
            raise InputError("device 'mps' asked for, but this machine has no Apple GPU; use --device cpu")
        return d
    if not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but this machine has no CUDA GPU; use --device cpu")
    index = d.partition(":")[2] if d.startswith("cuda") else d
    if index and int(index) >= torch.cuda.device_count():
        raise InputError(
            f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s)"
        )
    return d


def device_option(ctx: Any, param: Any, value: str) -> str:
    """click callback for ``--device`` options."""
    return check_device(value)
