"""Acceptance tests of issue 4 (leader for life) against kubesim with its garbage collector and
its scheduler/kubelet stand-in (`sim_workloads`: Nodes kubesim-node-1 and -2).

Timing items run `become()` in-process, in threads, each candidate with its own ApiClient and
User-Agent (its identity in the kubesim audit log); module items run
`election.kubernetes.k8s_leader_become` through ansible-playbook in a subprocess, whose
User-Agent is `election.kubernetes/k8s_leader_become (<pod_name>)`.

Times come from one clock: kubesim runs in this process, so its audit entries' `monotonic`
stamps and the commit times recorded by a store listener (the garbage collector's deletes are
not HTTP requests, so they are not in the audit log) are both `time.monotonic()`. Audit
entries are stamped when a request has been answered. "No later than" bounds get SLACK
seconds where they are not the acceptance bound itself, and every message names its bound.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_harness import BIN, ROOT, Playbooks, module_task
from helpers import until
from kubernetes import client

from ansible_collections.election.kubernetes.plugins.module_utils.kube import make_api_client
from ansible_collections.election.kubernetes.plugins.module_utils.leader_for_life import (
    KubeLifeAPI,
    LifeConfig,
    LifeResult,
    become,
)
from kubesim import KubeSim

NS = "default"
SLACK = 1.0  # added to "no later than" bounds that are not the acceptance bound itself
EARLY = 0.02  # audit stamps are taken after the answer is sent: tolerance on lower bounds
LATENCY = 0.25  # allowance for the requests of one attempt (3 GETs) on a loaded machine
NODE1, NODE2 = "kubesim-node-1", "kubesim-node-2"


def ua(pod: str) -> str:
    """The module's User-Agent for a Pod: its identity in the audit log."""
    return f"election.kubernetes/k8s_leader_become ({pod})"


# ---------------------------------------------------------------- cluster helpers

@pytest.fixture
def core(sim_workloads: KubeSim) -> Iterator[client.CoreV1Api]:
    api = make_api_client({"host": sim_workloads.url}, user_agent="test-driver")
    yield client.CoreV1Api(api)
    api.close()


def make_pod(core: client.CoreV1Api, name: str, node: str = NODE1) -> str:
    """A candidate Pod bound to `node`; returns its UID once the kubelet runs it."""
    core.create_namespaced_pod(NS, {
        "metadata": {"name": name, "labels": {"app": "life-test"}},
        "spec": {"nodeName": node, "containers": [{"name": "op", "image": "op:1"}]}})
    pod = until(lambda: _running(core, name), 5, f"Pod {name} Running")
    return pod.metadata.uid


def _running(core: client.CoreV1Api, name: str) -> Any:
    pod = core.read_namespaced_pod(name, NS)
    return pod if pod.status and pod.status.phase == "Running" else None


def read_cm(core: client.CoreV1Api, name: str) -> Any:
    try:
        return core.read_namespaced_config_map(name, NS)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def pod_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, NS)
    except client.ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


class Deletions:
    """Commit times of DELETED events, from a store listener: exact, and the only record of
    the garbage collector's deletes (they do not go through HTTP)."""

    def __init__(self, sim: KubeSim) -> None:
        self.events: list[tuple[float, str, str]] = []
        sim.store.listeners.append(self._on_event)

    def _on_event(self, ev: Any) -> None:
        if ev.type == "DELETED":
            self.events.append((time.monotonic(), ev.key[1], ev.obj["metadata"]["name"]))

    def time_of(self, resource: str, name: str) -> float | None:
        return next((t for t, r, n in self.events if r == resource and n == name), None)


def requests(sim: KubeSim, identity: str, verb: str | None = None,
             resource: str | None = None, code: int | None = None) -> list[Any]:
    return [e for e in sim.audit.entries(identity=identity)
            if (verb is None or e.verb == verb) and (resource is None or e.resource == resource)
            and (code is None or e.code == code)]


def ok_writes(sim: KubeSim, identity: str) -> list[Any]:
    return [e for e in sim.audit.entries(identity=identity, writes_only=True)
            if 200 <= e.code < 300]


def gaps(entries: list[Any]) -> list[float]:
    return [b.monotonic - a.monotonic for a, b in zip(entries, entries[1:], strict=False)]


