"""Suite-wide: capture every log record, and remember every sensitive value the tests handle, so
the last test can prove that none of them ever reached a log line; share one local stack
(``tests/stack_fixtures.py``) with every test that asks for it; end the run with the proof line."""

from __future__ import annotations

import json
import logging
import os
import threading

import pytest
from hypothesis import settings as hypothesis_settings

# Records every AWS call each function makes, for the IAM simulation (tests/iam, the iam: line).
pytest_plugins = ("tests.iam.recorder",)

CAPTURED: list[str] = []
SENSITIVE: set[str] = set()
_lock = threading.Lock()
_original_handle = logging.Logger.handle


def _capturing_handle(self: logging.Logger, record: logging.LogRecord) -> None:
    # Logger.handle sees every record of every logger (Powertools' too, which don't propagate),
    # before any level filter of a handler: the strictest possible capture.
    try:
        text = record.getMessage()
    except Exception:  # a malformed record is still scanned by its raw parts
        text = f"{record.msg!r} {record.args!r}"
    extras = json.dumps({k: v for k, v in record.__dict__.items() if k not in ("args", "msg")}, default=str)
    exc = ""
    if record.exc_info and record.exc_info[1] is not None:
        exc = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    with _lock:
        CAPTURED.append(f"{record.name} {text} {extras} {exc}")
    _original_handle(self, record)


# Property tests: no per-example deadline (a loaded 2-core CI machine is not a bug); CI runs the
# same examples every time, so a red build reproduces; locally hypothesis keeps exploring.
hypothesis_settings.register_profile("adsauth", deadline=None, derandomize=os.environ.get("CI") == "true")
hypothesis_settings.load_profile("adsauth")


def pytest_configure(config: pytest.Config) -> None:
    logging.Logger.handle = _capturing_handle  # type: ignore[method-assign]
    from tests import dynamo_strict

    dynamo_strict.install()  # DynamoDB's own check on unused placeholders, which moto skips


def remember(*values: str | None) -> None:
    """Register values that must never be logged (tokens, codes, states, verifiers, secrets)."""
    with _lock:
        SENSITIVE.update(v for v in values if v and len(v) >= 8)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the real-browser journey runs after the other tests (the infrastructure tests synthesize
    # before the session stack points the environment at moto), and the leak scan, which looks
    # at what every other test logged, runs last
    def order(item: pytest.Item) -> tuple[bool, bool]:
        e2e = item.path.is_relative_to(config.rootpath / "tests" / "e2e")
        return item.get_closest_marker("last") is not None, e2e

    items.sort(key=order)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config):
    # outermost wrapper: the proof line comes after pytest's short summary, just above its
    # closing "N passed" line
    from tests.proof import proof_line

    try:
        return (yield)
    finally:
        terminalreporter.write_line(proof_line())


# The shared session fixtures (imported here, once, so there is exactly one session stack).
from tests.stack_fixtures import _clean_emulator, browser, emulator_clock, flow, stack  # noqa: E402,F401


