"""The status rules of plugins/module_utils/status.py: the runtime's conditions (spec §3 table
and SetCondition), and k8s_status's validation, condition merge and change test."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ansible_collections.election.kubernetes.plugins.module_utils import status as st

T0, T1, T2 = "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"
RESULT = {"ok": 3, "changed": 1, "skipped": 0, "failures": 0,
          "completion": "2024-01-01T00:00:59.5+00:00"}


def types(status: dict[str, Any]) -> list[str]:
    return [c["type"] for c in status["conditions"]]


def get(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    c = st.get_condition(status["conditions"], ctype)
    assert c is not None, f"no {ctype} condition in {status}"
    return c


# ---------------------------------------------------------------- SetCondition

def test_set_condition_appends_a_new_type_stamped_now() -> None:
    out = st.set_condition([], st.new_condition("Running", "True", "Running", "m", T1), T1)
    assert out == [{"type": "Running", "status": "True", "lastTransitionTime": T1,
                    "reason": "Running", "message": "m"}]


def test_set_condition_same_status_and_reason_is_a_no_op() -> None:
    old = [{"type": "Running", "status": "True", "lastTransitionTime": T0, "reason": "Running",
            "message": "old message"}, {"type": "Other", "status": "True"}]
    out = st.set_condition(old, st.new_condition("Running", "True", "Running", "new", T1,
                                                 RESULT), T1)
    assert out == old, "nothing changes: not the message, not the ansibleResult, not the order"


def test_set_condition_new_reason_replaces_keeps_time_and_moves_to_the_end() -> None:
    old = [{"type": "Running", "status": "True", "lastTransitionTime": T0, "reason": "Running",
            "message": "m"}, {"type": "Other", "status": "True"}]
    snapshot = copy.deepcopy(old)
    out = st.set_condition(old, st.new_condition("Running", "True", "Successful", "done", T1),
                           T1)
    assert types({"conditions": out}) == ["Other", "Running"]
    assert out[1] == {"type": "Running", "status": "True", "lastTransitionTime": T0,
                      "reason": "Successful", "message": "done"}
    assert old == snapshot, "the input list is not modified"


def test_set_condition_status_change_stamps_now() -> None:
    old = [{"type": "Running", "status": "True", "lastTransitionTime": T0, "reason": "Running",
            "message": "m"}]
    out = st.set_condition(old, st.new_condition("Running", "False", "Running", "m", T0), T2)
    assert out[0]["status"] == "False" and out[0]["lastTransitionTime"] == T2


def test_set_condition_failure_is_always_replaced() -> None:
    failure = {"type": "Failure", "status": "False", "lastTransitionTime": T0, "reason": "",
               "message": ""}
    old = [failure, {"type": "Running", "status": "True"}]
    out = st.set_condition(old, st.new_condition("Failure", "False", "", "", T1), T1)
    assert types({"conditions": out}) == ["Running", "Failure"], "removed and appended"
    assert out[1] == failure, "same status: the old lastTransitionTime stays"


# ---------------------------------------------------------------- the spec §3 table

def test_mark_running_on_an_empty_status() -> None:
    assert st.mark_running(None, T0) == {"conditions": [
        {"type": "Running", "status": "True", "lastTransitionTime": T0, "reason": "Running",
         "message": "Running reconciliation"}]}


def test_mark_running_sets_successful_false_and_keeps_everything_else() -> None:
    custom = {"type": "Available", "status": "True", "reason": "Up",
              "lastHeartbeatTime": T0, "observedGeneration": 4}
    failure = {"type": "Failure", "status": "True", "lastTransitionTime": T0,
               "reason": "Failed", "message": "boom"}
    before = {"nodes": ["a"], "conditions": [
        custom, failure,
        {"type": "Running", "status": "True", "lastTransitionTime": T0,
         "ansibleResult": RESULT, "reason": "Successful",
         "message": "Awaiting next reconciliation"},
        {"type": "Successful", "status": "True", "lastTransitionTime": T0,
         "reason": "Successful", "message": "Last reconciliation succeeded"}]}
    snapshot = copy.deepcopy(before)
    out = st.mark_running(before, T1)
    assert before == snapshot, "the input status is not modified"
    assert out["nodes"] == ["a"], "other status keys are preserved"
    assert types(out) == ["Available", "Failure", "Successful", "Running"]
    assert out["conditions"][0] == custom, "custom conditions are not touched"
    assert get(out, "Failure") == failure, "markRunning leaves Failure alone"
    assert get(out, "Successful") == {
        "type": "Successful", "status": "False", "lastTransitionTime": T1,
        "reason": "Successful", "message": "Last reconciliation succeeded"}, \
        "Successful -> False, reason kept"
    assert get(out, "Running") == {
        "type": "Running", "status": "True", "lastTransitionTime": T0, "reason": "Running",
        "message": "Running reconciliation"}, "Running=True/Running; status unchanged: time kept"


def test_mark_running_twice_changes_nothing() -> None:
    once = st.mark_running({}, T0)
    assert st.mark_running(once, T1) == once


def test_mark_done_success() -> None:
    running = st.mark_running({"custom": 1}, T0)
    out = st.mark_done(running, True, [], RESULT, T1)
    assert out["custom"] == 1
    assert types(out) == ["Running", "Successful", "Failure"]
    assert get(out, "Running") == {
        "type": "Running", "status": "True", "lastTransitionTime": T0,
        "ansibleResult": RESULT, "reason": "Successful",
        "message": "Awaiting next reconciliation"}
    assert get(out, "Successful") == {
        "type": "Successful", "status": "True", "lastTransitionTime": T1,
        "reason": "Successful", "message": "Last reconciliation succeeded"}
    assert get(out, "Failure") == {"type": "Failure", "status": "False",
                                   "lastTransitionTime": T1, "reason": "", "message": ""}


def test_mark_done_failure() -> None:
    running = st.mark_running(st.mark_done(st.mark_running({}, T0), True, [], RESULT, T0), T1)
    failed = dict(RESULT, failures=2)
    out = st.mark_done(running, False, ["first task failed", "second one too"], failed, T2)
    assert get(out, "Running") == {
        "type": "Running", "status": "False", "lastTransitionTime": T2, "reason": "Running",
        "message": "Running reconciliation"}, "Running -> False"
    assert get(out, "Failure") == {
        "type": "Failure", "status": "True", "lastTransitionTime": T2,
        "ansibleResult": failed, "reason": "Failed",
        "message": "first task failed\nsecond one too"}
    assert get(out, "Successful") == {
        "type": "Successful", "status": "False", "lastTransitionTime": T1, "reason": "",
        "message": ""}, "False since markRunning: its time stays"
    assert types(out) == ["Running", "Failure", "Successful"]


def test_mark_done_failure_without_a_running_condition() -> None:
    out = st.mark_done({}, False, ["x"], None, T0)
    assert types(out) == ["Failure", "Successful"]
    assert "ansibleResult" not in get(out, "Failure")


def test_mark_error() -> None:
    done = st.mark_done(st.mark_running({"k": "v"}, T0), True, [], RESULT, T0)
    out = st.mark_error(done, "bad annotation ansible.sdk.operatorframework.io/verbosity", T1)
    assert out["k"] == "v"
    assert (get(out, "Running")["status"], get(out, "Running")["reason"]) == ("False",
                                                                             "Successful")
    assert (get(out, "Successful")["status"], get(out, "Successful")["reason"]) == (
        "False", "Successful")
    assert get(out, "Failure") == {
        "type": "Failure", "status": "True", "lastTransitionTime": T1, "reason": "Failed",
        "message": "bad annotation ansible.sdk.operatorframework.io/verbosity"}
    assert types(out)[-1] == "Failure"


def test_mark_error_on_an_empty_status_adds_only_failure() -> None:
    assert st.mark_error({}, "runner did not start", T0) == {"conditions": [
        {"type": "Failure", "status": "True", "lastTransitionTime": T0, "reason": "Failed",
         "message": "runner did not start"}]}


def test_a_garbage_conditions_value_is_replaced() -> None:
    out = st.mark_running({"conditions": "nonsense", "x": 1}, T0)
    assert out["x"] == 1 and types(out) == ["Running"]


# ---------------------------------------------------------------- times

def test_format_time() -> None:
    assert st.format_time(datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)) == \
        "2024-01-02T03:04:05Z"
    east = timezone(timedelta(hours=2))
    assert st.format_time(datetime(2024, 1, 2, 5, 4, 5, tzinfo=east)) == "2024-01-02T03:04:05Z"
    now = st.now_time()
    assert abs((datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                - datetime.now(UTC)).total_seconds()) < 5


# ---------------------------------------------------------------- k8s_status validation

def test_validate_merges_conditions_into_status_and_normalises() -> None:
    out = st.validate_status_args({"nodes": ["a"]}, [
        {"type": "Ready", "status": True, "reason": None, "message": 3},
        {"type": "Down", "status": False, "lastTransitionTime": "2024-01-02T03:04:05.5+01:00"}])
    assert out == {"nodes": ["a"], "conditions": [
        {"type": "Ready", "status": "True", "message": "3"},
        {"type": "Down", "status": "False", "lastTransitionTime": "2024-01-02T03:04:05.5+01:00"}]}


def test_validate_leaves_the_arguments_unmodified() -> None:
    status = {"a": {"b": 1}}
    conditions = [{"type": "Ready", "status": True}]
    st.validate_status_args(status, conditions)
    assert status == {"a": {"b": 1}} and conditions == [{"type": "Ready", "status": True}]


def test_status_conditions_pass_through_with_a_type() -> None:
    conds = [{"type": "Ready", "status": True, "observedGeneration": 2, "reason": "any thing"}]
    out = st.validate_status_args({"conditions": conds}, None)
    assert out == {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2,
                                   "reason": "any thing"}]}


@pytest.mark.parametrize("status, conditions, message", [
    (["a"], None, "status must be an object (a dictionary), got a list"),
    ({}, "Ready", "conditions must be a list of condition objects, got the string 'Ready'"),
    ({}, ["Ready"], "conditions[0] must be an object with at least type and status, got the "
                    "string 'Ready'"),
    ({}, [{"type": "A", "status": "True", "foo": 1, "bar": 2}],
     "conditions[0]: unknown keys bar, foo; a condition takes type, status, reason, message, "
     "lastHeartbeatTime, lastTransitionTime"),
    ({}, [{"status": "True"}], "conditions[0].type is required"),
    ({}, [{"type": "A", "status": "True"}, {"type": "B"}], "conditions[1].status is required"),
    ({}, [{"type": "A", "status": ""}], "conditions[0].status is required"),
    ({}, [{"type": 5, "status": "True"}], "conditions[0].type must be a string, got int 5"),
    ({}, [{"type": "A", "status": "true"}],
     "conditions[0].status must be one of True, False, Unknown (or a boolean), got the string "
     "'true'"),
    ({}, [{"type": "A", "status": "True", "reason": "Not_Camel"}],
     "conditions[0].reason must be a single CamelCase word (letters only, "
     "^(?:[A-Z]*[a-z]*)+$), got 'Not_Camel'"),
    ({}, [{"type": "A", "status": "True", "reason": 7}],
     "conditions[0].reason must be a string, got int 7"),
    ({}, [{"type": "A", "status": "True", "message": ["x"]}],
     "conditions[0].message must be a string, got a list"),
    ({}, [{"type": "A", "status": "True", "lastHeartbeatTime": "2024-13-01T00:00:00Z"}],
     "conditions[0].lastHeartbeatTime must be an RFC 3339 date-time such as "
     "2024-01-02T03:04:05Z, got the string '2024-13-01T00:00:00Z'"),
    ({"conditions": [{"type": "A", "status": "True"}]}, [{"type": "B", "status": "True"}],
     "conditions are given both in status.conditions and in the conditions option; use one "
     "of them"),
    ({}, [{"type": "A", "status": "True"}, {"type": "A", "status": "False"}],
     "conditions[1].type 'A' repeats conditions[0]; give each condition type once"),
    ({"conditions": {"type": "A"}}, None,
     "status.conditions must be a list of condition objects, got an object"),
    ({"conditions": [{"status": "True"}]}, None,
     "status.conditions[0].type is required (a non-empty string)"),
    ({"conditions": ["A"]}, None,
     "status.conditions[0] must be an object with a type, got the string 'A'"),
])
def test_validation_messages_name_the_field(status: Any, conditions: Any, message: str) -> None:
    with pytest.raises(st.StatusArgError) as ei:
        st.validate_status_args(status, conditions)
    assert str(ei.value) == message


@pytest.mark.parametrize("value", [
    "2024-01-02T03:04:05Z", "2024-01-02t03:04:05z", "2024-01-02T03:04:05.123456789Z",
    "2024-01-02T03:04:05+05:30", "2024-01-02 03:04:05-01:00", "2024-01-02T03:04Z",
    "2024-02-29T23:59:60Z",
])
def test_rfc3339_accepted(value: str) -> None:
    assert st.is_rfc3339(value)


@pytest.mark.parametrize("value", [
    "2024-01-02", "2024-01-02T03:04:05", "2023-02-29T00:00:00Z", "2024-01-02T24:00:00Z",
    "2024-01-02T03:60:00Z", "2024-01-02T03:04:05+24:00", "yesterday", 1704164645, "",
    "2024-01-02T03:04:05Z trailing",
])
def test_rfc3339_refused(value: Any) -> None:
    assert not st.is_rfc3339(value)


def test_reason_check_is_linear_on_a_long_near_miss() -> None:
    started = time.monotonic()
    with pytest.raises(st.StatusArgError):
        st.validate_condition({"type": "A", "status": "True", "reason": "Aa" * 5000 + "1"},
                              "c")
    assert time.monotonic() - started < 1
    assert st.validate_condition({"type": "A", "status": "True", "reason": ""}, "c")


# ---------------------------------------------------------------- merge_status_conditions

def test_merge_starts_from_the_current_conditions() -> None:
    old = {"conditions": [
        {"type": "A", "status": "True", "reason": "X", "lastTransitionTime": T0},
        {"type": "B", "status": "True", "message": "kept", "lastTransitionTime": T0}]}
    new = {"x": 1, "conditions": [{"type": "C", "status": "False"},
                                  {"type": "A", "status": "True", "reason": "X"}]}
    snapshot = (copy.deepcopy(old), copy.deepcopy(new))
    out = st.merge_status_conditions(old, new, T2)
    assert out == {"x": 1, "conditions": [
        old["conditions"][0], old["conditions"][1],
        {"type": "C", "status": "False", "lastTransitionTime": T2}]}
    assert (old, new) == snapshot


def test_merge_replaces_only_a_transitioned_condition() -> None:
    old = {"conditions": [{"type": "A", "status": "True", "reason": "X", "message": "m",
                           "lastTransitionTime": T0}]}
    # only lastTransitionTime differs: not a transition, the current one stays
    same = st.merge_status_conditions(
        old, {"conditions": [{"type": "A", "status": "True", "lastTransitionTime": T1}]}, T2)
    assert same["conditions"] == old["conditions"]
    # a key only in the current condition does not count either
    fewer = st.merge_status_conditions(old, {"conditions": [{"type": "A", "status": "True"}]},
                                       T2)
    assert fewer["conditions"] == old["conditions"]
    # a new message with the same status replaces it and keeps the time
    msg = st.merge_status_conditions(
        old, {"conditions": [{"type": "A", "status": "True", "message": "n"}]}, T2)
    assert msg["conditions"] == [{"type": "A", "status": "True", "message": "n",
                                  "lastTransitionTime": T0}]
    # a status change stamps now
    flip = st.merge_status_conditions(
        old, {"conditions": [{"type": "A", "status": "False", "reason": "Y"}]}, T2)
    assert flip["conditions"] == [{"type": "A", "status": "False", "reason": "Y",
                                   "lastTransitionTime": T2}]
    # a given lastTransitionTime is used as given
    given = st.merge_status_conditions(
        old, {"conditions": [{"type": "A", "status": "False", "lastTransitionTime": T1}]}, T2)
    assert given["conditions"][0]["lastTransitionTime"] == T1


def test_merge_with_no_current_conditions_stamps_the_new_ones() -> None:
    out = st.merge_status_conditions({"x": 1}, {"conditions": [
        {"type": "A", "status": "True"}, {"type": "B", "status": "True",
                                          "lastTransitionTime": T0}]}, T2)
    assert out == {"conditions": [{"type": "A", "status": "True", "lastTransitionTime": T2},
                                  {"type": "B", "status": "True", "lastTransitionTime": T0}]}


def test_merge_without_new_conditions_returns_the_new_status() -> None:
    old = {"conditions": [{"type": "A", "status": "True"}]}
    assert st.merge_status_conditions(old, {"x": 1}, T2) == {"x": 1}


def test_replace_conditions_keep_time_while_status_is_unchanged() -> None:
    old = {"p": 1, "conditions": [{"type": "A", "status": "True", "lastTransitionTime": T0},
                                  {"type": "B", "status": "True", "lastTransitionTime": T0}]}
    out = st.replace_status_conditions(old, {"conditions": [
        {"type": "A", "status": "True", "reason": "R"}, {"type": "B", "status": "False"},
        {"type": "C", "status": "True"}]}, T2)
    assert out == {"conditions": [
        {"type": "A", "status": "True", "reason": "R", "lastTransitionTime": T0},
        {"type": "B", "status": "False", "lastTransitionTime": T2},
        {"type": "C", "status": "True", "lastTransitionTime": T2}]}
    assert st.replace_status_conditions(old, {"q": 2}, T2) == {"q": 2}


# ---------------------------------------------------------------- object_contains

def test_object_contains_dicts_recursively() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "e": None}
    assert st.object_contains(old, {})
    assert st.object_contains(old, {"a": 1, "b": {"c": 2}})
    assert not st.object_contains(old, {"b": {"c": 3}})
    assert not st.object_contains(old, {"z": 1})
    assert st.object_contains(old, {"z": None}), "a missing key holds null"
    assert st.object_contains(old, {"e": None})


def test_object_contains_lists_as_subsets() -> None:
    old = {"nodes": ["a", "b", "c"], "conditions": [{"type": "A", "status": "True"}],
           "deep": {"items": [1, 2]}}
    assert st.object_contains(old, {"nodes": ["c", "a"]})
    assert not st.object_contains(old, {"nodes": ["a", "d"]})
    assert not st.object_contains(old, {"conditions": [{"type": "A"}]}), "items compare equal"
    assert not st.object_contains(old, {"nodes": ["c", "a"]}, replace_lists=True)
    assert st.object_contains(old, {"nodes": ["a", "b", "c"]}, replace_lists=True)
    assert not st.object_contains(old, {"deep": {"items": [1]}}, replace_lists=True), \
        "replace_lists applies at every depth"
    assert st.object_contains(old, {"conditions": []}, replace_lists=True), \
        "conditions stay subset-compared"


def test_object_contains_with_different_types_is_false() -> None:
    old = {"a": {"b": 1}, "l": [1], "s": "x"}
    assert not st.object_contains(old, {"a": "text"})
    assert not st.object_contains(old, {"l": {"k": 1}})
    assert not st.object_contains(old, {"s": ["x"]})


def test_the_module_change_test_end_to_end() -> None:
    """merge then contains, as k8s_status decides `changed`."""
    current = {"nodes": ["a", "b"], "conditions": [
        {"type": "Ready", "status": "True", "reason": "Up", "lastTransitionTime": T0}]}
    unchanged = st.validate_status_args(
        {"nodes": ["b"]}, [{"type": "Ready", "status": True, "reason": "Up"}])
    assert st.object_contains(current, st.merge_status_conditions(current, unchanged, T2))
    changed = st.validate_status_args(None, [{"type": "Ready", "status": False}])
    assert not st.object_contains(current, st.merge_status_conditions(current, changed, T2))
