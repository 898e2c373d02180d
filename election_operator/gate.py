"""The leadership gate: whether this replica may reconcile (and write) right now.

Modes:
- `lease`: a LeaseCampaign (plugins/module_utils/lease.py) campaigns in the background.
  This replica is valid only while it leads AND the local deadline (last successful renew +
  renew_deadline, on this host's monotonic clock) has not passed. A watchdog thread fires
  `on_lost` at that deadline by itself, even if the renewing thread is stuck, so in-flight
  work is killed on time; the fencing proxy asks `is_valid()` before every request.
- `life`: leader for life (plugins/module_utils/leader_for_life.py): `become()` blocks until
  this Pod leads, and then it leads until the Pod is deleted.
- `none`: always valid (a single replica, or development).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("election_operator.gate")


class LeadershipGate:
    def __init__(self, mode: str, on_started: Callable[[], None],
                 on_lost: Callable[[str], None], clock: Callable[[], float] = time.monotonic
                 ) -> None:
        if mode not in ("lease", "life", "none"):
            raise ValueError(f"election mode must be lease, life or none, got {mode!r}")
        self.mode = mode
        self.on_started = on_started
        self.on_lost = on_lost
        self.clock = clock
        self.campaign: Any = None  # LeaseCampaign in lease mode
        self._leading = threading.Event()
        self._lost_once = threading.Lock()
        self._lost_reason = ""
        self._stop = threading.Event()
        self._term = 0  # increments with each term, so a late watchdog cannot end a new one

    # -- state
    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    @property
    def lost_reason(self) -> str:
        return self._lost_reason

    def deadline(self) -> float:
        """Monotonic time at which this replica's right to act ends (inf if unbounded)."""
        if self.mode != "lease":
            return float("inf")
        return self.campaign.deadline if self.campaign is not None else float("-inf")

    def is_valid(self) -> bool:
        """May this replica act at this instant? (Called before every forwarded request.)"""
        return self._leading.is_set() and self.clock() < self.deadline()

    # -- lease mode
    def attach_campaign(self, campaign: Any) -> None:
        """Use a LeaseCampaign whose callbacks are this gate's `started` and `stopped`."""
        self.campaign = campaign

    def started(self) -> None:
        """Leadership began (the campaign's on_started_leading)."""
        self._term += 1
        self._lost_reason = ""
        self._leading.set()
        if self.mode == "lease":
            threading.Thread(target=self._watchdog, args=(self._term,), name="lease-watchdog",
                             daemon=True).start()
        log.info("became the leader (%s)", self.mode)
        self.on_started()

    def stopped(self, reason: str) -> None:
        """Leadership ended (the campaign's on_stopped_leading, or the watchdog)."""
        with self._lost_once:
            if not self._leading.is_set():
                return
            self._leading.clear()
            self._lost_reason = reason
        log.warning("lost leadership: %s", reason)
        self.on_lost(reason)

    def _watchdog(self, term: int) -> None:
        """End the term at the local deadline unless it was renewed — independently of the
        renewing thread, which may be stuck in a request."""
        while not self._stop.is_set() and self._leading.is_set() and term == self._term:
            left = self.deadline() - self.clock()
            if left <= 0:
                self.stopped("local deadline passed without a successful renew")
                return
            self._stop.wait(min(left, 0.05) if left < 0.5 else min(left - 0.25, 1.0))

    def stop(self) -> None:
        self._stop.set()
