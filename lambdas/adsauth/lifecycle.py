"""The advertiser's lifecycle: its states, every transition, who makes it and on what condition.

States (``AdvertiserStatus``)::

    invited ──complete──► connected ──needs_reauth / grant_expired──► needs_reauth
       │  ▲                  │  ▲ ╲                                       │
  decline/fail               │  │  ╲──revoke──► revoked ◄──revoke── (any) │
       ▼  │                  │  └──complete (re-consent, reinvite)◄───────┘ (after reinvite)
    declined / failed        └──reconsent──► connected + reconsent_pending
       │
     cancel ──► cancelled (never connected)

Every advertiser carries a **generation** (an integer). ``reinvite``, ``reconsent``, ``cancel`` and
``revoke`` bump it; an invitation and every OAuth state it opened remember the generation they
were issued in, and each transition below that comes from a link or a state is conditional on
that generation still being the advertiser's. So an older link shows "this link was replaced"
(``/connect``) and an older state makes no token call and stores nothing (``/callback``).

| transition    | who                         | condition (one conditional write / transaction)                                   | effect |
|---------------|-----------------------------|-----------------------------------------------------------------------------------|--------|
| invite        | ops CLI                     | the advertiser does not exist                                                     | advertiser ``invited``, generation 1, its invitation; ``AdvertiserInvited`` |
| reinvite      | ops CLI                     | generation unchanged since read                                                   | generation + 1, new invitation; ``connected`` stays (``reconsent_pending``: the grant serves until the new consent replaces it), ``cancelled`` becomes ``invited``, any other status stays until the link completes; ``AdvertiserInvited`` |
| reconsent     | refresher (schedule)        | ``connected``, generation unchanged, this lead not sent, no flow of the current invitation holding its claim (nor, before the last lead, opened in the last 10 minutes) | with a mailer: generation + 1, new invitation valid until the grant ends (e-mailed), ``reconsent_pending``, ``GrantExpiring`` + ``AdvertiserInvited``; without: the lead noted, ops alerted to ``reinvite``, ``GrantExpiring`` (no link nobody receives, no link of ops replaced) |
| cancel        | ops CLI                     | generation unchanged, an invitation is open                                       | generation + 1, no invitation; ``cancelled`` if never connected (else status kept, ``reconsent_pending`` cleared) |
| start         | advertiser (``/connect``)   | invitation of the current generation, not completed, not expired, fewer than ``max_flows_per_window`` (10) flows in the window (10 minutes) | a state (hashed) of that generation |
| claim         | advertiser (``/callback``)  | state unused and of the current generation; invitation not completed, unclaimed (or its claim expired, 60 s), fewer than ``max_token_calls_per_window`` (5) token calls in the window | state consumed, invitation claimed by this state: only now is the code exchanged |
| complete      | callback / POST /token      | the claim is still this state's; generation unchanged (checked again before anything is stored, and in the commit); POST /token: not ``revoked``/``cancelled`` unless a new invitation is open | ``connected``, consent and grant expiry recorded, invitation completed, ``reconsent_pending`` cleared; ``AdvertiserConnected`` or ``ReconsentCompleted`` |
| release       | callback                    | the claim is this state's                                                         | invitation unclaimed (the same link can be retried) |
| decline       | callback                    | state unused and of the current generation; status ``invited``/``declined``/``failed`` | ``declined``; ``AdvertiserDeclined`` (a connected or revoked advertiser is not downgraded) |
| fail          | callback                    | as decline                                                                        | ``failed`` (reason kept) |
| refresh       | refresher (lease holder)    | ``connected``, lease owner and fence still its own, the grant the lease was taken on (``connected_at``) still current | token expiry, deadline |
| needs_reauth  | refresher (lease holder)    | as refresh                                                                        | ``needs_reauth`` (``invalid_grant``, ``refresh_token_missing``); ``AdvertiserNeedsReauth`` |
| grant_expired | refresher (lease holder)    | as refresh, and the grant's known end is within the lead                          | ``needs_reauth`` (``grant_expired``), before LwA starts refusing; ``AdvertiserNeedsReauth`` |
| revoke        | ops CLI                     | generation unchanged (status set **first**, then the secrets are deleted)          | ``revoked``, generation + 1; ``AdvertiserRevoked`` |
| import        | ops CLI                     | the advertiser does not exist, the refresh token (by its hash) was never imported, its consent date does not put its end in the past (checked before LwA is asked); proven by one refresh | ``connected`` with its consent date; ``AdvertiserConnected`` |

Secrets: only ``complete`` and ``import`` create an advertiser's secrets. The refresher only ever
updates existing ones (a refresh racing a ``revoke`` cannot bring a token back). A completion whose
commit fails after its tokens were stored (a ``revoke``, ``reinvite`` or ``cancel`` won the race)
takes back what it wrote and nobody replaced since: both secrets when the advertiser is now
revoked or cancelled, otherwise it puts back the versions it replaced (or deletes a secret it
created). The downstream client serves a stored token only for a ``connected`` advertiser (or a
``needs_reauth`` one while its last token lasts), so a secret left by a crash mid-completion is
never read.

``profiles changed`` is not a status transition but is announced too (``ProfilesChanged``).
"""

