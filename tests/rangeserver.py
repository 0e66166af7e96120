"""A small HTTP server on 127.0.0.1 that serves a folder and honours ``Range: bytes=`` requests.

Python's ``http.server`` ignores Range, so GDAL's /vsicurl/ would download whole files. This one answers
``206 Partial Content`` with ``Content-Range`` (single ranges and multipart/byteranges), ``HEAD``,
``Accept-Ranges: bytes``, and logs every request so tests can count requests and bytes sent.

    with RangeServer(folder) as server:
        url = server.url("scene/B04.tif")
        ...
        assert server.bytes_sent < size / 4
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE_RE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    range: str | None
    status: int
    bytes_sent: int


class RangeServer:
    """Serve ``root`` on an ephemeral port of 127.0.0.1 in a background thread."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.requests: list[RequestRecord] = []
        self._failures: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # helpers for tests ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, relpath: str | Path) -> str:
        return f"{self.base_url}/{Path(relpath).as_posix().lstrip('/')}"

    @property
    def bytes_sent(self) -> int:
        return sum(r.bytes_sent for r in self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def fail(self, relpath: str, *statuses: int) -> None:
        """Answer the next requests for ``relpath`` with these statuses (e.g. 503, 429), then normally."""
        with self._lock:
            self._failures.setdefault("/" + relpath.lstrip("/"), []).extend(statuses)

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def _next_failure(self, path: str) -> int | None:
        with self._lock:
            queue = self._failures.get(path)
            return queue.pop(0) if queue else None


def _parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """[(start, end_inclusive), ...] for a ``bytes=`` header; None if unsatisfiable or malformed."""
    if not header.startswith("bytes="):
        return None
    out = []
    for part in header[6:].split(","):
        m = _RANGE_RE.match(part)
        if not m or (m.group(1) == "" and m.group(2) == ""):
            return None
        if m.group(1) == "":  # suffix range: the last N bytes
            n = int(m.group(2))
            start, end = max(0, size - n), size - 1
        else:
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if start >= size or start > end:
            return None
        out.append((start, end))
    return out


def _make_handler(server: RangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _reply(
            self, status: int, headers: dict[str, str], body: bytes, head: bool, rng: str | None
        ) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            server._record(RequestRecord(self.command, self.path, rng, status, 0 if head else len(body)))

        def _serve(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            rng = self.headers.get("Range")
            failure = server._next_failure(path)
            if failure is not None:
                self._reply(failure, {"Retry-After": "0"}, b"injected failure", head, rng)
                return
            file = (server.root / path.lstrip("/")).resolve()
            if server.root not in file.parents or not file.is_file():
                self._reply(404, {"Content-Type": "text/plain"}, b"not found", head, rng)
                return
            data = file.read_bytes()
            size = len(data)
            base = {"Accept-Ranges": "bytes", "Content-Type": "image/tiff"}
            if rng is None:
                self._reply(200, base, data, head, rng)
                return
            ranges = _parse_ranges(rng, size)
            if ranges is None:
                self._reply(416, {"Content-Range": f"bytes */{size}"}, b"", head, rng)
            elif len(ranges) == 1:
                start, end = ranges[0]
                headers = {**base, "Content-Range": f"bytes {start}-{end}/{size}"}
                self._reply(206, headers, data[start : end + 1], head, rng)
            else:
                boundary = "hwrangeboundary"
                parts = []
                for start, end in ranges:
                    head_part = f"--{boundary}\r\nContent-Range: bytes {start}-{end}/{size}\r\n\r\n"
                    parts.append(head_part.encode() + data[start : end + 1] + b"\r\n")
                body = b"".join(parts) + f"--{boundary}--\r\n".encode()
                content_type = f"multipart/byteranges; boundary={boundary}"
                headers = {"Accept-Ranges": "bytes", "Content-Type": content_type}
                self._reply(206, headers, body, head, rng)

    return Handler
