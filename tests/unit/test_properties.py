"""Properties of state, PKCE and cookie handling and of the callback's query parsing, checked by
hypothesis on generated input rather than on hand-picked examples. (Parsing of every route's
input through the live gateway: ``tests/integration/test_fuzz.py``.)"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import string
from contextlib import contextmanager

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from adsauth import oauth
from adsauth.errors import InvalidRequest

UNRESERVED = string.ascii_letters + string.digits + "-._~"  # RFC 7636 verifier alphabet
URLSAFE = re.compile(r"[A-Za-z0-9_-]+")
TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits  # RFC 6265 cookie-name (token)
COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')  # RFC 6265 cookie-value
CODE_CONTRACT = re.compile(r"[\x21-\x7e]{1,512}")  # what the callback may pass on as a code
ERROR_CONTRACT = re.compile(r"[a-z_]{1,64}")
SAMPLES = 2000

verifiers = st.text(alphabet=UNRESERVED, min_size=43, max_size=128)


def reference_s256(verifier: str) -> str:
    """RFC 7636 §4.2, written independently: BASE64URL(SHA256(ASCII(verifier))) without padding."""
    encoded = base64.b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode("ascii")
    return encoded.replace("+", "-").replace("/", "_").rstrip("=")


# --- state and verifier generation -------------------------------------------------------------
def test_states_are_256_bit_urlsafe_and_unique():
    states = [oauth.new_state() for _ in range(SAMPLES)]
    assert len(set(states)) == SAMPLES
    for state in states:
        assert len(state) == 43 and URLSAFE.fullmatch(state)
        assert len(base64.urlsafe_b64decode(state + "=")) == 32  # 256 bits from the CSPRNG


def test_verifiers_are_rfc7636_and_unique_per_flow():
    verifiers_made = [oauth.new_verifier() for _ in range(SAMPLES)]
    assert len(set(verifiers_made)) == SAMPLES
    for verifier in verifiers_made:
        assert 43 <= len(verifier) <= 128 and set(verifier) <= set(UNRESERVED)
        assert len(base64.urlsafe_b64decode(verifier)) == oauth.VERIFIER_BYTES


def test_generated_values_use_the_whole_alphabet():
    """A crude bias check: 2000 states use every base64url character."""
    seen = set("".join(oauth.new_state() for _ in range(SAMPLES)))
    assert seen == set(string.ascii_letters + string.digits + "-_")


# --- PKCE ----------------------------------------------------------------------------------------
@given(verifiers)
def test_s256_is_the_rfc7636_transform(verifier):
    challenge = oauth.s256(verifier)
    assert challenge == reference_s256(verifier)
    assert len(challenge) == 43 and URLSAFE.fullmatch(challenge)
    assert oauth.verifier_matches(verifier, challenge)


@given(verifier=verifiers, other=st.text(max_size=200) | verifiers)
@example(verifier="a" * 43, other="a" * 43 + " ")
@example(verifier="a" * 43, other="a" * 42)
def test_no_other_verifier_matches(verifier, other):
    assume(other != verifier)
    assert oauth.verifier_matches(other, oauth.s256(verifier)) is False


# The challenge is always one the broker computed and stored (ASCII); a non-ASCII one would make
# hmac.compare_digest raise TypeError, which no request can cause.
@given(candidate=st.none() | st.text(max_size=300), challenge=st.text(alphabet=[chr(c) for c in range(128)], max_size=100))
def test_verifier_matches_never_raises_on_any_candidate(candidate, challenge):
    assert oauth.verifier_matches(candidate, challenge) in (True, False)


# --- hashing and the cookie name -------------------------------------------------------------------
@given(st.text(max_size=500))
def test_digest_is_stable_hex_sha256(value):
    first = oauth.digest(value)
    assert first == oauth.digest(value) == hashlib.sha256(value.encode("utf-8")).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", first)


@given(st.text(max_size=100), st.text(max_size=100))
def test_digests_of_different_values_differ(a, b):
    assume(a != b)
    assert oauth.digest(a) != oauth.digest(b)


@given(st.text(max_size=200))
def test_cookie_name_is_a_host_prefixed_token_that_survives_parsing(state):
    name = oauth.cookie_name(oauth.digest(state))
    assert re.fullmatch(r"__Host-adsauth-[0-9a-f]{16}", name) and set(name) <= set(TOKEN_CHARS)
    verifier = oauth.new_verifier()
    assert oauth.parse_cookie_header(f"other=1; {name}={verifier}") == {"other": "1", name: verifier}


# --- the Cookie header -------------------------------------------------------------------------------
@given(st.none() | st.text(max_size=500))
def test_cookie_parsing_never_raises(header):
    cookies = oauth.parse_cookie_header(header)
    assert isinstance(cookies, dict)
    for name, value in cookies.items():
        assert name and isinstance(value, str) and ";" not in name and ";" not in value


cookie_jars = st.dictionaries(
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=30), st.text(alphabet=COOKIE_OCTETS, max_size=80), max_size=8
)


@given(cookies=cookie_jars, quoted=st.booleans(), separator=st.sampled_from(["; ", ";", " ;  "]))
def test_well_formed_cookie_headers_round_trip(cookies, quoted, separator):
    def pair(name: str, value: str) -> str:
        return f'{name}="{value}"' if quoted else f"{name}={value}"

    header = separator.join(pair(n, v) for n, v in cookies.items())
    assert oauth.parse_cookie_header(header) == cookies


@given(name=st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20),
       first=st.text(alphabet=COOKIE_OCTETS, max_size=20), later=st.text(alphabet=COOKIE_OCTETS, max_size=20))
def test_the_first_of_repeated_cookies_wins(name, first, later):
    assert oauth.parse_cookie_header(f"{name}={first}; {name}={later}")[name] == first


# --- GET /callback: the query ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def callback():
    # Importing a handler creates its Metrics object, which takes its namespace from the
    # environment at that moment: give it the one the local stack uses, in case this is the
    # first import of the run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POWERTOOLS_METRICS_NAMESPACE", os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "adsauth"))
        from adsauth.handlers import callback
    return callback


@contextmanager
def query(pairs: list[tuple[str, str]]):
    """Make the resolver's current event a REST API proxy event with this query (as the gateway
    builds it: the last value per name, and all values)."""
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    event = {
        "resource": "/callback", "path": "/callback", "httpMethod": "GET", "headers": None,
        "multiValueHeaders": None, "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None, "pathParameters": None, "body": None,
        "isBase64Encoded": False, "requestContext": {"resourcePath": "/callback", "httpMethod": "GET"},
    }
    missing = object()
    saved = BaseRouter.__dict__.get("current_event", missing)
    BaseRouter.current_event = APIGatewayProxyEvent(event)  # where resolve() puts it
    try:
        yield
    finally:
        if saved is missing:
            del BaseRouter.current_event
        else:
            BaseRouter.current_event = saved


NAMES = st.sampled_from(["code", "state", "error", "error_description", "scope"]) | st.text(max_size=8)
VALUES = (
    st.text(max_size=600)
    | st.text(alphabet=[chr(c) for c in range(0x20, 0x7F)], min_size=1, max_size=520)
    | st.from_regex(r"[\x20-\x7e]{1,20}[\n\r\t ]?", fullmatch=True)  # near misses at the end
    | st.sampled_from(["access_denied", "server_error", "invalid_scope", "", "x" * 65, "a\n"])
)
def _within(contract: re.Pattern, value: str) -> bool:
    return bool(contract.fullmatch(value))


@settings(max_examples=300)
@given(pairs=st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_callback_query_parsing_refuses_or_returns_only_valid_values(callback, pairs):
    given_values: dict[str, list[str]] = {}
    for name, value in pairs:
        given_values.setdefault(name, []).append(value)
    with query(pairs):
        try:
            state, code, error = callback._callback_params()
        except InvalidRequest:
            return  # a fixed refusal is always acceptable
    # duplicated code, state or error never get through
    assert all(len(given_values.get(n, [])) <= 1 for n in ("code", "state", "error"))
    assert state == given_values.get("state", [None])[-1]
    if "error" in given_values:
        assert code is None
        assert error == "authorization_error" or (error == given_values["error"][0] and _within(ERROR_CONTRACT, error))
    else:
        assert error is None and code == given_values["code"][0] and _within(CODE_CONTRACT, code)


@given(code=st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], min_size=1, max_size=512),
       state=st.text(max_size=100))
def test_every_well_formed_code_is_accepted(callback, code, state):
    with query([("state", state), ("code", code), ("scope", "advertising::campaign_management")]):
        assert callback._callback_params() == (state, code, None)


@given(name=st.sampled_from(["code", "state", "error"]), values=st.lists(st.text(max_size=50), min_size=2, max_size=4))
def test_a_repeated_code_state_or_error_is_refused(callback, name, values):
    pairs = [("code", "abc"), ("state", "s" * 43)]
    pairs = [p for p in pairs if p[0] != name] + [(name, v) for v in values]
    with query(pairs), pytest.raises(InvalidRequest):
        callback._callback_params()


def test_a_code_with_a_trailing_newline_is_refused(callback):
    with query([("state", "s" * 43), ("code", "abc\n")]), pytest.raises(InvalidRequest):
        callback._callback_params()


def test_an_error_code_with_a_trailing_newline_is_classified(callback):
    with query([("state", "s" * 43), ("error", "access_denied\n")]):
        assert callback._callback_params()[2] == "authorization_error"
