"""The fault matrix: every step of the onboarding and of the refresh × every kind of fault.

Steps: the LwA token call (code exchange / refresh grant), the Ads API profiles listing in NA, EU
and FE, the secret writes (Secrets Manager) and the table writes (DynamoDB) that record the result.
Faults: timeout, 5xx, 429 (throttling), connection reset, and for the LwA token call "late" (LwA
carries the request out, the answer comes after the client gave up). LwA and the Ads API fail
through the emulator's switches, AWS through botocore's event system (``local.faults``).

Each cell runs its flow twice on the live local stack:

1. **absorbed**: the fault hits once; the retries (our HTTP client's, botocore's) absorb it and the
   flow ends ``connected`` / ``refreshed`` as if nothing happened. Except where a retry would be
   wrong: an authorization code is never sent again once it may have reached LwA (a timeout, a
   5xx, a reset after sending, a late answer; RFC 6749 §4.1.2), so there the single fault must end
   the attempt on the "retry" page with one token call ("not resent"), and the link completes it;
2. **outlasting**: the fault hits every attempt of one call (``HTTP_MAX_ATTEMPTS`` for LwA/Ads,
   the clients' ``AWS_MAX_ATTEMPTS`` for AWS), so the step fails; then whatever the product offers
   to recover (the invitation link again, SQS redelivery, the refresher's next run) must complete
   the job once the fault is gone.

After each run the stored result must be consistent and recoverable: a ``connected`` advertiser's
refresh secret holds a token LwA (the emulator) still accepts and its access secret a valid access
token, wherever they are (the stack runs the packed layout: after a refresh its tokens may sit in a
pack's secrets, where its item's ``pack`` points; ``local.stack.stored_tokens``); a flow that failed says so (``failed`` + reason, ``last_refresh_error``) and its invitation
link still works; regions that failed are pending until the refresher clears them; nothing is left
in the refresh queue or its DLQ. A cell that breaks any of these counts as ``lost`` in the proof
line. The refresh cells run with refresh-token rotation on (every refresh returns a new refresh
token and LwA forgets the old one), the case where a lost write loses the grant. Except the
refresh's "late" cell: under strict rotation a refresh whose answer never arrived leaves only the
retired token, which no client can recover (the emulator test shows it); LwA does not rotate, and
that cell proves what matters there: a refresh grant is retried after a late answer.

To keep the matrix fast the LwA/Ads timeout cells shorten the HTTP timeout to 0.5 s (the other
cells keep the stack's 2 s) and AWS clients get two attempts per call (the SDK's default is three,
each retry waiting up to 2^n s); the matrix prints itself at the end of the module.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import boto3
import pytest

from adsauth import schema, wiring
from local.faults import SECRET_WRITES, TABLE_WRITES, aws_fault, emulator_fault, secret_prefixed, table_named, token_issued
from local.stack import SECRET_PREFIX, TABLE_NAME
from tests.proof import record_fault_matrix, record_faults
from tests.stack_fixtures import refresh_token_accepted
from tests.stack_fixtures import remembered_tokens as tokens

STEPS = ("token exchange", "NA profiles", "EU profiles", "FE profiles", "secret write", "table write")
FAULTS = ("timeout", "5xx", "429", "reset", "late")
LWA_ONLY = ("late",)  # faults the token endpoint has; for a read-only GET a late answer is a timeout
NOT_RESENT = ("timeout", "5xx", "reset", "late")  # an authorization code is never sent twice after these
FLOWS = ("onboarding", "refresh")
HTTP_TIMEOUT = 0.5  # seconds, in the LwA/Ads timeout cells (elsewhere the stack's 2 s)
HTTP_ATTEMPTS = 3  # the product's default HTTP_MAX_ATTEMPTS
AWS_ATTEMPTS = 2  # botocore attempts per call, for this module (standard mode's default is 3)
ENV = {"HTTP_MAX_ATTEMPTS": str(HTTP_ATTEMPTS), "AWS_MAX_ATTEMPTS": str(AWS_ATTEMPTS)}
PROFILES_DUE = 86400 - 1200  # the daily profile listing rides along with this refresh
PENDING_RETRY = 901  # a pending region is asked again after 15 minutes

# Cells that show a product bug which cannot be fixed right away, pinned as strict xfails:
# (flow, step, fault) -> what goes wrong. (Empty: every cell holds.)
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


# --- the matrix's own bookkeeping --------------------------------------------------------------------
@dataclass
class Cell:
    flow: str
    step: str
    fault: str
    absorbed: str = "-"
    outlasting: str = "-"
    recovery: str = ""
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> str:
        mark = "LOST " if self.violations else ""
        recovery = f"→{self.recovery}" if self.recovery else ""
        return f"{mark}{self.absorbed} | {self.outlasting}{recovery}"


RESULTS: dict[tuple[str, str, str], Cell] = {}


@dataclass
class Matrix:
    scheduler: object  # local.scheduler.LocalScheduler


@pytest.fixture(scope="module")
def matrix(stack, emulator_clock, request):
    """The module's settings (two AWS attempts per call), the app on the emulator's clock, only
    this module's advertisers in the due index; prints the matrix at the end."""
    with stack.environment(**ENV):  # adapters built with the module's settings
        wiring.clock = emulator_clock  # the app and the emulator travel in time together
        clean_due_index()  # earlier tests leave connected advertisers
        scheduler = stack.scheduler()
        scheduler.clear()
        started, cpu = time.monotonic(), time.process_time()
        yield Matrix(scheduler)
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        wiring.clock = time.time
    table.cache_clear()
    if RESULTS:
        text = render(RESULTS, elapsed, cpu)
        record_fault_matrix(text)
        show(request.config, text)


