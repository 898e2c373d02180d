"""Leader for life (plugins/module_utils/leader_for_life.py), deterministically.

Everything runs against an in-memory `LifeAPI`: Pods, ConfigMaps and Nodes with UIDs,
create-if-absent (LostRace when the lock exists), deletes with a UID precondition (False
on NotFound or a UID mismatch), a garbage collector that removes a lock some time after its
owner Pod goes, failure injection (transient 500/503/network, permanent 403) with the
messages kube.describe_error gives, and scripted changes at given fake times. The clock,
`sleep` and `wait_for_change` only move a fake clock; `rng` is scripted. No real sleeping.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from ansible_collections.election.kubernetes.plugins.module_utils import kube
from ansible_collections.election.kubernetes.plugins.module_utils import (
    leader_for_life as lfl,
)

NS = "election"
LOCK = "app-lock"
SERVER = "https://10.0.0.1:6443"
T0 = 1000.0
NO_GC = None

# which request each LifeAPI method makes, for the error messages
TARGETS = {
    "get_pod": ("get", "pods"), "delete_pod": ("delete", "pods"),
    "get_configmap": ("get", "configmaps"), "create_configmap": ("create", "configmaps"),
    "delete_configmap": ("delete", "configmaps"), "get_node": ("get", "nodes"),
}
WRITES = ("create_configmap", "delete_pod", "delete_configmap")
REASONS = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}


# ---------------------------------------------------------------- fakes


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def api_failure(method: str, name: str, status: int | None) -> kube.ApiFailure:
    """The ApiFailure KubeLifeAPI would raise (through kube.describe_error)."""
    verb, resource = TARGETS[method]
    target = kube.Target(verb, resource, "", name, "" if resource == "nodes" else NS)
    if status is None:
        exc: BaseException = ConnectionRefusedError(111, "Connection refused")
    else:
        exc = ApiException(status=status, reason=REASONS.get(status, "Error"))
        exc.body = json.dumps({"kind": "Status", "code": status,
                               "message": f'{resource} "{name}" is {REASONS.get(status)}'})
    return kube.ApiFailure(kube.describe_error(exc, target, SERVER), status)


class FakeLifeAPI:
    """The cluster as leader-for-life sees it, in dicts, on a fake clock."""

    def __init__(self, gc_delay: float | None = 0.5) -> None:
        self.clock = Clock()
        self.pods: dict[str, dict[str, Any]] = {}
        self.configmaps: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.gc_delay = gc_delay  # None: the garbage collector never runs
        self.calls: list[tuple[float, str, str, str]] = []  # (time, method, name, uid)
        self.writes = 0
        self.fail: dict[str, int | None] = {}  # method -> status (None: network error)
        self.hooks: dict[str, list[Callable[[], None] | None]] = {}  # one-shot, in order
        self.events: list[tuple[float, int, Callable[[], None], bool]] = []
        self.waits: list[float] = []  # seconds asked of wait_for_change
        self.wakeups: list[float] = []  # times wait_for_change returned True
        self.sleeps: list[float] = []
        self.max_calls = 2000  # a loop that never ends fails the test instead of hanging
        self._seq = itertools.count()
        self._uids = itertools.count(1)
        self.add_node("node-1")
        self.add_node("node-2")

    # -- building the cluster (no call recorded)
    def new_uid(self, kind: str) -> str:
        return f"{kind}-uid-{next(self._uids)}"

    def add_pod(self, name: str, phase: str = "Running", reason: str = "",
                node: str = "node-1", deleting: bool = False) -> str:
        uid = self.new_uid(name)
        status: dict[str, Any] = {"phase": phase}
        if reason:
            status["reason"] = reason
        meta: dict[str, Any] = {"name": name, "namespace": NS, "uid": uid}
        if deleting:
            meta["deletionTimestamp"] = "2026-03-01T12:00:00Z"
        self.pods[name] = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                           "spec": {"nodeName": node}, "status": status}
        return uid

    def uid(self, pod: str) -> str:
        return self.pods[pod]["metadata"]["uid"]

    def add_node(self, name: str, ready: str | None = "True") -> None:
        conditions = [] if ready is None else [
            {"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]
        self.nodes[name] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                            "status": {"conditions": conditions}}

    def set_ready(self, node: str, ready: str) -> None:
        self.add_node(node, ready)

    def add_lock(self, *owners: dict[str, Any]) -> str:
        uid = self.new_uid("cm")
        self.configmaps[LOCK] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": LOCK, "namespace": NS, "uid": uid,
                         "ownerReferences": [dict(o) for o in owners]}}
        return uid

    def owner(self, pod: str, uid: str | None = None) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "name": pod,
                "uid": uid if uid is not None else self.uid(pod)}

    def lock_for(self, pod: str) -> str:
        return self.add_lock(self.owner(pod))

    def lock_owner(self) -> list[dict[str, Any]]:
        return self.configmaps[LOCK]["metadata"]["ownerReferences"]

    def remove_pod(self, name: str) -> None:
        """The Pod goes (deleted by someone); the garbage collector follows."""
        self.pods.pop(name, None)
        if self.gc_delay is not None:
            self.at(self.clock.t + self.gc_delay, self.gc)

    def replace_pod(self, name: str, **kw: Any) -> str:
        """A StatefulSet recreates the Pod: same name, new UID."""
        self.remove_pod(name)
        return self.add_pod(name, **kw)

    def gc(self) -> None:
        live = {p["metadata"]["uid"] for p in self.pods.values()}
        for name, cm in list(self.configmaps.items()):
            owners = cm["metadata"].get("ownerReferences") or []
            if owners and not any(o["uid"] in live for o in owners):
                del self.configmaps[name]

    def at(self, t: float, fn: Callable[[], None], wakes: bool = True) -> None:
        """Run `fn` at fake time `t`; `wakes`: a watcher of the lock or leader Pod sees it."""
        heapq.heappush(self.events, (t, next(self._seq), fn, wakes))

    def on(self, method: str, *fns: Callable[[], None] | None) -> None:
        """Run fns[i] just before the i-th next call of `method` (None: nothing)."""
        self.hooks.setdefault(method, []).extend(fns)

    def _run_due(self) -> None:
        while self.events and self.events[0][0] <= self.clock.t:
            _t, _s, fn, _w = heapq.heappop(self.events)
            fn()

    # -- what tests look at
    def times(self, method: str) -> list[float]:
        return [t - T0 for t, m, _n, _u in self.calls if m == method]

    def methods(self) -> list[str]:
        return [m for _t, m, _n, _u in self.calls]

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.clock.t += seconds
        self._run_due()

    # -- LifeAPI
    def _call(self, method: str, name: str, uid: str = "") -> None:
        self._run_due()
        self.calls.append((self.clock.t, method, name, uid))
        if len(self.calls) > self.max_calls:
            raise AssertionError(f"more than {self.max_calls} API calls: a loop never ends")
        if method in WRITES:
            self.writes += 1
        pending = self.hooks.get(method)
        if pending:
            hook = pending.pop(0)
            if hook is not None:
                hook()
        if method in self.fail:
            raise api_failure(method, name, self.fail[method])

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        assert namespace == NS
        self._call("get_pod", name)
        return copy.deepcopy(self.pods.get(name))

    def delete_pod(self, namespace: str, name: str, uid: str) -> bool:
        assert namespace == NS and uid
        self._call("delete_pod", name, uid)
        pod = self.pods.get(name)
        if pod is None or pod["metadata"]["uid"] != uid:
            return False
        self.remove_pod(name)
        return True

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        assert namespace == NS and name == LOCK
        self._call("get_configmap", name)
        return copy.deepcopy(self.configmaps.get(name))

    def create_configmap(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        assert namespace == NS
        name = body["metadata"]["name"]
        self._call("create_configmap", name)
        if name in self.configmaps:
            raise kube.LostRace(f'configmaps "{name}" already exists')
        assert "uid" not in body["metadata"]
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = self.new_uid("cm")
        self.configmaps[name] = obj
        return copy.deepcopy(obj)

    def delete_configmap(self, namespace: str, name: str, uid: str) -> bool:
        assert namespace == NS and uid
        self._call("delete_configmap", name, uid)
        cm = self.configmaps.get(name)
        if cm is None or cm["metadata"]["uid"] != uid:
            return False
        del self.configmaps[name]
        return True

    def get_node(self, name: str) -> dict[str, Any] | None:
        self._call("get_node", name)
        return copy.deepcopy(self.nodes.get(name))

    def wait_for_change(self, namespace: str, lock_name: str, leader_pod: str,
                        seconds: float) -> bool:
        assert namespace == NS and lock_name == LOCK and seconds >= 0
        self.waits.append(seconds)
        self._run_due()
        deadline = self.clock.t + seconds
        due = [t for t, _s, _fn, wakes in self.events if wakes and t <= deadline]
        if due:
            self.clock.t = max(self.clock.t, min(due))
            self._run_due()
            self.wakeups.append(self.clock.t - T0)
            return True
        self.clock.t = deadline
        self._run_due()
        return False


def config(pod: str = "cand-b", **kw: Any) -> lfl.LifeConfig:
    return lfl.LifeConfig(lock_name=LOCK, namespace=NS, pod_name=pod, **kw)


def run(api: FakeLifeAPI, pod: str = "cand-b", *, wait: bool = True, timeout: float = 0,
        check_mode: bool = False, rng: Callable[[], float] = lambda: 0.0,
        **kw: Any) -> lfl.LifeResult:
    logged: list[str] = []
    res = lfl.become(config(pod, **kw), api, wait=wait, timeout=timeout,
                     check_mode=check_mode, clock=api.clock, sleep=api.sleep, rng=rng,
                     log=logged.append)
    assert logged == res.decisions
    for line in res.decisions:  # one line per decision
        assert line and "\n" not in line, line
    assert res.message == (res.decisions[-1] if res.decisions else "")
    return res


def lines(res: lfl.LifeResult, text: str) -> list[str]:
    return [d for d in res.decisions if text in d]


@pytest.fixture
def api() -> FakeLifeAPI:
    return FakeLifeAPI()


@pytest.fixture
def held(api: FakeLifeAPI) -> FakeLifeAPI:
    """cand-a (node-1) holds the lock; cand-b (node-2) is the candidate."""
    api.add_pod("cand-a")
    api.add_pod("cand-b", node="node-2")
    api.lock_for("cand-a")
    return api


# ---------------------------------------------------------------- first leader, second waits


def test_first_candidate_creates_the_lock_owned_by_its_pod(api):
    uid_a = api.add_pod("cand-a")
    res = run(api, "cand-a")
    assert (res.is_leader, res.acquired, res.wrote, res.timed_out) == (True, True, True, False)
    assert (res.holder_name, res.holder_uid) == ("cand-a", uid_a)
    cm = api.configmaps[LOCK]
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == LOCK and cm["metadata"]["namespace"] == NS
    assert cm["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "cand-a", "uid": uid_a}]
    assert "data" not in cm and "binaryData" not in cm
    assert res.lock_uid == cm["metadata"]["uid"]
    assert api.methods() == ["get_pod", "get_configmap", "create_configmap"]
    assert res.attempts == 1 and res.waited == 0 and api.waits == [] and api.sleeps == []
    assert res.decisions == [f"Became the leader: created lock {NS}/{LOCK} owned by Pod cand-a "
                             f"(uid {uid_a})."]


def test_second_candidate_waits_and_reports_the_holder(api):
    uid_a = api.add_pod("cand-a")
    run(api, "cand-a")
    api.add_pod("cand-b", node="node-2")
    writes = api.writes
    res = run(api, "cand-b", wait=False)
    assert (res.is_leader, res.acquired, res.wrote) == (False, False, False)
    assert (res.holder_name, res.holder_uid) == ("cand-a", uid_a)
    assert res.lock_uid == api.configmaps[LOCK]["metadata"]["uid"]
    assert api.writes == writes and res.attempts == 1
    assert res.message == (f"Not the leader: lock {NS}/{LOCK} is held by Pod cand-a (uid "
                           f"{uid_a}); waiting.")
    # waiting for real: it stays a follower, never writes, reports the same holder
    res = run(api, "cand-b", timeout=20)
    assert (res.is_leader, res.timed_out) == (False, True)
    assert (res.holder_name, res.holder_uid) == ("cand-a", uid_a)
    assert api.writes == writes and api.lock_owner()[0]["uid"] == uid_a


def test_two_candidates_failover_when_the_leader_pod_is_deleted(held):
    api = held
    uid_b = api.uid("cand-b")
    api.at(T0 + 30, lambda: api.remove_pod("cand-a"))  # GC 0.5 s later
    res = run(api, "cand-b", rng=lambda: 0.5)
    assert res.is_leader and res.acquired
    assert api.lock_owner() == [api.owner("cand-b", uid_b)]
    assert api.times("create_configmap") == [30.5]  # at once, not at the end of a step


# ---------------------------------------------------------------- restart: decided by UID


def test_restarted_process_in_the_same_pod_is_leader_at_once_without_writing(api):
    uid_a = api.add_pod("cand-a")
    run(api, "cand-a")
    writes, lock_uid = api.writes, api.configmaps[LOCK]["metadata"]["uid"]
    res = run(api, "cand-a")
    assert (res.is_leader, res.acquired, res.wrote, res.would_write) == (True, False, False,
                                                                         False)
    assert (res.holder_name, res.holder_uid, res.lock_uid) == ("cand-a", uid_a, lock_uid)
    assert api.writes == writes and res.attempts == 1 and api.waits == []
    assert res.decisions == [f"Found existing lock {NS}/{LOCK} owned by me (Pod cand-a, uid "
                             f"{uid_a}); continuing as the leader."]
    # check mode says the same, and writes nothing either
    assert run(api, "cand-a", check_mode=True).is_leader and api.writes == writes


def test_new_pod_with_the_same_name_is_not_leader_while_the_old_lock_exists():
    api = FakeLifeAPI(gc_delay=7)
    old_uid = api.add_pod("cand-a")
    run(api, "cand-a")
    new_uid = api.replace_pod("cand-a")  # StatefulSet recreates cand-a; GC due in 7 s
    assert new_uid != old_uid
    writes = api.writes
    res = run(api, "cand-a", wait=False)
    assert (res.is_leader, res.acquired) == (False, False)
    assert (res.holder_name, res.holder_uid) == ("cand-a", old_uid)
    assert api.writes == writes
    line, = lines(res, "earlier Pod named cand-a")
    assert old_uid in line and new_uid in line and "garbage collection" in line
    # operator-lib compared names and would have returned "leader" here; we wait for GC
    res = run(api, "cand-a")
    assert (res.is_leader, res.acquired) == (True, True)
    assert api.lock_owner() == [api.owner("cand-a", new_uid)]
    assert api.times("create_configmap")[-1] == pytest.approx(7.0)
    assert res.holder_uid == new_uid


def test_restart_detection_ignores_a_second_owner_with_my_name_but_not_my_uid(api):
    api.gc_delay = NO_GC
    uid_b = api.add_pod("cand-b")
    api.lock_for("cand-b")
    api.replace_pod("cand-b")
    res = run(api, "cand-b", wait=False)
    assert not res.is_leader and res.holder_uid == uid_b


# ---------------------------------------------------------------- backoff


def test_backoff_doubles_from_one_second_to_the_default_cap():
    assert lfl.DEFAULT_MAX_BACKOFF == 16
    steps = list(itertools.islice(lfl.backoff_steps(16), 8))
    assert steps == [1, 2, 4, 8, 16, 16, 16, 16]


@pytest.mark.parametrize("cap, expected", [
    (10, [1, 2, 4, 8, 10, 10, 10]),
    (3, [1, 2, 3, 3, 3, 3, 3]),
    (1, [1, 1, 1, 1, 1, 1, 1]),
    (1.5, [1, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5]),
    (17, [1, 2, 4, 8, 16, 17, 17]),
    (16.0, [1, 2, 4, 8, 16, 16, 16]),
])
def test_backoff_cap_is_exact_for_any_cap(cap, expected):
    steps = list(itertools.islice(lfl.backoff_steps(cap), 7))
    assert steps == expected
    assert max(steps) == cap  # reached exactly, never overshot (operator-lib: 10 -> 16)


def test_jitter_is_zero_to_twenty_percent():
    for step in (1, 2, 4, 8, 10, 16):
        assert lfl.jitter(step, lambda: 0.0) == step
        hi = lfl.jitter(step, lambda: 0.999)
        assert step <= hi < 1.2 * step
        assert hi == pytest.approx(step * 1.1998)


@pytest.mark.parametrize("cap, expected", [(16, [1, 2, 4, 8, 16, 16]),
                                           (10, [1, 2, 4, 8, 10, 10])])
@pytest.mark.parametrize("r", [0.0, 0.999])
def test_waiting_candidate_sleeps_the_jittered_backoff(held, cap, expected, r):
    res = run(held, "cand-b", timeout=120, rng=lambda: r, max_backoff=cap)
    assert res.timed_out and not res.is_leader
    waits = held.waits[:-1]  # the last one is cut short by the timeout
    assert len(waits) >= 6
    for got, step in zip(waits, expected + [cap] * (len(waits) - 6), strict=True):
        assert step <= got < 1.2 * step
        if r == 0:
            assert got == step
    assert all(w < 1.2 * cap for w in held.waits)
    # attempts are spaced by those waits (no early wake-up: nothing changed)
    gaps = [b - a for a, b in itertools.pairwise(held.times("get_configmap"))]
    assert gaps[:6] == pytest.approx(held.waits[:6])


def test_rng_extremes_give_the_documented_sequence(held):
    run(held, "cand-b", timeout=120, rng=itertools.cycle([0.0, 0.999]).__next__)
    assert held.waits[:6] == pytest.approx([1, 2 * 1.1998, 4, 8 * 1.1998, 16, 16 * 1.1998])


@pytest.mark.parametrize("cap", [0.999, 0.5, 0, -1])
def test_max_backoff_below_one_second_is_rejected(api, cap):
    with pytest.raises(lfl.LifeError, match="max_backoff must be at least 1 s"):
        run(api, max_backoff=cap)
    assert api.calls == []


# ---------------------------------------------------------------- errors: no hot loop


@pytest.mark.parametrize("status", [500, 503, 429, None])
@pytest.mark.parametrize("method", ["get_configmap", "get_pod", "create_configmap"])
def test_transient_failure_waits_the_full_backoff_step(api, method, status):
    api.add_pod("cand-b")
    api.fail[method] = status
    # a change is signalled during every error wait: it must not cut the wait short
    for t in (0.2, 1.5, 3.1, 7.01, 15.5):
        api.at(T0 + t, lambda: None, wakes=True)
    api.at(T0 + 20, lambda: api.fail.pop(method), wakes=False)
    res = run(api, "cand-b", timeout=100)
    assert api.waits == [] and api.wakeups == []  # errors never use the wake-up path
    assert api.sleeps == [1, 2, 4, 8, 16]
    times = api.times(method)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == [1, 2, 4, 8, 16] and min(gaps) >= 1
    assert res.is_leader and res.acquired and api.times("create_configmap")[-1] == 31
    assert res.attempts == 6
    verb, resource = TARGETS[method]
    retry = lines(res, "retrying in")
    assert len(retry) == 5
    assert retry[0].startswith(f"cannot {verb} {resource} ")
    assert retry[0].endswith("; retrying in 1.0 s.") and retry[-1].endswith("in 16.0 s.")
    if status is None:
        assert "unreachable (connection refused)" in retry[0]


def test_failing_leader_pod_get_backs_off_too(held):
    api = held
    api.on("get_pod", None, lambda: api.fail.__setitem__("get_pod", 503))
    res = run(api, "cand-b", timeout=10)
    assert res.timed_out and not res.is_leader
    assert api.sleeps == [1, 2, 4, 3]
    assert lines(res, 'cannot get pods "cand-')  # the leader's GET failed first


def test_errors_grow_the_same_backoff_up_to_the_cap(api):
    api.add_pod("cand-b")
    api.fail["get_configmap"] = 503
    res = run(api, "cand-b", timeout=60, max_backoff=10, rng=lambda: 0.999)
    assert res.timed_out
    steps = [1, 2, 4, 8, 10, 10]
    for got, step in zip(api.sleeps, steps, strict=False):
        assert step <= got < 1.2 * step
    assert all(1 <= s < 12 for s in api.sleeps[:-1])


@pytest.mark.parametrize("method, status, words", [
    ("get_configmap", 403, ["forbidden", "grant verb 'get' on resource 'configmaps'"]),
    ("create_configmap", 403, ["forbidden", "grant verb 'create' on resource 'configmaps'"]),
    ("get_pod", 403, ["forbidden", "grant verb 'get' on resource 'pods'"]),
    ("get_configmap", 401, ["rejected the credentials"]),
])
def test_permanent_failure_raises_naming_the_permission(api, method, status, words):
    api.add_pod("cand-b")
    api.fail[method] = status
    with pytest.raises(lfl.LifeError) as err:
        run(api, "cand-b")
    for w in words:
        assert w in str(err.value)
    assert f'"{LOCK}"' in str(err.value) or '"cand-b"' in str(err.value)
    assert api.sleeps == [] and api.waits == [] and len(api.calls) <= 3


def test_forbidden_delete_of_an_evicted_leader_names_delete_pods(held):
    held.pods["cand-a"]["status"].update(phase="Failed", reason="Evicted")
    held.fail["delete_pod"] = 403
    with pytest.raises(lfl.LifeError, match="grant verb 'delete' on resource 'pods'"):
        run(held, "cand-b")
    assert "cand-a" in held.pods


# ---------------------------------------------------------------- terminal leader Pods


@pytest.mark.parametrize("phase, reason, said", [
    ("Failed", "Evicted", "is Failed, reason Evicted; deleting it"),
    ("Failed", "Preempting", "is Failed, reason Preempting; deleting it"),
    ("Succeeded", "", "is Succeeded; deleting it"),
    ("Failed", "", "is Failed; deleting it"),
    ("Failed", "OOMKilled", "is Failed, reason OOMKilled; deleting it"),
])
def test_terminal_leader_pod_is_deleted_and_the_candidate_takes_over(held, phase, reason,
                                                                     said):
    api = held
    uid_a = api.uid("cand-a")
    api.pods["cand-a"]["status"] = {"phase": phase, **({"reason": reason} if reason else {})}
    res = run(api, "cand-b", timeout=60, rng=lambda: 0.999)
    deletes = [(t - T0, n, u) for t, m, n, u in api.calls if m == "delete_pod"]
    assert deletes == [(0.0, "cand-a", uid_a)]  # the UID is the precondition
    assert "cand-a" not in api.pods
    assert res.is_leader and res.acquired and res.wrote
    assert api.times("create_configmap") == [0.5]  # GC 0.5 s later wakes the candidate
    assert api.lock_owner() == [api.owner("cand-b")]
    line, = lines(res, said)
    assert line.startswith("Leader Pod cand-a ")
    assert "get_node" not in api.methods()  # a terminal Pod needs no node check


def test_terminal_leader_pod_being_deleted_is_left_alone(held):
    api = held
    api.pods["cand-a"]["status"].update(phase="Failed", reason="Evicted")
    api.pods["cand-a"]["metadata"]["deletionTimestamp"] = "2026-03-01T12:00:00Z"
    api.set_ready("node-1", "False")  # not even the NotReady path touches it
    res = run(api, "cand-b", timeout=30)
    assert "delete_pod" not in api.methods() and "delete_configmap" not in api.methods()
    assert api.writes == 0 and not res.is_leader and res.timed_out
    assert lines(res, f"held by Pod cand-a (uid {api.uid('cand-a')}); waiting")


def test_delete_precondition_spares_a_replacement_pod(held):
    api = held
    api.gc_delay = NO_GC
    api.pods["cand-a"]["status"].update(phase="Failed", reason="Evicted")
    new = {}
    api.on("delete_pod", lambda: new.setdefault("uid", api.replace_pod("cand-a")))
    res = run(api, "cand-b", wait=False)
    assert not res.is_leader and res.wrote is False
    assert api.uid("cand-a") == new["uid"]  # the new Pod was not deleted


# ---------------------------------------------------------------- NotReady node


@pytest.mark.parametrize("state", ["False", "Unknown"])
def test_not_ready_node_delete_takes_over_in_the_same_call(held, state):
    api = held
    uid_a, lock_uid = api.uid("cand-a"), api.configmaps[LOCK]["metadata"]["uid"]
    api.gc_delay = NO_GC
    api.set_ready("node-1", state)
    res = run(api, "cand-b", node_not_ready="delete")
    assert res.is_leader and res.acquired and res.wrote
    writes = [(m, n, u) for _t, m, n, u in api.calls if m in WRITES]
    assert writes == [("delete_pod", "cand-a", uid_a), ("delete_configmap", LOCK, lock_uid),
                      ("create_configmap", LOCK, "")]
    assert api.waits == [] and api.sleeps == [] and res.waited == 0
    assert api.lock_owner() == [api.owner("cand-b")]
    line, = lines(res, "deleting the Pod and then the lock")
    assert f"Leader Pod cand-a runs on node node-1, which is NotReady (Ready={state})" in line


def test_not_ready_grace_waits_until_the_node_was_not_ready_that_long(held):
    api = held
    api.gc_delay = NO_GC
    api.set_ready("node-1", "False")
    res = run(api, "cand-b", node_not_ready_grace=30, timeout=200)
    # attempts at 0, 1, 3, 7, 15, 31: the first at or after 30 s deletes
    assert api.times("delete_pod") == [31] and api.times("delete_configmap") == [31]
    assert res.is_leader and api.times("create_configmap") == [31]
    assert lines(res, "NotReady (Ready=False) for 15 s of the 30 s grace; waiting.")
    assert len(lines(res, "of the 30 s grace")) == 5


def test_not_ready_grace_restarts_when_the_node_recovers_in_between(held):
    api = held
    api.gc_delay = NO_GC
    api.set_ready("node-1", "False")
    api.at(T0 + 2, lambda: api.set_ready("node-1", "True"), wakes=False)
    api.at(T0 + 10, lambda: api.set_ready("node-1", "False"), wakes=False)
    res = run(api, "cand-b", node_not_ready_grace=30, timeout=200)
    # NotReady again since 10 s (first seen at 15 s): not deleted before 10 + 30 s
    assert res.is_leader
    assert api.times("delete_pod")[0] >= 40


def test_not_ready_grace_is_per_leader_pod(held):
    api = held
    api.gc_delay = NO_GC
    api.set_ready("node-1", "False")

    # at 20 s the leader is replaced by another Pod on the same NotReady node
    def swap() -> None:
        api.pods.pop("cand-a")
        api.add_pod("cand-c")
        api.lock_for("cand-c")

    api.at(T0 + 20, swap, wakes=False)
    run(api, "cand-b", node_not_ready_grace=30, timeout=200)
    # cand-c is first seen NotReady at 31 s: its grace ends at 61 s, attempt at 63 s
    assert api.times("delete_pod") == [63]
    assert [n for _t, m, n, _u in api.calls if m == "delete_pod"] == ["cand-c"]


def test_node_not_ready_wait_deletes_nothing(held):
    api = held
    api.set_ready("node-1", "Unknown")
    res = run(api, "cand-b", node_not_ready="wait", timeout=60)
    assert api.writes == 0 and not res.is_leader and res.timed_out
    assert lines(res, "Leader Pod cand-a runs on node node-1, which is NotReady "
                      "(Ready=Unknown); node_not_ready=wait, so waiting.")


def test_forbidden_node_get_counts_as_ready_and_says_to_grant_get_on_nodes(held):
    api = held
    api.set_ready("node-1", "False")
    api.fail["get_node"] = 403
    res = run(api, "cand-b", wait=False)
    assert api.writes == 0 and not res.is_leader
    line, = lines(res, "Cannot read node node-1")
    assert "treating it as Ready" in line and "Grant get on nodes" in line
    assert "forbidden" in line
    assert res.message.startswith("Not the leader: lock")


def test_node_without_a_ready_condition_counts_as_ready(held):
    # operator-lib deletes only when a Ready condition says so; a node that has not
    # reported yet must not cost the single-leader guarantee
    held.add_node("node-1", ready=None)
    res = run(held, "cand-b", wait=False)
    assert held.writes == 0 and not res.is_leader


def test_missing_node_counts_as_ready(held):
    held.nodes.pop("node-1")
    res = run(held, "cand-b", wait=False)
    assert held.writes == 0 and not res.is_leader


def test_lock_already_deleted_by_another_candidate_is_not_an_error(held):
    api = held
    api.gc_delay = NO_GC
    api.set_ready("node-1", "False")
    api.on("delete_configmap", lambda: api.configmaps.pop(LOCK))
    res = run(api, "cand-b")
    assert res.is_leader and res.acquired
    assert lines(res, f"Lock {NS}/{LOCK} was already gone or replaced; carrying on.")


def test_lock_replaced_by_another_candidate_meanwhile_means_waiting(held):
    api = held
    api.gc_delay = NO_GC
    api.set_ready("node-1", "False")
    api.add_pod("cand-c", node="node-2")

    def other_wins() -> None:
        api.configmaps.pop(LOCK)
        api.lock_for("cand-c")

    api.on("delete_configmap", other_wins)
    res = run(api, "cand-b", wait=False)
    assert not res.is_leader and res.holder_name == "cand-c"
    assert api.lock_owner() == [api.owner("cand-c")]  # the winner's lock was not deleted
    assert lines(res, "already gone or replaced; carrying on.")
    assert res.message.startswith(f"Not the leader: lock {NS}/{LOCK} is held by Pod cand-c")


# ---------------------------------------------------------------- races and odd locks


def test_lost_create_race_inspects_and_waits(api):
    api.add_pod("cand-b", node="node-2")
    uid_c = api.add_pod("cand-c")
    api.on("create_configmap", lambda: api.lock_for("cand-c"))
    res = run(api, "cand-b", wait=False)
    assert not res.is_leader and not res.acquired and res.wrote is False
    assert (res.holder_name, res.holder_uid) == ("cand-c", uid_c)
    assert res.decisions == [
        f"Another candidate created lock {NS}/{LOCK} first; inspecting it.",
        f"Not the leader: lock {NS}/{LOCK} is held by Pod cand-c (uid {uid_c}); waiting."]


def test_lost_create_race_then_lock_gone_tries_again_at_once(api):
    api.add_pod("cand-b")
    api.add_pod("cand-c")
    api.on("create_configmap", lambda: api.lock_for("cand-c"))
    api.on("get_configmap", None, lambda: api.configmaps.pop(LOCK))
    res = run(api, "cand-b")
    assert res.is_leader and res.acquired and api.waits == [] and api.sleeps == []
    assert api.methods().count("create_configmap") == 2


@pytest.mark.parametrize("owners, count", [
    ([], 0),
    ([{"apiVersion": "v1", "kind": "Pod", "name": "cand-a", "uid": "A"},
      {"apiVersion": "v1", "kind": "Pod", "name": "cand-c", "uid": "C"}], 2),
    ([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "op", "uid": "D"}], 1),
    ([{"apiVersion": "v1", "kind": "Pod", "name": "cand-a", "uid": "A"},
      {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "op", "uid": "R"}], 2),
])
def test_lock_without_exactly_one_pod_owner_is_left_alone(api, owners, count):
    api.add_pod("cand-b")
    api.add_pod("cand-a", phase="Failed", reason="Evicted")
    api.add_lock(*owners)
    res = run(api, "cand-b", timeout=20)
    assert not res.is_leader and res.timed_out
    assert api.writes == 0 and api.times("get_pod") == [0]  # only our own Pod
    assert lines(res, f"Lock {NS}/{LOCK} has {count} owner(s), not exactly one Pod; leaving "
                      f"it alone and waiting.")


def test_leader_pod_not_found_waits_for_garbage_collection(held):
    api = held
    uid_a = api.uid("cand-a")
    api.gc_delay = NO_GC
    api.remove_pod("cand-a")
    res = run(api, "cand-b", wait=False)
    assert not res.is_leader and api.writes == 0
    assert (res.holder_name, res.holder_uid) == ("cand-a", uid_a)
    assert res.message == (f"Leader Pod cand-a (uid {uid_a}) is gone; waiting for garbage "
                           f"collection to remove lock {NS}/{LOCK}.")


def test_leader_pod_replaced_by_same_name_other_uid_waits_for_gc(held):
    api = held
    uid_a = api.uid("cand-a")
    api.gc_delay = NO_GC
    new_uid = api.replace_pod("cand-a", phase="Failed", reason="Evicted")
    api.set_ready("node-1", "False")
    res = run(api, "cand-b", timeout=30)
    assert not res.is_leader and api.writes == 0  # the new cand-a is not ours to delete
    assert "cand-a" in api.pods and api.uid("cand-a") == new_uid
    assert lines(res, f"Leader Pod cand-a (uid {uid_a}) is gone; waiting for garbage "
                      f"collection")


# ---------------------------------------------------------------- wake-up


@pytest.mark.parametrize("r", [0.0, 0.999])
def test_wakes_up_when_the_lock_is_deleted(held, r):
    api = held
    api.gc_delay = NO_GC
    api.at(T0 + 5.3, lambda: (api.pods.pop("cand-a"), api.configmaps.pop(LOCK)))
    res = run(api, "cand-b", rng=lambda: r)
    assert res.is_leader and res.acquired
    # the wait that would have run to 7 s (or 7.2 s) is cut short at 5.3 s
    assert api.times("create_configmap") == [pytest.approx(5.3)]
    assert res.waited == pytest.approx(5.3)
    assert api.wakeups == [pytest.approx(5.3)]
    assert lines(res, "change; trying again now.") == [
        f"Saw lock {NS}/{LOCK} or leader Pod cand-a change; trying again now."]


def test_wakes_up_on_the_pod_deletion_then_again_on_gc(held):
    api = held
    api.gc_delay = 0.8
    api.at(T0 + 40, lambda: api.remove_pod("cand-a"))
    res = run(api, "cand-b")
    assert res.is_leader
    assert api.wakeups == [40, pytest.approx(40.8)]
    assert api.times("create_configmap") == [pytest.approx(40.8)]
    assert lines(res, "Leader Pod cand-a")[-1].endswith("waiting for garbage collection to "
                                                        f"remove lock {NS}/{LOCK}.")


# ---------------------------------------------------------------- wait, timeout, check mode


def test_wait_false_makes_one_pass(held):
    res = run(held, "cand-b", wait=False)
    assert res.attempts == 1 and not res.is_leader and not res.timed_out
    assert held.waits == [] and held.sleeps == [] and res.waited == 0


def test_wait_false_with_an_error_returns_without_sleeping(api):
    api.add_pod("cand-b")
    api.fail["get_configmap"] = 503
    res = run(api, "cand-b", wait=False)
    assert res.attempts == 1 and not res.is_leader and api.sleeps == []


def test_timeout_bounds_the_call(held):
    res = run(held, "cand-b", timeout=10)
    assert (res.is_leader, res.timed_out) == (False, True)
    assert held.waits == [1, 2, 4, 3]  # the last wait is cut to the deadline
    assert held.clock.t == T0 + 10 and res.waited == 10
    assert res.message == "Not the leader after 10 s; giving up (timeout)."
    assert res.holder_name == "cand-a"


def test_timeout_with_errors_never_sleeps_past_the_deadline(api):
    api.add_pod("cand-b")
    api.fail["get_configmap"] = None
    res = run(api, "cand-b", timeout=2.5)
    assert res.timed_out and api.sleeps == [1, 1.5] and res.waited == 2.5


def test_check_mode_without_a_lock_writes_nothing(api):
    uid_b = api.add_pod("cand-b")
    res = run(api, "cand-b", check_mode=True)
    assert api.writes == 0 and LOCK not in api.configmaps
    assert (res.would_write, res.wrote, res.is_leader, res.acquired) == (True, False, False,
                                                                         False)
    assert res.message == (f"No lock {NS}/{LOCK}; would create it owned by Pod cand-b (uid "
                           f"{uid_b}) and become the leader (check mode).")


@pytest.mark.parametrize("setup, said", [
    (lambda api: api.pods["cand-a"]["status"].update(phase="Failed", reason="Evicted"),
     "is Failed, reason Evicted; would delete it"),
    (lambda api: api.set_ready("node-1", "False"), "would delete the Pod and the lock"),
])
def test_check_mode_would_delete_writes_nothing_and_returns(held, setup, said):
    setup(held)
    res = run(held, "cand-b", check_mode=True)  # wait=True, no timeout: must still return
    assert held.writes == 0 and "cand-a" in held.pods and LOCK in held.configmaps
    assert res.would_write and not res.wrote and not res.is_leader
    assert lines(res, said) and res.message.endswith("(check mode).")
    assert held.waits == [] and held.sleeps == []


def test_check_mode_waiting_for_a_healthy_leader_writes_nothing(held):
    res = run(held, "cand-b", check_mode=True, timeout=30)
    assert held.writes == 0 and not res.would_write and res.timed_out


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kw, field", [
    ({"lock_name": "App-Lock"}, "lock_name"),
    ({"lock_name": "lock_a"}, "lock_name"),
    ({"lock_name": ""}, "lock_name"),
    ({"lock_name": "a" * 254}, "lock_name"),
    ({"namespace": "Election"}, "namespace"),
    ({"namespace": "a.b"}, "namespace"),
    ({"namespace": "a" * 64}, "namespace"),
    ({"namespace": ""}, "namespace"),
    ({"pod_name": ""}, "pod_name"),
    ({"pod_name": None}, "pod_name"),
    ({"node_not_ready_grace": -1}, "node_not_ready_grace"),
    ({"node_not_ready": "force"}, "node_not_ready"),
    ({"node_not_ready": ""}, "node_not_ready"),
    ({"max_backoff": math.inf}, "max_backoff"),
    ({"max_backoff": math.nan}, "max_backoff"),
    ({"max_backoff": "16"}, "max_backoff"),
    ({"max_backoff": True}, "max_backoff"),
    ({"node_not_ready_grace": math.inf}, "node_not_ready_grace"),
    ({"node_not_ready_grace": math.nan}, "node_not_ready_grace"),
    ({"request_timeout": math.nan}, "request_timeout"),
    ({"request_timeout": 0}, "request_timeout"),
])
def test_invalid_config_raises_naming_the_field(api, kw, field):
    values = {"lock_name": LOCK, "namespace": NS, "pod_name": "cand-b"}
    values.update(kw)
    with pytest.raises(lfl.LifeError) as err:
        lfl.become(lfl.LifeConfig(**values), api, clock=api.clock, sleep=api.sleep)
    assert str(err.value).startswith(field + " ")
    assert api.calls == []


def test_empty_pod_name_message_mentions_pod_name_and_the_downward_api():
    with pytest.raises(lfl.LifeError) as err:
        config("").validate()
    assert "POD_NAME" in str(err.value) and "downward API" in str(err.value)


def test_valid_config_is_accepted():
    c = config("cand-b", max_backoff=1, node_not_ready="wait", node_not_ready_grace=0)
    assert c.validate() is c
    assert lfl.LifeConfig("a.b-c", "kube-system", "p").validate().max_backoff == 16


def test_missing_own_pod_is_an_error_and_nothing_is_written(api):
    with pytest.raises(lfl.LifeError) as err:
        run(api, "cand-x")
    assert str(err.value).startswith(f"Pod cand-x not found in namespace {NS}")
    assert "POD_NAME" in str(err.value)
    assert api.writes == 0 and api.sleeps == [] and api.waits == []
