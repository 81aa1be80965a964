"""The e-mails advertisers get: an invitation, and a re-consent before their grant ends. Plain
text; the only values in them are the operator's and the advertiser's names, dates and the link."""

from __future__ import annotations

from datetime import datetime, timezone

from adsauth.models import Advertiser
from adsauth.settings import Settings


def _date(epoch: float, with_time: bool = True) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%d %B %Y, %H:%M UTC" if with_time else "%d %B %Y")


def invitation_email(settings: Settings, name: str, link: str, expires_at: float) -> tuple[str, str]:
    subject = f"{settings.operator_name} asks for access to your Amazon Ads account"
    body = (
        f"Hello {name},\n\n"
        f"{settings.operator_name} would like to manage your Amazon Ads campaigns through the Amazon Ads API.\n\n"
        f"Open this link to connect your account:\n{link}\n\n"
        "What you will see: Amazon's own sign-in page, then a page where Amazon asks whether you allow "
        f"{settings.operator_name}'s application to access your advertising data and manage your campaigns. "
        "Click Allow to connect, or Cancel to decline. We never see your Amazon password, and you can "
        "remove the access at any time in your Amazon account settings.\n\n"
        f"The link works once and until {_date(expires_at)}.\n"
    )
    return subject, body


def reconsent_email(
    settings: Settings, advertiser: Advertiser, link: str, expires_at: float, grant_expires_at: float
) -> tuple[str, str]:
    subject = f"Please renew {settings.operator_name}'s access to your Amazon Ads account"
    body = (
        f"Hello {advertiser.name},\n\n"
        f"Amazon ends every Amazon Ads API authorization {settings.grant_lifetime_seconds // 86400} days after it "
        "was given. The access you gave "
        f"{settings.operator_name} ends on {_date(grant_expires_at, with_time=False)}.\n\n"
        f"To keep your campaigns managed without interruption, open this link and click Allow at Amazon:\n{link}\n\n"
        "Nothing changes until you do: the current access keeps working until the new one replaces it. "
        "You can remove the access at any time in your Amazon account settings.\n\n"
        f"The link works once, until {_date(expires_at)} or until a later reminder from us replaces it; "
        "any earlier renewal link no longer works.\n"
    )
    return subject, body