def render(results: dict[tuple[str, str, str], Cell], elapsed: float, cpu: float) -> str:
    width = max(len(c.text()) for c in results.values()) + 2
    lines = []
    for flow in FLOWS:
        if not any(key[0] == flow for key in results):
            continue
        title = {
            "onboarding": "onboarding (browser → local gateway → callback)",
            "refresh": "refresh (dispatcher → SQS → worker; rotating refresh tokens)",
        }[flow]
        lines.append(f"fault matrix: {title}")
        lines.append("  cell: 1 fault (absorbed: ok) | fault outlasting the retries: what was stored → how it recovered")
        lines.append("  " + "step".ljust(16) + "".join(f.ljust(width) for f in FAULTS))
        for step in STEPS:
            row = [results[(flow, step, fault)].text() if (flow, step, fault) in results else "not run" for fault in FAULTS]
            lines.append("  " + step.ljust(16) + "".join(c.ljust(width) for c in row))
        lines.append("")
    lost = sum(1 for c in results.values() if c.violations)
    lines.append(f"fault matrix: {len(results)} cells, {lost} lost, {elapsed:.0f} s ({cpu:.0f} s CPU)")
    for cell in results.values():
        for violation in cell.violations:
            lines.append(f"  LOST {cell.flow} / {cell.step} / {cell.fault}: {violation}")
    return "\n".join(lines)


