"""Small helpers shared by the test files (pytest puts this directory on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from election_operator import local

T = TypeVar("T")


def until(probe: Callable[[], T | None], timeout: float = 5.0, what: str = "condition",
          interval: float = 0.02) -> T:
    """Poll `probe` until it returns something truthy and return that; fail (AssertionError)
    after `timeout` seconds, naming `what` was awaited."""
    return local.until(probe, timeout, what, interval, error=AssertionError)