class Candidate:
    """One in-process candidate: `become()` on its own ApiClient, in a thread."""

    def __init__(self, sim: KubeSim, pod: str, lock: str, **cfg: Any) -> None:
        self.pod = pod
        self.identity = f"life-test/{pod}"
        self.api_client = make_api_client({"host": sim.url}, user_agent=self.identity)
        self.api = KubeLifeAPI(self.api_client)
        self.cfg = LifeConfig(lock, NS, pod, **cfg)
        self.result: LifeResult | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def run(self, **kw: Any) -> LifeResult:
        return become(self.cfg, self.api, **kw)

    def start(self, **kw: Any) -> Candidate:
        def target() -> None:
            try:
                self.result = self.run(**kw)
            except BaseException as e:  # reported by join()
                self.error = e

        self.thread = threading.Thread(target=target, name=f"candidate-{self.pod}", daemon=True)
        self.thread.start()
        return self

    def join(self, timeout: float = 30) -> LifeResult:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.pod}: become() still running after " \
                                           f"{timeout} s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def close(self) -> None:
        self.api.close()
        self.api_client.close()


@pytest.fixture
def candidates() -> Iterator[list[Candidate]]:
    made: list[Candidate] = []
    yield made
    for c in made:
        c.close()


def candidate(made: list[Candidate], sim: KubeSim, pod: str, lock: str, **cfg: Any
              ) -> Candidate:
    c = Candidate(sim, pod, lock, **cfg)
    made.append(c)
    return c


def woken(decision: str) -> bool:
    """The decision line of a wake-up by the watch ("Saw lock ... change; trying again")."""
    return decision.startswith("Saw ") and "change; trying again now" in decision


def first_attempt_done(sim: KubeSim, c: Candidate, n: int = 1) -> bool:
    """The candidate has inspected the leader `n` times (its node GET ends an attempt)."""
    return len(requests(sim, c.identity, "get", "nodes")) >= n


# ---------------------------------------------------------------- two candidates, failover

def test_second_candidate_takes_over_within_1s_of_the_lock_deletion(
        sim_workloads: KubeSim, core: client.CoreV1Api, candidates: list[Candidate]) -> None:
    """A becomes leader, B waits (backing off); once B sleeps in its 4 s step the leader Pod
    is deleted; GC deletes the lock and B, woken by its watch, creates it within 1 s of the
    lock's deletion (operator-lib would sleep out up to 4.8 s here, up to 19.2 s later on)."""
    sim = sim_workloads
    deletions = Deletions(sim)
    make_pod(core, "tc-a", NODE1)
    uid_b = make_pod(core, "tc-b", NODE2)
    a = candidate(candidates, sim, "tc-a", "tc-lock")
    b = candidate(candidates, sim, "tc-b", "tc-lock")
    ra = a.run(timeout=5)
    assert ra.is_leader and ra.acquired and ra.wrote, ra
    b.start(timeout=25)
    until(lambda: first_attempt_done(sim, b, 3), 6, "tc-b's third attempt (after 1 + 2 s)")
    time.sleep(0.5)  # well inside the 4 s step
    assert b.thread is not None and b.thread.is_alive(), "tc-b must still be waiting"
    assert not ok_writes(sim, b.identity), "tc-b wrote while tc-a led"
    core.delete_namespaced_pod("tc-a", NS)
    rb = b.join(10)
    assert rb.is_leader and rb.acquired, rb
    gone = deletions.time_of("configmaps", "tc-lock")
    assert gone is not None, "GC never deleted the lock"
    created = requests(sim, b.identity, "create", "configmaps", 201)
    assert len(created) == 1, created
    after = created[0].monotonic - gone
    assert 0 < after <= 1.0, f"tc-b created the lock {after:.3f} s after its deletion by GC; " \
                             f"must be within 1 s"
    assert any(woken(d) for d in rb.decisions), rb.decisions  # by its watch, not a timer
    lock = read_cm(core, "tc-lock")
    refs = [(r.api_version, r.kind, r.name, r.uid) for r in lock.metadata.owner_references]
    assert refs == [("v1", "Pod", "tc-b", uid_b)], refs
    assert not lock.data


