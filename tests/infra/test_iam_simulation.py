"""Least privilege, proven (issue 10, finding 13): every AWS call the functions made during this
run, evaluated by an offline IAM policy simulator against the synthesized policies, must be
allowed; every request of the forbidden table must be denied. Runs after every other test (it
reads what they recorded, ``tests/iam/recorder.py``) and sets the ``iam:`` line.

Templates: the default stack (and its example consumer) for every call; the ``ses_sender``
variant (``AdsAuthDomain``) for ``ses:SendEmail``, the only call the default stack cannot make.
What each role may do, and each policy's size, goes to ``test-artifacts/iam.md``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.iam import verdicts as iam_verdicts
from tests.iam.forbidden import DEPLOYED_ONLY, FORBIDDEN, Row
from tests.iam.recorder import FUNCTIONS, RECORDING, Call
from tests.iam.simulate import Request, World, simulate
from tests.iam.template import Template

pytestmark = pytest.mark.last

REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "iam.md"


@dataclass
class Proof:
    needed: dict[Request, World] = field(default_factory=dict)  # must be allowed
    unmapped: list[Call] = field(default_factory=list)  # calls whose resource the template lacks
    forbidden: dict[Request, Row] = field(default_factory=dict)  # must be denied
    verdicts: dict[Request, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def worlds(synth) -> tuple[World, World]:
    default = Template(synth.template.to_json(), "AdsAuth")
    consumer = Template(synth.consumer_template.to_json(), "AdsAuthExampleConsumer", imports=default.exports())
    with_email = Template(synth.domain_template.to_json(), "AdsAuthDomain")
    return World(default, consumer), World(with_email)


@pytest.fixture(scope="module")
def proof(worlds) -> Proof:
    default, with_email = worlds
    found = Proof()
    for call in sorted(RECORDING.calls, key=Call.describe):
        world = with_email if call.service == "ses" else default
        requests = world.requests(call)
        if requests is None:
            found.unmapped.append(call)
            continue
        found.needed.update((r, world) for r in requests)
    def world_of(row: Row) -> World:
        return with_email if row.action.startswith("ses:") else default

    for row in DEPLOYED_ONLY:
        found.needed.update((r, world_of(row)) for r in world_of(row).row_requests(row, with_kms=True))
    forbidden_worlds = {}
    for row in FORBIDDEN:
        (request,) = world_of(row).row_requests(row, with_kms=False)
        found.forbidden[request] = row
        forbidden_worlds[request] = world_of(row)
    found.verdicts = simulate({**found.needed, **forbidden_worlds})
    allowed = sum(found.verdicts[r] == "Allowed" for r in found.needed)
    denied = sum(found.verdicts[r].endswith("Denied") for r in found.forbidden)
    iam_verdicts.record(
        calls=len(found.needed) + len(found.unmapped), allowed=allowed, forbidden=len(found.forbidden), denied=denied
    )
    _write_report(default, found)
    return found


def test_every_call_a_function_makes_is_allowed(proof):
    failures = [f"denied: {r.label} ({proof.verdicts[r]})" for r in proof.needed if proof.verdicts[r] != "Allowed"]
    failures += [f"denied: {c.describe()} (no such resource in the template)" for c in proof.unmapped]
    failures += [f"denied: {u} (a request the recorder cannot read)" for u in RECORDING.unparsed]
    assert not failures, "\n".join(failures)


def test_every_forbidden_request_is_denied(proof):
    allowed = [f"allowed: {row.why}: {r.label}" for r, row in proof.forbidden.items() if not proof.verdicts[r].endswith("Denied")]
    assert not allowed, "\n".join(allowed)


def test_the_recorder_saw_every_function_when_the_live_suite_ran(request):
    """A recorder that stopped seeing a function would make the first test pass vacuously."""
    root = request.config.rootpath / "tests" / "integration"
    if not any(item.path.is_relative_to(root) for item in request.session.items):
        return  # a run without the integration suite: nothing was meant to be recorded
    assert RECORDING.functions() >= {*FUNCTIONS, "consumer"}, sorted(RECORDING.functions())


def _short(arn: str) -> str:
    """A resource as the report shows it: ``table``, ``index/byKind``, ``secret refresh/*`` …"""
    if arn == "*":
        return "*"
    if ":table/" in arn:
        return "table" + ("/" + arn.split("/", 2)[2] if "/index/" in arn else "")
    if ":secret:" in arn:
        name = arn.split(":secret:", 1)[1]
        return "secret " + (name.split("/advertisers/", 1)[1] if "/advertisers/" in name else "client")
    for kind in ("key", "event-bus", "log-group"):
        if f":{kind}" in arn:
            return kind
    return arn.rsplit(":", 1)[-1]


def _write_report(world: World, found: Proof) -> None:
    """What each role may do (its statements, in short) and its policy's size, and what the
    functions were seen doing, for the closing note."""
    lines = ["# IAM: what each role may do", "", "| role | policy bytes | may |", "|---|---|---|"]
    for name, fn in sorted(world.functions.items()):
        may = []
        for document in fn.identity_policies:
            for statement in document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                condition = statement.get("Condition", {})
                keys = condition.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
                where = ", ".join(sorted({_short(r) for r in resources}))
                note = f" keys {' '.join(keys)}" if keys else (" (by VersionId)" if "Null" in condition else "")
                may.append(f"{' '.join(a.split(':', 1)[1] for a in actions)} on {where}{note}")
        lines.append(f"| {name} | {fn.policy_bytes()} | {'; '.join(may)} |")
    seen: dict[str, set[str]] = defaultdict(set)
    for call in RECORDING.calls:
        seen[call.function].add(f"{call.service}:{call.action}")
    lines += ["", f"## Seen in this run (outside a function: {RECORDING.outside}, injected: {sum(RECORDING.injected.values())} {dict(sorted(RECORDING.injected.items()))})", ""]
    lines += [f"- {fn}: {', '.join(sorted(a))}" for fn, a in sorted(seen.items())]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
