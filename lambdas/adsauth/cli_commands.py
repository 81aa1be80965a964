"""The ``adsauth`` commands. Each builds one record, then prints it as a table or as one JSON
document (``--output``); failures raise (``adsauth.cli`` turns them into one line)."""

from __future__ import annotations

import argparse
import math
import re
import sys
import time

from adsauth.adapters.notify import EmailNotSent
from adsauth.cli_errors import NotConfirmed, UsageError
from adsauth.cli_output import (
    REGIONS,
    Progress,
    advertiser_doc,
    counts_text,
    display_status,
    emit_json,
    grant_text,
    iso,
    print_table,
    profile_doc,
    when,
)
from adsauth.errors import AdvertiserUnknown, InvalidRequest
from adsauth.models import Advertiser, AdvertiserStatus
from adsauth.regions import Region
from adsauth.settings import DAY, Settings

CAUSE = re.compile(r"[a-z][a-z_]{0,39}")  # fullmatch; a fixed code: it goes into an EventBridge event
LIST_STATUSES = tuple(s.value for s in AdvertiserStatus) + ("invitation_expired",)
LIST_PAGE_SIZE: int | None = None  # advertisers per index query (None: the adapter's default)


def _now() -> float:
    from adsauth import wiring

    return wiring.now()  # the functions' clock (tests travel in time with it)


def json_output(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "table") == "json"


def confirm(args: argparse.Namespace, question: str) -> None:
    """``--yes``, or a ``y`` typed at a terminal; without a terminal, a usage error."""
    if getattr(args, "yes", False):
        return
    if not (_isatty(sys.stdin) and _isatty(sys.stderr)):
        raise UsageError(f"{question.rstrip('?')}: pass --yes to confirm (no terminal to ask on)")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise NotConfirmed()


def _isatty(stream) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def advertiser_or_fail(advertiser_id: str) -> Advertiser:
    from adsauth.wiring import store

    advertiser = store().get_advertiser(advertiser_id)
    if advertiser is None:
        raise AdvertiserUnknown(f"no advertiser {advertiser_id!r}; `list` shows the known ones")
    return advertiser


def profile_counts(store, advertiser_id: str) -> dict[str, int]:
    counts = dict.fromkeys(REGIONS, 0)
    for profile in store.list_profiles(advertiser_id):
        if profile.status == "active":
            counts[profile.region.value] += 1
    return counts


# --- invite, reinvite, cancel ------------------------------------------------------------------------
def send_invitation_email(settings: Settings, email: str, subject: str, text: str, html: str | None = None) -> None:
    from adsauth import wiring

    mailer = wiring.mailer()
    if mailer is None:  # pragma: no cover - only called with SES_FROM_ADDRESS set
        return
    mailer.send(email, subject, text, html)


def _invitation(args, settings: Settings, advertiser: Advertiser, token: str, ttl: int | None, **extra) -> None:
    from adsauth import cli  # send_invitation_email and invitation_email are looked up there (tests replace them)

    link = settings.invitation_url(token)
    expires_at = advertiser.invitation_expires_at or time.time() + (ttl or settings.invitation_ttl_seconds)
    doc = {"advertiser_id": advertiser.advertiser_id, "name": advertiser.name, "email": advertiser.email,
           "region": advertiser.region.value, "status": advertiser.status.value, "link": link,
           "expires_at": iso(expires_at), "emailed_to": None, **extra}
    if not json_output(args):
        print(f"advertiser: {advertiser.advertiser_id} ({advertiser.name})")
        print(f"region:     {advertiser.region.value}")
        print(f"valid until {when(expires_at)} (completes once)")
        print(f"link:       {link}")
    try:
        if _emails(args, settings):
            subject, text, html = cli.invitation_email(settings, advertiser.name, link, expires_at)
            try:
                cli.send_invitation_email(settings, advertiser.email, subject, text, html)
            except EmailNotSent as exc:  # one fixed line (exit 1); the invitation stands
                raise type(exc)(f"{exc} The invitation was created: send the link above yourself.") from None
            doc["emailed_to"] = advertiser.email
            if not json_output(args):
                print(f"emailed to  {advertiser.email}")
    finally:
        if json_output(args):
            emit_json(doc)  # also when the e-mail failed: the link is the operator's to send


def _ttl(args: argparse.Namespace) -> int | None:
    return None if args.valid_days is None else int(args.valid_days * DAY)


def _emails(args, settings: Settings) -> bool:
    """Whether the link will be e-mailed; then the operator's name must be known before an
    invitation is created (``Settings.branding`` raises SettingsError), not after."""
    if settings.ses_from_address and not args.no_email:
        settings.branding  # noqa: B018 (it raises when OPERATOR_NAME is missing)
        return True
    return False


