"""election-operator replicas in leader-for-life mode, as real processes against kubesim.

Each replica is `election-operator run --leader-elect --election life` with POD_NAME naming
its own Pod (created in kubesim first; kubesim's scheduler/kubelet stand-in runs it) and its
own bearer token, so the audit log names it `token:token-<pod>`. The lock is a ConfigMap
owned by the leader's Pod: deleting that Pod lets the garbage collector delete the lock, and
a waiting replica creates it again. The sample operator (kind `Sample`, a role recording
`spec.size` in the ConfigMap `<name>-out`) is tests/operator_harness.py's.

Times come from one clock: kubesim runs in this process, so its audit entries' `monotonic`
stamps and the commit times seen by a store listener (the garbage collector's deletes are not
HTTP requests, so they are not in the audit log) are both `time.monotonic()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import until
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from operator_harness import NS, Cluster, Replica, reconciled, write_sample_operator

from kubesim import KubeSim

LOCK = "sample-operator-lock"
LIFE_ARGS = ("--leader-elect", "--election", "life", "--leader-election-id", LOCK,
             "--leader-election-namespace", NS)
SLACK = 0.5  # for "no later than" bounds of seconds on a loaded 2-core machine


class LifeCluster(Cluster):
    """The test's view of kubesim, plus the candidate Pods and the lock."""

    def __init__(self, sim: KubeSim, tmp_path: Path) -> None:
        super().__init__(sim, tmp_path)
        self.deleted: dict[tuple[str, str], float] = {}
        sim.store.listeners.append(self._on_event)

    def _on_event(self, ev: Any) -> None:
        if ev.type == "DELETED":
            self.deleted.setdefault((ev.key[1], ev.obj["metadata"]["name"]), time.monotonic())

    def make_pod(self, name: str) -> str:
        """A candidate Pod; returns its UID once the kubelet runs it."""
        self.core.create_namespaced_pod(NS, {
            "metadata": {"name": name, "labels": {"app": "sample-operator"}},
            "spec": {"containers": [{"name": "operator", "image": "sample-operator:1"}]}})

        def running() -> Any:
            pod = self.core.read_namespaced_pod(name, NS)
            return pod if pod.status and pod.status.phase == "Running" else None
        return until(running, 5, f"Pod {name} Running").metadata.uid

    def lock_owner(self) -> str | None:
        """The UID of the Pod owning the lock: None when there is no lock."""
        lock = self.configmap(LOCK)
        if lock is None:
            return None
        owners = lock.metadata.owner_references or []
        assert len(owners) == 1 and owners[0].kind == "Pod", owners
        return owners[0].uid


@pytest.fixture
def cluster(sim_workloads: KubeSim, tmp_path: Path) -> Iterator[LifeCluster]:
    c = LifeCluster(sim_workloads, tmp_path)
    yield c
    c.close()


