# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Status rules for custom resources, shared by the k8s_status module and the runtime.

No Ansible imports here: election-operator uses this module in-process.

Two sets of rules live here, with the behaviour of the tools they replace (spec §3):

- The runtime's conditions (ansible-operator `controller/status`): `set_condition` and the
  three phases `mark_running`, `mark_done` and `mark_error`, which return the new `.status`
  for the runtime to write with a full replace. Other keys of `.status`, and conditions of
  other types (custom ones set with k8s_status), are kept as they are.
- The k8s_status module (operator_sdk.util `k8s_status`): `validate_status_args` (one
  message naming the bad field), `merge_status_conditions`, `object_contains`, and
  `replace_status_conditions` for the replace mode.

Times are strings `YYYY-MM-DDTHH:MM:SSZ` (`format_time`); every function that stamps one
takes `now` as an argument, so callers (and tests) decide the clock.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

# Condition types, reasons and messages of the runtime (fixed strings, spec §3).
RUNNING = "Running"
SUCCESSFUL = "Successful"
FAILURE = "Failure"
REASON_RUNNING = "Running"
REASON_SUCCESSFUL = "Successful"
REASON_FAILED = "Failed"
MSG_RUNNING = "Running reconciliation"
MSG_AWAITING = "Awaiting next reconciliation"
MSG_SUCCEEDED = "Last reconciliation succeeded"

CONDITION_STATUSES = ("True", "False", "Unknown")
CONDITION_KEYS = ("type", "status", "reason", "message", "lastHeartbeatTime",
                  "lastTransitionTime")
TIME_KEYS = ("lastHeartbeatTime", "lastTransitionTime")

# k8s_status documents reasons as `^(?:[A-Z]*[a-z]*)+$`. That pattern matches exactly the
# strings of ASCII letters, and its nested quantifiers backtrack exponentially on a long
# near-miss ("Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"), so the equivalent flat pattern is used.
_REASON = re.compile(r"[A-Za-z]*")
REASON_PATTERN = "^(?:[A-Z]*[a-z]*)+$"
# What k8s_status accepts as RFC 3339 (it also takes a space for the T, as
# `date --rfc-3339=seconds` prints, and minutes without seconds); the field values are
# range-checked on top.
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d)(?::(\d\d))?(\.\d+)?"
                      r"([Zz]|[+-](\d\d):(\d\d))")


class StatusArgError(ValueError):
    """A status or condition argument is invalid; the message names the field."""


# ------------------------------------------------------------------ time