def test_a_watch_that_starts_late_still_sees_a_deletion_after_the_read(
        sim_workloads: KubeSim, core: client.CoreV1Api, candidates: list[Candidate]) -> None:
    """The lock is deleted right after B's first read, before B's watch is established (its
    watch requests are delayed 0.3 s): the watch starts from the resourceVersion B read, so
    the deletion is replayed and B still takes over within 1 s of it (a watch started from
    "now" misses it, and B sleeps out its first step: 1-1.2 s)."""
    sim = sim_workloads
    deletions = Deletions(sim)
    make_pod(core, "late-a", NODE1)
    make_pod(core, "late-b", NODE2)
    a = candidate(candidates, sim, "late-a", "late-lock")
    b = candidate(candidates, sim, "late-b", "late-lock")
    assert a.run(timeout=5).is_leader
    sim.faults.add({"identity": b.identity, "action": "latency", "seconds": 0.3,
                    "verbs": ["watch"]})
    b.start(timeout=10)
    until(lambda: first_attempt_done(sim, b), 5, "late-b's first attempt", interval=0.002)
    core.delete_namespaced_pod("late-a", NS)
    rb = b.join(10)
    assert rb.is_leader and rb.acquired, rb
    gone = deletions.time_of("configmaps", "late-lock")
    assert gone is not None
    created = requests(sim, b.identity, "create", "configmaps", 201)[0]
    after = created.monotonic - gone
    assert after <= 1.0, f"late-b created the lock {after:.3f} s after its deletion; must be " \
                         f"within 1 s"
    assert any(woken(d) for d in rb.decisions), \
        f"late-b must have been woken by its watch: {rb.decisions}"


# ---------------------------------------------------------------- leader Pods that are done

TERMINAL = {
    "evicted": ({"phase": "Failed", "reason": "Evicted",
                 "message": "The node was low on resource: memory."}, "Failed, reason Evicted"),
    "preempting": ({"phase": "Failed", "reason": "Preempting"}, "Failed, reason Preempting"),
    "succeeded": ({"phase": "Succeeded"}, "is Succeeded"),
}


def test_evicted_preempting_and_succeeded_leaders_are_deleted_and_replaced(
        sim_workloads: KubeSim, core: client.CoreV1Api, candidates: list[Candidate]) -> None:
    """Three locks, each held by a leader Pod, each with a waiting candidate. The leaders'
    status becomes Failed/Evicted, Failed/Preempting and Succeeded (through pods/status, as
    the kubelet writes it): each candidate, woken by the leader Pod's change, deletes that
    Pod (with a UID precondition); GC frees the lock and the candidate takes it."""
    sim = sim_workloads
    pairs: dict[str, tuple[Candidate, Candidate, str]] = {}
    for kind in TERMINAL:
        leader_uid = make_pod(core, f"{kind}-l", NODE1)
        make_pod(core, f"{kind}-c", NODE2)
        leader = candidate(candidates, sim, f"{kind}-l", f"{kind}-lock")
        assert leader.run(timeout=5).is_leader
        pairs[kind] = (leader, candidate(candidates, sim, f"{kind}-c", f"{kind}-lock"),
                       leader_uid)
    for _, cand, _ in pairs.values():
        cand.start(timeout=20)
    for _, cand, _ in pairs.values():
        until(lambda c=cand: first_attempt_done(sim, c), 5, f"{cand.pod} waiting")
    for _, cand, _ in pairs.values():
        assert cand.thread is not None and cand.thread.is_alive()
        assert not ok_writes(sim, cand.identity), f"{cand.pod} wrote while a live Pod led"
    marked = time.monotonic()
    for kind, (status, _) in TERMINAL.items():
        core.patch_namespaced_pod_status(f"{kind}-l", NS, {"status": status})
    for kind, (leader, cand, leader_uid) in pairs.items():
        res = cand.join(15)
        assert res.is_leader and res.acquired, (kind, res)
        words = TERMINAL[kind][1]
        assert any(words in d and "deleting it" in d for d in res.decisions), \
            (kind, res.decisions)
        writes = [(e.verb, e.resource, e.name) for e in ok_writes(sim, cand.identity)]
        assert writes == [("delete", "pods", leader.pod), ("create", "configmaps",
                                                           f"{kind}-lock")], (kind, writes)
        assert not pod_exists(core, leader.pod), f"{kind}: the leader Pod is still there"
        took = requests(sim, cand.identity, "create", "configmaps", 201)[0].monotonic - marked
        assert took <= 1.0 + SLACK, (
            f"{kind}: {cand.pod} led {took:.3f} s after the leader Pod's status changed; it "
            f"watches that Pod, so no later than 1 s + {SLACK} s slack")
        lock = read_cm(core, f"{kind}-lock")
        assert [r.name for r in lock.metadata.owner_references] == [cand.pod]
        assert leader_uid not in [r.uid for r in lock.metadata.owner_references]


