"""The chaos suite's schedule (bench/_chaos_schedule.py): the same seed gives the same
schedule; faults overlap only as its rules say; each fault does what its name says for the
lease settings (a SIGSTOP outlasts the lease, latency is above the request timeout, ...)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _chaos_schedule as plan  # noqa: E402

LEASE = plan.Lease(4.0, 3.0, 1.0)


def test_same_seed_same_schedule_and_another_seed_another() -> None:
    a = plan.make_schedule(11, 200, 5, LEASE)
    assert a == plan.make_schedule(11, 200, 5, LEASE)
    assert a.faults != plan.make_schedule(12, 200, 5, LEASE).faults


@pytest.mark.parametrize("seed", range(20))
def test_overlap_rules(seed: int) -> None:
    sc = plan.make_schedule(seed, 200, 5, LEASE)
    faults = sc.faults
    assert [f.index for f in faults] == list(range(1, 201))
    assert all(a.start <= b.start for a, b in zip(faults, faults[1:], strict=False))
    for f in faults:
        at = [g for g in faults if g.start <= f.start < g.end or g.start == f.start]
        others = [g for g in at if g.kind != "clock"]
        assert len(others) <= plan.MAX_OVERLAP, (f, others)
        assert sum(g.target == "all" for g in others) <= 1, (f, others)
        assert sum(g.kind == "clock" for g in at) <= 1, (f, at)


def test_every_kind_comes_first_and_durations_fit_the_lease() -> None:
    sc = plan.make_schedule(3, 40, 4, LEASE)
    assert sorted(f.kind for f in sc.faults[:len(plan.KINDS)]) == sorted(plan.KINDS)
    for f in plan.make_schedule(4, 300, 4, LEASE).faults:
        if f.kind in plan.INSTANT:
            assert f.duration == 0
        if f.kind == "sigstop":
            assert f.duration > LEASE.duration
        if f.kind == "outage":
            assert f.duration > LEASE.renew_deadline and f.target == "all"
            assert f.action in ("error", "refuse")
        if f.kind == "partition":
            assert f.duration > LEASE.duration and f.target != "all"
        if f.kind == "latency":
            assert LEASE.request_timeout < f.latency <= LEASE.duration - LEASE.retry_period - 1
        if f.kind == "burst":
            assert f.code in (500, 429, 503)
        if f.kind == "clock":
            assert f.clock[0] in "+-" and f.duration >= 5 * LEASE.duration


def test_size_changes_last_as_long_as_the_faults() -> None:
    sc = plan.make_schedule(5, 30, 3, LEASE, max_size=4)
    assert sc.changes and sc.changes[-1].t < sc.length
    assert all(0 <= c.size <= 4 and 0 <= c.cr < 3 for c in sc.changes)
    sizes = list(sc.initial_sizes)
    for c in sc.changes:
        assert c.size != sizes[c.cr]
        sizes[c.cr] = c.size
    assert sizes == sc.final_sizes()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="faults must be 1 or more, got 0"):
        plan.make_schedule(1, 0, 3)
    with pytest.raises(ValueError, match="crs must be 1 or more"):
        plan.make_schedule(1, 5, 0)
