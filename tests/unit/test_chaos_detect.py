"""The chaos suite's split-brain detector (bench/_chaos_detect.py) on made-up histories: it
finds each kind of violation it is meant to find, with the reason, and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _chaos_detect as d  # noqa: E402


def pod(process: str) -> str:
    """replica-a.2 -> replica-a: the identity a process writes into the Lease."""
    return process.rsplit(".", 1)[0]


def lw(t: float, writer: str, holder: str | None = None, duration: float = 4) -> d.LeaseWrite:
    return d.LeaseWrite(t, writer, pod(writer) if holder is None else holder, duration)


def w(t: float, writer: str) -> d.Write:
    return d.Write(t, writer, "patch", "deployments", "", "chaos", "memcached-0")


# a-1 leads from 10, renews every second until 15; b-1 takes over at 19.5 (15 + 4 + 0.5),
# renews until 21 and releases at 22; a-2 (a later process of Pod a) takes it at 22.1.
HISTORY = ([lw(10 + i, "a.1") for i in range(6)]
           + [lw(19.5, "b.1"), lw(20.5, "b.1"), lw(21, "b.1"), lw(22, "b.1", holder=""),
              lw(22.1, "a.2"), lw(23, "a.2")])


def fencing(*writes: d.Write) -> d.Judgement:
    j = d.Judgement()
    d.fencing(writes, d.LeaseHistory(HISTORY, pod), j)
    return j


def test_terms_from_the_lease_history() -> None:
    terms = d.LeaseHistory(HISTORY, pod).terms()
    assert [(t.process, t.start, t.last, t.end, t.how) for t in terms] == [
        ("a.1", 10, 15, 19, "expired"),
        ("b.1", 19.5, 22, 22, "released"),
        ("a.2", 22.1, 23, 27, "open"),
    ]
    assert [t.writes for t in terms] == [6, 4, 2]


def test_writes_while_holding_the_lease_are_no_violation() -> None:
    j = fencing(w(10.2, "a.1"), w(18.9, "a.1"), w(19.6, "b.1"), w(21.9, "b.1"),
                w(22.2, "a.2"))
    assert j.violations == []
    assert j.writes_checked == 5
    assert abs(j.oldest_lease_at_write - 3.9) < 1e-9  # a.1 at 18.9, renewed at 15


def test_a_write_after_the_lease_expired_is_a_violation() -> None:
    j = fencing(w(19.2, "a.1"))
    assert [v.write.t for v in j.violations] == [19.2]
    assert "its lease had expired 0.200 s earlier" in j.violations[0].reason


def test_a_write_after_another_replica_took_over_is_a_violation() -> None:
    j = fencing(w(20.0, "a.1"))
    assert j.violations[0].reason == ("the Lease was held by b.1, whose term began 0.500 s "
                                      "earlier")


def test_a_write_of_a_process_after_a_later_process_of_its_pod_took_the_lease() -> None:
    # Same identity in the Lease, but not the same process: a.1's delayed write lands in
    # a.2's term. The audit log's per-process tokens tell them apart.
    j = fencing(w(22.5, "a.1"))
    assert "held by a.2 (a later process of the same Pod)" in j.violations[0].reason


def test_writes_after_a_release_or_before_any_lease_are_violations() -> None:
    j = fencing(w(22.05, "b.1"), w(5.0, "c.1"), w(22.05, "c.1"))
    reasons = [v.reason for v in j.violations]
    assert reasons == ["nobody had written the Lease yet",
                       "it had released the Lease 0.050 s earlier",
                       "b.1 had released the Lease 0.050 s earlier"]


def test_a_follower_never_holds_the_lease() -> None:
    j = fencing(w(12.0, "b.1"), w(12.0, "c.1"))
    assert len(j.violations) == 2
    assert all("held by a.1" in v.reason for v in j.violations)


def judge(spans: dict[str, list[d.Interval]], frozen: dict[str, list[d.Interval]],
          history: list[d.LeaseWrite] = HISTORY, stale_bound: float = 1.0) -> d.Judgement:
    j = d.Judgement()
    d.overlaps(spans, frozen, d.LeaseHistory(history, pod), stale_bound, j)
    return j


def test_two_replicas_reconciling_at_once_is_an_overlap() -> None:
    j = judge({"a.1": [(10.5, 12.0), (18.0, 20.0)], "b.1": [(19.6, 21.0)], "c.1": []}, {})
    assert [(o.a, o.b, o.start, o.end) for o in j.overlaps] == [("a.1", "b.1", 19.6, 20.0)]


def test_a_stopped_replica_does_not_overlap_and_its_stale_tail_is_counted_apart() -> None:
    # a.1 is stopped at 15.5 in the middle of a reconcile and thawed at 21 (its lease gone):
    # the reconcile ends 0.4 s after the SIGCONT (its runs being killed).
    j = judge({"a.1": [(15.0, 21.4)], "b.1": [(19.6, 21.5)]}, {"a.1": [(15.5, 21.0)]})
    assert j.overlaps == []
    assert [(t.process, t.thawed, round(t.length, 3), t.over_bound) for t in j.stale_tails] \
        == [("a.1", 21.0, 0.4, False)]


def test_a_stale_tail_longer_than_the_bound_overlaps_from_the_bound_on() -> None:
    j = judge({"a.1": [(15.0, 23.0)], "b.1": [(19.6, 23.5)]}, {"a.1": [(15.5, 21.0)]})
    assert [t.over_bound for t in j.stale_tails] == [True]
    assert [(o.start, o.end) for o in j.overlaps] == [(22.0, 23.0)]


def test_a_replica_thawed_while_still_holding_the_lease_has_no_stale_tail() -> None:
    j = judge({"a.1": [(10.2, 14.0)]}, {"a.1": [(11.0, 13.0)]})
    assert j.stale_tails == [] and j.overlaps == []


def test_a_reconcile_begun_after_the_thaw_counts_in_full() -> None:
    j = judge({"a.1": [(21.2, 21.8)], "b.1": [(21.0, 21.9)]}, {"a.1": [(15.5, 21.0)]})
    assert [(o.start, o.end) for o in j.overlaps] == [(21.2, 21.8)]


def gaps(history: list[d.LeaseWrite], excused: list[d.Interval], bound: float = 7.2
         ) -> list[d.Gap]:
    j = d.Judgement()
    d.leaderless(d.LeaseHistory(history, pod).terms(), excused, bound, j)
    return j.gaps


def test_no_leader_periods_and_their_bound() -> None:
    history = [lw(10, "a.1"), lw(11, "a.1"), lw(16.0, "b.1"), lw(17, "b.1"), lw(30, "c.1")]
    found = gaps(history, [])
    assert [(g.start, g.end, g.before, g.after, g.over_bound) for g in found] == [
        (11, 16.0, "a.1", "b.1", False), (17, 30, "b.1", "c.1", True)]


def test_an_outage_for_all_excuses_the_time_until_it_ended() -> None:
    history = [lw(10, "a.1"), lw(11, "a.1"), lw(30, "b.1")]
    assert [g.over_bound for g in gaps(history, [(12, 25)])] == [False]
    assert gaps(history, [(12, 25)])[0].counted == 5
    # an early, short outage does not excuse a long wait after it
    assert [g.over_bound for g in gaps(history, [(12, 13)])] == [True]


def test_interval_arithmetic() -> None:
    assert d.union([(3, 4), (1, 2), (1.5, 2.5), (5, 5)]) == [(1, 2.5), (3, 4)]
    assert d.subtract([(0, 10)], [(2, 3), (5, 6)]) == [(0, 2), (3, 5), (6, 10)]
    assert d.intersect([(0, 2), (3, 5)], [(1, 4)]) == [(1, 2), (3, 4)]


def test_handover_is_the_next_term_of_another_process() -> None:
    terms = d.LeaseHistory(HISTORY, pod).terms()
    assert d.handover(terms, 16.0, "a.1").process == "b.1"
    assert d.handover(terms, 21.5, "b.1").process == "a.2"
    assert d.handover(terms, 30.0, "a.2") is None