# ---------------------------------------------------------------- NotReady nodes

def test_leader_on_a_not_ready_node_is_handled_as_configured(
        sim_workloads: KubeSim, core: client.CoreV1Api, candidates: list[Candidate]) -> None:
    """Three leader Pods on kubesim-node-1, three candidates on kubesim-node-2; node-1 goes
    NotReady. node_not_ready=delete: the candidate deletes the leader Pod and the lock and
    leads at once. node_not_ready=wait: no takeover and no write within 3 s. delete with a
    2 s grace: no takeover before the node has been seen NotReady for 2 s."""
    sim = sim_workloads
    modes = {"nr-delete": {"node_not_ready": "delete"},
             "nr-wait": {"node_not_ready": "wait"},
             "nr-grace": {"node_not_ready": "delete", "node_not_ready_grace": 2.0}}
    leaders: dict[str, tuple[Candidate, str]] = {}
    cands: dict[str, Candidate] = {}
    for mode, cfg in modes.items():
        uid = make_pod(core, f"{mode}-l", NODE1)
        make_pod(core, f"{mode}-c", NODE2)
        leader = candidate(candidates, sim, f"{mode}-l", f"{mode}-lock")
        assert leader.run(timeout=5).is_leader
        leaders[mode] = (leader, uid)
        cands[mode] = candidate(candidates, sim, f"{mode}-c", f"{mode}-lock", **cfg)
    sim.set_node_ready(NODE1, False)
    # the kubelet stand-in marks the node's Pods not Ready; let that settle first
    until(lambda: all(c.type != "Ready" or c.status == "False"
                      for c in core.read_namespaced_pod("nr-wait-l", NS).status.conditions),
          5, "the Pods on the NotReady node marked not Ready")
    start = time.monotonic()
    for mode, c in cands.items():
        c.start(timeout=3 if mode == "nr-wait" else 15)

    r = cands["nr-delete"].join(10)
    assert r.is_leader and r.acquired, r
    assert any("NotReady" in d and "deleting the Pod and then the lock" in d
               for d in r.decisions), r.decisions
    took = time.monotonic() - start
    assert took <= 1.0 + SLACK, f"node_not_ready=delete took {took:.3f} s; it acts on the " \
                                f"first attempt (no later than 1 s + {SLACK} s slack)"
    ident = cands["nr-delete"].identity
    assert [(e.verb, e.resource, e.name) for e in requests(sim, ident, "delete")] == \
        [("delete", "pods", "nr-delete-l"), ("delete", "configmaps", "nr-delete-lock")]
    assert not pod_exists(core, "nr-delete-l")
    assert [o.name for o in read_cm(core, "nr-delete-lock").metadata.owner_references] == \
        ["nr-delete-c"]

    r = cands["nr-wait"].join(10)
    assert not r.is_leader and r.timed_out, r
    assert any("node_not_ready=wait, so waiting" in d for d in r.decisions), r.decisions
    assert not ok_writes(sim, cands["nr-wait"].identity), "node_not_ready=wait wrote"
    assert pod_exists(core, "nr-wait-l")
    assert [o.uid for o in read_cm(core, "nr-wait-lock").metadata.owner_references] == \
        [leaders["nr-wait"][1]]

    r = cands["nr-grace"].join(15)
    assert r.is_leader and r.acquired, r
    ident = cands["nr-grace"].identity
    first = requests(sim, ident, "get", "nodes")[0].monotonic
    deleted = requests(sim, ident, "delete", "pods")[0].monotonic
    assert deleted - first >= 2.0 - EARLY, (
        f"with a 2 s grace the leader Pod was deleted {deleted - first:.3f} s after the "
        f"node was first seen NotReady; no earlier than 2 s")
    assert any("grace" in d for d in r.decisions), r.decisions


# ---------------------------------------------------------------- backoff on the wire