def format_time(dt: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` in UTC (metav1.Time's JSON form); naive times are UTC."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_time() -> str:
    """The current time as `format_time` writes it."""
    return format_time(datetime.now(UTC))


def is_rfc3339(value: Any) -> bool:
    """Whether `value` is a date-time string k8s_status accepts (see `_RFC3339`)."""
    if not isinstance(value, str):
        return False
    m = _RFC3339.fullmatch(value)
    if not m:
        return False
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    try:
        datetime(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        return False
    if m.group(9) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return False
    return True


# ---------------------------------------------------------------- runtime conditions

def new_condition(ctype: str, status: str, reason: str, message: str, now: str,
                  ansible_result: dict[str, Any] | None = None) -> dict[str, Any]:
    """A runtime condition, keys in the order ansible-operator writes them."""
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastTransitionTime": now}
    if ansible_result is not None:
        cond["ansibleResult"] = dict(ansible_result)
    cond["reason"] = reason
    cond["message"] = message
    return cond


def get_condition(conditions: list[Any], ctype: str) -> dict[str, Any] | None:
    """The first condition of type `ctype`, or None."""
    for c in conditions:
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def set_condition(conditions: list[Any], cond: dict[str, Any], now: str) -> list[Any]:
    """ansible-operator's SetCondition, on a copy of `conditions`.

    - No-op when a condition of that type has the same status and reason, unless the type
      is `Failure`, which is always replaced.
    - The old `lastTransitionTime` is kept when the status is unchanged; otherwise the new
      condition carries `now` (a status change is a transition).
    - The old entry is removed and the new one appended, so the list order changes.
    """
    conditions = list(conditions or [])
    ctype = cond["type"]
    current = get_condition(conditions, ctype)
    if (current is not None and ctype != FAILURE and current.get("status") == cond["status"]
            and current.get("reason", "") == cond.get("reason", "")):
        return conditions
    new = copy.deepcopy(cond)
    if current is not None and current.get("status") == cond["status"] \
            and current.get("lastTransitionTime"):
        new["lastTransitionTime"] = current["lastTransitionTime"]
    else:
        new["lastTransitionTime"] = now
    kept = [c for c in conditions if not (isinstance(c, dict) and c.get("type") == ctype)]
    return kept + [new]


def _status_copy(status: dict[str, Any] | None) -> tuple[dict[str, Any], list[Any]]:
    out = copy.deepcopy(status) if isinstance(status, dict) else {}
    conditions = out.get("conditions")
    return out, list(conditions) if isinstance(conditions, list) else []


def _to_false(conditions: list[Any], ctype: str, now: str) -> list[Any]:
    """An existing condition of `ctype` set to status False, its reason and message kept."""
    current = get_condition(conditions, ctype)
    if current is None:
        return conditions
    flipped = copy.deepcopy(current)
    flipped["status"] = "False"
    return set_condition(conditions, flipped, now)


def mark_running(status: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """The `.status` to write when a reconcile starts (markRunning)."""
    out, conds = _status_copy(status)
    conds = _to_false(conds, SUCCESSFUL, now)
    conds = set_condition(conds, new_condition(RUNNING, "True", REASON_RUNNING, MSG_RUNNING,
                                               now), now)
    out["conditions"] = conds
    return out


def mark_done(status: dict[str, Any] | None, success: bool, failures: list[str],
              ansible_result: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """The `.status` to write when a run ends (markDone). `failures` are the failed tasks'
    messages, joined with newlines into the Failure condition's message; `ansible_result`
    is the run's `{ok, changed, skipped, failures, completion}` (None without a stats
    event), set on the Running condition after a success and on Failure after a failure."""
    out, conds = _status_copy(status)
    if success:
        conds = set_condition(conds, new_condition(RUNNING, "True", REASON_SUCCESSFUL,
                                                   MSG_AWAITING, now, ansible_result), now)
        conds = set_condition(conds, new_condition(SUCCESSFUL, "True", REASON_SUCCESSFUL,
                                                   MSG_SUCCEEDED, now), now)
        conds = set_condition(conds, new_condition(FAILURE, "False", "", "", now), now)
    else:
        conds = _to_false(conds, RUNNING, now)
        conds = set_condition(conds, new_condition(FAILURE, "True", REASON_FAILED,
                                                   "\n".join(failures), now, ansible_result),
                              now)
        conds = set_condition(conds, new_condition(SUCCESSFUL, "False", "", "", now), now)
    out["conditions"] = conds
    return out


def mark_error(status: dict[str, Any] | None, message: str, now: str) -> dict[str, Any]:
    """The `.status` to write when a reconcile cannot run (markError: a bad annotation, the
    runner failing to start)."""
    out, conds = _status_copy(status)
    conds = _to_false(conds, RUNNING, now)
    conds = _to_false(conds, SUCCESSFUL, now)
    conds = set_condition(conds, new_condition(FAILURE, "True", REASON_FAILED, message, now),
                          now)
    out["conditions"] = conds
    return out


# ---------------------------------------------------------------- k8s_status: validation

def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


def validate_condition(cond: Any, where: str) -> dict[str, Any]:
    """One condition of the `conditions` option, normalised: keys with a null value dropped,
    a boolean status turned into "True"/"False", a numeric message into a string.
    `where` names it in messages (`conditions[0]`)."""
    if not isinstance(cond, dict):
        raise StatusArgError(f"{where} must be an object with at least type and status, got "
                             f"{_kind(cond)}")
    out = {k: v for k, v in cond.items() if v is not None}
    unknown = [str(k) for k in out if k not in CONDITION_KEYS]
    if unknown:
        raise StatusArgError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(sorted(unknown))}; a condition takes "
                             f"{', '.join(CONDITION_KEYS)}")
    if isinstance(out.get("status"), bool):
        out["status"] = "True" if out["status"] else "False"
    for key in ("type", "status"):
        if key not in out or out[key] == "":
            raise StatusArgError(f"{where}.{key} is required")
    if not isinstance(out["type"], str):
        raise StatusArgError(f"{where}.type must be a string, got {_kind(out['type'])}")
    if out["status"] not in CONDITION_STATUSES:
        raise StatusArgError(f"{where}.status must be one of {', '.join(CONDITION_STATUSES)} "
                             f"(or a boolean), got {_kind(out['status'])}")
    reason = out.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise StatusArgError(f"{where}.reason must be a string, got {_kind(reason)}")
        if not _REASON.fullmatch(reason):
            raise StatusArgError(f"{where}.reason must be a single CamelCase word (letters "
                                 f"only, {REASON_PATTERN}), got {reason!r}")
    message = out.get("message")
    if message is not None:
        if isinstance(message, int | float) and not isinstance(message, bool):
            out["message"] = str(message)
        elif not isinstance(message, str):
            raise StatusArgError(f"{where}.message must be a string, got {_kind(message)}")
    for key in TIME_KEYS:
        if key in out and not is_rfc3339(out[key]):
            raise StatusArgError(f"{where}.{key} must be an RFC 3339 date-time such as "
                                 f"2024-01-02T03:04:05Z, got {_kind(out[key])}")
    return out


def _check_types_unique(conditions: list[dict[str, Any]], where: str) -> None:
    seen: dict[str, int] = {}
    for i, c in enumerate(conditions):
        if c["type"] in seen:
            raise StatusArgError(f"{where}[{i}].type {c['type']!r} repeats {where}"
                                 f"[{seen[c['type']]}]; give each condition type once")
        seen[c["type"]] = i


def validate_status_args(status: Any, conditions: Any) -> dict[str, Any]:
    """The status to set, from the module's `status` and `conditions` options.

    `conditions` are validated strictly (`validate_condition`) and go to
    `status.conditions`. Conditions written directly under `status.conditions` are passed
    through as the user wrote them (as in k8s_status, so fields like `observedGeneration`
    stay possible), except that each must be an object with a `type` (merging needs it) and
    a boolean status is turned into "True"/"False". Giving both is an error.
    Raises StatusArgError naming the field.
    """
    if status is None:
        status = {}
    if not isinstance(status, dict):
        raise StatusArgError(f"status must be an object (a dictionary), got {_kind(status)}")
    out = copy.deepcopy(status)
    if conditions is not None and not isinstance(conditions, list):
        raise StatusArgError(f"conditions must be a list of condition objects, got "
                             f"{_kind(conditions)}")
    if conditions and out.get("conditions"):
        raise StatusArgError("conditions are given both in status.conditions and in the "
                             "conditions option; use one of them")
    if conditions:
        checked = [validate_condition(c, f"conditions[{i}]") for i, c in enumerate(conditions)]
        _check_types_unique(checked, "conditions")
        out["conditions"] = checked
    elif out.get("conditions") is not None:
        raw = out["conditions"]
        if not isinstance(raw, list):
            raise StatusArgError(f"status.conditions must be a list of condition objects, got "
                                 f"{_kind(raw)}")
        for i, c in enumerate(raw):
            where = f"status.conditions[{i}]"
            if not isinstance(c, dict):
                raise StatusArgError(f"{where} must be an object with a type, got {_kind(c)}")
            if not isinstance(c.get("type"), str) or not c["type"]:
                raise StatusArgError(f"{where}.type is required (a non-empty string)")
            if isinstance(c.get("status"), bool):
                c["status"] = "True" if c["status"] else "False"
        _check_types_unique(raw, "status.conditions")
    return out


# ---------------------------------------------------------------- k8s_status: merge rules

def condition_transitioned(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether `new` says something `old` does not: any key of `new` other than
    lastTransitionTime with a different value (keys only in `old` do not count)."""
    return any(k != "lastTransitionTime" and v != old.get(k) for k, v in new.items())


def _stamped(new: dict[str, Any], old: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """`new` with a lastTransitionTime: its own if given, the old one while the status is
    unchanged, `now` when the status changes or the condition is new."""
    if new.get("lastTransitionTime"):
        return new
    out = dict(new)
    if old is not None and old.get("status") == new.get("status") \
            and old.get("lastTransitionTime"):
        out["lastTransitionTime"] = old["lastTransitionTime"]
    else:
        out["lastTransitionTime"] = now
    return out


def merge_status_conditions(old_status: dict[str, Any] | None, new_status: dict[str, Any],
                            now: str) -> dict[str, Any]:
    """k8s_status's merge of the new status's conditions into the current ones.

    Returns a copy of `new_status` whose `conditions` (when it has any) start from the
    current list: a condition of a type already there replaces it only when it has
    transitioned (`condition_transitioned`), otherwise the current one stays as it is; a
    condition of a new type is appended.

    Unlike k8s_status, which never stamps times (so a condition written without
    lastTransitionTime has none, and one whose status flips keeps a stale one), a written
    condition without lastTransitionTime gets the current one while its status is
    unchanged and `now` when its status changes or it is new.
    """
    out = copy.deepcopy(new_status)
    new_conds = out.get("conditions")
    if not new_conds:
        return out
    old_conds = (old_status or {}).get("conditions")
    old_conds = [c for c in old_conds if isinstance(c, dict)] \
        if isinstance(old_conds, list) else []
    merged = copy.deepcopy(old_conds)
    for cond in new_conds:
        idx = next((i for i, c in enumerate(merged) if c.get("type") == cond["type"]), None)
        if idx is None:
            merged.append(_stamped(cond, None, now))
        elif condition_transitioned(merged[idx], cond):
            merged[idx] = _stamped(cond, merged[idx], now)
    out["conditions"] = merged
    return out


def replace_status_conditions(old_status: dict[str, Any] | None, new_status: dict[str, Any],
                              now: str) -> dict[str, Any]:
    """The status for replace mode: exactly `new_status`, its conditions stamped like
    `merge_status_conditions` does (the current lastTransitionTime while a condition's
    status is unchanged, `now` otherwise), so replacing with the same content twice is not a
    change."""
    out = copy.deepcopy(new_status)
    new_conds = out.get("conditions")
    if not isinstance(new_conds, list) or not new_conds:
        return out
    old_conds = (old_status or {}).get("conditions")
    old_conds = old_conds if isinstance(old_conds, list) else []
    out["conditions"] = [_stamped(c, get_condition(old_conds, c["type"]), now)
                         for c in new_conds]
    return out


def object_contains(obj: Any, subset: Any, replace_lists: bool = False) -> bool:
    """Whether `obj` already holds everything in `subset` (k8s_status's change test).

    Objects are compared key by key, recursively; a key missing from `obj` counts as null.
    A list holds a list when it contains each of its items (order and extra items do not
    matter) — unless `replace_lists` is true, when lists other than `conditions` must be
    equal. Anything else must be equal. Unlike k8s_status, a key whose current and new
    values have different types compares unequal instead of crashing the module.
    """
    if not isinstance(obj, dict) or not isinstance(subset, dict):
        return obj == subset
    for key, want in subset.items():
        have = obj.get(key)
        if isinstance(have, dict) and isinstance(want, dict):
            if not object_contains(have, want, replace_lists):
                return False
        elif isinstance(have, list) and isinstance(want, list) \
                and not (replace_lists and key != "conditions"):
            if not all(item in have for item in want):
                return False
        elif have != want:
            return False
    return True


__all__ = [
    "FAILURE", "RUNNING", "SUCCESSFUL", "StatusArgError", "format_time", "get_condition",
    "is_rfc3339", "mark_done", "mark_error", "mark_running", "merge_status_conditions",
    "new_condition", "now_time", "object_contains", "replace_status_conditions",
    "set_condition", "validate_condition", "validate_status_args",
]
