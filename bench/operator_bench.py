"""election-operator benchmarks: replicas as real processes against an in-process kubesim.

Every part starts a fresh kubesim in this process and `election-operator run --leader-elect`
processes (each with its own kubeconfig and bearer token, so kubesim's audit log names it),
watching the kind Widget mapped to a one-task role or playbook (`ansible.builtin.debug`,
ANSIBLE_GATHERING=explicit, no facts).

1. latency: one replica; N changes of one Widget's spec, each after the previous reconcile
   ended. From kubesim's audit log: the change (the PATCH) to the replica's status write
   marking it Running (the first write of a reconcile), and to its "reconcile start" log line.
2. overhead (same loop): the replica's reconcile time against the same playbook, inventory and
   extravars run by bare `ansible-runner run <dir> -p playbook.yml`, one run after each
   reconcile.
3. throughput: 50 Widgets created at once; from the first create to the last Successful
   status write, with --max-concurrent-reconciles 1 and 2.
4. failover: three replicas; SIGKILL or SIGTERM of the leader, then a spec change: time to the
   new leader's lease acquisition and to its first reconcile start.
5. memory: RSS of the replica's own process (psutil; not its ansible-runner children) with 10
   and 1,000 Widgets, created before it starts, while a stand-in holds the Lease (the replica
   lists and watches them all and queues every key, but runs nothing), then as the leader.

    .venv/bin/python bench/operator_bench.py [--quick] [--parts latency,throughput,failover,
        memory] [--changes 30] [--resources 50] [--reps 5] [--watched 1000] [--keep]
        [--json FILE]

Default durations for failover are the production ones (lease 15 s, renew deadline 10 s,
retry 2 s; about 6 minutes in all on 2 cores); --quick uses 4/3/1 s and fewer changes,
resources and repetitions (about 2 minutes). --json saves the figures and the Markdown
sections for the report of `make bench` (bench/_report.py).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _report import command_line, machine, percentile, save, summary  # noqa: E402
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

from election_operator import local  # noqa: E402
from election_operator.local import clean_env, log_time, until  # noqa: E402
from kubesim import KubeSim  # noqa: E402

BIN = Path(sys.executable).parent
OPERATOR = BIN / "election-operator"
RUNNER = BIN / "ansible-runner"
NS = "default"
GROUP, VERSION, KIND, PLURAL = "bench.example.com", "v1alpha1", "Widget", "widgets"
LEASE = "widget-operator"
VERBOSITY = 2  # the runtime's (and ansible-operator's) default --ansible-verbosity
ROTATE = 20  # the default maxRunnerArtifacts: the runtime passes --rotate-artifacts 20
MIB = 1024 * 1024

DEBUG_TASK = [{"name": "say which resource this is", "ansible.builtin.debug": {
    "msg": "reconciling {{ ansible_operator_meta.name }} (size {{ size | default(0) }})"}}]
PLAYBOOK = [{"hosts": "localhost", "gather_facts": False, "tasks": DEBUG_TASK}]


@dataclass
class Durations:
    lease: float
    renew: float
    retry: float

    def text(self) -> str:
        return (f"lease duration {self.lease:g} s, renew deadline {self.renew:g} s, retry "
                f"period {self.retry:g} s")


# --------------------------------------------------------------------------- helpers

def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ms(x: float) -> str:
    return f"{round(x * 1000) + 0:d} ms"


def secs(x: float) -> str:
    return f"{x:.2f} s"


def stats_row(label: str, values: list[float], fmt: Callable[[float], str]) -> str:
    lo, med, hi = summary(values)
    return (f"| {label} | {fmt(med)} | {fmt(percentile(values, 90))} | {fmt(lo)} | "
            f"{fmt(hi)} |")


def fmt3(values: list[float], fmt: Callable[[float], str] = secs) -> str:
    lo, med, hi = summary(values)
    return f"{fmt(lo)} / {fmt(med)} / {fmt(hi)}"


# --------------------------------------------------------------------------- the project

class Project:
    """The roles, playbook and watches files the operators run, in a temporary directory."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "project"
        tasks = self.dir / "roles" / "trivial" / "tasks"
        tasks.mkdir(parents=True)
        (tasks / "main.yml").write_text(yaml.safe_dump(DEBUG_TASK, sort_keys=False))
        self.playbook = self.dir / "playbook.yml"
        self.playbook.write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
        self.role = self.dir / "roles" / "trivial"

    def watches(self, name: str, *, playbook: bool = False, manage_status: bool = True) -> Path:
        entry: dict[str, Any] = {"version": VERSION, "group": GROUP, "kind": KIND}
        if playbook:
            entry["playbook"] = str(self.playbook)
        else:
            entry["role"] = str(self.role)
        if not manage_status:
            entry["manageStatus"] = False
        path = self.dir / f"watches-{name}.yaml"
        path.write_text(yaml.safe_dump([entry], sort_keys=False))
        return path


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": KIND},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "status": {"type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}},
            }],
        },
    }


