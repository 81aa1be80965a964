"""``python -m adsauth import``: a connected advertiser from a refresh token obtained elsewhere
(Amazon's manual flow, another tool), read from standard input and never from the command line.
One token (``--name/--email/--region/--consented-on``), or JSON lines (``--bulk``) with one
result line per row; no row's content or token is ever echoed."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date, datetime, timezone

from adsauth.cli_commands import json_output, profile_counts, region_of
from adsauth.cli_errors import UsageError
from adsauth.cli_output import counts_text, emit_json, grant_doc, grant_text
from adsauth.errors import AdsAuthError, GrantInvalid, InvalidRequest
from adsauth.regions import Region
from adsauth.settings import Settings

IMPORT_FIELDS = ("name", "email", "region", "consented_on", "refresh_token")  # a row of `import --bulk`
CONSENT_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TOKEN_REFUSED = (
    "Login with Amazon refused this refresh token (invalid_grant): it expired, was revoked, "
    "or belongs to another client"
)


def _consent_epoch(value: str, label: str) -> float | None:
    """``YYYY-MM-DD`` (00:00 UTC that day) or ``unknown`` (None)."""
    if value == "unknown":
        return None
    try:
        if not CONSENT_DATE.fullmatch(value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{label} must be a date (YYYY-MM-DD) or unknown") from None
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def _read_token() -> str:
    """The first line of standard input, stripped (typed without echo on a terminal)."""
    if sys.stdin is None:
        line = ""
    elif sys.stdin.isatty():
        import getpass

        line = getpass.getpass("refresh token (not shown): ")
    else:
        line = sys.stdin.readline()
    token = line.strip()
    if not token:
        raise UsageError("no refresh token on standard input: give it as the first line (`< token.txt`)")
    return token


def _import_one(name: str, email: str, region: Region, token: str, consented_at: float | None):
    from adsauth import wiring

    try:
        return wiring.onboarding().import_advertiser(
            name=name, email=email, region=region, refresh_token=token, consented_at=consented_at,
            lwa=wiring.lwa_client(),
        )
    except GrantInvalid:
        raise AdsAuthError(TOKEN_REFUSED) from None
    except AdsAuthError:
        raise
    except Exception as exc:  # noqa: BLE001 - AWS errors can echo values: only the type is shown
        raise AdsAuthError(f"importing failed ({type(exc).__name__}); run `list` to see whether it was recorded") from None


def _imported_doc(adv, counts: dict[str, int], pending) -> dict:
    return {"advertiser_id": adv.advertiser_id, "name": adv.name, "region": adv.region.value,
            "status": adv.status.value, "profile_counts": counts, "pending_regions": sorted(pending),
            "grant": grant_doc(adv)}


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import store

    single = {"--name": args.name, "--email": args.email, "--region": args.region, "--consented-on": args.consented_on}
    if args.bulk:
        if any(value is not None for value in single.values()):
            raise UsageError("--bulk reads every row from standard input; leave out --name, --email, --region and --consented-on")
        return _import_bulk(settings, as_json=json_output(args))
    missing = [flag for flag, value in single.items() if value is None]
    if missing:
        raise UsageError(f"import needs {', '.join(missing)} (or --bulk, with JSON lines on standard input)")
    region = region_of(args.region)
    consented_at = _consent_epoch(args.consented_on, "--consented-on")
    adv, result = _import_one(args.name, args.email, region, _read_token(), consented_at)
    pending = result.regions_pending
    counts = profile_counts(store(), adv.advertiser_id)
    if json_output(args):
        emit_json(_imported_doc(adv, counts, pending))
        return 0
    print(f"advertiser:    {adv.advertiser_id} ({adv.name})")
    print(f"status:        {adv.status.value}")
    print(f"profiles:      {counts_text(counts, pending)}" + (" (* pending: retried by the refresher)" if pending else ""))
    print(f"grant expires: {grant_text(adv, settings, importing=True)}")
    return 0


def _bulk_row(line: str) -> tuple[str, str, Region, float | None, str]:
    """One JSON line: its fields, or InvalidRequest with a fixed message (never the row's text)."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        raise InvalidRequest("not valid JSON") from None
    if not isinstance(row, dict):
        raise InvalidRequest("not a JSON object")
    missing = [f for f in IMPORT_FIELDS if f not in row]
    if missing:
        raise InvalidRequest(f"missing field(s): {', '.join(missing)}")
    if len(row) != len(IMPORT_FIELDS):
        raise InvalidRequest(f"unexpected field(s): a row has exactly {', '.join(IMPORT_FIELDS)}")
    if not all(isinstance(row[f], str) for f in IMPORT_FIELDS):
        raise InvalidRequest("every field must be a string")
    consented_at = _consent_epoch(row["consented_on"], "consented_on")
    return row["name"], row["email"], region_of(row["region"]), consented_at, row["refresh_token"].strip()


def _import_bulk(settings: Settings, *, as_json: bool = False) -> int:
    """One result line per row as it is imported (or, in JSON, one document at the end)."""
    from adsauth.wiring import store

    ok = failed = 0
    rows: list[dict] = []
    imported: dict[str, int] = {}  # refresh token -> its row: the same grant is imported once
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            name, email, region, consented_at, token = _bulk_row(line)
            if token in imported:
                raise InvalidRequest(f"the same refresh token as row {imported[token]}, imported already")
            adv, result = _import_one(name, email, region, token, consented_at)
        except AdsAuthError as exc:  # fixed messages only (see adsauth.errors)
            failed += 1
            rows.append({"row": number, "ok": False, "error": str(exc)})
            if not as_json:
                print(f"row {number}: error {exc}", flush=True)
            continue
        ok += 1
        imported[token] = number
        counts = profile_counts(store(), adv.advertiser_id)
        rows.append({"row": number, "ok": True, **_imported_doc(adv, counts, result.regions_pending)})
        if not as_json:
            print(f"row {number}: ok {adv.advertiser_id} {adv.status.value} ({counts_text(counts, result.regions_pending)}; "
                  f"grant expires {grant_text(adv, settings, importing=True)})", flush=True)
    if not ok + failed:
        raise UsageError("no rows on standard input: one JSON object a line with " + ", ".join(IMPORT_FIELDS))
    if as_json:
        emit_json({"rows": rows, "imported": ok, "failed": failed})
    else:
        again = "; correct the failed rows and import only those again" if failed else ""
        print(f"{ok + failed} row{'s' if ok + failed != 1 else ''}: {ok} imported, {failed} failed{again}")
    if failed:
        print(f"error: {failed} of {ok + failed} rows failed; the others were imported", file=sys.stderr)
        return 1
    return 0