def cmd_invite(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import onboarding

    _emails(args, settings)
    advertiser, token = onboarding().invite(name=args.name, email=args.email, region=Region(args.region),
                                            ttl_seconds=_ttl(args))
    _invitation(args, settings, advertiser, token, _ttl(args))
    return 0


def cmd_reinvite(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import onboarding

    advertiser_or_fail(args.advertiser)
    _emails(args, settings)
    advertiser, token = onboarding().reinvite(args.advertiser, ttl_seconds=_ttl(args))
    _invitation(args, settings, advertiser, token, _ttl(args), reconsent_pending=advertiser.reconsent_pending)
    if not json_output(args):
        print(f"status:     {advertiser.status.value} until the advertiser completes the link")
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    """Cancelling deletes no token (a connected advertiser's grant keeps serving) and `reinvite`
    undoes it, so unlike `revoke` it needs no --yes (accepted, so scripts may pass it to both)."""
    from adsauth.wiring import onboarding

    advertiser_or_fail(args.advertiser)
    adv = onboarding().cancel(args.advertiser)  # TransitionRefused when no invitation is open
    if json_output(args):
        emit_json({"advertiser_id": adv.advertiser_id, "cancelled": True, "status": adv.status.value})
        return 0
    kept = ": its current grant keeps serving" if adv.status is AdvertiserStatus.CONNECTED else ""
    print(f"{adv.advertiser_id}: invitation cancelled; its link and every sign-in it started no longer work "
          f"(status {adv.status.value}{kept})")
    return 0


# --- list ------------------------------------------------------------------------------------------
def _expiring_within(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        days = float(value)
    except ValueError:
        days = math.nan
    if not math.isfinite(days) or days <= 0:
        raise UsageError("--expiring-within must be a number of days above 0, e.g. 30")
    return days


def _grant_cell(adv: Advertiser) -> str:
    if adv.status is AdvertiserStatus.REVOKED:
        return "-"
    if adv.grant_expiry_basis == "none":
        return "no end"
    if adv.grant_expires_at is None:
        return "-"
    return (">=" if adv.grant_expiry_basis == "unknown_consent" else "") + when(adv.grant_expires_at)


LEGEND = {
    "*": "* = region pending (retried by the refresher)",
    "+": "connected+ = re-consent pending (the current grant serves until the new link is completed)",
    ">=": ">= = at the earliest (consent date unknown)",
}


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """One paginated query for the advertisers and one for every profile count, whatever their
    number (``AdvertiserPages``, ``ProfileItems.active_profile_counts``)."""
    from adsauth.wiring import store

    within = _expiring_within(args.expiring_within)
    statuses = set(args.status or ())
    now = _now()

    def wanted(adv: Advertiser) -> bool:
        if statuses and display_status(adv, now) not in statuses:
            return False
        return within is None or (adv.status is AdvertiserStatus.CONNECTED and adv.grant_expires_at is not None
                                  and adv.grant_expires_at - now <= within * DAY)

    progress = Progress("advertisers")
    advertisers: list[Advertiser] = []
    read = 0
    try:
        for page in store().advertiser_pages(LIST_PAGE_SIZE):
            read += len(page)
            advertisers.extend(a for a in page if wanted(a))
            progress.update(read)
        counts = store().active_profile_counts(lambda n: progress.update(n, "profiles")) if advertisers else {}
        # Profile items written before they carried byKind's attributes are not in that index
        # (until the refresher lists the advertiser again): count an advertiser whose profiles
        # were read but who has none there with its own query, so no count reads 0 wrongly.
        for adv in advertisers:
            if adv.advertiser_id not in counts and adv.profiles_at is not None:
                counts[adv.advertiser_id] = profile_counts(store(), adv.advertiser_id)
    finally:
        progress.done()
    if within is not None:
        advertisers.sort(key=lambda a: a.grant_expires_at or 0.0)
    empty = dict.fromkeys(REGIONS, 0)
    if json_output(args):
        emit_json({"advertisers": [advertiser_doc(a, counts.get(a.advertiser_id, empty), now) for a in advertisers],
                   "count": len(advertisers)})
        return 0
    rows = [("ADVERTISER", "NAME", "STATUS", "TOKEN EXPIRES", "GRANT EXPIRES", "LAST REFRESH", *REGIONS)]
    used: set[str] = set()
    for adv in advertisers:
        mine = counts.get(adv.advertiser_id, empty)
        pending = {r.value for r in adv.pending_regions}
        cells = [f"{mine[r]}{'*' if r in pending else ''}" for r in REGIONS]
        status = display_status(adv, now) + ("+" if adv.status is AdvertiserStatus.CONNECTED and adv.reconsent_pending else "")
        grant = _grant_cell(adv)
        used.update(mark for mark, hit in (("*", pending), ("+", status.endswith("+")), (">=", grant.startswith(">="))) if hit)
        rows.append((adv.advertiser_id, adv.name[:30], status, when(adv.token_expires_at), grant,
                     when(adv.last_refresh_at), *cells))
    print_table(rows)
    count = f"{len(rows) - 1} advertisers"
    if statuses:
        count += f" with status {', '.join(sorted(statuses))}"
    if within is not None:
        count += f" whose grant ends within {within:g} days"
    print("\n" + "; ".join([count, *(LEGEND[mark] for mark in LEGEND if mark in used)]))
    return 0


# --- show --------------------------------------------------------------------------------------------
def _invitation_text(adv: Advertiser, now: float) -> str:
    if not adv.invitation_hash:
        return "none"
    purpose = adv.invitation_purpose or "invite"
    if adv.invitation_open(now):
        return f"open until {when(adv.invitation_expires_at)} ({purpose})"
    return f"expired {when(adv.invitation_expires_at)} ({purpose})"


def _reconsent_text(adv: Advertiser) -> str:
    if not adv.reconsent_pending:
        return "none"
    if not adv.reconsent_leads_sent:  # a reinvite of a connected advertiser
        return "pending (an operator's reinvite; the current grant serves until it is completed)"
    leads = sorted(adv.reconsent_leads_sent, reverse=True)
    latest = f"; latest lead {leads[-1]} days" if len(leads) > 1 else ""
    return f"pending since lead {leads[0]} days{latest}"


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import store

    adv = advertiser_or_fail(args.advertiser)
    now = _now()
    profiles = sorted(store().list_profiles(adv.advertiser_id), key=lambda p: (p.region.value, p.profile_id))
    events = store().list_events(adv.advertiser_id, limit=args.events) if args.events else []  # 0: none asked
    if json_output(args):
        counts = dict.fromkeys(REGIONS, 0)
        for p in profiles:
            counts[p.region.value] += p.status == "active"
        emit_json({
            **advertiser_doc(adv, counts, now),
            "connected_at": iso(adv.connected_at), "generation": adv.generation,
            "reconsent_leads_sent": sorted(adv.reconsent_leads_sent, reverse=True),
            "profiles_at": iso(adv.profiles_at),
            "profiles": [profile_doc(p) for p in profiles],
            "events": [{"at": iso(e.at), "event": e.event, "cause": e.cause or None} for e in events],
        })
        return 0
    print(f"advertiser:    {adv.advertiser_id}")
    print(f"name / email:  {adv.name} <{adv.email}>")
    print(f"home region:   {adv.region.value}")
    reason = f" ({adv.status_reason})" if adv.status_reason else ""
    print(f"status:        {adv.status.value}{reason}")
    print(f"connected:     {when(adv.connected_at)}")
    print(f"token expires: {when(adv.token_expires_at)}")
    print(f"grant expires: {grant_text(adv, settings)}")
    print(f"generation:    {adv.generation}")
    print(f"invitation:    {_invitation_text(adv, now)}")
    print(f"re-consent:    {_reconsent_text(adv)}")
    print(f"last refresh:  {when(adv.last_refresh_at)}{' — last error: ' + adv.last_refresh_error if adv.last_refresh_error else ''}")
    print(f"profiles read: {when(adv.profiles_at)}; pending regions: {', '.join(r.value for r in adv.pending_regions) or 'none'}")
    print("profiles:")
    for p in profiles:
        removed = f" removed {when(p.removed_at)}" if p.status == "removed" else ""
        print(f"  {p.region.value}  {p.profile_id:>16}  {p.country_code:<2}  {p.currency_code}  {p.account_type:<7} {p.account_name}{removed}")
    if not args.events:
        print("events:        not shown (--events 0)")
        return 0
    print("events (newest first):")
    for event in events:
        print(f"  {when(event.at)}  {event.event:<13} {event.cause}")
    return 0


# --- refresh ---------------------------------------------------------------------------------------
def cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import refresher, store

    advertiser_or_fail(args.advertiser)
    result = refresher().refresh_profiles(args.advertiser) if args.profiles else refresher().refresh(args.advertiser, force=True)
    ok = result.outcome in ("refreshed", "fresh")
    profiles = None
    if result.profiles is not None:
        pending = tuple(result.profiles.regions_pending)
        profiles = {"counts": profile_counts(store(), args.advertiser), "regions_ok": sorted(result.profiles.regions_ok),
                    "regions_pending": sorted(pending)}
    if json_output(args):
        emit_json({"advertiser_id": args.advertiser, "outcome": result.outcome, "reason": result.reason or None,
                   "token_expires_at": iso(result.token_expires_at), "rotated": result.rotated, "profiles": profiles})
    else:
        print(f"refresh:       {result.outcome}{' (' + result.reason + ')' if result.reason else ''}")
        if result.token_expires_at:
            print(f"token expires: {when(result.token_expires_at)}{' (refresh token rotated)' if result.rotated else ''}")
        if profiles is not None:
            note = " (* pending: retried by the refresher)" if profiles["regions_pending"] else ""
            print(f"profiles:      {counts_text(profiles['counts'], profiles['regions_pending'])}{note}")
    if not ok:
        print(f"error: the refresh ended {result.outcome}" + (f" ({result.reason})" if result.reason else "")
              + "; `show` has the details", file=sys.stderr)
    return 0 if ok else 1


# --- revoke ------------------------------------------------------------------------------------------
def _revoked_at(adv: Advertiser) -> float:
    from adsauth.wiring import store

    for event in store().list_events(adv.advertiser_id, limit=50):  # newest first
        if event.event == "revoked":
            return event.at
    return adv.updated_at


def _tokens_left(adv: Advertiser) -> bool:
    """Whether an interrupted revoke left a token behind (its own secrets or its pack's entry)."""
    from adsauth.wiring import vault

    v = vault()
    errors = v.client.exceptions
    for name in (v.refresh_secret_name(adv.advertiser_id), v.access_secret_name(adv.advertiser_id)):
        try:
            if "DeletedDate" not in v.client.describe_secret(SecretId=name):  # a deletion under way is gone
                return True
        except errors.ResourceNotFoundException:
            pass
    return bool(adv.pack) and any(adv.advertiser_id in v.read_pack(kind, adv.pack).entries for kind in ("refresh", "access"))


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Idempotent: an advertiser revoked already (no open link, no token left) is left alone."""
    from adsauth.wiring import refresher

    if not CAUSE.fullmatch(args.cause):
        raise UsageError("--cause must be a code of a-z and _ (a letter first, at most 40), e.g. contract_ended")
    adv = advertiser_or_fail(args.advertiser)
    if adv.status is AdvertiserStatus.REVOKED and not adv.invitation_hash and not _tokens_left(adv):
        at = _revoked_at(adv)
        if json_output(args):
            emit_json({"advertiser_id": adv.advertiser_id, "revoked": True, "changed": False, "revoked_at": iso(at),
                       "tokens_deleted": False, "invitation_cancelled": False})
        else:
            print(f"{adv.advertiser_id}: already revoked on {when(at)}; nothing deleted")
        return 0
    confirm(args, f"revoke {adv.advertiser_id} ({adv.name}) and delete its tokens?")
    adv = advertiser_or_fail(args.advertiser)  # as it is now: the prompt may have waited for minutes
    # what this revoke deletes: a revoked advertiser's tokens only if an interrupted revoke left one
    had_tokens = _tokens_left(adv) if adv.status is AdvertiserStatus.REVOKED else adv.connected_at is not None
    open_link = bool(adv.invitation_hash)
    refresher().revoke(adv.advertiser_id, cause=args.cause)
    if json_output(args):
        emit_json({"advertiser_id": adv.advertiser_id, "revoked": True, "changed": True, "revoked_at": iso(_now()),
                   "tokens_deleted": had_tokens, "invitation_cancelled": open_link})
        return 0
    if had_tokens:
        done = ["deleted its refresh and access tokens"]
    else:
        done = ["no token was left to delete" if adv.connected_at is not None else "it had no tokens (never connected)"]
    if open_link:
        done.append("its invitation link no longer works")
    print(f"{adv.advertiser_id}: revoked; {'; '.join(done)} (records and history kept; `reinvite` to reconnect)")
    return 0


# --- migrate-layout ----------------------------------------------------------------------------------
def cmd_migrate_layout(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.migrate import migrate_layout
    from adsauth.wiring import refresher

    confirm(args, f"move every connected advertiser's tokens to the {args.to} layout now?")
    to_json = json_output(args)
    progress = (lambda line: print(line, file=sys.stderr)) if to_json else print
    summary = migrate_layout(refresher(), args.to, pack_size=args.pack_size, progress=progress)
    not_moved = summary["not_moved"]
    if to_json:
        emit_json({"to": summary["to"], "moved": summary["moved"], "packs": summary["packs"],
                   "outcomes": summary.get("outcomes", {}), "not_moved": not_moved})
    else:
        print(f"moved {summary['moved']} advertiser(s) to the {summary['to']} layout; packs now: {summary['packs']}")
        if not_moved:
            print(f"not moved ({len(not_moved)}): " + ", ".join(not_moved[:20]) + (" …" if len(not_moved) > 20 else ""))
    if not_moved:
        print(f"error: {len(not_moved)} advertiser(s) not moved; they move at their next refresh, or run this again",
              file=sys.stderr)
        return 1
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.cli_import import run_import

    return run_import(args, settings)


def region_of(value: object) -> Region:
    """A region in any case (``eu``), or InvalidRequest with a fixed message (a bulk row's field)."""
    try:
        return Region.parse(value.upper() if isinstance(value, str) else value)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None