from __future__ import annotations

from adsauth import oauth
from adsauth.models import Advertiser, AdvertiserStatus, Grant, Invitation, TokenSet
from adsauth.settings import DAY, Settings

CONNECTED = AdvertiserStatus.CONNECTED

# why a transition was refused (TransitionRefused messages: fixed texts)
REFUSED = {
    "changed": "The advertiser changed meanwhile (another command or flow); nothing was done. Run `show` and retry.",
    "no_invitation": "The advertiser has no open invitation to cancel.",
    "revoked": "The advertiser is revoked or cancelled; send a new invitation with `reinvite` first.",
    "exists": "An advertiser with this id exists already.",
}


def new_invitation(advertiser: Advertiser, *, purpose: str, now: float, ttl_seconds: int, generation: int) -> tuple[Invitation, str]:
    """An invitation of ``generation`` and its link token (only its hash is ever stored)."""
    token = oauth.new_invitation_token()
    invitation = Invitation(
        token_hash=oauth.digest(token),
        advertiser_id=advertiser.advertiser_id,
        region=advertiser.region,
        created_at=now,
        expires_at=now + ttl_seconds,
        generation=generation,
        purpose=purpose,
    )
    return invitation, token


def grant_for(settings: Settings, consented_at: float | None, tokens: TokenSet | None = None, *, now: float) -> Grant:
    """The grant a consent (``consented_at``; None: unknown) and LwA's answer make.

    ``refresh_token_expires_in`` in the token response wins; otherwise a consent on or after
    ``grant_expiry_from`` ends ``grant_lifetime_seconds`` later, and an older one has no known
    end. An unknown consent date is taken as the earliest end it could have (the start date
    plus the lifetime, or now if that has passed), so it is re-consented before it can end."""
    if tokens is not None and tokens.refresh_token_expires_in:
        return Grant(consented_at if consented_at is not None else now, now + tokens.refresh_token_expires_in, "token_response")
    if consented_at is None:
        earliest = max(settings.grant_expiry_from + settings.grant_lifetime_seconds, now)
        return Grant(None, earliest, "unknown_consent")
    if consented_at >= settings.grant_expiry_from:
        return Grant(consented_at, consented_at + settings.grant_lifetime_seconds, "consent")
    return Grant(consented_at, None, "none")


def reconsent_due(advertiser: Advertiser, settings: Settings, now: float) -> tuple[int, ...]:
    """The lead days (largest first) whose re-consent should start now: their moment has passed
    and none was started for them. Empty when none is due (or the grant has no known end)."""
    if advertiser.status is not CONNECTED or advertiser.grant_expires_at is None:
        return ()
    left = advertiser.grant_expires_at - now
    return tuple(d for d in settings.reconsent_lead_days if left <= d * DAY and d not in advertiser.reconsent_leads_sent)


def grant_ended(advertiser: Advertiser, now: float, margin_seconds: float) -> bool:
    """True when a grant whose end is known (from its consent or from LwA) ends within
    ``margin_seconds``: it moves to ``needs_reauth`` before LwA starts refusing it. A grant
    whose consent date is unknown only ends when LwA says so (``invalid_grant``)."""
    return (
        advertiser.grant_expires_at is not None
        and advertiser.grant_expiry_basis in ("consent", "token_response")
        and advertiser.grant_expires_at - now <= margin_seconds
    )


def expiring_soon(advertiser: Advertiser, settings: Settings, now: float) -> bool:
    """A connected grant ending within ``grant_alarm_days`` (the ``grant-expiring`` alarm)."""
    return (
        advertiser.status is CONNECTED
        and advertiser.grant_expires_at is not None
        and advertiser.grant_expires_at - now <= settings.grant_alarm_days * DAY
    )


def grant_end(expires_at: float | None, basis: str) -> float | None:
    """The end the refresher must act on: only a known one (see ``grant_ended``)."""
    return expires_at if basis in ("consent", "token_response") else None