def show(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else _nothing():
        reporter.ensure_newline()
        reporter.write_line("")
        for line in text.splitlines():
            reporter.write_line(line)


class _nothing(AbstractContextManager):
    def __exit__(self, *exc_info):
        return None


# --- inspection --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def table():
    return boto3.resource("dynamodb").Table(TABLE_NAME)


def item(advertiser_id: str) -> dict:
    return table().get_item(Key=schema.advertiser_key(advertiser_id), ConsistentRead=True)["Item"]


def grant_problems(stack, advertiser_id: str, adv: dict) -> list[str]:
    """What is wrong with a connected advertiser's stored grant (nothing: []); ``adv`` is its item."""
    problems = []
    stored = tokens(advertiser_id) or {}
    if not refresh_token_accepted(stack, stored.get("refresh_token")):
        problems.append("connected, but the refresh secret holds no token LwA accepts (refresh token lost)")
    access = stored.get("access_token")
    info = stack.emulator.access_token_info(access) if access else None
    if info is None or info["revoked"] or info["expires_at"] <= wiring.now():
        problems.append("connected, but the access secret holds no valid access token")
    elif abs(float(adv.get("token_expires_at", 0)) - float(stored.get("expires_at") or 0)) > 2:
        problems.append("token_expires_at differs from the stored access token's expiry")
    if stored and adv.get("pack", "") != stored["pack"]:
        problems.append("the item's pack pointer does not name where its tokens are")
    return problems


# --- the faults of a cell ----------------------------------------------------------------------------
def injector(stack, flow: str, step: str, fault: str, *, outlasting: bool) -> Callable[[], AbstractContextManager]:
    em = stack.emulator
    if step in AWS_STEPS:
        times = AWS_ATTEMPTS if outlasting else 1
        if step == "secret write":
            return lambda: aws_fault(SECRET_WRITES, fault, times=times, match=secret_prefixed(SECRET_PREFIX))
        grant = "authorization_code" if flow == "onboarding" else "refresh_token"
        # the writes that record the result, once LwA has issued the tokens: the window in which
        # a failure could lose a grant (a table fault before the LwA call loses nothing)
        return lambda: aws_fault(TABLE_WRITES, fault, times=times, match=table_named(TABLE_NAME),
                                 when=token_issued(em, grant))
    times = HTTP_ATTEMPTS if outlasting else 1
    endpoint, region = ("token", None) if step == "token exchange" else ("profiles", step.split()[0])
    return lambda: emulator_fault(em, endpoint, fault, region=region, times=times,
                                  timeout_sleep_s=HTTP_TIMEOUT + 0.3, retry_after=0)


AWS_STEPS = ("secret write", "table write")


@contextmanager
def short_http_timeout(stack, on: bool):
    """The HTTP timeout of a timeout cell: a short one, so the cell waits ~4 × 0.5 s, not 4 × 2 s."""
    if not on:
        yield
        return
    saved = os.environ.get("HTTP_TIMEOUT_SECONDS")
    os.environ["HTTP_TIMEOUT_SECONDS"] = str(HTTP_TIMEOUT)
    stack._reset_caches()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HTTP_TIMEOUT_SECONDS", None)
        else:
            os.environ["HTTP_TIMEOUT_SECONDS"] = saved
        stack._reset_caches()


def clean_due_index() -> None:
    """Only this module's advertisers may be due (earlier tests leave connected advertisers)."""
    for shard in range(schema.EXPIRY_SHARDS):
        entries = table().query(IndexName=schema.EXPIRY_INDEX, KeyConditionExpression="due_pk = :p",
                                ExpressionAttributeValues={":p": f"DUE#{shard}"})["Items"]
        for entry in entries:
            table().update_item(Key=schema.advertiser_key(entry["advertiser_id"]), UpdateExpression="REMOVE due_pk, due_sk")


@pytest.fixture
def cell_env(stack, matrix, emulator_clock):
    """The module's scheduler and ``travel(seconds)``; afterwards this cell's advertisers leave the
    due index and their profiles (seen "in the future") are deleted, so later cells and tests are
    not disturbed."""
    made: list[str] = []

    def travel(seconds: float) -> None:
        emulator_clock.offset += seconds

    yield matrix.scheduler, travel, made
    for advertiser_id in made:
        for profile in wiring.store().list_profiles(advertiser_id):
            table().delete_item(Key=schema.profile_key(advertiser_id, profile.region.value, profile.profile_id))
        table().update_item(Key=schema.advertiser_key(advertiser_id), UpdateExpression="REMOVE due_pk, due_sk")
    if matrix.scheduler.depth() or matrix.scheduler.depth(stack.dlq_url):
        matrix.scheduler.clear()
        matrix.scheduler.clear(stack.dlq_url)


def outcome_of(answer) -> str:
    location = answer.headers.get("Location", "")
    if answer.status_code == 303 and "/result/" in location:
        return location.rsplit("/", 1)[1]
    return f"HTTP {answer.status_code}"


# --- onboarding ----------------------------------------------------------------------------------------
def run_onboarding(stack, flow, cell: Cell, step: str, fault: str, scheduler, travel, made) -> None:
    v = cell.violations
    # 1. absorbed
    f = flow("NA")
    made.append(f.advertiser_id)
    f.consent()
    calls = stack.emulator.count("token", grant_type="authorization_code")
    with injector(stack, "onboarding", step, fault, outlasting=False)():
        answer = f.callback()
    adv = item(f.advertiser_id)
    if step == "token exchange" and fault in NOT_RESENT:
        sent = exchanges_since(stack, calls)
        cell.absorbed = "not resent" if (outcome_of(answer), adv.get("status_reason"), sent) == (
            "retry", "amazon_unavailable", 1) else f"{outcome_of(answer)}/{adv.get('status_reason')}, {sent} exchanges"
        if cell.absorbed != "not resent":
            v.append(f"a code that may have reached LwA was sent again or misreported: {cell.absorbed}")
        recover_with_link(stack, f, cell)
        if cell.recovery == "link broken":
            return
    elif (outcome_of(answer), adv["status"]) != ("connected", "connected"):
        cell.absorbed = f"{outcome_of(answer)}/{adv['status']}"
        v.append(f"a single {fault} was not absorbed: {cell.absorbed}")
    elif adv["pending_regions"]:
        cell.absorbed = "ok"
        v.append(f"a single {fault} left regions pending: {adv['pending_regions']}")
    else:
        cell.absorbed = "ok"
        v.extend(grant_problems(stack, f.advertiser_id, adv))

    # 2. outlasting
    f = flow("NA")
    made.append(f.advertiser_id)
    f.consent()
    with injector(stack, "onboarding", step, fault, outlasting=True)():
        answer = f.callback()
    page, adv = outcome_of(answer), item(f.advertiser_id)
    status, reason = adv["status"], adv.get("status_reason", "")
    if status == "connected":
        v.extend(grant_problems(stack, f.advertiser_id, adv))
        pending = adv["pending_regions"]
        cell.outlasting = f"pending {','.join(pending)}" if pending else "connected"
        if page != "connected":
            v.append(f"connected, but the browser was sent to {page!r}")
        if step.endswith("profiles") and pending != [step.split()[0]]:
            v.append(f"the failed region is not recorded as pending: {pending}")
        if pending:  # the refresher's next run asks the pending region again
            travel(PENDING_RETRY)
            dispatched, report = scheduler.tick()
            adv = item(f.advertiser_id)
            cell.recovery = "refresher"
            if (dispatched, report.processed) != (1, 1) or adv["pending_regions"]:
                v.append(f"the refresher did not clear the pending region: dispatched={dispatched}, "
                         f"processed={report.processed}, pending={adv['pending_regions']}")
            else:
                v.extend(grant_problems(stack, f.advertiser_id, adv))
        return
    cell.outlasting = f"{status}:{reason or 'no reason'}" + ("" if page == status else f" ({page} page)")
    if status != "failed" or not reason:
        v.append(f"the flow failed but the advertiser's status says {status!r} ({reason or 'no reason'})")
    if page not in ("retry", "failed"):
        v.append(f"the browser was shown {page!r} instead of a result page")
    if step == "token exchange" and (page, reason) != ("retry", "amazon_unavailable"):
        v.append(f"LwA unavailable should read retry/amazon_unavailable, not {page}/{reason}")
    if outcome_of(f.callback()) != page:  # the browser submits the callback again: one result
        v.append("a repeated callback got another answer than the first")
    recover_with_link(stack, f, cell)


def exchanges_since(stack, before: int) -> int:
    """Code exchanges the emulator saw since ``before``, once those still in its fault sleep
    (a timeout or late answer is counted when it is answered) have been counted."""
    em = stack.emulator
    settle = time.monotonic() + HTTP_TIMEOUT + 1.5  # the cells' fault sleep is HTTP_TIMEOUT + 0.3
    while em.count("token", grant_type="authorization_code") <= before and time.monotonic() < settle:
        time.sleep(0.05)
    time.sleep(HTTP_TIMEOUT + 0.5)  # a resend would have been answered by now
    return em.count("token", grant_type="authorization_code") - before


def recover_with_link(stack, f, cell: Cell) -> None:
    """The advertiser retries with the same invitation link once the fault is gone."""
    v = cell.violations
    consent = f.browser.open(f.link)
    if consent.status_code != 200:
        v.append(f"the invitation link no longer works (HTTP {consent.status_code})")
        cell.recovery = "link broken"
        return
    done = f.browser.follow(f.browser.click(consent, "allow"))
    adv = item(f.advertiser_id)
    cell.recovery = "link"
    if 'data-page="connected"' not in done.text or adv["status"] != "connected" or adv["pending_regions"]:
        v.append(f"retrying with the invitation link did not connect: {adv['status']}, pending {adv['pending_regions']}")
    else:
        v.extend(grant_problems(stack, f.advertiser_id, adv))


# --- refresh ---------------------------------------------------------------------------------------------
def refreshed_ok(stack, advertiser_id: str, since: float) -> list[str]:
    adv = item(advertiser_id)
    problems = []
    if adv["status"] != "connected":
        problems.append(f"status {adv['status']!r} ({adv.get('status_reason', '')}) after a refresh of a valid grant")
        return problems
    if float(adv["token_expires_at"]) < since + 3000:
        problems.append("token_expires_at did not move forward")
    if adv.get("last_refresh_error"):
        problems.append(f"last_refresh_error {adv['last_refresh_error']!r} left after a successful refresh")
    return problems + grant_problems(stack, advertiser_id, adv)


def run_refresh(stack, flow, cell: Cell, step: str, fault: str, scheduler, travel, made) -> None:
    v = cell.violations
    f = flow("NA")
    made.append(f.advertiser_id)
    f.consent()
    assert f.callback().status_code == 303 and item(f.advertiser_id)["status"] == "connected"
    advertiser_id = f.advertiser_id
    stack.emulator.rotate_refresh_tokens = fault != "late"  # see the module doc

    # 1. absorbed
    travel(PROFILES_DUE)
    since = wiring.now()
    with injector(stack, "refresh", step, fault, outlasting=False)():
        dispatched, report = scheduler.tick()
    adv = item(advertiser_id)
    if (dispatched, report.processed, report.failed) == (1, 1, 0) and not adv["pending_regions"]:
        cell.absorbed = "ok"
        v.extend(refreshed_ok(stack, advertiser_id, since))
    else:
        cell.absorbed = f"processed={report.processed} failed={report.failed} pending={adv['pending_regions']}"
        v.append(f"a single {fault} was not absorbed: {cell.absorbed}")
        return

    # 2. outlasting
    travel(PROFILES_DUE)
    since = wiring.now()
    with injector(stack, "refresh", step, fault, outlasting=True)():
        dispatched, report = scheduler.tick()
    adv = item(advertiser_id)
    if dispatched != 1:
        v.append(f"the dispatcher queued {dispatched} jobs instead of 1")
    if adv["status"] != "connected":
        v.append(f"status {adv['status']!r} ({adv.get('status_reason', '')}) after a transient fault")
        cell.outlasting = adv["status"]
        return
    if not refresh_token_accepted(stack, (tokens(advertiser_id) or {}).get("refresh_token")):
        v.append("the refresh secret holds no token LwA accepts (refresh token lost)")
    if report.failed:
        error = adv.get("last_refresh_error", "")
        cell.outlasting = f"job failed:{error or 'no reason'}"
        if not error:
            v.append("the job failed but last_refresh_error is empty")
        if step == "token exchange" and error != "lwa_unavailable":
            v.append(f"LwA unavailable should read lwa_unavailable, not {error!r}")
        if scheduler.depth() != 1:
            v.append("the failed job is not waiting in the queue for redelivery")
        scheduler.redeliver()  # its visibility timeout passes
        again = scheduler.drain()
        cell.recovery = "redelivery"
        if (again.processed, again.failed) != (1, 0):
            v.append(f"the redelivered job did not complete: {again}")
        else:
            v.extend(refreshed_ok(stack, advertiser_id, since))
    else:
        pending = adv["pending_regions"]
        cell.outlasting = f"pending {','.join(pending)}" if pending else "refreshed"
        v.extend(refreshed_ok(stack, advertiser_id, since))
        if step.endswith("profiles") and pending != [step.split()[0]]:
            v.append(f"the failed region is not recorded as pending: {pending}")
        if pending:
            travel(PENDING_RETRY)
            dispatched, report = scheduler.tick()
            adv = item(advertiser_id)
            cell.recovery = "next run"
            if (dispatched, report.processed) != (1, 1) or adv["pending_regions"]:
                v.append(f"the next run did not clear the pending region: dispatched={dispatched}, "
                         f"processed={report.processed}, pending={adv['pending_regions']}")
            else:
                v.extend(grant_problems(stack, advertiser_id, adv))
    if scheduler.depth() or scheduler.depth(stack.dlq_url):
        v.append("jobs left in the refresh queue or its DLQ")


# --- the cells ---------------------------------------------------------------------------------------------
def cells():
    for flow_name in FLOWS:
        for step in STEPS:
            for fault in FAULTS:
                if fault in LWA_ONLY and step != "token exchange":
                    continue  # shown as "not run"
                marks = []
                bug = KNOWN_BUGS.get((flow_name, step, fault))
                if bug:
                    marks.append(pytest.mark.xfail(strict=True, reason=f"bug: {bug}"))
                yield pytest.param(flow_name, step, fault, marks=marks,
                                   id=f"{flow_name}-{step.replace(' ', '_')}-{fault}")


@pytest.mark.parametrize("flow_name,step,fault", list(cells()))
def test_fault_matrix_cell(stack, flow, cell_env, flow_name, step, fault):
    scheduler, travel, made = cell_env
    cell = Cell(flow_name, step, fault)
    started = time.monotonic()
    run = run_onboarding if flow_name == "onboarding" else run_refresh
    try:
        with short_http_timeout(stack, fault in ("timeout", "late") and step not in AWS_STEPS):
            run(stack, flow, cell, step, fault, scheduler, travel, made)
    except Exception as exc:  # the cell could not even finish: that is unrecoverable too
        cell.violations.append(f"the cell raised {type(exc).__name__}: {exc}")
        raise
    finally:
        cell.seconds = time.monotonic() - started
        RESULTS[(flow_name, step, fault)] = cell
        record_faults(1, 1 if cell.violations else 0)  # before asserting: a failure still counts
    assert not cell.violations, "; ".join(cell.violations)


# --- the injector itself ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, error", [("5xx", "InternalServerError"),
                                         ("429", "ProvisionedThroughputExceededException"),
                                         ("timeout", "ReadTimeoutError"), ("reset", "ConnectionClosedError")])
