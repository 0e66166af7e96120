"""One retrying HTTP session for every catalogue and token request.

Retries (exponential backoff with jitter, ``Retry-After`` honoured) happen only on 429, 5xx,
timeouts and dropped connections; any other 4xx becomes a one-line ``CatalogError`` naming the
status, the URL without secrets and the server's own message. A 429 that persists after all
retries becomes ``RateLimitError``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from imagery.errors import CatalogError, RateLimitError

log = logging.getLogger(__name__)

USER_AGENT = "harborwatch (+https://github.com/harborwatch/harborwatch)"

#: Query-string keys whose values never appear in messages or logs (Azure SAS, OAuth, API keys).
SECRET_QUERY_KEYS = frozenset(
    {"sig", "se", "st", "skoid", "sktid", "skt", "ske", "sks", "skv", "token", "access_token", "key",
     "api_key", "apikey", "client_secret", "password", "code", "x-amz-signature", "x-amz-credential",
     "x-amz-security-token"}
)
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
_TRANSIENT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a transient failure.

    The n-th retry waits ``backoff_s * 2**n`` seconds (at most ``backoff_max_s``), scaled by a random
    factor in [0.5, 1] so that parallel clients do not retry in lock step. A server's ``Retry-After``
    replaces the computed wait (capped at ``retry_after_max_s``).
    """

    retries: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0
    timeout_s: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff times must be >= 0")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max_s)
        wait = min(self.backoff_s * (2**attempt), self.backoff_max_s)
        return wait * (0.5 + random.random() / 2) if self.jitter else wait


def redact_url(url: str) -> str:
    """The URL with user info and secret query values masked, safe for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if not parts.query:
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    pairs = [(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(pairs, safe="*,:/"), ""))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now_s = time.time() if now is None else now
    return max(when.timestamp() - now_s, 0.0)


def server_message(response: requests.Response, limit: int = 200) -> str:
    """The server's own explanation of an error, on one line."""
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("description", "detail", "message", "error_description", "error", "code", "title"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("description") or json.dumps(value)
            if value:
                text = str(value)
                break
    if not text:
        text = (response.text or response.reason or "").strip()
    text = " ".join(text.split())
    return text[: limit - 1] + "…" if len(text) > limit else text


def error_for_response(response: requests.Response, method: str | None = None) -> CatalogError:
    """The harborwatch error for a non-success response: one line, no secrets."""
    method = method or (response.request.method if response.request is not None else "GET")
    url = redact_url(response.url or (response.request.url if response.request is not None else ""))
    msg = server_message(response)
    line = f"{method} {url} answered HTTP {response.status_code}" + (f": {msg}" if msg else "")
    if response.status_code == 429:
        return RateLimitError(f"{line} (still rate-limited after retries; wait and try again)")
    return CatalogError(line)


class RetryingSession(requests.Session):
    """A ``requests.Session`` that retries transient failures and raises harborwatch errors.

    ``raise_errors=False`` returns the final non-success response instead of raising, for callers that
    want to inspect it (e.g. a 404 that means "absent").
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        raise_errors: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = USER_AGENT,
    ) -> None:
        super().__init__()
        self.policy = policy or RetryPolicy()
        self.raise_errors = raise_errors
        self._sleep = sleep
        self.headers["User-Agent"] = user_agent

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.policy.timeout_s)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.policy.timeout_s
        url = redact_url(request.url or "")
        attempts = self.policy.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = super().send(request, **kwargs)
            except _TRANSIENT_ERRORS as e:
                if last:
                    kind = "timed out" if isinstance(e, requests.exceptions.Timeout) else "failed"
                    raise CatalogError(
                        f"{request.method} {url} {kind} after {attempts} attempt(s): {_first_line(e)}"
                    ) from None
                wait = self.policy.delay(attempt)
                log.info("%s %s: %s; retry %d/%d in %.2f s", request.method, url, type(e).__name__,
                         attempt + 1, self.policy.retries, wait)
                self._sleep(wait)
                continue
            if response.status_code in _RETRY_STATUSES and not last:
                wait = self.policy.delay(attempt, parse_retry_after(response.headers.get("Retry-After")))
                log.info("%s %s: HTTP %d; retry %d/%d in %.2f s", request.method, url, response.status_code,
                         attempt + 1, self.policy.retries, wait)
                response.close()
                self._sleep(wait)
                continue
            if self.raise_errors and response.status_code >= 400:
                raise error_for_response(response, request.method)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return redact_text(text[0]) if text else type(e).__name__


def redact_text(text: str) -> str:
    """Mask secret query values inside free text (exception messages quote URLs)."""
    out = []
    for word in text.split(" "):
        out.append(redact_url(word) if "://" in word and "?" in word else word)
    return " ".join(out)


def make_session(policy: RetryPolicy | None = None, **kwargs) -> RetryingSession:
    """A fresh retrying session (one per catalogue instance; sessions are not shared across threads)."""
    return RetryingSession(policy, **kwargs)


def expiry_from(value: str | None) -> datetime | None:
    """Parse an ISO-8601 expiry such as ``2024-05-14T19:00:49Z`` into an aware UTC datetime."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


__all__ = [
    "RetryPolicy",
    "RetryingSession",
    "error_for_response",
    "expiry_from",
    "make_session",
    "parse_retry_after",
    "redact_url",
    "server_message",
]
