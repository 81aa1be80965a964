"""OAuth 2.0 primitives: state, PKCE (RFC 7636, S256) and the browser-binding cookie.

The PKCE verifier doubles as the browser binding: it lives only in a ``__Host-`` cookie on the
advertiser's browser, and the stored state records just its S256 challenge. The callback accepts a
state only when the cookie's verifier hashes to that challenge, so a state replayed from another
browser (or without the cookie) fails before any token call, and the verifier never reaches storage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

STATE_BYTES = 32  # 256 bits from the CSPRNG
VERIFIER_BYTES = 48  # 64 base64url characters (RFC 7636 allows 43..128)
COOKIE_PREFIX = "__Host-adsauth-"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_state() -> str:
    return secrets.token_urlsafe(STATE_BYTES)


def new_verifier() -> str:
    return secrets.token_urlsafe(VERIFIER_BYTES)


def new_invitation_token() -> str:
    return secrets.token_urlsafe(32)


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier``."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def digest(value: str) -> str:
    """The hash under which a state or invitation token is stored (hex SHA-256)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def cookie_name(state_hash: str) -> str:
    """One cookie per flow, so two tabs can connect two advertisers at once."""
    return COOKIE_PREFIX + state_hash[:16]


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    if not verifier or not verifier.isascii():
        return False
    return hmac.compare_digest(s256(verifier).encode(), challenge.encode("utf-8", "replace"))


def parse_cookie_header(header: str | None) -> dict[str, str]:
    """Parse a ``Cookie`` header leniently: a malformed pair is skipped, not fatal."""
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            cookies.setdefault(name, value.strip().strip('"'))
    return cookies
