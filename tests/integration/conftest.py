"""Integration tests use the session fixtures of ``tests/stack_fixtures.py`` (``stack``, ``flow``,
``browser`` …, made available suite-wide by ``tests/conftest.py``). The helpers are re-exported
here for the tests that import them from this module."""

from __future__ import annotations

from tests.stack_fixtures import Flow, ShiftClock, harvest_sensitive, secret_names, state_items

__all__ = ["Flow", "ShiftClock", "harvest_sensitive", "secret_names", "state_items"]
