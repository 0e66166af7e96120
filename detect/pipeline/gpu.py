"""Keeping an accelerator busy: chips from several scenes merged into one model call, and reading
overlapped with inference.

``BatchingPredictor`` wraps a model (``YoloModel`` / ``OnnxYoloModel``) behind the same ``spec`` and
``predict``: threads that each run ``ShipDetector.detect`` on their own scene hand it their chip
batches, and one model call runs on the chips of all of them (fp16 where the device has it).
``prefetch`` / ``detect_stream`` read the next scenes in a background thread while the current one
is detected. Both work on CPU too (that is how they are tested); the gain is on a GPU.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")


def supports_half(device: str) -> bool:
    """fp16 inference pays off (and is exact enough) on CUDA devices only."""
    return device.startswith("cuda")


@dataclass
class _Request:
    chips: np.ndarray
    conf: float
    iou: float
    future: Future = field(default_factory=Future)


class BatchingPredictor:
    """Merge concurrent ``predict`` calls into model calls of up to ``max_batch`` chips.

    A call waits at most ``max_wait_s`` for company; calls with other ``conf``/``iou`` go in separate
    model calls. ``stats`` counts requests, model calls and chips.
    """

    def __init__(
        self, model: Any, *, max_batch: int = 256, max_wait_s: float = 0.005, half: bool | None = None
    ) -> None:
        self.model = model
        self.spec = model.spec
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        device = str(getattr(model, "device", "cpu"))
        self.half = supports_half(device) if half is None else (half and supports_half(device))
        self.stats = {"requests": 0, "model_calls": 0, "chips": 0}
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="batching-predictor", daemon=True)
        self._thread.start()

    def predict(
        self, chips: np.ndarray, conf: float = 0.25, iou: float = 0.5, half: bool = False
    ) -> list[np.ndarray]:
        """Same contract as ``YoloModel.predict``; blocks until this call's chips are done."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if len(chips) == 0:
            return []
        if not self._thread.is_alive():
            raise RuntimeError("BatchingPredictor is closed")
        req = _Request(chips, conf, iou)
        self._queue.put(req)
        return req.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        pending: list[_Request] = []
        while True:
            req = pending.pop(0) if pending else self._queue.get()
            if req is None:
                return
            group, n = [req], len(req.chips)
            deadline = time.monotonic() + self.max_wait_s
            while n < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this group, then stop
                    break
                if (nxt.conf, nxt.iou) == (req.conf, req.iou) and n + len(nxt.chips) <= self.max_batch:
                    group.append(nxt)
                    n += len(nxt.chips)
                else:
                    pending.append(nxt)
                    break
            self._run(group)

    def _run(self, group: list[_Request]) -> None:
        chips = np.concatenate([r.chips for r in group]) if len(group) > 1 else group[0].chips
        try:
            out = self.model.predict(chips, conf=group[0].conf, iou=group[0].iou, half=self.half)
        except BaseException as e:  # hand the error to every waiting caller, keep serving
            for r in group:
                r.future.set_exception(e)
            return
        self.stats["requests"] += len(group)
        self.stats["model_calls"] += 1
        self.stats["chips"] += len(chips)
        i = 0
        for r in group:
            r.future.set_result(out[i : i + len(r.chips)])
            i += len(r.chips)


_DONE = object()


def prefetch(
    items: Iterable[T], load: Callable[[T], R], depth: int = 2
) -> Iterator[tuple[T, R | BaseException]]:
    """``(item, load(item))`` in order, with up to ``depth`` items loaded ahead in a background thread.

    A load that raises yields its exception in place of the result, so one bad scene does not end
    the stream. Stopping the iteration early stops the loader after its current item.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                try:
                    result: Any = load(item)
                except Exception as e:
                    result = e
                while not stop.is_set():
                    try:
                        out.put((item, result), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        finally:
            if not stop.is_set():
                out.put(_DONE)

    thread = threading.Thread(target=worker, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            got = out.get()
            if got is _DONE:
                return
            yield got
    finally:
        stop.set()


def detect_stream(
    items: Iterable[T],
    read: Callable[[T], Any],
    detect: Callable[[Any], R],
    *,
    depth: int = 2,
) -> Iterator[tuple[T, R | BaseException]]:
    """``(item, detect(read(item)))`` in order, reading ahead while the current window is detected."""
    for item, window in prefetch(items, read, depth):
        if isinstance(window, BaseException):
            yield item, window
            continue
        try:
            yield item, detect(window)
        except Exception as e:
            yield item, e