def test_a_failing_get_never_hot_loops(
        sim_workloads: KubeSim, core: client.CoreV1Api, candidates: list[Candidate]) -> None:
    """operator-lib's hot loop, reproduced: the candidate's first lock GET answers 404 (so
    it tries to create, and gets AlreadyExists), then every lock GET answers 500. Our
    candidate backs off after each failure: at least 1 s between attempts."""
    sim = sim_workloads
    make_pod(core, "hot-l", NODE1)
    make_pod(core, "hot-c", NODE2)
    assert candidate(candidates, sim, "hot-l", "hot-lock").run(timeout=5).is_leader
    c = candidate(candidates, sim, "hot-c", "hot-lock")
    sim.faults.add({"identity": c.identity, "action": "error", "code": 404, "verbs": ["get"],
                    "resources": ["configmaps"], "remaining": 1})
    sim.faults.add({"identity": c.identity, "action": "error", "code": 500, "verbs": ["get"],
                    "resources": ["configmaps"]})
    r = c.run(timeout=4.5)
    assert not r.is_leader and r.timed_out, r
    assert "500" in r.message and "configmaps" in r.message, r.message
    assert [(e.verb, e.code) for e in requests(sim, c.identity, resource="configmaps")][:3] == \
        [("get", 404), ("create", 409), ("get", 500)]
    failed = requests(sim, c.identity, "get", "configmaps", 500)
    assert len(failed) >= 3, failed
    spacing = gaps(failed)
    assert min(spacing) >= 1.0 - EARLY, f"attempts after a failed GET were " \
                                        f"{[round(g, 3) for g in spacing]} s apart; at least 1 s"
    assert len(sim.audit.entries(identity=c.identity)) <= 8, "far too many requests"


def test_backoff_sequence_on_the_wire(
        sim_workloads: KubeSim, core: client.CoreV1Api, candidates: list[Candidate]) -> None:
    """A live leader that never changes (no wake-ups): a waiting candidate's attempts (its
    lock GETs) are spaced 1, 2, 4 s, each x [1, 1.2) + latency. A second candidate with
    max_backoff 2.5 shows the cap is exact: 1, 2, 2.5 (operator-lib's third step: 4 s).
    Within the 9 s timeout neither has time for a further full step."""
    sim = sim_workloads
    make_pod(core, "bo-l", NODE1)
    make_pod(core, "bo-c", NODE2)
    make_pod(core, "bo-cap", NODE2)
    assert candidate(candidates, sim, "bo-l", "bo-lock").run(timeout=5).is_leader
    default = candidate(candidates, sim, "bo-c", "bo-lock").start(timeout=9)
    capped = candidate(candidates, sim, "bo-cap", "bo-lock", max_backoff=2.5).start(timeout=9)
    for c, steps in ((default, [1, 2, 4]), (capped, [1, 2, 2.5])):
        r = c.join(15)
        assert not r.is_leader and r.timed_out, r
        spacing = gaps(requests(sim, c.identity, "get", "configmaps"))
        shown = [round(g, 3) for g in spacing]
        assert len(spacing) >= len(steps), f"{c.pod}: gaps {shown}, expected {steps}"
        for step, gap in zip(steps, spacing, strict=False):
            assert step - EARLY <= gap < 1.2 * step + LATENCY, (
                f"{c.pod}: attempts {shown} s apart; expected {steps} x [1, 1.2) + {LATENCY} s "
                f"latency")
        cap = max(steps)
        assert max(spacing) < 1.2 * cap + LATENCY, f"{c.pod}: a gap beyond the cap {cap} s " \
                                               f"(+20 % jitter): {shown}"
        assert not ok_writes(sim, c.identity)


# ---------------------------------------------------------------- through ansible-playbook


class Ansible(Playbooks):
    """Playbooks of k8s_leader_become tasks against kubesim."""

    @staticmethod
    def become(register: str, lock: str = "lock", *, pod_env: str | None = None,
               check_mode: bool = False, **params: Any) -> dict[str, Any]:
        """A k8s_leader_become task (failures are kept in the registered result);
        `pod_env` sets POD_NAME in the task's environment instead of the pod_name option."""
        args: dict[str, Any] = {"lock_name": lock, "namespace": NS}
        args.update(params)
        return module_task("election.kubernetes.k8s_leader_become", register, args,
                           check_mode=check_mode,
                           environment={"POD_NAME": pod_env} if pod_env is not None else None)