class Cluster:
    """The benchmark's own client of a fresh kubesim (identity `token:bench`)."""

    IDENTITY = "token:bench"

    def __init__(self, sim: KubeSim, tmp: Path) -> None:
        self.sim = sim
        self.tmp = tmp
        self.api = config.new_client_from_config(
            config_file=str(sim.write_kubeconfig(tmp / "kubeconfig-bench", token="bench")))
        self.custom = client.CustomObjectsApi(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        client.ApiextensionsV1Api(self.api).create_custom_resource_definition(widget_crd())
        until(lambda: self._served(), 5, "the Widget kind to be served")

    def _served(self) -> bool:
        try:
            self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
            return True
        except ApiException:
            return False

    def create(self, name: str, **spec: Any) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": name, "namespace": NS}, "spec": spec})

    def change(self, name: str, **spec: Any) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name,
                                                   {"spec": spec})

    def successful(self) -> dict[str, bool]:
        """name -> whether its Successful condition is True."""
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"]
        out = {}
        for obj in items:
            conds = (obj.get("status") or {}).get("conditions") or []
            out[obj["metadata"]["name"]] = any(
                c.get("type") == "Successful" and c.get("status") == "True" for c in conds)
        return out

    def holder(self) -> str | None:
        try:
            return self.coord.read_namespaced_lease(LEASE, NS).spec.holder_identity or None
        except ApiException:
            return None

    def last_seq(self) -> int:
        entries = self.sim.audit.entries()
        return entries[-1].seq if entries else 0

    def writes(self, identity: str, since: int = 0) -> list[Any]:
        return [e for e in self.sim.audit.entries(since=since, writes_only=True,
                                                  identity=identity) if 200 <= e.code < 300]

    def status_writes(self, identity: str, since: int = 0) -> list[Any]:
        return [e for e in self.writes(identity, since)
                if e.resource == PLURAL and e.subresource == "status"]

    def lease_writes(self, since: int = 0) -> list[Any]:
        return [e for e in self.sim.audit.entries(since=since, writes_only=True)
                if e.resource == "leases" and e.name == LEASE and 200 <= e.code < 300]

    def close(self) -> None:
        self.api.close()


@contextmanager
def world(tmp: Path, part: str) -> Iterator[Cluster]:
    """A fresh kubesim (in this process) with the Widget kind, for one part."""
    d = tmp / part
    d.mkdir()
    with KubeSim(bookmark_interval=0.5) as sim:
        cluster = Cluster(sim, d)
        try:
            yield cluster
        finally:
            cluster.close()


# --------------------------------------------------------------------------- the operator

class Replica(local.Replica):
    """One `election-operator run --leader-elect` process (election_operator.local) on the
    part's kubesim, with its own token, log, runner dir and probe port."""

    def __init__(self, cluster: Cluster, name: str, watches: Path, d: Durations,
                 extra: tuple[str, ...] = ()) -> None:
        super().__init__(
            name, cluster.tmp, watches,
            ("--leader-elect", "--leader-election-id", LEASE, "--leader-election-namespace", NS,
             "--leader-elect-lease-duration", f"{d.lease:g}s",
             "--leader-elect-renew-deadline", f"{d.renew:g}s",
             "--leader-elect-retry-period", f"{d.retry:g}s", *extra),
            sim=cluster.sim, probes=True, executable=OPERATOR)


@contextmanager
def replicas(cluster: Cluster, watches: Path, d: Durations,
             extra: tuple[str, ...] = ()) -> Iterator[Callable[[str], Replica]]:
    started: list[Replica] = []

    def start(name: str) -> Replica:
        r = Replica(cluster, name, watches, d, extra)
        started.append(r)
        return r

    try:
        yield start
    finally:
        for r in started:
            r.close()


def leading(cluster: Cluster, r: Replica, timeout: float) -> None:
    def probe() -> bool:
        r.check_alive()
        return cluster.holder() == r.name and r.ready()
    until(probe, timeout, f"{r.name} to lead and be ready", 0.05)


# --------------------------------------------------------------------------- 1+2 latency

@dataclass
class Change:
    to_log_start: float
    to_running: float
    to_done: float
    reconcile: float  # "reconcile start" -> "reconcile end" (the log's own figure)


