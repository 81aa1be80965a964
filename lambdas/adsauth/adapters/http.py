"""Outbound HTTPS with verified TLS, explicit timeouts and capped, jittered retries: the one retry
loop of the package (the LwA and Ads API adapters and the downstream ``adsauth.client`` use it).

What may be sent again is a per-request choice (``RetryPolicy``), because a request that reached
the server may have been carried out:

- always retried: failures that prove the request never left (connection refused, connect
  timeout, DNS failure: urllib3's ``ConnectTimeoutError`` and its subclass ``NewConnectionError``)
  and 429 (the server refused to process it; ``Retry-After`` is honoured);
- retried only under ``IDEMPOTENT``: read timeouts, connections reset after sending, 5xx. An
  authorization code is sent ``AT_MOST_ONCE``: if LwA processed it and the answer came late, a
  second try would present a used code, and RFC 6749 §4.1.2 has the server revoke what it issued;
- never retried: any other 4xx, which for OAuth means the request itself is wrong.

With a ``Deadline`` each attempt's timeouts shrink to what is left, and no attempt (nor the
backoff sleep before it) starts unless ``min_attempt_seconds`` would be left for it.

urllib3 ships with the Lambda runtime (botocore depends on it), so this costs the asset nothing;
the loop is ours because urllib3's ``Retry`` differs between the 1.26 and 2.x lines that runtimes
carry.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import urllib3
from urllib.parse import urlencode

if TYPE_CHECKING:
    from adsauth.deadline import Deadline

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """Whether a request that may have reached the server (read timeout, reset after sending,
    5xx) may be sent again."""

    resend_delivered: bool


IDEMPOTENT = RetryPolicy(resend_delivered=True)  # reads, refresh grants: a repeat does no harm
AT_MOST_ONCE = RetryPolicy(resend_delivered=False)  # code exchanges, creates: never twice


def policy_for(method: str) -> RetryPolicy:
    return IDEMPOTENT if method.upper() in IDEMPOTENT_METHODS else AT_MOST_ONCE


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class HttpUnavailable(Exception):
    """No answer worth returning. ``reason``: ``timeout``, ``connection``, ``status_<n>`` (every
    allowed attempt failed), or ``deadline`` (no time was left to send anything). ``delivered``:
    whether some attempt may have reached the server (for an authorization code: may be spent)."""

    def __init__(self, reason: str, status: int | None = None, *, delivered: bool = True) -> None:
        self.reason = reason
        self.status = status
        self.delivered = delivered
        super().__init__(f"remote service unavailable ({reason})")


class HttpClient:
    def __init__(
        self,
        *,
        timeout_seconds: float,
        max_attempts: int,
        backoff_cap_seconds: float,
        backoff_base_seconds: float = 0.2,
        min_attempt_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connect_timeout = min(timeout_seconds, 3.0)
        self.read_timeout = timeout_seconds
        self.timeout = urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout)
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap_seconds
        self.backoff_base = backoff_base_seconds
        self.min_attempt = min_attempt_seconds
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
        body: bytes | str | None = None,
        policy: RetryPolicy | None = None,
        deadline: Deadline | None = None,
    ) -> HttpResponse:
        """Send, retrying as ``policy`` allows (default: by method, see ``policy_for``). A 5xx
        that ``policy`` does not allow to retry is returned as it is: the caller judges it."""
        policy = policy or policy_for(method)
        headers = dict(headers or {})
        if fields is not None:
            body = urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        delivered = False  # whether an attempt may have reached the server
        last: HttpUnavailable | None = None
        for attempt in range(1, self.max_attempts + 1):
            timeout = self._timeout(deadline)
            if timeout is None:  # no time left for an attempt: stop here, before sending
                raise last or HttpUnavailable("deadline", delivered=False)
            retry_after: float | None = None
            try:
                raw = self.pool.request(method, url, body=body, headers=headers, timeout=timeout, redirect=False)
            except urllib3.exceptions.ConnectTimeoutError as exc:  # NewConnectionError too: nothing sent
                last = HttpUnavailable(
                    "connection" if isinstance(exc, urllib3.exceptions.NewConnectionError) else "timeout",
                    delivered=delivered,
                )
            except urllib3.exceptions.HTTPError as exc:  # read timeout, reset: it may have been processed
                delivered = True
                last = HttpUnavailable(
                    "timeout" if isinstance(exc, urllib3.exceptions.TimeoutError) else "connection"
                )
                if not policy.resend_delivered:
                    raise last from None
            else:
                response = HttpResponse(raw.status, dict(raw.headers), raw.data)
                if raw.status not in RETRY_STATUSES:
                    return response
                if raw.status != 429:  # a 429 was not processed; a 5xx may have been
                    delivered = True
                    if not policy.resend_delivered:
                        return response
                last = HttpUnavailable(f"status_{raw.status}", raw.status, delivered=delivered)
                retry_after = parse_retry_after(raw.headers.get("Retry-After"))
            if attempt == self.max_attempts:
                break
            wait = self.delay(attempt, retry_after)
            if deadline is not None and (
                deadline.remaining() - max(wait, retry_after or 0.0) < self.min_attempt
            ):
                break  # the retry could not finish in time (nor wait as long as the server asked)
            self.sleep(wait)
        assert last is not None
        raise last

    def _timeout(self, deadline: Deadline | None) -> urllib3.Timeout | None:
        """This attempt's timeouts: the configured ones, shrunk to what the deadline leaves."""
        if deadline is None:
            return self.timeout
        left = deadline.remaining()
        if left < self.min_attempt:
            return None
        return urllib3.Timeout(connect=min(self.connect_timeout, left), read=min(self.read_timeout, left), total=left)

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