@pytest.fixture
def ansible(sim_workloads: KubeSim, tmp_path: Path) -> Iterator[Ansible]:
    a = Ansible(sim_workloads, tmp_path)
    yield a
    a.close()


def test_module_restart_same_uid_leads_new_uid_waits_and_timeout(
        ansible: Ansible, sim_workloads: KubeSim, core: client.CoreV1Api) -> None:
    """Through ansible-playbook: rs-a (POD_NAME from the environment) acquires; calling again
    from the same Pod (same UID) is leader at once, changed false; rs-b's `timeout: 2` returns
    is_leader false with a message after 2 s. Then rs-a is recreated with the same name and
    a new UID while the old lock is kept by a finalizer: the new rs-a is NOT leader while the
    old lock exists, and takes the lock once the finalizer is removed."""
    sim = sim_workloads
    old_uid = make_pod(core, "rs-a", NODE1)
    make_pod(core, "rs-b", NODE2)
    b = ansible.become
    r = ansible.run([b("first", "rs-lock", pod_env="rs-a"),
                     b("again", "rs-lock", pod_env="rs-a"),
                     b("other", "rs-lock", pod_name="rs-b", timeout=2)])
    for key, res in r.items():
        assert not res.get("failed"), (key, res)
    first, again, other = r["first"], r["again"], r["other"]
    assert first["changed"] and first["is_leader"] and first["acquired"], first
    assert first["holder"] == {"name": "rs-a", "uid": old_uid}, first
    lock_uid = read_cm(core, "rs-lock").metadata.uid
    assert first["lock"] == {"name": "rs-lock", "namespace": NS, "uid": lock_uid}, first
    assert again["is_leader"] and not again["changed"] and not again["acquired"], again
    assert again["attempts"] == 1 and "owned by me" in again["msg"], again
    assert again["holder"] == {"name": "rs-a", "uid": old_uid}
    assert not other["is_leader"] and not other["changed"] and not other["skipped"], other
    assert "Not the leader after 2 s; giving up (timeout)." in other["msg"], other["msg"]
    assert 2.0 <= other["waited"] <= 2.0 + SLACK, other["waited"]
    assert other["holder"] == {"name": "rs-a", "uid": old_uid}
    writes = [(e.identity, e.verb, e.name) for e in sim.audit.entries(writes_only=True)
              if e.resource == "configmaps"]
    assert writes == [(ua("rs-a"), "create", "rs-lock")], writes

    # the same name, a new UID; a finalizer keeps the old lock after GC deletes it
    core.patch_namespaced_config_map("rs-lock", NS,
                                     {"metadata": {"finalizers": ["test.election/hold"]}})
    core.delete_namespaced_pod("rs-a", NS)
    new_uid = make_pod(core, "rs-a", NODE1)
    assert new_uid != old_uid
    until(lambda: read_cm(core, "rs-lock").metadata.deletion_timestamp, 5,
          "GC deleting the old lock (kept by its finalizer)")
    since = sim.audit.entries()[-1].seq
    run = ansible.start([b("recreated", "rs-lock", pod_env="rs-a", timeout=20)])
    until(lambda: len([e for e in requests(sim, ua("rs-a"), "get", "configmaps")
                       if e.seq > since]) >= 2, 15, "the new rs-a's second attempt")
    assert not [e for e in ok_writes(sim, ua("rs-a")) if e.seq > since], \
        "the new rs-a wrote while the old lock existed"
    assert run.proc.poll() is None, "the new rs-a stopped waiting"
    core.patch_namespaced_config_map("rs-lock", NS, {"metadata": {"finalizers": None}})
    freed = time.monotonic()
    res = run.result()["recreated"]
    assert res["is_leader"] and res["acquired"] and res["changed"], res
    assert res["holder"] == {"name": "rs-a", "uid": new_uid}, res
    assert "owned by an earlier Pod named rs-a" in res["decisions"][0], res["decisions"]
    took = requests(sim, ua("rs-a"), "create", "configmaps", 201)[-1].monotonic - freed
    assert took <= 1.0 + SLACK, f"the new rs-a took the freed lock after {took:.3f} s; no " \
                                f"later than 1 s + {SLACK} s slack"
    assert [o.uid for o in read_cm(core, "rs-lock").metadata.owner_references] == [new_uid]


