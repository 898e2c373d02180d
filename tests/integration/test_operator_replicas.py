"""election-operator replicas as real processes against an in-process kubesim.

Each replica is `election-operator run --leader-elect` with its own kubeconfig and bearer token,
so kubesim's audit log names it `token:<its token>` for everything it sends: its election
requests directly, and its own and its runs' writes through its fencing proxy (which forwards
with the replica's credentials). The watched kind `Sample` is reconciled by a role that may
start a background writer (`spec.beat`), may sleep (`spec.sleep` seconds, a `sleep` command)
and then writes a ConfigMap `<name>-out` with `spec.size`; the ConfigMaps are not owned by
the custom resource, so a reconcile causes no dependent event (tests/operator_harness.py).

Times: the lease lasts 4 s, the renew deadline is 3 s, the retry period 1 s. A reconcile
starts with the status write that marks it Running (the audit log's time of that write), the
trivial run takes about 2-3 s here. Every process started is killed by PID (the replica, its
descendants and every process carrying its run marker), also when a test fails.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import until
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from operator_harness import NS, Cluster, Replica, reconciled, write_sample_operator

from election_operator.local import alive, cmdline, descendants, log_time, marked
from kubesim import KubeSim

LEASE = "sample-operator"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 3.0, 1.0
LEASE_ARGS = ("--leader-elect", "--leader-election-id", LEASE, "--leader-election-namespace", NS,
              "--leader-elect-lease-duration", f"{LEASE_DURATION:g}s",
              "--leader-elect-renew-deadline", f"{RENEW_DEADLINE:g}s",
              "--leader-elect-retry-period", f"{RETRY_PERIOD:g}s")
SLACK = 0.5  # for "no later than" bounds of seconds on a loaded 2-core machine
KILL_SLACK = 0.25  # for the 1-s bound of killing a run


def is_sleep_30(p: psutil.Process) -> bool:
    return cmdline(p)[:2] == ["sleep", "30"]


def is_playbook(p: psutil.Process) -> bool:
    return any(Path(arg).name == "ansible-playbook" for arg in cmdline(p)[:2])


# --------------------------------------------------------------------------- cluster

class LeaseCluster(Cluster):
    """The test's view of kubesim, plus the Lease."""

    def __init__(self, sim: KubeSim, tmp_path: Path) -> None:
        super().__init__(sim, tmp_path)
        self.coord = client.CoordinationV1Api(self.api)

    def holder(self) -> str | None:
        try:
            lease = self.coord.read_namespaced_lease(LEASE, NS)
        except ApiException:
            return None
        return lease.spec.holder_identity or None

    def lease_writes(self, identity: str, since: int = 0) -> list[Any]:
        return [e for e in self.writes(identity, since) if e.resource == "leases"]


@pytest.fixture
def cluster(sim: KubeSim, tmp_path: Path) -> Iterator[LeaseCluster]:
    c = LeaseCluster(sim, tmp_path)
    yield c
    c.close()


@pytest.fixture
def watches(tmp_path: Path) -> Path:
    return write_sample_operator(tmp_path)


@pytest.fixture
def replicas(sim: KubeSim, tmp_path: Path, watches: Path) -> Iterator[Any]:
    started: list[Replica] = []

    def start(name: str, *extra: str) -> Replica:
        r = Replica(sim, tmp_path, name, watches, (*LEASE_ARGS, *extra))
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def leads(cluster: LeaseCluster, replica: Replica, timeout: float = 15) -> None:
    until(lambda: cluster.holder() == replica.name, timeout, f"{replica.name} to lead")


def follows(replica: Replica, leader: Replica, timeout: float = 15) -> None:
    until(lambda: replica.lines(rf"observed leader: {leader.name}$"), timeout,
          f"{replica.name} to observe {leader.name} as the leader")


def first_status_write_after(cluster: LeaseCluster, identity: str, since: int,
                             timeout: float) -> Any:
    return until(lambda: (cluster.status_writes(identity, since) or [None])[0], timeout,
                 f"a status write (reconcile start) by {identity}")


def beats(cluster: LeaseCluster, replica: Replica) -> list[Any]:
    """The writes of s1-beat by the background job of the replica's runs."""
    return [e for e in cluster.writes(replica.identity)
            if e.resource == "configmaps" and e.name == "s1-beat"]


def run_of(replica: Replica) -> list[psutil.Process]:
    """The processes of the replica's current run, once its `sleep 30` task is running."""
    def probe() -> list[psutil.Process] | None:
        procs = replica.run_processes()
        return procs if any(is_sleep_30(p) for p in procs) else None
    return until(probe, 30, f"{replica.name}'s run to reach its `sleep 30` task", 0.05)


