"""The e-mails advertisers get: an invitation, and a re-consent before their grant ends.

Each is a plain-text part and an HTML part saying the same. The only values in them are the
operator's (``settings.Branding``), the advertiser's name, dates and the link. The HTML is
escaped, loads nothing remote (no image, no style sheet, no tracking) and its link text shows
the host the link goes to, so a reader can check it before clicking.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from urllib.parse import urlsplit

from adsauth.models import Advertiser
from adsauth.settings import Branding, Settings


def _date(epoch: float, with_time: bool = True) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%d %B %Y, %H:%M UTC" if with_time else "%d %B %Y")


def invitation_email(settings: Settings, name: str, link: str, expires_at: float) -> tuple[str, str, str]:
    """``(subject, text, html)`` of the invitation to ``name``."""
    brand = settings.branding
    operator = brand.operator_name
    subject = f"{operator} asks you to connect your Amazon Ads account"
    paragraphs = [
        f"Hello {name},",
        f"{operator} would like to manage your Amazon Ads campaigns through the Amazon Ads API.",
        LINK,
        "What you will see: Amazon's own sign-in page, then a page where Amazon asks whether you allow "
        f"{operator}'s application to access your advertising data and manage your campaigns. "
        "Click Allow to connect, or Cancel to decline. We never see your Amazon password, and you can "
        "remove the access at any time in your Amazon account settings.",
        "If the link opens inside your mail app, copy it into your usual browser (Safari, Chrome, Edge "
        "or Firefox) instead: the sign-in must finish in the browser where it began.",
        f"The link works once and until {_date(expires_at)}.",
    ]
    return subject, *_parts(brand, paragraphs, link, "Open this link to connect your account:", "Connect your account")


def reconsent_email(
    settings: Settings, advertiser: Advertiser, link: str, expires_at: float, grant_expires_at: float
) -> tuple[str, str, str]:
    """``(subject, text, html)`` of the invitation to consent again before the grant ends."""
    brand = settings.branding
    operator = brand.operator_name
    subject = f"Please renew {operator}'s access to your Amazon Ads account"
    paragraphs = [
        f"Hello {advertiser.name},",
        f"Amazon ends every Amazon Ads API authorization {settings.grant_lifetime_seconds // 86400} days after it "
        f"was given. The access you gave {operator} ends on {_date(grant_expires_at, with_time=False)}.",
        LINK,
        "Nothing changes until you do: the current access keeps working until the new one replaces it. "
        "You can remove the access at any time in your Amazon account settings.",
        f"The link works once, until {_date(expires_at)} or until a later reminder from us replaces it; "
        "any earlier renewal link no longer works.",
    ]
    return subject, *_parts(
        brand, paragraphs, link,
        "To keep your campaigns managed without interruption, open this link and click Allow at Amazon:",
        "Renew the access",
    )


LINK = object()  # where the link goes among the paragraphs


def _parts(brand: Branding, paragraphs: list, link: str, lead_in: str, action: str) -> tuple[str, str]:
    """The text and HTML parts of one message: its paragraphs, then the operator's footer."""
    host = urlsplit(link).hostname or ""
    footer = [brand.footer]
    if brand.support_contact:
        footer.append(f"Questions? Contact {brand.operator_name}: {brand.support_contact}")
    text = "\n\n".join(f"{lead_in}\n{link}" if p is LINK else p for p in paragraphs)
    text += "\n\n-- \n" + "\n".join(footer) + "\n"

    def para(p) -> str:
        if p is LINK:
            return (f"<p>{html.escape(lead_in)}<br><a href=\"{html.escape(link, quote=True)}\">"
                    f"{html.escape(action)} on {html.escape(host)}</a></p>")
        return f"<p>{html.escape(p)}</p>"

    contact = ""
    if brand.support_contact:
        contact = (f"<br>Questions? Contact {html.escape(brand.operator_name)}: "
                   f"<a href=\"{html.escape(brand.support_href, quote=True)}\">{html.escape(brand.support_contact)}</a>")
    body = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"></head><body>"
        + "".join(para(p) for p in paragraphs)
        + f"<hr><p><small>{html.escape(brand.footer)}{contact}</small></p></body></html>"
    )
    return text, body
