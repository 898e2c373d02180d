"""Small helpers shared by the test files (pytest puts this directory on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(probe: Callable[[], T | None], timeout: float = 5.0, what: str = "condition",
          interval: float = 0.02) -> T:
    """Poll `probe` until it returns something truthy and return that; fail after
    `timeout` seconds, naming `what` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