# --------------------------------------------------------------------------- tests

def test_three_replicas_exactly_one_reconciles_once_per_change_and_never_on_status(
        cluster: LeaseCluster, replicas: Any) -> None:
    reps = [replicas(name) for name in ("a", "b", "c")]
    until(lambda: cluster.holder() in {"a", "b", "c"}, 15, "one of the replicas to lead")
    leader = next(r for r in reps if r.name == cluster.holder())
    followers = [r for r in reps if r is not leader]
    for f in followers:
        follows(f, leader)

    cluster.create("s1", size=1)
    reconciled(cluster, leader, "s1", "1", ended=1)
    cluster.change("s1", size=2)
    reconciled(cluster, leader, "s1", "2", ended=2)
    cluster.change("s1", size=3)
    reconciled(cluster, leader, "s1", "3", ended=3)
    assert leader.reconciles() == 3, leader.lines("reconcile ")

    # A status-only change (the status subresource: the generation stays) runs nothing.
    cluster.change_status("s1", note="written by someone else")
    time.sleep(1.5)  # events arrive in milliseconds; a reconcile would have started by now
    assert leader.reconciles() == 3, leader.lines("reconcile ")

    # The audit log: only the leader's identity wrote the status and the role's objects;
    # the followers wrote nothing at all (at most a lost create race for the Lease, a 409).
    status = cluster.status_writes(leader.identity)
    assert len(status) == 6, [(e.verb, e.name, e.subresource) for e in status]  # Running+done
    outputs = [e for e in cluster.writes(leader.identity)
               if e.resource == "configmaps" and e.name == "s1-out"]
    assert outputs, "the leader's runs wrote the ConfigMap through its proxy"
    for f in followers:
        assert f.reconciles() == 0, f.lines("reconcile ")
        assert cluster.writes(f.identity) == [], f"{f.name} wrote while following"


def test_sigkill_of_the_leader_another_replica_reconciles_within_lease_duration_plus_2s(
        cluster: LeaseCluster, replicas: Any) -> None:
    cluster.create("s1", size=1)
    a = replicas("a")
    leads(cluster, a)
    reconciled(cluster, a, "s1", "1", ended=1)
    b = replicas("b")
    follows(b, a)

    since = cluster.last_seq()
    killed_at = time.monotonic()
    os.kill(a.pid, signal.SIGKILL)
    cluster.change("s1", size=2)  # pending when b takes over

    bound = LEASE_DURATION + 2
    start = first_status_write_after(cluster, b.identity, since, bound + SLACK + 5)
    took = start.monotonic - killed_at
    assert took <= bound + SLACK, \
        f"b started reconciling {took:.2f} s after the SIGKILL; bound {bound:g} s " \
        f"(lease duration + 2 s) + {SLACK} s slack"
    assert cluster.holder() == "b"
    reconciled(cluster, b, "s1", "2", ended=1)
    assert b.reconciles() == 1, b.lines("reconcile ")


def test_sigterm_of_the_leader_releases_and_another_replica_reconciles_within_2s(
        cluster: LeaseCluster, replicas: Any) -> None:
    cluster.create("s1", size=1)
    a = replicas("a")
    leads(cluster, a)
    reconciled(cluster, a, "s1", "1", ended=1)
    b = replicas("b")
    follows(b, a)

    since = cluster.last_seq()
    terminated_at = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    cluster.change("s1", size=2)

    bound = 2.0
    start = first_status_write_after(cluster, b.identity, since, bound + SLACK + 5)
    took = start.monotonic - terminated_at
    assert took <= bound + SLACK, \
        f"b started reconciling {took:.2f} s after the SIGTERM; bound {bound:g} s " \
        f"+ {SLACK} s slack"
    assert a.proc.wait(10) == 0, a.log_path.read_text()
    released = cluster.lease_writes(a.identity, since)
    assert released and released[-1].monotonic <= start.monotonic, \
        "a released the lease on its way out, before b's reconcile"
    reconciled(cluster, b, "s1", "2", ended=1)