def test_module_bad_input_outside_cluster_and_forbidden(
        ansible: Ansible, sim_workloads: KubeSim, core: client.CoreV1Api) -> None:
    """Each bad input fails with one clear `msg` and no traceback, and nothing is written:
    missing POD_NAME, a Pod that does not exist, an invalid lock name, Forbidden on the lock
    create and on the Pod GET (naming verb and resource). Without a namespace (outside a
    cluster) the election is skipped, or fails with outside_cluster=fail."""
    sim = sim_workloads
    make_pod(core, "fb-create", NODE1)
    make_pod(core, "fb-get", NODE1)
    sim.faults.add({"identity": ua("fb-create"), "action": "error", "code": 403,
                    "verbs": ["create"], "resources": ["configmaps"]})
    sim.faults.add({"identity": ua("fb-get"), "action": "error", "code": 403,
                    "verbs": ["get"], "resources": ["pods"]})
    b = ansible.become
    failing: dict[str, tuple[dict[str, Any], list[str]]] = {
        "no_pod_name": (b("no_pod_name"), ["pod_name is required", "POD_NAME",
                                           "downward API"]),
        "ghost_pod": (b("ghost_pod", pod_name="ghost"),
                      ["Pod ghost not found in namespace default"]),
        "bad_lock": (b("bad_lock", "Bad_Lock!", pod_name="fb-create"),
                     ["'Bad_Lock!'", "not a valid ConfigMap name", "RFC 1123 subdomain"]),
        "forbidden_create": (b("forbidden_create", "fb-lock", pod_name="fb-create"),
                             ["forbidden", "grant verb 'create' on resource 'configmaps'"]),
        "forbidden_get": (b("forbidden_get", "fb-lock", pod_name="fb-get"),
                          ["forbidden", "grant verb 'get' on resource 'pods'"]),
        "outside_fail": (b("outside_fail", namespace=None, pod_name="x",
                           outside_cluster="fail"),
                         ["leader election impossible", "not running in a cluster"]),
    }
    r = ansible.run([task for task, _ in failing.values()]
                    + [b("outside", namespace=None, pod_name="x")])
    for key, (_, words) in failing.items():
        res = r[key]
        assert res.get("failed") is True, (key, res)
        msg = res.get("msg", "")
        for w in words:
            assert w in msg, f"{key}: {w!r} not in msg {msg!r}"
        assert "Traceback" not in msg and "MODULE FAILURE" not in msg, (key, msg)
        assert "module_stderr" not in res and "module_stdout" not in res, (key, res)
    outside = r["outside"]
    assert outside["skipped"] and outside["is_leader"] and not outside["changed"], outside
    assert "not running in a cluster" in outside["skip_reason"], outside
    assert outside["msg"].startswith("Skipping leader election"), outside["msg"]
    assert not [e for e in sim.audit.entries(writes_only=True) if 200 <= e.code < 300
                and e.identity.startswith("election.kubernetes/")], "bad input wrote"
    assert [(e.verb, e.resource, e.code) for e in sim.audit.entries(identity=ua("fb-create"))
            if e.verb != "watch"] == [("get", "pods", 200), ("get", "configmaps", 404),
                                      ("create", "configmaps", 403)]
    assert [(e.verb, e.resource, e.code) for e in sim.audit.entries(identity=ua("fb-get"))] \
        == [("get", "pods", 403)]
    assert {e.identity for e in sim.audit.entries()
            if e.identity.startswith("election.kubernetes/")} == \
        {ua("ghost"), ua("fb-create"), ua("fb-get")}, "no request without a valid input"
    assert read_cm(core, "fb-lock") is None


def test_ansible_doc_renders() -> None:
    proc = subprocess.run([str(BIN / "ansible-doc"), "election.kubernetes.k8s_leader_become"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "PAGER"}
                          | {"PAGER": "cat", "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for word in ("k8s_leader_become", "lock_name", "node_not_ready", "outside_cluster",
                 "max_backoff", "timeout", "is_leader", "holder", "acquired", "skipped",
                 "EXAMPLES", "RETURN VALUES"):
        assert word in out, f"{word!r} missing from ansible-doc output"
