"""The one retry loop (``adapters.http``): what may be sent again (``RetryPolicy``), the deadline
each attempt and each backoff must fit in, and what the LwA adapter makes of every answer."""

from __future__ import annotations

import pytest
import urllib3

from adsauth.adapters.ads import AdsApiHttpClient
from adsauth.adapters.http import AT_MOST_ONCE, IDEMPOTENT, HttpClient, HttpUnavailable, policy_for
from adsauth.adapters.lwa import ClientCredentials, LwaHttpClient
from adsauth.deadline import Deadline
from adsauth.errors import (
    AdsApiUnavailable,
    ClientInvalid,
    ClientRejected,
    ClientUnauthorized,
    GrantInvalid,
    GrantTypeUnsupported,
    LwaOutOfTime,
    LwaRefused,
    LwaUnavailable,
    RequestRejected,
    ScopeInvalid,
)
from adsauth.regions import PRODUCTION, Region


class Raw:
    def __init__(self, status, body=b"", headers=None):
        self.status, self.data, self.headers = status, body, headers or {}


class Clock:
    """Monotonic time that moves only when the client sleeps or an attempt "takes" time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedPool:
    def __init__(self, clock: Clock, *script, attempt_seconds: float = 0.0):
        self.clock, self.script, self.requests = clock, list(script), []
        self.attempt_seconds = attempt_seconds

    def request(self, method, url, **kwargs):
        self.requests.append((method, url, kwargs))
        self.clock.now += self.attempt_seconds
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def client(*script, attempts=3, attempt_seconds=0.0):
    clock = Clock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    http = HttpClient(timeout_seconds=5, max_attempts=attempts, backoff_cap_seconds=2, sleep=sleep)
    http.pool = ScriptedPool(clock, *script, attempt_seconds=attempt_seconds)
    return http, sleeps, clock


READ_TIMEOUT = urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")
RESET = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
REFUSED = urllib3.exceptions.NewConnectionError(None, "connection refused")
CONNECT_TIMEOUT = urllib3.exceptions.ConnectTimeoutError(None, "connect timed out")
DNS = urllib3.exceptions.NameResolutionError("lwa.example", None, OSError("no such host"))


# --- what may be sent again ----------------------------------------------------------------------
@pytest.mark.parametrize("failure", [READ_TIMEOUT, RESET], ids=["read_timeout", "reset_after_sending"])
def test_at_most_once_never_resends_what_may_have_reached_the_server(failure):
    http, sleeps, _ = client(failure, Raw(200))
    with pytest.raises(HttpUnavailable) as raised:
        http.request("POST", "https://lwa.example/token", fields={"code": "c"}, policy=AT_MOST_ONCE)
    assert len(http.pool.requests) == 1 and sleeps == []
    assert raised.value.delivered is True


def test_at_most_once_returns_a_5xx_as_it_is_instead_of_resending():
    http, sleeps, _ = client(Raw(503), Raw(200))
    assert http.request("POST", "https://lwa.example/token", fields={}, policy=AT_MOST_ONCE).status == 503
    assert len(http.pool.requests) == 1 and sleeps == []


@pytest.mark.parametrize("failure", [REFUSED, CONNECT_TIMEOUT, DNS], ids=["refused", "connect_timeout", "dns"])
def test_at_most_once_retries_what_provably_never_left(failure):
    http, sleeps, _ = client(failure, Raw(200))
    assert http.request("POST", "https://lwa.example/token", fields={}, policy=AT_MOST_ONCE).status == 200
    assert len(http.pool.requests) == 2 and len(sleeps) == 1


def test_never_sent_failures_are_reported_as_not_delivered():
    http, _, _ = client(REFUSED, CONNECT_TIMEOUT, REFUSED)
    with pytest.raises(HttpUnavailable) as raised:
        http.request("POST", "https://lwa.example/token", fields={}, policy=AT_MOST_ONCE)
    assert raised.value.delivered is False and raised.value.reason == "connection"


def test_at_most_once_retries_a_429_honouring_retry_after():
    http, sleeps, _ = client(Raw(429, headers={"Retry-After": "1"}), Raw(200))
    assert http.request("POST", "https://lwa.example/token", fields={}, policy=AT_MOST_ONCE).status == 200
    assert sleeps == [1.0]


@pytest.mark.parametrize("failure", [READ_TIMEOUT, RESET, Raw(502)], ids=["read_timeout", "reset", "5xx"])
def test_idempotent_requests_are_retried_as_before(failure):
    http, sleeps, _ = client(failure, Raw(200))
    assert http.request("POST", "https://lwa.example/token", fields={}, policy=IDEMPOTENT).status == 200
    assert len(http.pool.requests) == 2


def test_the_default_policy_follows_the_method():
    assert policy_for("GET") is IDEMPOTENT and policy_for("delete") is IDEMPOTENT
    assert policy_for("POST") is AT_MOST_ONCE and policy_for("PATCH") is AT_MOST_ONCE
    http, _, _ = client(READ_TIMEOUT, Raw(200))
    assert http.request("GET", "https://ads.example/v2/profiles").status == 200
    http, _, _ = client(READ_TIMEOUT, Raw(200))
    with pytest.raises(HttpUnavailable):
        http.request("POST", "https://ads.example/sp/campaigns", body=b"[]")


# --- the deadline --------------------------------------------------------------------------------
def test_each_attempt_s_timeouts_shrink_to_what_the_deadline_leaves():
    http, _, clock = client(Raw(200))
    http.request("GET", "https://x.example", deadline=Deadline(clock.now + 1.5, clock))
    timeout = http.pool.requests[0][2]["timeout"]
    assert timeout.total == pytest.approx(1.5) and timeout.connect_timeout <= 1.5


def test_nothing_is_sent_when_no_time_is_left():
    http, _, clock = client(Raw(200))
    with pytest.raises(HttpUnavailable) as raised:
        http.request("POST", "https://x.example", fields={}, deadline=Deadline(clock.now + 0.2, clock))
    assert raised.value.reason == "deadline" and raised.value.delivered is False
    assert http.pool.requests == []


def test_no_retry_starts_that_could_not_finish():
    http, sleeps, clock = client(Raw(503), Raw(503), Raw(200), attempt_seconds=1.0)
    with pytest.raises(HttpUnavailable) as raised:
        http.request("GET", "https://x.example", deadline=Deadline(clock.now + 1.4, clock))
    assert raised.value.reason == "status_503"
    assert len(http.pool.requests) == 1 and sleeps == []  # 0.4 s left: not enough for another try


def test_a_retry_after_beyond_the_deadline_is_not_waited_for():
    http, sleeps, clock = client(Raw(429, headers={"Retry-After": "3"}), Raw(200))
    with pytest.raises(HttpUnavailable) as raised:
        http.request("POST", "https://x.example", fields={}, policy=AT_MOST_ONCE, deadline=Deadline(clock.now + 2, clock))
    assert raised.value.status == 429 and sleeps == [] and len(http.pool.requests) == 1


def test_retries_continue_while_time_is_left():
    http, sleeps, clock = client(REFUSED, REFUSED, Raw(200))
    assert http.request("GET", "https://x.example", deadline=Deadline(clock.now + 30, clock)).status == 200
    assert len(sleeps) == 2


def test_deadline_from_a_lambda_context_keeps_the_margin():
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 20_000

    clock = Clock()
    deadline = Deadline.from_context(Context(), margin_seconds=4, clock=clock)
    assert deadline.remaining() == pytest.approx(16.0)
    assert Deadline.from_context(None, margin_seconds=4) is None  # no context, no budget


# --- the LwA adapter: every answer ---------------------------------------------------------------
CREDS = ClientCredentials("amzn1.application-oa2-client.x", "s3cret-value")


def lwa(*script, deadline_seconds=None):
    http, sleeps, clock = client(*script)
    adapter = LwaHttpClient(http=http, endpoints=PRODUCTION, credentials=lambda: CREDS, clock=lambda: 1000.0)
    if deadline_seconds is not None:
        adapter = adapter.within(Deadline(clock.now + deadline_seconds, clock))
    return adapter, http


@pytest.mark.parametrize("error, status, expected", [
    ("invalid_grant", 400, GrantInvalid),
    ("invalid_request", 400, RequestRejected),
    ("invalid_client", 401, ClientInvalid),
    ("unauthorized_client", 400, ClientUnauthorized),
    ("unsupported_grant_type", 400, GrantTypeUnsupported),
    ("invalid_scope", 400, ScopeInvalid),
    ("invalid_scope", 403, ScopeInvalid),
    ("brand_new_error", 400, LwaRefused),
])
def test_each_oauth_error_becomes_its_own_refusal_never_unavailable(error, status, expected):
    adapter, http = lwa(Raw(status, ('{"error": "%s", "error_description": "x"}' % error).encode()))
    with pytest.raises(expected) as raised:
        adapter.exchange_code(Region.NA, "code", "https://cb", "verifier")
    assert not isinstance(raised.value, LwaUnavailable)
    assert len(http.pool.requests) == 1  # a refusal is never retried
    assert "x" not in str(raised.value).split("(")[0] and "brand_new_error" not in str(raised.value)


def test_client_and_scope_refusals_share_the_platform_type():
    for kind in (ClientInvalid, ClientUnauthorized, GrantTypeUnsupported, ScopeInvalid):
        assert issubclass(kind, ClientRejected)
    assert not issubclass(RequestRejected, ClientRejected) and not issubclass(GrantInvalid, ClientRejected)


@pytest.mark.parametrize("raw", [Raw(400, b"<html>bad request</html>"), Raw(500, b'{"error": "server_error"}'),
                                 Raw(400, b'{"error": "temporarily_unavailable"}')])
def test_answers_without_a_refusal_in_them_are_outages(raw):
    adapter, _ = lwa(raw, raw, raw)  # a refresh's 5xx is retried: every attempt gets it
    with pytest.raises(LwaUnavailable):
        adapter.refresh(Region.NA, "Atzr|x")


def test_a_code_exchange_is_sent_once_and_a_refresh_retried_after_a_read_timeout():
    adapter, http = lwa(READ_TIMEOUT, Raw(200, b'{"access_token": "Atza|a", "refresh_token": "Atzr|r"}'))
    with pytest.raises(LwaUnavailable):
        adapter.exchange_code(Region.NA, "code", "https://cb", "verifier")
    assert len(http.pool.requests) == 1
    adapter, http = lwa(READ_TIMEOUT, Raw(200, b'{"access_token": "Atza|a", "refresh_token": "Atzr|r"}'))
    assert adapter.refresh(Region.NA, "Atzr|r").access_token == "Atza|a"
    assert len(http.pool.requests) == 2


def test_no_time_for_the_exchange_is_out_of_time_and_sends_nothing():
    adapter, http = lwa(Raw(200), deadline_seconds=0.1)
    with pytest.raises(LwaOutOfTime):
        adapter.exchange_code(Region.NA, "code", "https://cb", "verifier")
    assert http.pool.requests == []


def test_profiles_listing_within_a_deadline():
    http, _, clock = client(Raw(200, b"[]"))
    ads = AdsApiHttpClient(http=http, endpoints=PRODUCTION, client_id="cid").within(Deadline(clock.now + 0.1, clock))
    with pytest.raises(AdsApiUnavailable):  # the region is then pending
        ads.list_profiles(Region.EU, "Atza|a")
    assert http.pool.requests == []