def part_latency(tmp: Path, project: Project, d: Durations, changes: int) -> dict[str, Any]:
    """N changes of one Widget, each followed by one bare ansible-runner run of the same
    playbook with the same input (interleaved, so that both see the same machine)."""
    print(f"latency and overhead: {changes} changes of one Widget, one replica, each "
          f"followed by a bare ansible-runner run", flush=True)
    with world(tmp, "latency") as cluster, \
            replicas(cluster, project.watches("latency", playbook=True), d) as start:
        cluster.create("w1", size=0)
        r = start("lat")
        leading(cluster, r, d.lease + 30)
        until(lambda: cluster.successful().get("w1"), 60, "the first reconcile of w1", 0.05)
        until(lambda: r.idle() and r.ends(), 10, "the first reconcile to end")
        bare_dir = bare_input(tmp / "latency" / "bare", project,
                              r.runner_dir / GROUP / VERSION / KIND / NS / "w1")
        bare_run(bare_dir)  # warms the caches up, as w1's first reconcile did
        runs0 = r.metric("ansible_operator_reconciles_count")
        run_sum0 = r.metric("ansible_operator_reconciles_sum")
        results: list[Change] = []
        bare: list[float] = []
        for i in range(1, changes + 1):
            time.sleep(random.uniform(0.2, 0.7))
            results.append(one_change(cluster, r, i))
            time.sleep(random.uniform(0.2, 0.7))
            bare.append(bare_run(bare_dir))
            c = results[-1]
            print(f"  change {i}: log start +{ms(c.to_log_start)}, Running write "
                  f"+{ms(c.to_running)}, done +{secs(c.to_done)} (reconcile "
                  f"{secs(c.reconcile)}); bare run {secs(bare[-1])}", flush=True)
        runs = r.metric("ansible_operator_reconciles_count") - runs0
        run_mean = (r.metric("ansible_operator_reconciles_sum") - run_sum0) / runs
    return {"changes": results, "bare": bare, "run_mean": run_mean, "runs": int(runs)}


def one_change(cluster: Cluster, r: Replica, size: int) -> Change:
    seq = cluster.last_seq()
    n_start, n_end = len(r.starts()), len(r.ends())
    cluster.change("w1", size=size)

    def done() -> bool:
        r.check_alive()
        return len(cluster.status_writes(r.identity, seq)) >= 2 and len(r.ends()) > n_end
    until(done, 60, f"the reconcile of change {size}", 0.01)
    patch = [e for e in cluster.writes(Cluster.IDENTITY, seq)
             if e.resource == PLURAL and e.verb == "patch"][0]
    running, finished = cluster.status_writes(r.identity, seq)[:2]
    return Change(log_time(r.starts()[n_start]["t"]) - patch.time,
                  running.monotonic - patch.monotonic, finished.monotonic - patch.monotonic,
                  float(r.ends()[n_end]["secs"]))


def bare_input(bare_dir: Path, project: Project, pdd: Path) -> Path:
    """A runner input dir with the playbook and the replica's inventory, extravars and
    envvars of one Widget (`pdd`: its private data dir)."""
    (bare_dir / "project").mkdir(parents=True)
    shutil.copyfile(project.playbook, bare_dir / "project" / "playbook.yml")
    shutil.copytree(pdd / "inventory", bare_dir / "inventory")
    (bare_dir / "env").mkdir()
    for f in ("extravars", "envvars"):
        shutil.copyfile(pdd / "env" / f, bare_dir / "env" / f)
    return bare_dir


def bare_argv(private_data_dir: Path) -> list[str]:
    return [str(RUNNER), "run", str(private_data_dir), "-p", "playbook.yml",
            "--rotate-artifacts", str(ROTATE), "-" + "v" * VERBOSITY]


