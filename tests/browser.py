"""A page in a real headless Chromium, driven over the DevTools protocol on a pipe (no driver, no websocket
package): open a file, wait until it has loaded, collect console errors and failed loads, check every image,
and take a screenshot. ``chromium()`` finds the browser (``$HARBORWATCH_CHROMIUM`` or Debian's ``chromium``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where Chromium is looked for, first found wins.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Every <img> on the page (and the CSS background images it has already fetched) as the test sees them.
_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(function (i) {
  return {src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight};
}))"""


def chromium() -> str | None:
    """The Chromium executable, or None where there is none."""
    env = os.environ.get("HARBORWATCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


@dataclass
class PageReport:
    """What loading one page gave: console errors, failed requests, its images, a PNG screenshot."""

    url: str
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    screenshot: bytes = b""
    title: str = ""
    values: list[Any] = field(default_factory=list)  # of the ``then`` expressions, in order


class Browser:
    """One headless Chromium; ``open(path)`` loads a page in a fresh tab and reports on it."""

    def __init__(
        self, executable: str, *, width: int = 1280, height: int = 900, timeout_s: float = 60
    ) -> None:
        self.timeout_s = timeout_s
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="harborwatch-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = [
            executable,
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
            f"--user-data-dir={self._profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]

        def pipes_at_3_and_4() -> None:  # the DevTools pipe is fd 3 (commands in) and fd 4 (replies out)
            import fcntl

            # first out of the way (a pipe end may itself be fd 3 or 4), then into place, inheritable
            r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
            w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        # close_fds=False: fds 3 and 4 must survive into Chromium (Python's own fds are not inheritable)
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pipes_at_3_and_4,
            close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ protocol

    def _send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed its DevTools pipe")
                self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply (events that arrive meanwhile are kept)."""
        n = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = self._read(deadline)
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._events.append(msg)

    def _wait_event(self, method: str, session: str, deadline: float) -> None:
        while True:
            for i, ev in enumerate(self._events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    del self._events[i]
                    return
            self._events.append(self._read(deadline))

    def _drain(self, seconds: float) -> None:
        """Keep reading events for ``seconds`` (late console errors, image loads)."""
        end = time.monotonic() + seconds
        try:
            while True:
                self._events.append(self._read(end))
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ pages

    def open(
        self, path: Path, *, settle_s: float = 1.0, full_page: bool = False, then: Sequence[str] = ()
    ) -> PageReport:
        """Load ``path`` (file://) in a new tab; its console errors, failed loads, images and a screenshot,
        then evaluate each JavaScript expression of ``then`` (clicks, reads) in turn."""
        url = Path(path).resolve().as_uri()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self._events.clear()
        self.call("Page.navigate", {"url": url}, session=session)
        self._wait_event("Page.loadEventFired", session, time.monotonic() + self.timeout_s)
        self._drain(settle_s)
        report = PageReport(url=url)
        # wait until every image has finished (loaded or failed), then look at them
        deadline = time.monotonic() + self.timeout_s
        while True:
            images = json.loads(self._eval(_IMAGES_JS, session))
            if all(i["complete"] for i in images) or time.monotonic() > deadline:
                break
            self._drain(0.2)
        report.images = images
        report.title = self._eval("document.title", session)
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            params |= {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            }
        shot = self.call("Page.captureScreenshot", params, session=session)
        report.screenshot = base64.b64decode(shot["data"])
        for expression in then:
            report.values.append(self._eval(expression, session))
            self._drain(0.2)
        for ev in self._events:
            if ev.get("sessionId") != session:
                continue
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                report.errors.append(
                    "console."
                    + p["type"]
                    + ": "
                    + " ".join(str(a.get("value", a)) for a in p.get("args", []))
                )
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                report.errors.append(
                    f"exception: {d.get('exception', {}).get('description') or d.get('text')}"
                )
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                report.errors.append(f"log: {e.get('text')} {e.get('url', '')}".strip())
            elif m == "Network.loadingFailed" and not p.get("canceled"):
                report.failed.append(f"{p.get('errorText')}: request {p.get('requestId')}")
        self._events.clear()
        self.call("Target.closeTarget", {"targetId": target})
        return report

    def _eval(self, expression: str, session: str) -> Any:
        res = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
