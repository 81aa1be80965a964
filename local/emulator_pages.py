"""What the LwA emulator shows: the consent page, the error page, and the demo user's profiles.

Every value placed in a page goes through ``html.escape``. ``parse_consent_form`` lets tests act
like a browser that reads the form instead of guessing its fields.
"""

from __future__ import annotations

from html import escape
from html.parser import HTMLParser
from typing import Mapping

SCOPE_DESCRIPTIONS = {
    "advertising::campaign_management": "Manage your Amazon Advertising campaigns and reports",
    "advertising::audiences": "Share audiences with Amazon Advertising (Data Provider API)",
    "cpc_advertising:campaign_management": "Manage your Amazon Advertising campaigns (legacy)",
}

def _profile(pid, country, currency, tz, marketplace, account_id, kind, name, budget=None) -> dict:
    profile = {"profileId": pid, "countryCode": country, "currencyCode": currency}
    if budget is not None:
        profile["dailyBudget"] = budget
    profile["timezone"] = tz
    profile["accountInfo"] = {
        "marketplaceStringId": marketplace, "id": account_id, "type": kind, "name": name,
        "validPaymentMethod": True,
    }
    return profile


DEFAULT_PROFILES: dict[str, list[dict]] = {
    "NA": [
        _profile(3421563468431275, "US", "USD", "America/Los_Angeles", "ATVPDKIKX0DER",
                 "A3DEMO7SELLER1NA", "seller", "Demo Outdoor Co.", 999999999.0),
        _profile(2893047561120387, "CA", "CAD", "America/Los_Angeles", "A2EUQ1WTGCTBG2",
                 "A3DEMO7SELLER1NA", "seller", "Demo Outdoor Co.", 999999999.0),
    ],
    "EU": [
        _profile(1740952283560117, "UK", "GBP", "Europe/London", "A1F83G8C2ARO7P",
                 "A1DEMO4SELLER2EU", "seller", "Demo Outdoor Co. Europe", 999999999.0),
        _profile(4105583364818243, "DE", "EUR", "Europe/Paris", "A1PA6795UKMFR9",
                 "ENTITY2DEMOVENDOR9", "vendor", "Demo Outdoor GmbH"),
    ],
    "FE": [
        _profile(2267104485839231, "JP", "JPY", "Asia/Tokyo", "A1VC38T7YXB528",
                 "A2DEMO9SELLER3FE", "seller", "Demo Outdoor KK", 999999999.0),
    ],
}


_STYLE = (
    "body{font-family:Arial,sans-serif;max-width:36em;margin:3em auto;color:#111}"
    "button{padding:.5em 1.5em;margin-right:1em}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n<h1>amazon <small>(local emulator)</small></h1>\n{body}\n</body></html>\n"
    )


def consent_page(
    *, action: str, client_name: str, client_id: str, scope: str, user_id: str, hidden: Mapping[str, str]
) -> str:
    """The page LwA shows after sign-in: who asks, for what, and Allow / Cancel."""
    scopes = "".join(
        f"<li>{escape(SCOPE_DESCRIPTIONS.get(s, s))} (<code>{escape(s)}</code>)</li>" for s in scope.split()
    )
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">\n' for name, value in hidden.items()
    )
    body = (
        f"<p>Signed in as <strong id=\"user\">{escape(user_id)}</strong></p>\n"
        f"<p><strong id=\"client-name\">{escape(client_name)}</strong> "
        f"(client id <code id=\"client-id\">{escape(client_id)}</code>) would like to:</p>\n"
        f"<ul id=\"scope\">{scopes}</ul>\n"
        f'<form method="post" action="{escape(action)}">\n{fields}'
        '<button type="submit" name="decision" value="allow" id="allow">Allow</button>\n'
        '<button type="submit" name="decision" value="deny" id="deny">Cancel</button>\n'
        "</form>"
    )
    return _page("Amazon.com Sign-In: consent", body)


def error_page(message: str) -> str:
    """LwA's answer to a request it cannot send back to the client: a page, never a redirect."""
    body = (
        "<h2>We're sorry!</h2>\n"
        "<p>An error occurred when we tried to process your request. Rest assured, we're already "
        "working on the problem and expect to resolve it shortly.</p>\n"
        f'<p id="error">400 Bad Request: {escape(message)}</p>'
    )
    return _page("Amazon.com: error", body)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, tuple[str, str]] = {}  # id -> (name, value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden" and "name" in a:
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and "id" in a:
            self.buttons[a["id"]] = (a.get("name", ""), a.get("value", ""))


def parse_consent_form(page: str) -> tuple[str, dict[str, str], dict[str, tuple[str, str]]]:
    """Return ``(action, hidden fields, buttons by id)`` of the first form on a consent page."""
    parser = _FormParser()
    parser.feed(page)
    parser.close()
    if parser.action is None:
        raise ValueError("the page has no form")
    return parser.action, parser.fields, parser.buttons
