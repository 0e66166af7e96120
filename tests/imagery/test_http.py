"""The retrying session: retries only 429/5xx/timeouts/resets, honours Retry-After, one-line errors."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imagery.errors import CatalogError, HarborwatchError, RateLimitError
from imagery.http import RetryingSession, RetryPolicy, parse_retry_after, redact_url

#: route(method, path, body) -> (status, headers, body) or None to drop the connection unanswered.
Route = Callable[[str, str, bytes], "tuple[int, dict[str, str], bytes] | None"]


class ScriptedServer:
    """An HTTP server on 127.0.0.1 (random port, own thread) answering through a route function."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append((self.command, self.path, body))
                server.headers.append(dict(self.headers.items()))
                answer = server.route(self.command, self.path, body)
                if answer is None:  # simulate a reset: close without a response
                    self.close_connection = True
                    self.connection.close()
                    return
                status, headers, payload = answer
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client timed out
                    self.wfile.write(payload)

            do_GET = do_POST = _handle

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def json_body(obj) -> bytes:
    return json.dumps(obj).encode()


def sequence(*answers):
    """A route that gives the answers in order, repeating the last one."""
    state = {"i": 0}

    def route(method, path, body):
        i = min(state["i"], len(answers) - 1)
        state["i"] += 1
        return answers[i]

    return route


TINY = RetryPolicy(retries=3, backoff_s=0.001, backoff_max_s=0.002, timeout_s=2.0)


def session(policy: RetryPolicy = TINY, sleeps: list[float] | None = None) -> RetryingSession:
    record = sleeps if sleeps is not None else []
    return RetryingSession(policy, sleep=lambda s: (record.append(s), time.sleep(min(s, 0.01))))


def test_503_twice_then_200_succeeds_after_two_retries():
    route = sequence((503, {}, b"busy"), (503, {}, b"busy"), (200, {}, json_body({"ok": True})))
    sleeps: list[float] = []
    with ScriptedServer(route) as srv:
        resp = session(sleeps=sleeps).get(srv.url + "/search")
    assert resp.json() == {"ok": True}
    assert len(srv.requests) == 3
    assert len(sleeps) == 2 and all(s <= 0.002 for s in sleeps)


def test_404_is_one_line_catalog_error_without_secrets_and_not_retried():
    route = sequence((404, {}, json_body({"code": "NotFound", "description": "Item S2X not found"})))
    with ScriptedServer(route) as srv, pytest.raises(CatalogError) as err:
        session().get(srv.url + "/collections/x/items/S2X?sig=SECRETSIG&se=2024&limit=1")
    msg = str(err.value)
    assert "\n" not in msg
    assert "404" in msg and "Item S2X not found" in msg and "/collections/x/items/S2X" in msg
    assert "SECRETSIG" not in msg and "sig=***" in msg and "limit=1" in msg
    assert not isinstance(err.value, RateLimitError)
    assert len(srv.requests) == 1


def test_400_is_not_retried():
    with ScriptedServer(sequence((400, {}, b"bad bbox"))) as srv, \
            pytest.raises(CatalogError, match="bad bbox"):
        session().post(srv.url + "/search", json={"bbox": [1]})
    assert len(srv.requests) == 1


def test_persistent_429_raises_rate_limit_error_quickly():
    with ScriptedServer(sequence((429, {}, json_body({"message": "slow down"})))) as srv:
        t0 = time.monotonic()
        with pytest.raises(RateLimitError, match=r"429.*slow down"):
            session().get(srv.url + "/search")
        elapsed = time.monotonic() - t0
    assert len(srv.requests) == TINY.retries + 1
    assert elapsed < 2.0
    assert isinstance(RateLimitError("x"), CatalogError) and isinstance(RateLimitError("x"), HarborwatchError)


def test_retry_after_seconds_is_honoured_instead_of_backoff():
    route = sequence((429, {"Retry-After": "3"}, b"{}"), (200, {}, b"{}"))
    sleeps: list[float] = []
    with ScriptedServer(route) as srv:
        session(sleeps=sleeps).get(srv.url + "/")
    assert sleeps == [3.0]


def test_retry_after_is_capped():
    policy = RetryPolicy(retries=1, backoff_s=0.001, retry_after_max_s=5.0)
    route = sequence((503, {"Retry-After": "3600"}, b"{}"), (200, {}, b"{}"))
    sleeps: list[float] = []
    with ScriptedServer(route) as srv:
        session(policy, sleeps).get(srv.url + "/")
    assert sleeps == [5.0]


def test_parse_retry_after_http_date():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(header, now=now.timestamp()) == pytest.approx(7.0)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_dropped_connection_is_retried():
    route = sequence(None, (200, {}, b'{"ok": 1}'))
    with ScriptedServer(route) as srv:
        assert session().get(srv.url + "/").json() == {"ok": 1}
    assert len(srv.requests) == 2


def test_persistent_connection_failure_is_one_line_catalog_error():
    with ScriptedServer(sequence(None)) as srv, pytest.raises(CatalogError) as err:
        session(RetryPolicy(retries=1, backoff_s=0.001)).get(srv.url + "/x?token=abc123")
    assert "\n" not in str(err.value) and "2 attempt(s)" in str(err.value)
    assert "abc123" not in str(err.value)


def test_timeout_is_retried():
    state = {"n": 0}

    def route(method, path, body):
        state["n"] += 1
        if state["n"] == 1:
            time.sleep(0.5)
        return 200, {}, b'{"n": %d}' % state["n"]

    policy = RetryPolicy(retries=2, backoff_s=0.001, timeout_s=0.2)
    with ScriptedServer(route) as srv:
        assert session(policy).get(srv.url + "/").json()["n"] >= 2


def test_backoff_is_exponential_with_jitter_and_capped():
    p = RetryPolicy(backoff_s=1.0, backoff_max_s=4.0)
    for attempt, full in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)]:
        d = p.delay(attempt)
        assert full * 0.5 <= d <= full
    assert RetryPolicy(backoff_s=1.0, jitter=False).delay(3) == 8.0


def test_redact_url_masks_secrets_and_userinfo():
    url = "https://user:pw@host/a/b.tif?st=1&se=2&sig=abc%2B&keep=yes"
    red = redact_url(url)
    assert "abc" not in red and "pw" not in red and "keep=yes" in red and red.startswith("https://host/a/b.tif?")
