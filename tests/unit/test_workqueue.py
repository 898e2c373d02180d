"""The reconcile work queue and the leadership gate."""

from __future__ import annotations

import threading
import time

from election_operator.gate import LeadershipGate
from election_operator.workqueue import RateLimiter, WorkQueue


def test_repeated_adds_coalesce_into_one_item():
    q = WorkQueue()
    for _ in range(5):
        q.add("ns/a")
    q.add("ns/b")
    assert q.get(0.1) == "ns/a"
    assert q.get(0.1) == "ns/b"
    assert q.get(0.05) is None


def test_a_key_is_never_handed_out_twice_at_once_and_a_change_during_processing_requeues():
    q = WorkQueue()
    q.add("k")
    assert q.get(0.1) == "k"
    q.add("k")  # an event while the reconcile runs
    assert q.get(0.05) is None, "the same key must not run on two workers"
    q.done("k")
    assert q.get(0.1) == "k", "the change seen during processing is not lost"
    q.done("k")
    assert q.get(0.05) is None


def test_add_after_delays_and_an_earlier_due_time_wins():
    q = WorkQueue()
    q.add_after("k", 10)
    q.add_after("k", 0.05)
    start = time.monotonic()
    assert q.get(1) == "k"
    assert 0.04 <= time.monotonic() - start < 0.5
    q.done("k")
    assert q.get(0.1) is None, "the superseded 10 s requeue does not fire again soon"


def test_an_immediate_add_supersedes_a_pending_requeue():
    q = WorkQueue()
    q.add_after("k", 0.05)
    q.add("k")
    assert q.get(0.1) == "k"
    q.done("k")
    assert q.get(0.15) is None


def test_rate_limited_backoff_doubles_and_forget_resets():
    rl = RateLimiter(base=1, cap=10)
    assert [rl.when("k") for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    rl.forget("k")
    assert rl.when("k") == 1


def test_pause_holds_work_and_resume_releases_it():
    q = WorkQueue()
    q.pause()
    q.add("k")
    assert q.get(0.05) is None
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(1)))
    t.start()
    time.sleep(0.05)
    q.resume()
    t.join()
    assert got == ["k"]


def test_shutdown_wakes_waiting_workers():
    q = WorkQueue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    time.sleep(0.02)
    q.shutdown()
    t.join(1)
    assert got == [None]


class _Campaign:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline


def test_gate_is_valid_only_while_leading_and_before_the_local_deadline():
    now = [100.0]
    events = []
    gate = LeadershipGate("lease", lambda: events.append("start"),
                          lambda r: events.append(("lost", r)), clock=lambda: now[0])
    gate.attach_campaign(_Campaign(deadline=110.0))
    assert not gate.is_valid()
    gate.started()
    assert gate.is_valid()
    now[0] = 110.0
    assert not gate.is_valid(), "at the deadline the replica may no longer act"
    gate.stop()


def test_gate_watchdog_ends_the_term_at_the_deadline_without_the_renewing_thread():
    lost = threading.Event()
    reasons = []
    gate = LeadershipGate("lease", lambda: None,
                          lambda r: (reasons.append(r), lost.set()))
    gate.attach_campaign(_Campaign(deadline=time.monotonic() + 0.3))
    gate.started()
    start = time.monotonic()
    assert lost.wait(2)
    assert 0.25 <= time.monotonic() - start < 0.6
    assert "deadline" in reasons[0]
    gate.stopped("late report from the campaign")  # a second report is ignored
    assert len(reasons) == 1


def test_gate_modes_life_and_none_are_valid_while_leading():
    for mode in ("life", "none"):
        gate = LeadershipGate(mode, lambda: None, lambda r: None)
        gate.started()
        assert gate.is_valid()
