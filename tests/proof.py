"""The proof registry: what the suite's hostile tools tried, and what got through.

Every tool writes its counts here and ``tests/conftest.py`` prints them as one line at the end of
the run (``proof_line()``)::

    proof: fuzzed=N 5xx=N attacks=N accepted=N faults=N lost=N leaks=N browser=passed|failed

``fuzzed``    generated requests sent to the live local API (schemathesis and hypothesis)
``5xx``       how many of those were answered with a 5xx
``attacks``   distinct OAuth attacks tried (``record_attack``)
``accepted``  distinct attacks that got through at least once
``faults``    fault-matrix cells run (the fault matrix fills it)
``lost``      fault-matrix cells that lost a refresh token or left an unrecoverable state
``leaks``     sensitive values found by the leak scan (``None`` until the scan ran)
``browser``   ``passed`` / ``failed`` / ``skipped``: the real-browser journey (``None``: not run)

The suite runs in one process (no xdist), so plain module state is the registry.
"""

from __future__ import annotations

import threading
from typing import Any

PROOF: dict[str, Any] = {
    "fuzzed": 0,
    "5xx": 0,
    "fuzzed_by": {},  # tool -> generated requests, for the reader of a failing run
    "attacks": set(),
    "accepted": set(),
    "faults": 0,
    "lost": 0,
    "leaks": None,
    "browser": None,
    "fault_matrix": "",  # the fault matrix as printed (tests/integration/test_fault_matrix.py)
}
_lock = threading.Lock()


def record_request(status: int, *, tool: str) -> None:
    """One generated request reached the API and was answered with ``status``."""
    with _lock:
        PROOF["fuzzed"] += 1
        PROOF["fuzzed_by"][tool] = PROOF["fuzzed_by"].get(tool, 0) + 1
        if status >= 500:
            PROOF["5xx"] += 1


def record_attack(name: str, accepted: bool) -> None:
    """An attack called ``name`` was tried; ``accepted`` says whether it got through.

    Call it with the observed outcome *before* asserting on it, so a regression is counted as
    accepted even though the test then fails."""
    with _lock:
        PROOF["attacks"].add(name)
        if accepted:
            PROOF["accepted"].add(name)


def record_faults(cells: int, lost: int) -> None:
    """The fault matrix ran ``cells`` cells, ``lost`` of which lost data or could not recover."""
    with _lock:
        PROOF["faults"] += cells
        PROOF["lost"] += lost


def record_fault_matrix(text: str) -> None:
    """The fault matrix's table, kept for whoever reports the run (the module prints it too)."""
    with _lock:
        PROOF["fault_matrix"] = text


def record_leaks(count: int) -> None:
    with _lock:
        PROOF["leaks"] = (PROOF["leaks"] or 0) + count


def record_browser(outcome: str) -> None:
    """``passed`` unless any browser test failed; a skip never hides a failure."""
    with _lock:
        current = PROOF["browser"]
        if current == "failed" or (current == "passed" and outcome == "skipped"):
            return
        PROOF["browser"] = outcome


def proof_line() -> str:
    def shown(value: Any) -> str:
        return "n/a" if value is None else str(value)

    return (
        f"proof: fuzzed={PROOF['fuzzed']} 5xx={PROOF['5xx']} attacks={len(PROOF['attacks'])} "
        f"accepted={len(PROOF['accepted'])} faults={PROOF['faults']} lost={PROOF['lost']} "
        f"leaks={shown(PROOF['leaks'])} browser={shown(PROOF['browser'])}"
    )