def test_frozen_leader_is_fenced_and_its_run_killed_when_resumed(
        cluster: LeaseCluster, replicas: Any) -> None:
    a = replicas("a")
    leads(cluster, a)
    b = replicas("b")
    follows(b, a)
    cluster.create("s1", size=1, sleep=30, beat=True)
    run_of(a)
    until(lambda: beats(cluster, a), 10, "a's run to write s1-beat (its background job)")
    old_run = {p.pid: p for p in [*a.run_processes(), *marked(a.pid)]}
    assert any(is_playbook(p) for p in old_run.values()), \
        [cmdline(p) for p in old_run.values()]

    since = cluster.last_seq()
    frozen = a.freeze()
    frozen_at = time.monotonic()
    # b takes over once a's lease has expired, and starts a reconcile of its own (its status
    # stays Running, as a left it: no status write to see, but b's log and its own run).
    leads(cluster, b, LEASE_DURATION + 10)
    until(lambda: b.reconciles(), 10, "b to start reconciling")
    run_of(b)
    assert time.monotonic() - frozen_at > LEASE_DURATION
    thawed_at = time.monotonic()
    a.thaw(frozen)

    def old_run_gone() -> bool:
        left = [p for p in old_run.values() if alive(p)]
        left += [p for p in descendants(a.pid) if is_sleep_30(p) or is_playbook(p)]
        left += marked(a.pid)
        return not left
    until(old_run_gone, 15, "the old run's processes to be gone", 0.05)
    gone_after = time.monotonic() - thawed_at
    assert gone_after <= 2.0 + SLACK, \
        f"a's old run still had processes {gone_after:.2f} s after SIGCONT; bound 2 s " \
        f"+ {SLACK} s slack"
    rc = a.proc.wait(15)
    assert rc != 0, "a replica that lost the lease exits non-zero"
    assert a.lines("lost leadership"), a.log_path.read_text()

    # The audit log: nothing written by a after its lease ended.
    last_renew = [e for e in cluster.lease_writes(a.identity) if e.monotonic < frozen_at][-1]
    takeover = cluster.lease_writes(b.identity, since)[0]
    lease_end = min(last_renew.monotonic + LEASE_DURATION, takeover.monotonic)
    late = [e for e in cluster.writes(a.identity) if e.monotonic > lease_end]
    assert late == [], [(e.verb, e.resource, e.name, e.subresource) for e in late]
    assert beats(cluster, a)[-1].monotonic < frozen_at, "a's background job wrote until frozen"


def test_lease_loss_during_a_long_run_kills_it_within_1s_and_the_proxy_refuses_writes(
        cluster: LeaseCluster, replicas: Any) -> None:
    a = replicas("a", "--on-lost-leadership", "recampaign")
    leads(cluster, a)
    cluster.create("s1", size=1, sleep=30)
    run = run_of(a)

    since = cluster.last_seq()
    cluster.sim.faults.add({"identity": a.identity, "action": "refuse",
                            "verbs": ["update", "get"], "resources": ["leases"]})

    def run_gone() -> float | None:
        return time.time() if not any(alive(p) for p in run) else None
    gone_at = until(run_gone, RENEW_DEADLINE + 10, "a's run to be killed", 0.01)
    lost = until(lambda: a.lines("lost leadership"), 5, "a to log the loss")
    assert not marked(a.pid) and not [p for p in descendants(a.pid) if is_sleep_30(p)]

    # The loss: when a logged it, or its local deadline (last successful renew + renew
    # deadline) if that came first; the run was gone within 1 s of it.
    last_renew = [e for e in cluster.lease_writes(a.identity) if e.seq <= since][-1]
    deadline = last_renew.time + RENEW_DEADLINE
    lost_at = log_time(lost[0])
    assert lost_at <= deadline + SLACK, \
        f"a noticed the loss {lost_at - deadline:.2f} s after its renew deadline; bound " \
        f"{SLACK} s slack"
    loss = min(lost_at, deadline)
    assert gone_at - loss <= 1.0 + KILL_SLACK, \
        f"a's run was gone {gone_at - loss:.2f} s after the loss; bound 1 s + {KILL_SLACK} s " \
        f"slack"

    # a stays up (recampaign) as a follower: it reconciles nothing more, and its proxy
    # refuses writes.
    proxy = config.new_client_from_config(config_file=str(a.runner_dir / "kubeconfig"))
    try:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(proxy).create_namespaced_config_map(NS, {
                "metadata": {"name": "after-the-loss"}, "data": {"x": "1"}})
        assert refused.value.status == 503, refused.value
    finally:
        proxy.close()
    assert a.lines("fenced: refused"), a.log_path.read_text()
    assert a.proc.poll() is None, "a re-campaigns instead of exiting"
    assert a.reconciles() == 1, a.lines("reconcile ")
    late = [e for e in cluster.writes(a.identity, since) if e.time > loss]
    assert late == [], [(e.verb, e.resource, e.name, e.subresource) for e in late]
    assert not [e for e in cluster.sim.audit.entries(since=since)
                if e.name == "after-the-loss"], "the refused write never reached the API server"