def test_aws_faults_reach_botocore_as_aws_failures_and_are_gone_after_the_block(stack, matrix, mode, error):
    from botocore.exceptions import ClientError

    store = wiring.store()
    key = {"pk": "FAULTS#probe", "sk": mode}
    with aws_fault("dynamodb.PutItem", mode, times=None, match=table_named(TABLE_NAME)) as fault:
        with pytest.raises(Exception) as raised:
            store.table.put_item(Item=key)
        with aws_fault("dynamodb.PutItem", mode, times=1, targets=[store.client.meta.events]) as once:
            pass  # registered and removed again: nothing was called
    code = raised.value.response["Error"]["Code"] if isinstance(raised.value, ClientError) else type(raised.value).__name__
    assert code == error
    assert fault.injected == AWS_ATTEMPTS and fault.calls == ["dynamodb.PutItem"] * AWS_ATTEMPTS  # botocore retried
    assert once.injected == 0 and not fault.active
    store.table.put_item(Item=key)  # the hook is gone
    assert fault.injected == AWS_ATTEMPTS
    with aws_fault("dynamodb.PutItem", mode, times=1, match=table_named("another-table")) as other:
        store.table.put_item(Item=key)  # not the table the fault is for
    assert other.injected == 0
    with aws_fault("dynamodb.PutItem", mode, times=1) as transient:
        store.table.put_item(Item=key)  # one failed attempt, absorbed by botocore's retry
    assert transient.injected == 1
    store.table.delete_item(Key=key)