@pytest.fixture
def replicas(sim_workloads: KubeSim, tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    watches = write_sample_operator(tmp_path)
    started: list[Replica] = []

    def start(name: str, env: dict[str, str | None] | None = None) -> Replica:
        r = Replica(sim_workloads, tmp_path, name, watches, LIFE_ARGS, env)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def waits_for(replica: Replica, leader: str, timeout: float = 15) -> None:
    until(lambda: replica.lines(rf"Not the leader: lock {NS}/{LOCK} is held by Pod {leader} "),
          timeout, f"{replica.name} to wait for {leader}'s lock")


def lock_creations(cluster: LifeCluster, replica: Replica) -> list[Any]:
    return [e for e in cluster.writes(replica.identity)
            if e.verb == "create" and e.resource == "configmaps" and e.name == LOCK]


# --------------------------------------------------------------------------- tests

def test_one_replica_leads_only_it_reconciles_and_the_followers_proxy_refuses_writes(
        cluster: LifeCluster, replicas: Callable[..., Replica]) -> None:
    uids = {name: cluster.make_pod(name) for name in ("op-a", "op-b")}
    reps = {name: replicas(name) for name in uids}

    owner = until(cluster.lock_owner, 15, "a replica to create the lock")
    leader_name = next(name for name, uid in uids.items() if uid == owner)
    leader = reps[leader_name]
    follower = next(r for name, r in reps.items() if name != leader_name)
    until(lambda: leader.lines(r"became the leader \(life\)"), 5, "the leader to say so")
    waits_for(follower, leader_name)
    assert len(lock_creations(cluster, leader)) == 1
    assert lock_creations(cluster, follower) == [], "at most a lost create race (409)"

    cluster.create("s1", size=1)
    reconciled(cluster, leader, "s1", "1", ended=1)
    cluster.change("s1", size=2)
    reconciled(cluster, leader, "s1", "2", ended=2)
    assert leader.reconciles() == 2, leader.lines("reconcile ")
    assert cluster.status_writes(leader.identity), "the leader wrote the status"

    # The follower's fencing proxy (the kubeconfig its runs get) refuses writes.
    since = cluster.last_seq()
    proxy = config.new_client_from_config(
        config_file=str(follower.runner_dir / "kubeconfig"))
    try:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(proxy).create_namespaced_config_map(NS, {
                "metadata": {"name": "from-the-follower"}, "data": {"x": "1"}})
        assert refused.value.status == 503, refused.value
        assert "does not hold the leader lock" in (refused.value.body or ""), refused.value.body
    finally:
        proxy.close()
    assert not [e for e in cluster.sim.audit.entries(since=since)
                if e.name == "from-the-follower"], "the refused write reached the API server"
    assert follower.lines("fenced: refused"), follower.text()

    assert follower.reconciles() == 0, follower.lines("reconcile ")
    assert cluster.writes(follower.identity) == [], "the follower wrote nothing at all"
    assert follower.proc.poll() is None and leader.proc.poll() is None
    assert cluster.lock_owner() == owner, "the lock never changed hands"


def test_deleting_the_leaders_pod_hands_the_lock_over_within_1s_of_its_gc(
        cluster: LifeCluster, replicas: Callable[..., Replica]) -> None:
    uid_a, uid_b = cluster.make_pod("op-a"), cluster.make_pod("op-b")
    cluster.create("s1", size=1)
    a = replicas("op-a")
    until(lambda: cluster.lock_owner() == uid_a, 15, "op-a to create the lock")
    reconciled(cluster, a, "s1", "1", ended=1)
    b = replicas("op-b")
    waits_for(b, "op-a")

    # The Pod goes, as when its node is drained: the API object, and its process with it.
    cluster.core.delete_namespaced_pod("op-a", NS)
    a.kill()
    lock_gone = until(lambda: cluster.deleted.get(("configmaps", LOCK)), 5,
                      "the garbage collector to delete the lock")
    cluster.change("s1", size=2)  # made after the lock's deletion

    created = until(lambda: lock_creations(cluster, b), 5, "op-b to create the lock")[0]
    took = created.monotonic - lock_gone
    assert took <= 1.0 + SLACK, \
        f"op-b created the lock {took:.2f} s after the garbage collector deleted it; bound " \
        f"1 s + {SLACK} s slack"
    assert cluster.lock_owner() == uid_b
    until(lambda: b.lines(r"became the leader \(life\)"), 5, "op-b to say it leads")

    reconciled(cluster, b, "s1", "2", ended=1)
    assert b.reconciles() == 1, b.lines("reconcile ")
    assert [e for e in cluster.status_writes(b.identity) if e.monotonic < created.monotonic] \
        == [], "op-b wrote no status before it led"
    assert b.proc.poll() is None


@pytest.mark.parametrize("pod_env, message", [
    ("ghost", r"Pod ghost not found in namespace default"),
    (None, r"pod_name is required: set the POD_NAME environment variable"),
], ids=["no-such-pod", "no-pod-name"])
def test_a_replica_without_its_pod_fails_at_start(
        cluster: LifeCluster, replicas: Callable[..., Replica], pod_env: str | None,
        message: str) -> None:
    r = replicas("ghost", {"POD_NAME": pod_env})
    try:
        rc = r.proc.wait(20)
    except Exception:
        raise AssertionError(f"the replica kept running:\n{r.text()}") from None
    assert rc != 0, r.text()
    errors = r.lines(rf"ERROR .*{message}")
    assert errors, r.text()
    assert "Traceback" not in r.text(), r.text()
    assert cluster.configmap(LOCK) is None
    assert cluster.writes(r.identity) == []
