"""OAuth primitives, pages and settings."""

from __future__ import annotations

import base64
import re

import pytest

from adsauth import oauth
from adsauth.pages import PAGES, SECURITY_HEADERS, render
from adsauth.regions import Region
from adsauth.settings import Branding, SettingsError, settings_from_env
from tests.unit.fakes import make_settings


def test_state_has_256_bits_and_is_unique():
    states = {oauth.new_state() for _ in range(1000)}
    assert len(states) == 1000
    assert all(len(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))) == 32 for s in states)


def test_s256_matches_rfc7636_appendix_b():
    assert oauth.s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifier_is_rfc7636_sized():
    verifier = oauth.new_verifier()
    assert 43 <= len(verifier) <= 128 and re.fullmatch(r"[A-Za-z0-9_-]+", verifier)


@pytest.mark.parametrize("candidate", [None, "", "é" * 43, "x" * 64])
def test_verifier_matches_rejects_others(candidate):
    assert not oauth.verifier_matches(candidate, oauth.s256(oauth.new_verifier()))


def test_cookie_parsing_is_lenient_and_first_wins():
    header = 'a=1; broken; b="2"; a=3; =x'
    assert oauth.parse_cookie_header(header) == {"a": "1", "b": "2"}
    assert oauth.parse_cookie_header(None) == {}


def test_pages_never_reflect_input_and_escape_the_operator():
    status, body = render("<script>", Branding("Evil <b>Corp</b>"))
    assert status == 404 and "<script>" not in body
    _status, body = render("connected", Branding("Evil <b>Corp</b>"))
    assert "<b>" not in body and "Evil &lt;b&gt;Corp&lt;/b&gt;" in body


def test_every_page_is_fixed_text():
    for key in PAGES:
        _status, body = render(key, Branding("Acme"))
        assert "{operator}" not in body and "<title>" in body


def test_csp_is_strict():
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


def test_settings_defaults_and_derived_urls():
    s = make_settings(PUBLIC_BASE_URL="https://auth.example.com/prod/")
    assert s.callback_url == "https://auth.example.com/prod/callback"
    assert s.allowed_regions == (Region.NA, Region.EU, Region.FE)
    assert s.endpoints[Region.EU].token_url == "https://api.amazon.co.uk/auth/o2/token"
    assert s.state_ttl_seconds == 600 and s.invitation_ttl_seconds == 7 * 86400


@pytest.mark.parametrize(
    "env, message",
    [
        ({"TABLE_NAME": ""}, "TABLE_NAME"),
        ({"ALLOWED_REGIONS": "NA,XX"}, "ALLOWED_REGIONS"),
        ({"ALLOWED_REGIONS": " , "}, "ALLOWED_REGIONS"),
        ({"HTTP_TIMEOUT_SECONDS": "soon"}, "HTTP_TIMEOUT_SECONDS"),
        ({"STATE_TTL_SECONDS": "-5"}, "STATE_TTL_SECONDS"),
    ],
)
def test_settings_errors_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        make_settings(**env)


def test_endpoints_are_overridable_per_region():
    s = make_settings(LWA_TOKEN_URL_FE="http://127.0.0.1:1/fe/auth/o2/token")
    assert s.endpoints[Region.FE].token_url == "http://127.0.0.1:1/fe/auth/o2/token"
    assert s.endpoints[Region.NA].token_url == "https://api.amazon.com/auth/o2/token"


def test_region_parse():
    assert Region.parse("EU") is Region.EU
    for bad in ("eu", "XX", None, 1):
        with pytest.raises(ValueError, match="NA, EU, FE"):
            Region.parse(bad)


def test_settings_from_env_requires_everything():
    with pytest.raises(SettingsError):
        settings_from_env({})
