"""The outcome of the IAM simulation, for the ``iam:`` line at the end of the run::

    iam: calls=N allowed=N forbidden=M denied=M

``calls``      distinct authorizations the functions' recorded calls need (a call with its KMS and
               tagging side-requests counts each of them)
``allowed``    how many of those the simulator allowed (must equal ``calls``)
``forbidden``  rows of the forbidden table (``tests/iam/forbidden.py``)
``denied``     how many of those it denied (must equal ``forbidden``)
"""

from __future__ import annotations

from typing import Any

IAM: dict[str, Any] = {"calls": None, "allowed": 0, "forbidden": 0, "denied": 0}


def record(*, calls: int, allowed: int, forbidden: int, denied: int) -> None:
    IAM.update(calls=calls, allowed=allowed, forbidden=forbidden, denied=denied)


def iam_line() -> str | None:
    if IAM["calls"] is None:
        return None  # the simulation did not run (a partial run)
    return f"iam: calls={IAM['calls']} allowed={IAM['allowed']} forbidden={IAM['forbidden']} denied={IAM['denied']}"
