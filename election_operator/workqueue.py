"""A work queue with controller-runtime's guarantees, for reconcile requests.

- One key is never processed by two workers at once; an add while it is processing marks it
  dirty, and it is queued again when the worker is done (events are coalesced, not lost).
- Repeated adds of a queued key coalesce into one.
- `add_after` requeues later (the reconcile period, requeue_after); an earlier due time wins.
- `add_rate_limited` backs off per key exponentially (failures); `forget` resets it.
- `pause()` stops handing out keys (a follower keeps its queue but dispatches nothing);
  `resume()` hands them out again.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

Key = Hashable


class RateLimiter:
    """Per-key exponential backoff: base x 2^failures, capped."""

    def __init__(self, base: float = 1.0, cap: float = 300.0) -> None:
        self.base, self.cap = base, cap
        self._failures: dict[Key, int] = {}

    def when(self, key: Key) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return min(self.cap, self.base * (2 ** n))

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Key) -> int:
        return self._failures.get(key, 0)


class WorkQueue:
    def __init__(self, rate_limiter: RateLimiter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cond = threading.Condition()
        self._queue: list[Key] = []
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()
        self._delayed: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._seq = itertools.count()
        self._paused = False
        self._shutdown = False
        self.rate_limiter = rate_limiter or RateLimiter()
        self.clock = clock

    # -- adding
    def add(self, key: Key) -> None:
        with self._cond:
            if self._shutdown:
                return
            self._due.pop(key, None)  # an immediate add supersedes a delayed one
            if key in self._processing:
                self._dirty.add(key)
                return
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            due = self.clock() + delay
            current = self._due.get(key)
            if current is not None and current <= due:
                return
            self._due[key] = due
            heapq.heappush(self._delayed, (due, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: Key) -> float:
        delay = self.rate_limiter.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        self.rate_limiter.forget(key)

    # -- taking
    def _promote_due(self) -> float | None:
        """Move due delayed keys into the queue; return seconds to the next due one."""
        now = self.clock()
        while self._delayed:
            due, _, key = self._delayed[0]
            if self._due.get(key) != due:
                heapq.heappop(self._delayed)  # superseded
                continue
            if due > now:
                return due - now
            heapq.heappop(self._delayed)
            del self._due[key]
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
        return None

    def get(self, timeout: float | None = None) -> Key | None:
        """The next key to process (it is now processing), or None on timeout/shutdown."""
        deadline = None if timeout is None else self.clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote_due()
                if self._queue and not self._paused:
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if deadline is not None:
                    left = deadline - self.clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
                    self._cond.notify()

    # -- control
    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"depth": len(self._queue), "processing": len(self._processing),
                    "delayed": len(self._due), "paused": self._paused}

    def processing(self) -> set[Key]:
        with self._cond:
            return set(self._processing)