def bare_run(private_data_dir: Path) -> float:
    """Seconds from starting `ansible-runner run` to its exit."""
    env = clean_env({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    t0 = time.monotonic()
    done = subprocess.run(bare_argv(private_data_dir), env=env, cwd=private_data_dir,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    took = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"bare ansible-runner failed ({done.returncode}): "
                           f"{done.stderr.decode(errors='replace')[-2000:]}")
    return took


# --------------------------------------------------------------------------- 3 throughput

def part_throughput(tmp: Path, project: Project, d: Durations, count: int,
                    concurrency: tuple[int, ...]) -> list[dict[str, Any]]:
    return [one_throughput(tmp, project, d, count, conc) for conc in concurrency]


def one_throughput(tmp: Path, project: Project, d: Durations, count: int, conc: int
                   ) -> dict[str, Any]:
    print(f"throughput: {count} Widgets, --max-concurrent-reconciles {conc}", flush=True)
    with world(tmp, f"throughput-{conc}") as cluster, \
            replicas(cluster, project.watches(f"throughput-{conc}"), d,
                     ("--max-concurrent-reconciles", str(conc))) as start:
        r = start(f"tp{conc}")
        leading(cluster, r, d.lease + 30)
        seq = cluster.last_seq()
        t0 = time.monotonic()
        for i in range(count):
            cluster.create(f"w{i:03d}", size=i)
        created = time.monotonic() - t0

        def all_done() -> bool:
            r.check_alive()
            ok = cluster.successful()
            return len(ok) == count and all(ok.values())
        until(all_done, 30 * count, f"all {count} Widgets to be Successful", 0.2)
        creates = [e for e in cluster.writes(Cluster.IDENTITY, seq)
                   if e.resource == PLURAL and e.verb == "create"]
        last = cluster.status_writes(r.identity, seq)[-1]
        elapsed = last.monotonic - creates[0].monotonic
        ends = r.ends()
        durations = [float(m["secs"]) for m in ends]
        row = {"concurrency": conc, "count": count, "elapsed": elapsed,
               "per_min": count / elapsed * 60, "created_in": created,
               "reconciles": len(ends), "median_reconcile": statistics.median(durations),
               "failed": sum(1 for m in ends if m["result"] != "succeeded")}
        print(f"  {count} Successful {secs(elapsed)} after the first create: "
              f"{row['per_min']:.1f} reconciles/min ({len(ends)} reconciles, "
              f"median {secs(row['median_reconcile'])})", flush=True)
    return row


# --------------------------------------------------------------------------- 4 failover

@dataclass
class Failover:
    scenario: str  # kill | term
    old: str
    new: str
    to_lease: float  # signal -> the new leader's first successful Lease write
    to_start: float  # signal -> its first reconcile start (its Running status write)
    from_last_write: float  # the old leader's last Lease write (renewal/release) -> acquired
    to_release: float | None = None  # term: signal -> the old leader's release write
    old_ran: bool = False  # term: the old leader started a run after the signal


@dataclass
class Fleet:
    cluster: Cluster
    start: Callable[[str], Replica]
    d: Durations
    live: list[Replica] = field(default_factory=list)
    n: int = 0
    size: int = 0

    def spawn(self) -> Replica:
        self.n += 1
        r = self.start(f"r{self.n}")
        self.live.append(r)
        return r

    def leader(self) -> Replica | None:
        holder = self.cluster.holder()
        return next((r for r in self.live if r.name == holder), None)

    def settle(self) -> Replica:
        """Three live replicas, one leading and idle with w1 reconciled, the others
        following it; then a random fraction of a retry period (any renewal phase)."""
        while len(self.live) < 3:
            self.spawn()
        for r in self.live:
            r.check_alive()
        leader = until(self.leader, 4 * self.d.lease + 30, "a leader", 0.05)
        for r in self.live:
            if r is not leader:
                until(lambda r=r: r.lines(rf"observed leader: {leader.name}$") and r.ready(),
                      60, f"{r.name} to follow {leader.name}", 0.05)
        until(lambda: self.cluster.successful().get("w1") and leader.idle(), 60,
              f"{leader.name} to have reconciled w1", 0.05)
        time.sleep(1.0 + random.uniform(0, self.d.retry))
        if self.leader() is not leader or not leader.idle():
            return self.settle()
        return leader

    def measure(self, scenario: str) -> Failover:
        old = self.settle()
        seq = self.cluster.last_seq()
        n_old = len(old.starts())
        t0 = time.monotonic()
        os.kill(old.pid, signal.SIGKILL if scenario == "kill" else signal.SIGTERM)
        self.size += 1
        self.cluster.change("w1", size=self.size)  # pending when the new leader takes over
        others = [r.identity for r in self.live if r is not old]
        acquired = until(lambda: next((e for e in self.cluster.lease_writes(seq)
                                       if e.identity in others), None),
                         self.d.lease + 6 * self.d.retry + 30, "a new leader's lease write",
                         0.01)
        new = next(r for r in self.live if r.identity == acquired.identity)
        first = until(lambda: (new.check_alive(),
                               (self.cluster.status_writes(new.identity, seq) or [None])[0])[1],
                      60, f"{new.name}'s first reconcile", 0.01)
        if scenario == "term":
            old.proc.wait(self.d.renew + 60)
        last = [e for e in self.cluster.lease_writes()
                if e.identity == old.identity and e.monotonic <= acquired.monotonic][-1]
        rep = Failover(scenario, old.name, new.name, acquired.monotonic - t0,
                       first.monotonic - t0, acquired.monotonic - last.monotonic)
        if scenario == "term":
            released = [e for e in self.cluster.lease_writes(seq) if e.identity == old.identity]
            rep.to_release = released[0].monotonic - t0 if released else None
            rep.old_ran = len(old.starts()) > n_old
        old.close()
        self.live.remove(old)
        print(f"  {scenario}: {old.name} -> {new.name}: lease acquired "
              f"+{secs(rep.to_lease)} ({secs(rep.from_last_write)} after {old.name}'s last "
              f"Lease write), first reconcile start +{secs(rep.to_start)}"
              + (f", released +{ms(rep.to_release)}" if rep.to_release is not None else "")
              + (" (the old leader started a run after the signal)" if rep.old_ran else ""),
              flush=True)
        return rep


def part_failover(tmp: Path, project: Project, d: Durations, reps: int) -> list[Failover]:
    print(f"failover: three replicas, {d.text()}, {reps} repetitions each", flush=True)
    out = []
    with world(tmp, "failover") as cluster, \
            replicas(cluster, project.watches("failover"), d) as start:
        cluster.create("w1", size=0)
        fleet = Fleet(cluster, start, d)
        for scenario in ("kill", "term"):
            for _ in range(reps):
                out.append(fleet.measure(scenario))
    return out


# --------------------------------------------------------------------------- 5 memory

class StandIn:
    """Holds the Lease for a holder that is not a replica, renewing it every second, so the
    replicas follow: they list and watch, queue every key, and run nothing."""

    HOLDER = "bench-stand-in"

    def __init__(self, cluster: Cluster, lease_seconds: int) -> None:
        self.cluster = cluster
        now = micro_now()
        cluster.coord.create_namespaced_lease(NS, {
            "metadata": {"name": LEASE, "namespace": NS},
            "spec": {"holderIdentity": self.HOLDER, "leaseDurationSeconds": lease_seconds,
                     "acquireTime": now, "renewTime": now, "leaseTransitions": 0}})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.cluster.coord.patch_namespaced_lease(
                    LEASE, NS, {"spec": {"renewTime": micro_now()}})
            except ApiException as e:
                print(f"  stand-in: renewal failed: {e.status} {e.reason}", flush=True)

    def release(self) -> None:
        """Stop renewing and give the Lease up (holder "", as a release writes it)."""
        self._stop.set()
        self._thread.join()
        now = micro_now()
        self.cluster.coord.patch_namespaced_lease(LEASE, NS, {"spec": {
            "holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
            "renewTime": now}})


def settled_rss(r: Replica, window: float = 5.0, limit: float = 60.0) -> int:
    """The replica's RSS once it has changed by less than 1 % over `window` seconds."""
    samples: list[tuple[float, int]] = []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        r.check_alive()
        now = time.monotonic()
        samples.append((now, r.rss()))
        recent = [v for t, v in samples if t >= now - window]
        if now - samples[0][0] >= window and max(recent) - min(recent) <= 0.01 * max(recent):
            return samples[-1][1]
        time.sleep(0.25)
    return samples[-1][1]


def part_memory(tmp: Path, project: Project, d: Durations, counts: tuple[int, ...],
                window: float) -> list[dict[str, Any]]:
    return [one_memory(tmp, project, d, n, window) for n in counts]


def one_memory(tmp: Path, project: Project, d: Durations, n: int, window: float
               ) -> dict[str, Any]:
    print(f"memory: {n} Widgets", flush=True)
    with world(tmp, f"memory-{n}") as cluster, \
            replicas(cluster, project.watches(f"memory-{n}", manage_status=False), d,
                     ("--max-concurrent-reconciles", "2")) as start:
        stand_in = StandIn(cluster, int(d.lease))
        t0 = time.monotonic()
        for i in range(n):
            cluster.create(f"w{i:04d}", size=i)
        created = time.monotonic() - t0
        r = start(f"mem{n}")
        until(lambda: (r.check_alive(), r.ready())[1], 120, f"{r.name} to be ready", 0.05)
        to_ready = time.monotonic() - r.started
        until(lambda: r.lines(rf"observed leader: {StandIn.HOLDER}$"), 30,
              f"{r.name} to follow the stand-in")
        follower = settled_rss(r)
        assert not r.starts(), "a follower reconciled"
        print(f"  created in {secs(created)}; ready {secs(to_ready)} after start; "
              f"following: RSS {follower / MIB:.1f} MiB", flush=True)
        stand_in.release()
        leading(cluster, r, 30)
        t_lead = time.monotonic()
        peak, peak_tree = r.rss(), r.tree_rss()
        while time.monotonic() - t_lead < window and len(r.ends()) < n:
            time.sleep(0.25)
            r.check_alive()
            peak, peak_tree = max(peak, r.rss()), max(peak_tree, r.tree_rss())
        done = len(r.ends())
        row = {"n": n, "created_in": created, "to_ready": to_ready, "follower": follower,
               "peak": peak, "peak_tree": peak_tree, "runs": done,
               "lead_seconds": time.monotonic() - t_lead, "all_done": done >= n}
        if done >= n:
            until(r.idle, 30, "the last run to end")
            row["leader_settled"] = settled_rss(r)
        print(f"  leading: {done} runs in {secs(row['lead_seconds'])}, peak RSS "
              f"{peak / MIB:.1f} MiB (with its runs {peak_tree / MIB:.1f} MiB)"
              + (f", settled {row['leader_settled'] / MIB:.1f} MiB"
                 if "leader_settled" in row else ""), flush=True)
    return row


# --------------------------------------------------------------------------- reports

def header(title: str, args: argparse.Namespace) -> list[str]:
    return [f"## {title} (`bench/operator_bench.py`)", "",
            f"Command: `{command_line('operator_bench.py')}`", "",
            f"Machine: {machine(extra=f', ansible-runner {runner_version()}')}.", ""]


_RUNNER_VERSION: list[str] = []


def runner_version() -> str:
    if not _RUNNER_VERSION:
        out = subprocess.run([str(RUNNER), "--version"], capture_output=True, text=True)
        _RUNNER_VERSION.append(out.stdout.strip() or "?")
    return _RUNNER_VERSION[0]


def report_latency(args: argparse.Namespace, d: Durations, res: dict[str, Any]) -> list[str]:
    ch: list[Change] = res["changes"]
    return [*header("Event-to-reconcile-start latency", args),
            f"One replica (`--leader-elect`, {d.text()}) watching Widget, mapped to a playbook "
            "of one `ansible.builtin.debug` task (`gather_facts: false`), ansible verbosity "
            f"{VERBOSITY} (the default). {len(ch)} merge patches of one Widget's spec by the "
            "benchmark, each 0.2-0.7 s after the previous reconcile ended. Times from the "
            "patch in kubesim's audit log (monotonic clock, taken at the end of each request) "
            "to: the replica's \"reconcile start\" log line (wall clock, ms: the worker has "
            "the key); its status write marking the Widget Running (the first write of a "
            "reconcile, after a GET; through its fencing proxy); its status write with the "
            "result (the reconcile is done).",
            "",
            "| from the spec change to | median | p90 | min | max |",
            "|---|---:|---:|---:|---:|",
            stats_row("\"reconcile start\" logged", [c.to_log_start for c in ch], ms),
            stats_row("status Running written (reconcile start)", [c.to_running for c in ch],
                      ms),
            stats_row("status Successful written (reconcile done)", [c.to_done for c in ch],
                      secs),
            ""]


def report_overhead(args: argparse.Namespace, d: Durations, res: dict[str, Any]) -> list[str]:
    ch: list[Change] = res["changes"]
    bare: list[float] = res["bare"]
    recon = [c.reconcile for c in ch]
    done = [c.to_done for c in ch]
    argv = " ".join(["ansible-runner", *bare_argv(Path("<dir>"))[1:]])
    return [*header("The runtime's overhead per reconcile", args),
            f"The loop of the latency figures, interleaved with bare ansible-runner: after each "
            f"of the {len(ch)} reconciles, the benchmark runs the same playbook once with "
            f"`{argv}` (the replica idle meanwhile), where `<dir>` has the playbook and copies "
            "of the replica's `inventory/hosts`, `env/extravars` and `env/envvars` for that "
            "Widget (localhost, local connection, the venv's interpreter; the extravars "
            "contract). For each reconcile the runtime runs `ansible-runner run <dir> "
            f"--rotate-artifacts 20 -p <playbook> -i <ident> -v{'v' * (VERBOSITY - 1)}`. Both "
            "start the venv's `ansible-runner` as a process and wait for its exit; one first, "
            "uncounted run warms the caches for each.",
            "",
            "| | median | p90 | min | max |",
            "|---|---:|---:|---:|---:|",
            stats_row("bare `ansible-runner` (process start → exit)", bare, secs),
            stats_row("runtime: reconcile (\"reconcile start\" → \"reconcile end\" log "
                      "lines)", recon, secs),
            stats_row("runtime: spec change → status Successful written", done, secs),
            stats_row("difference, same iteration: reconcile − bare run",
                      [a - b for a, b in zip(recon, bare, strict=True)], ms),
            stats_row("difference, same iteration: spec change → done − bare run",
                      [a - b for a, b in zip(done, bare, strict=True)], ms),
            "",
            f"Difference of the medians: reconcile − bare run = "
            f"**{ms(statistics.median(recon) - statistics.median(bare))}**; spec change → "
            f"done − bare run = **{ms(statistics.median(done) - statistics.median(bare))}**. "
            f"The runtime's ansible-runner processes themselves took {secs(res['run_mean'])} "
            f"on average ({res['runs']} runs; `ansible_operator_reconciles` sum/count: from "
            f"writing the input dir and starting the process to having read its events).",
            ""]


def report_throughput(args: argparse.Namespace, d: Durations,
                      rows: list[dict[str, Any]]) -> list[str]:
    return [*header("Reconciles per minute", args),
            f"One replica (`--leader-elect`, {d.text()}) watching Widget, mapped to a role of "
            "one `ansible.builtin.debug` task (ANSIBLE_GATHERING=explicit, so "
            "`--role-skip-facts`), status managed. Once it leads, the benchmark creates the "
            "Widgets one after the other; the time is, in kubesim's audit log, from the first "
            "create to the replica's last status write, when every Widget has the condition "
            "Successful (each is reconciled once). A fresh kubesim and replica per row.",
            "",
            "| `--max-concurrent-reconciles` | Widgets | first create → all Successful | "
            "reconciles/min | median reconcile (log) | failed |",
            "|---:|---:|---:|---:|---:|---:|",
            *[f"| {r['concurrency']} | {r['count']} | {secs(r['elapsed'])} | "
              f"{r['per_min']:.1f} | {secs(r['median_reconcile'])} | {r['failed']} |"
              for r in rows],
            "",
            f"Creating the Widgets took {', '.join(secs(r['created_in']) for r in rows)}.",
            ""]


def report_failover(args: argparse.Namespace, d: Durations, reps: list[Failover]
                    ) -> list[str]:
    lines = [*header("Failover", args),
             f"Three replicas (`--leader-elect`, {d.text()}), each its own process, one "
             "Widget. Before each repetition: three live replicas (a new one replaces the "
             "one signalled before), the leader idle with the Widget reconciled, the others "
             "following, and a random pause of 1 s + 0-1 retry period (any renewal phase). "
             "Then the leader gets the signal and the benchmark changes the Widget's spec at "
             "once (a pending change). Times from the signal, in kubesim's audit log: the new "
             "leader's first successful Lease write (acquisition) and its first status write "
             "(Running: its first reconcile start); and from the old leader's last Lease "
             "write (its last renewal; after SIGTERM, its release) to that acquisition. "
             "SIGTERM: the leader stops dispatching, lets in-flight runs finish (none here), "
             "and releases the Lease.",
             "",
             "| scenario | repetitions | signal → lease acquired | signal → first reconcile "
             "start | old leader's last Lease write → acquired | signal → release written |",
             "|---|---:|---:|---:|---:|---:|"]
    for scenario, label in (("kill", "SIGKILL of the leader"),
                            ("term", "SIGTERM of the leader (release)")):
        rs = [r for r in reps if r.scenario == scenario]
        if not rs:
            continue
        rel = [r.to_release for r in rs if r.to_release is not None]
        lines.append(f"| {label} | {len(rs)} | {fmt3([r.to_lease for r in rs])} | "
                     f"{fmt3([r.to_start for r in rs])} | "
                     f"{fmt3([r.from_last_write for r in rs])} | "
                     f"{fmt3(rel, ms) if rel else '—'} |")
    lines += ["", "min / median / max. Every repetition (seconds, lease acquired / first "
              "reconcile start):", ""]
    for scenario in ("kill", "term"):
        rs = [r for r in reps if r.scenario == scenario]
        if rs:
            lines.append(f"- {scenario}: " + "; ".join(
                f"{r.old}→{r.new} {r.to_lease:.2f} / {r.to_start:.2f}"
                + (" (the old leader started a run after the signal)" if r.old_ran else "")
                for r in rs))
    lines.append("")
    return lines


def report_memory(args: argparse.Namespace, d: Durations, rows: list[dict[str, Any]],
                  window: float) -> list[str]:
    lines = [*header("Memory", args),
             "RSS of the replica's own process (psutil `memory_info().rss`; its ansible-runner "
             "children are separate processes), one replica (`--leader-elect`, "
             f"{d.text()}, `--max-concurrent-reconciles 2`), Widget mapped to the one-task "
             "debug role with `manageStatus: false`. The Widgets are created before the "
             "replica starts, while a stand-in holder (the benchmark) holds and renews the "
             "Lease: the replica lists and watches them all, its paused work queue holds a "
             "key for each, and it runs nothing. \"following\": once /readyz answered 200 "
             "(informers synced) and the RSS changed by less than 1 % over 5 s. Then the "
             "stand-in releases the Lease and the replica leads and reconciles every Widget: "
             f"\"leading\" is the peak over its first {window:g} s (or until all were "
             "reconciled), and, when all were, the settled RSS after the last run. \"with its "
             "runs\": the sum of the RSS of the replica and all its descendants (ansible-runner, "
             "ansible-playbook, modules; pages they share are counted in each).",
             "",
             "| Widgets watched | start → /readyz | following (informers synced, no runs) | "
             "leading: peak | leading: peak with its runs | runs done | leading: after all "
             "runs |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        settled = f"{r['leader_settled'] / MIB:.1f} MiB" if "leader_settled" in r else \
            "— (not all reconciled)"
        lines.append(f"| {r['n']} | {secs(r['to_ready'])} | {r['follower'] / MIB:.1f} MiB | "
                     f"{r['peak'] / MIB:.1f} MiB | {r['peak_tree'] / MIB:.1f} MiB | "
                     f"{r['runs']} in {r['lead_seconds']:.0f} s | {settled} |")
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        per = (hi["follower"] - lo["follower"]) / (hi["n"] - lo["n"])
        lines += ["", f"Following, {hi['n']} Widgets take "
                  f"{(hi['follower'] - lo['follower']) / MIB:.1f} MiB more than {lo['n']}: "
                  f"about {per / 1024:.1f} KiB per watched resource (the informer's cached "
                  f"object, the queued key)."]
    lines.append("")
    return lines


# --------------------------------------------------------------------------- main

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="failover at 4/3/1 s, fewer changes, resources and repetitions")
    p.add_argument("--parts", default="latency,throughput,failover,memory",
                   help="which parts to run (latency also gives the overhead figures)")
    p.add_argument("--changes", type=int, help="latency loop length (30; quick 8)")
    p.add_argument("--resources", type=int, help="throughput: Widgets (50; quick 10)")
    p.add_argument("--reps", type=int, help="failover repetitions per signal (5; quick 2)")
    p.add_argument("--watched", type=int, help="memory: Widgets watched (1000 either way)")
    p.add_argument("--lead-window", type=float,
                   help="memory: seconds of leading sampled (60; quick 15)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true",
                   help="keep the replicas' logs and runner dirs (the path is printed)")
    p.add_argument("--json", help="results file for the report (bench/_report.py)")
    args = p.parse_args()
    random.seed(args.seed)
    quick = args.quick
    fail_d = Durations(4, 3, 1) if quick else Durations(15, 10, 2)
    d = Durations(15, 10, 2)  # one replica: the durations do not matter, the defaults
    changes = args.changes or (8 if quick else 30)
    count = args.resources or (10 if quick else 50)
    reps = args.reps or (2 if quick else 5)
    watched = args.watched or 1000
    window = args.lead_window or (15.0 if quick else 60.0)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = set(parts) - {"latency", "throughput", "failover", "memory"}
    if unknown:
        p.error(f"unknown parts: {sorted(unknown)}")
    if not OPERATOR.exists():
        p.error(f"{OPERATOR} is missing: run `make setup`")
    sections: list[tuple[str, list[str]]] = []
    data: dict[str, Any] = {"durations": asdict(d), "fail_durations": asdict(fail_d)}
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp_name:
        tmp = Path(tempfile.mkdtemp(prefix="operator-bench-")) if args.keep else Path(tmp_name)
        if args.keep:
            print(f"keeping the logs and runner dirs in {tmp}", flush=True)
        project = Project(tmp)
        if "latency" in parts:
            res = part_latency(tmp, project, d, changes)
            data["latency"] = {**res, "changes": [asdict(c) for c in res["changes"]]}
            sections.append(("operator_latency", report_latency(args, d, res)))
            sections.append(("operator_overhead", report_overhead(args, d, res)))
        if "throughput" in parts:
            rows = part_throughput(tmp, project, d, count, (1, 2))
            data["throughput"] = rows
            sections.append(("operator_throughput", report_throughput(args, d, rows)))
        if "failover" in parts:
            fo = part_failover(tmp, project, fail_d, reps)
            data["failover"] = [asdict(r) for r in fo]
            sections.append(("operator_failover", report_failover(args, fail_d, fo)))
        if "memory" in parts:
            mem = part_memory(tmp, project, d, (10, watched), window)
            data["memory"] = mem
            sections.append(("operator_memory", report_memory(args, d, mem, window)))
    print(f"\n(all parts took {time.monotonic() - t_start:.0f} s)\n")
    for _, lines in sections:
        print("\n".join(lines))
    if args.json:
        save(args.json, "operator_bench.py", data, sections,
             {"ansible-runner": runner_version()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
