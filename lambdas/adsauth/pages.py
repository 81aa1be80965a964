"""The fixed HTML pages advertisers see, and the security headers every response carries.

Every page's text is chosen by a fixed key; no request input is ever reflected. The only
interpolated values are the operator's (``settings.Branding``: name, support contact, footer)
from deployment configuration, escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html

from adsauth.settings import Branding

# The one stylesheet, allowed by its hash in the CSP (no inline style attributes, no script).
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#16191f;line-height:1.5}h1{font-size:1.5rem}p.small{color:#545b64;font-size:.875rem}"
    "footer{margin-top:2.5rem;border-top:1px solid #d5dbdb;padding-top:.5rem}a{color:#0972d3}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
}

AGAIN = "Please open the link in your email again."

# key -> (HTTP status, title, message); "{operator}" is the configured operator name, and a blank
# line starts a new paragraph
PAGES: dict[str, tuple[int, str, str]] = {
    "connected": (
        200,
        "Your Amazon Ads account is connected",
        "Thank you. {operator} can now work with the advertising access you granted. "
        "You can close this window.",
    ),
    "declined": (
        200,
        "No access was granted",
        "You chose not to connect your Amazon Ads account, so nothing was shared with {operator}. "
        "If that was a mistake, open the link in your email again.",
    ),
    "retry": (
        200,
        "We couldn't finish connecting your account",
        "Amazon did not complete the sign-in this time. Nothing was saved. "
        "Please open the link in your email again in a few minutes.",
    ),
    "failed": (
        200,
        "We couldn't finish connecting your account",
        "Something went wrong on our side and {operator} has been told. Nothing was saved. "
        "Please try the link in your email again later.",
    ),
    "invitation_unknown": (
        404,
        "This link isn't valid",
        "Check that you opened the whole link from your email, or ask {operator} for a new one.",
    ),
    "invitation_expired": (
        410,
        "This link has expired",
        "Invitation links work for a limited time. Ask {operator} to send you a new one.",
    ),
    "invitation_used": (
        409,
        "This account is already connected",
        "This invitation has been completed, so there is nothing more to do. You can close this window.",
    ),
    "invitation_replaced": (
        410,
        "This link was replaced",
        "A newer link replaced this one, or it was withdrawn. Please use the most recent link "
        "{operator} sent you, or ask for a new one.",
    ),
    "too_many_attempts": (
        429,
        "Too many attempts",
        "This link was opened too many times in a short while. Please wait a few minutes and "
        "open it again.",
    ),
    "state_invalid": (400, "This sign-in can't be completed", "The sign-in is not valid or was already used. " + AGAIN),
    "state_replayed": (400, "This sign-in can't be completed", "The sign-in is not valid or was already used. " + AGAIN),
    "state_expired": (400, "This sign-in took too long", "Sign-ins must be finished within 10 minutes. " + AGAIN),
    # the callback found no cookie of this sign-in: the browser that came back from Amazon is not
    # the one that opened the link, most often a mail app's built-in browser handing over to
    # Safari or Chrome (or the Amazon app) mid-way
    "state_unbound": (
        400,
        "Please open the link in your usual browser",
        "For your security, the sign-in must finish in the same browser where it began, and this "
        "one did not. Nothing was saved.\n\n"
        "This usually happens when the link is opened inside a mail app: its built-in browser "
        "starts the sign-in, and another browser (or another device) finishes it.\n\n"
        "What to do: in your email, press and hold (or right-click) the link and copy it. Open "
        "your device's main browser, such as Safari, Chrome, Edge or Firefox, paste the link in "
        "the address bar, and finish the sign-in there.",
    ),
    "invalid_request": (400, "This request can't be processed", "The address is incomplete or malformed. " + AGAIN),
    "in_progress": (409, "Still connecting", "Your account is being connected right now. Reload this page in a few seconds."),
    "not_found": (404, "Page not found", "There is nothing at this address."),
    "server_error": (500, "Something went wrong", "{operator} has been told. Please try again later."),
}

RESULT_PAGES = frozenset({"connected", "declined", "retry", "failed"})


def render(key: str, branding: Branding) -> tuple[int, str]:
    """Status and HTML body of the page ``key`` (unknown keys render ``not_found``)."""
    status, title, message = PAGES.get(key, PAGES["not_found"])
    operator = html.escape(branding.operator_name, quote=True)
    paragraphs = [html.escape(part).replace("{operator}", operator) for part in message.split("\n\n")]
    body = "".join(
        f"<p id=\"message\">{text}</p>" if i == 0 else f"<p>{text}</p>" for i, text in enumerate(paragraphs)
    )
    page = html.escape(key if key in PAGES else "not_found")
    return status, (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1 id=\"title\">{html.escape(title)}</h1>{body}<footer>{_contact(branding)}"
        f"<p class=\"small\" id=\"page\" data-page=\"{page}\">{html.escape(branding.footer)}</p>"
        "</footer></body></html>"
    )


def _contact(branding: Branding) -> str:
    if not branding.support_contact:
        return ""
    return (
        f"<p class=\"small\" id=\"contact\">Questions? Contact {html.escape(branding.operator_name)}: "
        f"<a href=\"{html.escape(branding.support_href, quote=True)}\">{html.escape(branding.support_contact)}</a></p>"
    )
