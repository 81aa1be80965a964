"""Outbound HTTPS with verified TLS, explicit timeouts and capped, jittered retries.

Retried: connection errors, timeouts, 5xx and 429 (honouring ``Retry-After``). Never retried: any
other 4xx, which for OAuth means the request itself is wrong. urllib3 ships with the Lambda runtime
(botocore depends on it), so this costs the asset nothing; the loop is ours because urllib3's
``Retry`` differs between the 1.26 and 2.x lines that runtimes carry.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import urllib3
from urllib.parse import urlencode

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class HttpUnavailable(Exception):
    """Every attempt failed; ``reason`` is ``timeout``, ``connection`` or ``status_<n>``."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(f"remote service unavailable ({reason})")


class HttpClient:
    def __init__(
        self,
        *,
        timeout_seconds: float,
        max_attempts: int,
        backoff_cap_seconds: float,
        backoff_base_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = urllib3.Timeout(connect=min(timeout_seconds, 3.0), read=timeout_seconds)
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap_seconds
        self.backoff_base = backoff_base_seconds
        self.sleep = sleep
        # retries=False: urllib3 must not retry behind our back (a POSTed code works only once)
        self.pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", retries=False, maxsize=10)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        body = None
        headers = dict(headers or {})
        if fields is not None:
            body = urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        last: HttpUnavailable | None = None
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            try:
                raw = self.pool.request(
                    method, url, body=body, headers=headers, timeout=self.timeout, redirect=False
                )
            except urllib3.exceptions.NewConnectionError:  # a subclass of the timeout error
                last = HttpUnavailable("connection")
            except urllib3.exceptions.TimeoutError:
                last = HttpUnavailable("timeout")
            except urllib3.exceptions.HTTPError:
                last = HttpUnavailable("connection")
            else:
                response = HttpResponse(raw.status, dict(raw.headers), raw.data)
                if raw.status not in RETRY_STATUSES:
                    return response
                last = HttpUnavailable(f"status_{raw.status}", raw.status)
                retry_after = parse_retry_after(raw.headers.get("Retry-After"))
            if attempt < self.max_attempts:
                self.sleep(self.delay(attempt, retry_after))
        assert last is not None
        raise last

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, capped; ``Retry-After`` is a floor (within the cap)."""
        jittered = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))
        if retry_after is not None:
            return min(self.backoff_cap, max(retry_after, jittered))
        return jittered


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only; dates are rare here)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
