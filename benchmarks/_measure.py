"""Shared by the bench_*.py scripts: timing with peak memory, the machine's description, markdown tables."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class Measured:
    seconds: float  # median over the repeats
    peak_rss_mb: float  # highest resident memory of this process and its children while sampled
    rss_growth_mb: float  # that peak above the resident memory before the timed calls
    value: Any  # what the last call returned


def _tree_rss() -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def measure(
    fn: Callable[[], Any], repeat: int = 3, warmup: int = 1, *, sample_during: bool = False
) -> Measured:
    """Median wall time of ``fn`` over ``repeat`` calls (after ``warmup``), and the peak resident memory.

    By default the peak comes from one more call made after the timed ones, with memory sampled every
    10 ms: on a 2-core machine the sampler thread (walking /proc and taking the GIL) slowed torch
    inference by up to 40 % when it ran during the timed calls. ``sample_during=True`` samples during
    the timed calls instead (every 50 ms), for calls that cannot be repeated as they were (a batch
    whose second run would only find its work done).
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    value = None
    before = _tree_rss()
    peak = [before]
    stop = threading.Event()

    def sample(every: float) -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss())
            stop.wait(every)

    def timed() -> None:
        nonlocal value
        for _ in range(repeat):
            t0 = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - t0)

    sampler = threading.Thread(target=sample, args=(0.05 if sample_during else 0.01,), daemon=True)
    if not sample_during:
        timed()
    sampler.start()
    try:
        if sample_during:
            timed()
        else:
            fn()
    finally:
        stop.set()
        sampler.join()
    mb = 1 / 2**20
    return Measured(statistics.median(times), peak[0] * mb, (peak[0] - before) * mb, value)


def machine() -> str:
    """CPU model, cores this process may use, memory, and the GPU if torch sees one."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = psutil.virtual_memory().total / 2**30
    text = f"{model}, {cores} cores usable, {mem:.0f} GiB RAM, Python {platform.python_version()}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f"; GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (numbers formatted by the caller)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
