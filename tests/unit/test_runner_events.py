"""How election_operator.runner reads a run's job events (spec §2.8-9), on synthetic events."""

from __future__ import annotations

import json
from pathlib import Path

from election_operator.runner import read_events, summarize


def failed(msg: str | None, host: str = "localhost", **data) -> dict:
    res = {} if msg is None else {"msg": msg}
    return {"event": "runner_on_failed", "event_data": {"host": host, "res": res, **data}}


def stats(failures: int = 0, rescued: int = 0, created: str = "2024-05-06T07:08:09.120000+00:00",
          **counts) -> dict:
    data = {"failures": {"localhost": failures}, "rescued": {"localhost": rescued}}
    data.update({k: {"localhost": v} for k, v in counts.items()})
    return {"event": "playbook_on_stats", "created": created, "event_data": data}


def requeue(action: str, period: str, event: str = "runner_on_ok") -> dict:
    return {"event": event, "event_data": {"task_action": action, "res": {"period": period}}}


def test_stats_of_localhost_with_go_formatted_completion() -> None:
    _, s, _, _ = summarize([stats(ok=3, changed=1, skipped=2)])
    assert s == {"ok": 3, "changed": 1, "skipped": 2, "failures": 0,
                 "completion": "2024-05-06T07:08:09.12+00:00"}
    _, s, _, _ = summarize([stats(created="2024-05-06T07:08:09+00:00")])
    assert s["completion"] == "2024-05-06T07:08:09+00:00"
    _, s, _, _ = summarize([{"event": "playbook_on_stats", "created": "2024-05-06T07:08:09Z",
                             "event_data": {"ok": {"other": 4}}}])
    assert s["ok"] == 0 and s["failures"] == 0


def test_no_stats_event_means_no_stats_and_every_unignored_failure() -> None:
    failures, s, _, _ = summarize([failed("a"), failed("b", ignore_errors=True), failed(None)])
    assert s is None
    assert failures == ["a", "unknown playbook failure"]


def test_rescued_failures_are_told_apart_by_the_stats() -> None:
    # A rescued failure, then one that ended the play; the stats count one of each.
    events = [failed("caught"), failed("ignored", ignore_errors=True), failed("fatal"),
              stats(failures=1, rescued=1)]
    assert summarize(events)[0] == ["fatal"]
    # Everything rescued: no failures.
    assert summarize([failed("caught"), stats(failures=0, rescued=1)])[0] == []
    # ansible-operator's own flag is honoured too.
    assert summarize([failed("x", rescued={"localhost": 1})])[0] == []


def test_requeue_after_rules() -> None:
    assert summarize([requeue("requeue_after", "5s")])[2] == 5.0
    assert summarize([requeue("operator_sdk.util.requeue_after", "1h1m")])[2] == 3660.0
    # A failed plain requeue_after does not count, a failed FQCN one does (as in the Go code).
    assert summarize([requeue("requeue_after", "5s", "runner_on_failed")])[2] is None
    assert summarize([requeue("operator_sdk.util.requeue_after", "5s",
                              "runner_on_failed")])[2] == 5.0
    # This collection's module counts when it succeeds, like the plain one.
    assert summarize([requeue("election.kubernetes.requeue_after", "2s")])[2] == 2.0
    assert summarize([requeue("election.kubernetes.requeue_after", "2s",
                              "runner_on_failed")])[2] is None
    # The first one wins; other actions and events without a period do not count.
    events = [requeue("debug", "9s"),
              {"event": "runner_on_ok", "event_data": {"task_action": "requeue_after"}},
              requeue("requeue_after", "2s"), requeue("requeue_after", "3s")]
    assert summarize(events)[2] == 2.0
    # The module accepts "5" (^[hms0-9]*$) but Go's ParseDuration does not: an error.
    _, _, after, error = summarize([requeue("requeue_after", "5")])
    assert after is None and "missing unit" in error


def test_events_are_read_in_counter_order_without_partials(tmp_path: Path) -> None:
    events = tmp_path / "job_events"
    events.mkdir()
    for counter in (1, 2, 10, 11):
        uid = f"0000000{counter:01x}-aaaa-bbbb-cccc-dddddddddddd"
        (events / f"{counter}-{uid}.json").write_text(json.dumps(
            {"counter": counter, "event": f"e{counter}", "event_data": {}}))
    (events / "12345678-aaaa-bbbb-cccc-dddddddddddd-partial.json").write_text('{"counter": 0}')
    (events / "12-eeee.json.tmp").write_text("{")
    (events / "13-ffff.json").write_text("{not json")
    assert [e["event"] for e in read_events(tmp_path)] == ["e1", "e2", "e10", "e11"]
    assert read_events(tmp_path / "missing") == []
