"""A time budget for one invocation: every outbound call must be over before it.

The callback runs under two clocks it cannot stretch: its function timeout and API Gateway's 29 s.
A ``Deadline`` is taken from the Lambda context's remaining time minus a margin kept for what must
still happen after the last outbound call (storing the grant, recording the result, answering the
browser). The HTTP client shrinks each attempt's timeouts to what is left and starts no retry that
could not finish (``adapters.http``). No boto3, no HTTP: the domain may hold one.

Where the callback's budget can run out (``Onboarding.within``), and what is left behind:

- before the exchange is sent: nothing is spent; the attempt fails (``out_of_time``, the "retry"
  page) and the claim is let go, so the invitation link works again;
- while the exchange waits for LwA: the code may be spent; the same, as ``amazon_unavailable``
  (the code is never sent twice);
- after the tokens arrived: the grant is stored and the advertiser connected (the margin pays
  for that); the regions whose listing could not finish are pending and the refresher lists them.
"""

from __future__ import annotations

import time
from typing import Callable


class Deadline:
    """A point in ``clock`` time (monotonic by default) by which outbound calls must be done."""

    __slots__ = ("at", "_clock")

    def __init__(self, at: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.at = at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> "Deadline":
        return cls(clock() + seconds, clock)

    @classmethod
    def from_context(cls, context: object, *, margin_seconds: float,
                     clock: Callable[[], float] = time.monotonic) -> "Deadline | None":
        """The Lambda context's remaining time less ``margin_seconds``; None without a context
        that tells its remaining time (a direct call in a test): no budget then."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if not callable(remaining):
            return None
        try:
            millis = float(remaining())
        except (TypeError, ValueError):
            return None
        return cls(clock() + millis / 1000 - margin_seconds, clock)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self._clock()

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f}s)"
