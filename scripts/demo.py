"""`make demo`: three election-operator replicas, one Memcached; only the Lease holder acts.

1. Starts kubesim with its Deployment/ReplicaSet/Pod controllers in this process (or, when
   $KUBECONFIG is set, uses that cluster, in a namespace `election-demo` it creates and
   deletes at the end).
2. Applies deploy/crd.yaml and the Memcached of deploy/memcached-sample.yaml (size 3).
3. Starts three `election-operator run` replicas (replica-a, -b, -c) as local processes with
   deploy/watches.yaml (role election.kubernetes.memcached), lease election with short
   settings, each with its own token so kubesim's audit log tells who wrote what.
4. Shows, as time-stamped lines, who holds the Lease and what each replica does (from their
   logs: leadership, reconcile start/end), and what the cluster shows.
5. Once the Memcached is reconciled (Successful=True, 3 names in status.nodes), SIGKILLs the
   leader with its whole process tree and shows the handover; then scales the Memcached to 5
   and shows the new leader reconciling it until status.nodes has 5 names.
6. Ends with a summary (leaders and their terms, handover time, reconciles per replica, writes
   by replicas that did not hold the Lease at that moment, final Deployment and Pods), a PNG
   timeline and a JSON summary.
7. Stops everything it started, also on Ctrl-C or an error, and checks with psutil that none
   of the processes it started (replicas and everything they ran) is alive.

    .venv/bin/python scripts/demo.py [--out PNG] [--json FILE] [--workdir DIR]
        [--color auto|always|never] [--pause SECONDS]

Exit status: 0 when every step happened and nothing it started is left; 1 otherwise; 2 for
bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from election_operator import local  # noqa: E402
from kubesim import KubeSim  # noqa: E402

NAMES = ("replica-a", "replica-b", "replica-c")
LEASE = "memcached-operator"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 3.0, 1.0
GRACEFUL = 5.0  # --graceful-shutdown-timeout at the end of the demo
DEMO_NAMESPACE = "election-demo"  # on a real cluster
GROUP, VERSION, PLURAL, KIND = "cache.example.com", "v1alpha1", "memcacheds", "Memcached"
CRD_FILE = ROOT / "deploy" / "crd.yaml"
CR_FILE = ROOT / "deploy" / "memcached-sample.yaml"
WATCHES = ROOT / "deploy" / "watches.yaml"
COLLECTIONS = ROOT / ".venv" / "collections"
DEFAULT_DIR = ROOT / ".venv" / "demo"
SIZE_AFTER = 5
TICK = 0.2
T = TypeVar("T")

COLOURS = {"replica-a": "\033[36m", "replica-b": "\033[35m", "replica-c": "\033[33m",
           "lease": "\033[1;32m", "demo": "\033[1;31m", "cluster": "\033[34m"}
RESET = "\033[0m"


class DemoError(Exception):
    """A step did not happen (in time); the message says which."""


# --------------------------------------------------------------------------- output

@dataclass(order=True)
class Event:
    t: float  # wall clock, seconds since the epoch
    source: str = field(compare=False)  # a replica, "lease", "cluster" or "demo"
    text: str = field(compare=False)


class Screen:
    """Time-stamped lines, one per happening; events of the last moment are held back a
    little so that lines from the replicas' logs and from the API come out in time order."""

    HOLD = 0.3

    def __init__(self, t0: float, colour: bool) -> None:
        self.t0 = t0
        self.colour = colour
        self.pending: list[Event] = []

    def add(self, source: str, text: str, t: float | None = None) -> None:
        self.pending.append(Event(time.time() if t is None else t, source, text))

    def flush(self, everything: bool = False) -> None:
        cut = time.time() - (0 if everything else self.HOLD)
        ready = sorted(e for e in self.pending if e.t <= cut)
        self.pending = [e for e in self.pending if e.t > cut]
        for e in ready:
            source = f"{e.source:<9}"
            if self.colour and e.source in COLOURS:
                source = f"{COLOURS[e.source]}{source}{RESET}"
            print(f"{e.t - self.t0:6.1f}s  {source}  {e.text}", flush=True)

    def say(self, text: str = "") -> None:
        """A line outside the timeline (headings, the summary)."""
        self.flush(everything=True)
        print(text, flush=True)


# --------------------------------------------------------------------------- the cluster

class Cluster:
    """The demo's own client of the cluster and what it reads and writes there."""

    def __init__(self, kubeconfig: Path, namespace: str, sim: KubeSim | None) -> None:
        self.sim = sim
        self.ns = namespace
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.ext = client.ApiextensionsV1Api(self.api)
        self.cr_name = yaml.safe_load(CR_FILE.read_text())["metadata"]["name"]

    def close(self) -> None:
        self.api.close()

    def create_namespace(self) -> None:
        try:
            self.core.create_namespace({"metadata": {"name": self.ns}})
        except ApiException as e:
            if e.status == 409:
                raise DemoError(f"namespace {self.ns} exists already (left by an earlier demo?);"
                                f" delete it first: kubectl delete namespace {self.ns}") from e
            raise

    def delete_namespace(self) -> None:
        try:
            self.core.delete_namespace(self.ns)
        except ApiException as e:
            if e.status != 404:
                raise

    def apply_crd(self) -> str:
        body = yaml.safe_load(CRD_FILE.read_text())
        name = body["metadata"]["name"]
        try:
            self.ext.create_custom_resource_definition(body)
        except ApiException as e:
            if e.status != 409:
                raise
            current = self.ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            self.ext.replace_custom_resource_definition(name, body)
        wait_for(self._served, 30, f"the kind {KIND} to be served")
        return name

    def _served(self) -> bool:
        try:
            self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)
            return True
        except ApiException:
            return False

    def create_cr(self) -> int:
        body = yaml.safe_load(CR_FILE.read_text())
        body["metadata"]["namespace"] = self.ns
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)
        return int(body["spec"]["size"])

    def scale(self, size: int) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL,
                                                   self.cr_name, {"spec": {"size": size}})

    def cr(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL,
                                                        self.cr_name)

    def deployment(self) -> Any:
        try:
            return self.apps.read_namespaced_deployment(self.cr_name, self.ns)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def pods(self) -> list[Any]:
        return self.core.list_namespaced_pod(
            self.ns, label_selector=f"app=memcached,memcached_cr={self.cr_name}").items


def cr_state(cr: dict[str, Any]) -> tuple[str, list[str], tuple[str, ...]]:
    """(the Successful condition's status or "-", status.nodes, the types of the conditions
    that are True) of a Memcached."""
    status = cr.get("status") or {}
    conditions = status.get("conditions") or []
    successful = next((c.get("status", "-") for c in conditions
                       if c.get("type") == "Successful"), "-")
    true = tuple(sorted(c.get("type", "?") for c in conditions if c.get("status") == "True"))
    return successful, list(status.get("nodes") or []), true


class LeaseWatch:
    """Every version of the Lease (watch), in a thread: resourceVersion -> holder, and the
    holder changes as events for the screen."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.events: queue.Queue[tuple[float, str, int]] = queue.Queue()
        self.holders: dict[str, str] = {}  # resourceVersion -> holderIdentity ("" = none)
        self.holder = ""
        self.renewed = 0.0  # the holder's last renewTime (wall clock, seconds since the epoch)
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name="lease-watch", daemon=True)

    def start(self) -> LeaseWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(1)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._watch = watch.Watch()
            try:
                for ev in self._watch.stream(
                        self.cluster.coord.list_namespaced_lease, self.cluster.ns,
                        field_selector=f"metadata.name={LEASE}", timeout_seconds=5):
                    obj = ev["object"]
                    if ev["type"] not in ("ADDED", "MODIFIED") or obj.spec is None:
                        continue
                    holder = obj.spec.holder_identity or ""
                    self.holders[obj.metadata.resource_version] = holder
                    if obj.spec.renew_time is not None:
                        self.renewed = obj.spec.renew_time.timestamp()
                    if holder != self.holder:
                        self.holder = holder
                        self.events.put((time.time(), holder, obj.spec.lease_transitions or 0))
                    if self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - the connection dropped: watch again
                time.sleep(0.2)


# --------------------------------------------------------------------------- the replicas

class LogTail:
    """New complete lines of a replica's log, parsed (election_operator.local.LOG_LINE)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def new(self) -> list[tuple[float, str, str]]:
        """(time, level, message) of each line written since the last call."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        *complete, self.rest = (self.rest + data).split(b"\n")
        out = []
        for raw in complete:
            m = local.LOG_LINE.match(raw.decode(errors="replace"))
            if m:
                out.append((local.log_time(m["t"]), m["level"], m["msg"]))
        return out


def describe(name: str, level: str, msg: str) -> str | None:
    """What the screen says for one log line of a replica, or None (not shown)."""
    if msg.startswith("became the leader"):
        return "became the leader"
    if msg.startswith("observed leader: "):
        other = msg.removeprefix("observed leader: ")
        if other == "(none)":
            return "sees no leader"
        return None if other == name else f"follows {other}"
    if msg.startswith(("lost leadership", "leader election lost")):
        return msg
    m = local.START_MESSAGE.match(msg)
    if m:
        return f"reconcile start {m['kind']} {m['ns']}/{m['name']}"
    m = local.END_MESSAGE.match(msg)
    if m:
        return f"reconcile end   {m['kind']} {m['ns']}/{m['name']}: {m['result']} " \
               f"({m['secs']} s)"
    if level in ("WARNING", "ERROR", "CRITICAL") or "will be retried" in msg:
        return f"{level.lower()}: {msg.splitlines()[0][:160]}"
    return None


@dataclass
class Term:
    replica: str
    start: float
    end: float | None = None
    how: str = ""  # killed, lost, stopped


@dataclass
class Span:
    replica: str
    start: float
    end: float | None = None
    result: str = ""


@dataclass
class Story:
    """What happened, for the summary and the timeline (wall-clock times)."""

    t0: float
    terms: list[Term] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    marks: list[tuple[float, str, str]] = field(default_factory=list)  # (t, label, kind)
    lives: dict[str, list[float]] = field(default_factory=dict)  # replica -> [start, end]
    killed: str = ""
    t_kill: float = 0.0
    new_leader: str = ""
    t_acquired: float = 0.0
    t_first_reconcile: float = 0.0
    t_end: float = 0.0

    def on_log(self, name: str, t: float, msg: str) -> None:
        if msg.startswith("became the leader"):
            self.terms.append(Term(name, t))
        elif msg == "lost leadership: stopped":
            self.close_term(name, t, "stopped: SIGTERM")
        elif msg.startswith(("lost leadership", "leader election lost")):
            self.close_term(name, t, "lost")
        elif local.START_MESSAGE.match(msg):
            self.spans.append(Span(name, t))
        elif m := local.END_MESSAGE.match(msg):
            span = next((s for s in reversed(self.spans)
                         if s.replica == name and s.end is None), None)
            if span is not None:
                span.end, span.result = t, m["result"]

    def close_term(self, name: str, t: float, how: str) -> None:
        for term in self.terms:
            if term.replica == name and term.end is None:
                term.end, term.how = t, how
        for span in self.spans:
            if span.replica == name and span.end is None:
                span.end, span.result = t, how

    def leading(self) -> str:
        open_terms = [t for t in self.terms if t.end is None]
        return open_terms[-1].replica if open_terms else ""


class Fleet:
    """The three replicas, their logs on the screen and in the story."""

    def __init__(self, workdir: Path, cluster: Cluster, kubeconfig: Path | None,
                 screen: Screen, story: Story) -> None:
        self.workdir = workdir
        self.cluster = cluster
        self.kubeconfig = kubeconfig
        self.screen = screen
        self.story = story
        self.replicas: list[local.Replica] = []
        self.tails: dict[str, LogTail] = {}
        self.gone: set[str] = set()  # replicas the demo killed or stopped
        self.exited: dict[str, int] = {}  # replicas that exited on their own

    def start(self) -> None:
        cluster = self.cluster
        args = ("--leader-elect", "--leader-election-id", LEASE,
                "--leader-election-namespace", cluster.ns,
                "--leader-elect-lease-duration", f"{LEASE_DURATION:g}s",
                "--leader-elect-renew-deadline", f"{RENEW_DEADLINE:g}s",
                "--leader-elect-retry-period", f"{RETRY_PERIOD:g}s",
                "--graceful-shutdown-timeout", f"{GRACEFUL:g}s")
        env = {"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "WATCH_NAMESPACE": cluster.ns}
        for name in NAMES:
            if cluster.sim is not None:
                r = local.Replica(name, self.workdir, WATCHES, args, sim=cluster.sim, env=env)
            else:
                r = local.Replica(name, self.workdir, WATCHES, args, kubeconfig=self.kubeconfig,
                                  env=env)
            self.replicas.append(r)
            self.tails[name] = LogTail(r.log_path)
            self.story.lives[name] = [time.time(), 0.0]

    def by_name(self, name: str) -> local.Replica | None:
        return next((r for r in self.replicas if r.name == name), None)

    def poll(self) -> None:
        """Read the logs, note the processes, notice a replica that exited."""
        for r in self.replicas:
            for t, level, msg in self.tails[r.name].new():
                self.story.on_log(r.name, t, msg)
                text = describe(r.name, level, msg)
                if text:
                    self.screen.add(r.name, text, t)
            if r.name in self.gone:
                continue
            r.sample()
            if not r.running() and r.name not in self.exited:
                self.exited[r.name] = r.proc.returncode
                self.story.close_term(r.name, time.time(), "exited")
                self.story.lives[r.name][1] = time.time()
                self.screen.add(r.name, f"exited with status {r.proc.returncode} "
                                        f"(log: {shown(r.log_path)})")

    def kill(self, r: local.Replica) -> int:
        """SIGKILL `r` and its whole process tree; returns how many processes that was."""
        r.sample()
        victims = len({p.pid for p in r.tree()} | {p.pid for p in local.marked(r.pid)})
        self.gone.add(r.name)
        left = r.kill()
        self.story.lives[r.name][1] = time.time()
        if left:
            raise DemoError(f"{r.name}: processes survived SIGKILL: {[p.pid for p in left]}")
        return victims

    def stop(self) -> None:
        """SIGTERM the followers first, then the leader (so no one takes over after the
        leader releases the Lease), and kill whatever is left of them."""
        leader = self.story.leading()
        order = sorted(self.replicas, key=lambda r: r.name == leader)
        for r in order:
            if r.name in self.gone:
                continue
            self.gone.add(r.name)
            if r.running():
                r.terminate(GRACEFUL + RENEW_DEADLINE + 5)
            else:
                r.kill()
            self.story.lives[r.name][1] = time.time()

    def survivors(self) -> list[psutil.Process]:
        return [p for r in self.replicas for p in r.survivors()]

    def started(self) -> list[psutil.Process]:
        """Every process of the replicas the demo has seen (the replicas included)."""
        return sorted({p for r in self.replicas for p in r.seen}, key=lambda p: p.pid)

    def close(self) -> None:
        for r in self.replicas:
            r.close()


# --------------------------------------------------------------------------- the steps

def wait_for(probe: Callable[[], T | None], timeout: float, what: str,
             tick: Callable[[], None] | None = None) -> T:
    """Poll `probe` (calling `tick` between polls) until it returns something truthy; a
    DemoError after `timeout` seconds."""
    return local.until(probe, timeout, what, TICK, error=DemoError, between=tick)


class Demo:
    def __init__(self, args: argparse.Namespace, screen: Screen, story: Story,
                 cluster: Cluster, fleet: Fleet, lease: LeaseWatch) -> None:
        self.args = args
        self.screen = screen
        self.story = story
        self.cluster = cluster
        self.fleet = fleet
        self.lease = lease
        self.cr_seen: tuple[str, list[str], tuple[str, ...]] | None = None
        self.deploy_seen: tuple[int, int] | None = None
        self.next_cluster_poll = 0.0
        self.next_heartbeat = time.monotonic() + 5

    def tick(self) -> None:
        """One round of watching: the replicas' logs, the Lease, the cluster; then print."""
        time.sleep(TICK)
        self.fleet.poll()
        while not self.lease.events.empty():
            t, holder, transitions = self.lease.events.get()
            self.screen.add("lease", f"holder: {holder or '(none)'} "
                                     f"(leaseTransitions {transitions})", t)
        now = time.monotonic()
        if now >= self.next_cluster_poll:
            self.next_cluster_poll = now + 0.5
            self.poll_cluster()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + 5
            holder = self.lease.holder
            if holder:
                ago = time.time() - self.lease.renewed
                others = [n for n in NAMES if n != holder and
                          n not in self.fleet.gone and n not in self.fleet.exited]
                if holder in self.fleet.gone:
                    text = (f"still names {holder} (renewTime {ago:.1f} s ago); the others "
                            f"wait for it to expire")
                else:
                    text = (f"held by {holder} (renewTime {ago:.1f} s ago); following: "
                            f"{', '.join(others) or 'nobody'}")
                self.screen.add("lease", text)
        self.screen.flush()

    def poll_cluster(self) -> None:
        try:
            state = cr_state(self.cluster.cr())
            dep = self.cluster.deployment()
        except ApiException as e:
            self.screen.add("cluster", f"read failed: {e.status} {e.reason}")
            return
        if state != self.cr_seen:
            self.cr_seen = state
            _, nodes, true = state
            self.screen.add("cluster", f"{self.cluster.cr_name}: conditions "
                                       f"{'+'.join(true) or '(none yet)'}, status.nodes: "
                                       f"{len(nodes)} names")
        if dep is not None:
            counts = (dep.spec.replicas or 0, (dep.status.ready_replicas or 0))
            if counts != self.deploy_seen:
                self.deploy_seen = counts
                self.screen.add("cluster", f"Deployment {dep.metadata.name}: {counts[1]}/"
                                           f"{counts[0]} Pods ready")

    def reconciled(self, size: int) -> bool:
        successful, nodes, _ = cr_state(self.cluster.cr())
        return successful == "True" and len(nodes) == size

    def hold(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.tick()

    def run(self) -> None:
        s, c = self.screen, self.cluster
        crd = c.apply_crd()
        s.add("demo", f"applied {CRD_FILE.relative_to(ROOT)}: CustomResourceDefinition {crd}")
        size = c.create_cr()
        s.add("demo", f"created {KIND} {c.ns}/{c.cr_name} (spec.size {size}) from "
                      f"{CR_FILE.relative_to(ROOT)}")
        self.lease.start()
        self.fleet.start()
        s.add("demo", "started " + ", ".join(f"{r.name} (pid {r.pid})"
                                             for r in self.fleet.replicas))
        wait_for(lambda: self.reconciled(size), 120,
                 f"{c.cr_name} to be reconciled (Successful=True, {size} names in status.nodes)",
                 self.tick)
        s.add("demo", f"{c.cr_name} is reconciled: Successful=True, status.nodes has "
                      f"{size} names")
        self.story.marks.append((time.time(), f"{size} nodes", "done"))
        self.hold(self.args.pause)
        self.kill_leader()
        self.hold(self.args.pause / 2)
        c.scale(SIZE_AFTER)
        self.story.marks.append((time.time(), f"size {size} → {SIZE_AFTER}", "scale"))
        s.add("demo", f"scaled {c.cr_name}: spec.size {size} -> {SIZE_AFTER}")
        wait_for(lambda: self.reconciled(SIZE_AFTER), 120,
                 f"{c.cr_name} to be reconciled at size {SIZE_AFTER}", self.tick)
        s.add("demo", f"{c.cr_name} is reconciled: Successful=True, status.nodes has "
                      f"{SIZE_AFTER} names")
        self.story.marks.append((time.time(), f"{SIZE_AFTER} nodes", "done"))
        self.hold(self.args.pause)

    def kill_leader(self) -> None:
        s, story = self.screen, self.story
        holder = wait_for(lambda: self.lease.holder, 10, "a Lease holder", self.tick)
        leader = self.fleet.by_name(holder)
        if leader is None:
            raise DemoError(f"the Lease is held by {holder!r}, not by a replica of this demo")
        self.fleet.poll()
        story.t_kill = time.time()
        n = self.fleet.kill(leader)
        story.killed = leader.name
        story.close_term(leader.name, story.t_kill, "killed")
        story.marks.append((story.t_kill, f"SIGKILL {leader.name}", "kill"))
        s.add("demo", f"SIGKILL {leader.name}, the leader, and its whole process tree "
                      f"({n} process{'' if n == 1 else 'es'})", story.t_kill)
        s.add("demo", f"the others take over when the Lease expires: lease duration "
                      f"{LEASE_DURATION:g} s after they last saw it renewed", story.t_kill)

        def new_term() -> Term | None:
            return next((t for t in story.terms if t.start > story.t_kill), None)
        term = wait_for(new_term, 4 * LEASE_DURATION + 20, "another replica to lead",
                        self.tick)
        story.new_leader, story.t_acquired = term.replica, term.start
        s.add("demo", f"handover: {term.replica} leads {term.start - story.t_kill:.2f} s after "
                      f"the kill", term.start)

        def first_reconcile() -> Span | None:
            return next((sp for sp in story.spans if sp.replica == term.replica
                         and sp.start >= term.start), None)
        span = wait_for(first_reconcile, 60, f"{term.replica}'s first reconcile", self.tick)
        story.t_first_reconcile = span.start
        wait_for(lambda: span.end, 60, f"{term.replica}'s first reconcile to end", self.tick)


# --------------------------------------------------------------------------- the end

def non_leader_writes(cluster: Cluster, fleet: Fleet, lease: LeaseWatch
                      ) -> tuple[int, int, list[str]]:
    """From kubesim's audit log: (writes by the replicas other than their Lease writes,
    how many of them by a replica that was not the Lease holder at that moment, those)."""
    assert cluster.sim is not None
    names = {r.identity: r.name for r in fleet.replicas}
    holder = ""
    total, bad = 0, []
    for e in cluster.sim.audit.entries(writes_only=True):
        if not 200 <= e.code < 300:
            continue
        if e.resource == "leases" and e.name in (LEASE, "") and e.namespace == cluster.ns:
            # (A create names no object in its path.) The holder the write left; a version
            # the watch missed was written by its holder (a renewal or an acquisition).
            holder = lease.holders.get(e.resource_version, names.get(e.identity, holder))
            continue
        who = names.get(e.identity)
        if who is None:
            continue
        total += 1
        if who != holder:
            bad.append(f"{who}: {e.verb} {e.resource}/{e.subresource or ''} {e.name} "
                       f"(seq {e.seq}) while the Lease named {holder or 'nobody'}")
    return total, len(bad), bad


def summarize(story: Story, cluster: Cluster, fleet: Fleet, lease: LeaseWatch
              ) -> dict[str, Any]:
    rel = story.t0
    successful, nodes, _ = cr_state(cluster.cr())
    dep = cluster.deployment()
    pods = cluster.pods()
    out: dict[str, Any] = {
        "cluster": "kubesim" if cluster.sim is not None else "KUBECONFIG",
        "namespace": cluster.ns,
        "name": cluster.cr_name,
        "lease": {"name": LEASE, "lease_duration": LEASE_DURATION,
                  "renew_deadline": RENEW_DEADLINE, "retry_period": RETRY_PERIOD},
        "leaders": [{"replica": t.replica, "from": round(t.start - rel, 3),
                     "to": None if t.end is None else round(t.end - rel, 3), "end": t.how}
                    for t in story.terms],
        "killed": story.killed, "kill_at": round(story.t_kill - rel, 3),
        "new_leader": story.new_leader,
        "handover_seconds": round(story.t_acquired - story.t_kill, 3),
        "first_reconcile_after_kill_seconds": round(story.t_first_reconcile - story.t_kill, 3),
        "reconciles": {n: sum(1 for s in story.spans if s.replica == n) for n in NAMES},
        "reconcile_results": {n: sorted({s.result for s in story.spans if s.replica == n})
                              for n in NAMES},
        "final": {"successful": successful, "nodes": nodes,
                  "deployment": None if dep is None else {
                      "name": dep.metadata.name, "replicas": dep.spec.replicas,
                      "ready": dep.status.ready_replicas or 0},
                  "pods": [{"name": p.metadata.name, "phase": p.status.phase,
                            "node": p.spec.node_name} for p in pods]},
        "replica_exits": fleet.exited,
    }
    if cluster.sim is not None:
        total, bad, which = non_leader_writes(cluster, fleet, lease)
        out["writes"] = {"by_replicas": total, "by_non_leaders": bad, "non_leader": which}
    else:
        out["writes"] = None
    return out


def print_summary(screen: Screen, s: dict[str, Any], story: Story) -> None:
    say = screen.say
    say("\nSummary")
    for i, t in enumerate(s["leaders"], 1):
        end = f"{t['to']:.1f} s ({t['end']})" if t["to"] is not None else "the end"
        say(f"  leader {i}: {t['replica']}, from {t['from']:.1f} s to {end}")
    say(f"  handover: {s['killed']} SIGKILLed at {s['kill_at']:.1f} s; {s['new_leader']} "
        f"led {s['handover_seconds']:.2f} s later and started reconciling "
        f"{s['first_reconcile_after_kill_seconds']:.2f} s after the kill (lease duration "
        f"{LEASE_DURATION:g} s)")
    for name in NAMES:
        results = ", ".join(s["reconcile_results"][name]) or "-"
        say(f"  reconciles by {name}: {s['reconciles'][name]} ({results})")
    if s["writes"] is None:
        say("  writes by a replica that was not the leader: cannot be checked on this cluster "
            "(only kubesim's audit log records who wrote what)")
    else:
        w = s["writes"]
        say(f"  writes by a replica that was not the Lease holder at that moment: "
            f"{w['by_non_leaders']} of {w['by_replicas']} writes by the replicas "
            f"(kubesim's audit log; Lease writes not counted)")
        for line in w["non_leader"][:10]:
            say(f"    {line}")
    f = s["final"]
    d = f["deployment"]
    say(f"  final: {KIND} {s['namespace']}/{s['name']} Successful={f['successful']}, "
        f"status.nodes ({len(f['nodes'])}): {' '.join(f['nodes'])}")
    if d is not None:
        say(f"  final: Deployment {d['name']}: {d['ready']}/{d['replicas']} ready")
    for p in f["pods"]:
        say(f"    Pod {p['name']}  {p['phase']}  on {p['node']}")
    for name, code in s["replica_exits"].items():
        say(f"  {name} exited on its own with status {code}")


def draw(story: Story, path: Path, title: str) -> None:
    """The timeline: a row per replica with its process's life, its leadership terms and its
    reconciles; the kill, the scaling and the reconciled states marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rel = story.t0
    end = story.t_end - rel
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    rows = {name: i for i, name in enumerate(reversed(NAMES))}
    for name, (start, stop) in story.lives.items():
        stop = stop or story.t_end
        ax.broken_barh([(start - rel, stop - start)], (rows[name] - 0.04, 0.08),
                       facecolors="#9e9e9e")
    for t in story.terms:
        stop = (t.end if t.end is not None else story.t_end) - rel
        ax.broken_barh([(t.start - rel, stop - (t.start - rel))], (rows[t.replica] - 0.35, 0.7),
                       facecolors="#c8e6c9", edgecolors="#2e7d32", linewidth=1.2)
    colours = {"succeeded": "#1565c0", "failed": "#c62828"}
    for sp in story.spans:
        stop = (sp.end if sp.end is not None else story.t_end) - rel
        ax.broken_barh([(sp.start - rel, max(stop - (sp.start - rel), 0.05))],
                       (rows[sp.replica] - 0.18, 0.36),
                       facecolors=colours.get(sp.result, "#757575"), edgecolors="white",
                       linewidth=1.0)
    styles = {"kill": ("#c62828", "--"), "scale": ("#6a1b9a", "--"), "done": ("#2e7d32", ":")}
    for i, (t, label, kind) in enumerate(sorted(story.marks)):
        colour, style = styles[kind]
        ax.axvline(t - rel, color=colour, linestyle=style, linewidth=1.2)
        ax.text(t - rel, len(NAMES) - 0.42 + 0.22 * (i % 2), f" {label}", color=colour,
                fontsize=8.5, va="bottom")
    if story.new_leader:
        y = rows[story.new_leader] + 0.42
        ax.annotate("", xy=(story.t_acquired - rel, y), xytext=(story.t_kill - rel, y),
                    arrowprops={"arrowstyle": "<->", "color": "#c62828"})
        ax.text((story.t_kill + story.t_acquired) / 2 - rel, y + 0.03,
                f"handover {story.t_acquired - story.t_kill:.1f} s", color="#c62828",
                fontsize=8.5, ha="center", va="bottom")
    ax.set_yticks(list(rows.values()), list(rows.keys()))
    ax.set_ylim(-0.6, len(NAMES) + 0.1)
    ax.set_xlim(0, end + 0.5)
    ax.set_xlabel("seconds since the demo started")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([0], [0], color="#9e9e9e", linewidth=3, label="process running"),
               Patch(facecolor="#c8e6c9", edgecolor="#2e7d32", label="leader"),
               Patch(facecolor="#1565c0", label="reconcile (succeeded)")]
    if any(sp.result == "failed" for sp in story.spans):
        handles.append(Patch(facecolor="#c62828", label="reconcile (failed)"))
    if any(sp.result not in colours for sp in story.spans):
        handles.append(Patch(facecolor="#757575", label="reconcile (cut short)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=len(handles), fontsize=8.5, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- main

@contextmanager
def interrupts_as_errors() -> Iterator[None]:
    """Ctrl-C (SIGINT, also where a shell started the demo with it ignored), SIGTERM and
    SIGHUP end the demo through the clean-up; a second one does not cut the clean-up short."""
    raised: list[int] = []

    def raise_interrupt(signum: int, _frame: Any) -> None:
        if raised:
            return
        raised.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, raise_interrupt)
           for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    default = DEFAULT_DIR.relative_to(ROOT)
    p.add_argument("--out", type=Path, default=DEFAULT_DIR / "timeline.png",
                   help=f"the PNG timeline (default: {default}/timeline.png)")
    p.add_argument("--json", type=Path, default=DEFAULT_DIR / "summary.json",
                   help=f"the summary as JSON (default: {default}/summary.json)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_DIR / "replicas",
                   help="the replicas' kubeconfigs, logs and runner dirs, emptied first "
                        f"(default: {default}/replicas)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the sources of the lines (auto: when a terminal, and "
                        "NO_COLOR is not set)")
    p.add_argument("--pause", type=float, default=5.0,
                   help="seconds to watch the steady state after each step (default 5)")
    args = p.parse_args(argv)
    if args.pause < 0:
        p.error(f"--pause must be 0 or more seconds, got {args.pause:g}")
    if args.out.suffix.lower() != ".png":
        p.error(f"--out must name a .png file, got {args.out}")
    args.out, args.json, args.workdir = (x.resolve() for x in (args.out, args.json,
                                                                args.workdir))
    return args


def prepare_workdir(workdir: Path) -> None:
    """Create `workdir`, or empty it of what an earlier demo left there; refuse a directory
    with anything else in it."""
    ours = {*NAMES, "kubeconfig-demo"}
    if workdir.exists():
        if not workdir.is_dir():
            raise DemoError(f"--workdir {workdir} is not a directory")
        others = sorted(p.name for p in workdir.iterdir() if p.name not in ours)
        if others:
            raise DemoError(f"--workdir {workdir} holds other files than an earlier demo's "
                            f"({', '.join(others[:5])}); name a new or empty directory")
        for p in workdir.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    workdir.mkdir(parents=True, exist_ok=True)


def shown(path: Path) -> str:
    """`path` relative to the current directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                        and not os.environ.get("NO_COLOR"))
    if not local.OPERATOR.exists():
        print(f"{local.OPERATOR} is missing: run `make setup`", file=sys.stderr)
        return 1
    t0 = time.time()
    screen = Screen(t0, colour)
    story = Story(t0)
    try:
        prepare_workdir(args.workdir)
    except DemoError as e:
        print(f"demo.py: {e}", file=sys.stderr)
        return 2
    real = os.environ.get("KUBECONFIG")
    ok = False
    fleet: Fleet | None = None
    summary: dict[str, Any] | None = None
    cluster_note = ""
    with interrupts_as_errors(), ExitStack() as stack:
        try:
            if real:
                sim = None
                kubeconfig = Path(real.split(os.pathsep)[0])
                ns = DEMO_NAMESPACE
                where = f"the cluster of KUBECONFIG={real}, namespace {ns} (deleted at the end)"
            else:
                sim = stack.enter_context(KubeSim(controllers=True, nodes=2))
                kubeconfig = sim.write_kubeconfig(args.workdir / "kubeconfig-demo",
                                                  token="demo")
                ns = "default"
                cluster_note = "kubesim stopped with the demo"
                where = (f"kubesim at {sim.url} (in this process, with its Deployment/"
                         f"ReplicaSet/Pod controllers and 2 Nodes), namespace {ns}")
            screen.say(f"election.kubernetes demo, {datetime.now():%Y-%m-%d %H:%M:%S}")
            screen.say(f"  cluster:  {where}")
            screen.say(f"  replicas: {', '.join(NAMES)}: election-operator run --watches-file "
                       f"{WATCHES.relative_to(ROOT)} (role election.kubernetes.memcached)")
            screen.say(f"  election: Lease {ns}/{LEASE}, --leader-elect-lease-duration "
                       f"{LEASE_DURATION:g}s --leader-elect-renew-deadline {RENEW_DEADLINE:g}s "
                       f"--leader-elect-retry-period {RETRY_PERIOD:g}s")
            screen.say(f"  logs:     {shown(args.workdir)}/<replica>/operator.log\n")
            cluster = Cluster(kubeconfig, ns, sim)
            stack.callback(cluster.close)
            if real:
                cluster.create_namespace()
                stack.callback(cluster.delete_namespace)
                cluster_note = (f"namespace {ns} deleted; the CustomResourceDefinition "
                                f"stays")
            fleet = Fleet(args.workdir, cluster, None if sim else kubeconfig, screen, story)
            stack.callback(fleet.close)
            lease = LeaseWatch(cluster)
            stack.callback(lease.stop)
            demo = Demo(args, screen, story, cluster, fleet, lease)
            demo.run()
            fleet.stop()
            fleet.poll()
            story.t_end = time.time()
            if story.leading():  # it said nothing about it: note the end of its term
                story.close_term(story.leading(), story.t_end, "stopped")
            screen.add("demo", "stopped the replicas (SIGTERM: the leader released the Lease)")
            screen.flush(everything=True)
            summary = summarize(story, cluster, fleet, lease)
            ok = not fleet.exited and (summary["writes"] is None
                                       or summary["writes"]["by_non_leaders"] == 0)
        except DemoError as e:
            screen.say(f"\ndemo failed: {e}")
        except KeyboardInterrupt:
            screen.say("\ninterrupted: stopping everything")
        except Exception as e:  # noqa: BLE001 - report, then clean up
            screen.say(f"\ndemo failed: {type(e).__name__}: {e}")
            import traceback
            traceback.print_exc()
        finally:
            if fleet is not None:
                for r in fleet.replicas:
                    r.kill()
    # Everything the ExitStack held is stopped now (replicas, the Lease watch, kubesim, the
    # namespace of a real cluster).
    started = fleet.started() if fleet is not None else []
    left = fleet.survivors() if fleet is not None else []
    if summary is not None:
        print_summary(screen, summary, story)
        title = (f"election.kubernetes demo: 3 replicas, Lease {LEASE_DURATION:g}/"
                 f"{RENEW_DEADLINE:g}/{RETRY_PERIOD:g} s; {summary['killed']} SIGKILLed, "
                 f"{summary['new_leader']} took over in {summary['handover_seconds']:.1f} s")
        draw(story, args.out, title)
        summary["timeline_png"] = str(args.out)
    report = {"ok": ok and not left, "summary": summary,
              "processes": {"started": [{"pid": p.pid, "create_time": p.create_time()}
                                        for p in started if _has_time(p)],
                            "alive": [p.pid for p in left]}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    if summary is not None:
        screen.say(f"  timeline: {shown(args.out)}")
    screen.say(f"  summary:  {shown(args.json)}")
    replicas = len(fleet.replicas) if fleet is not None else 0
    if left:
        screen.say(f"  LEFT ALIVE: {', '.join(f'{p.pid} {local.cmdline(p)[:3]}' for p in left)}")
    else:
        screen.say(f"  processes: the {replicas} replicas and the {len(started) - replicas} "
                   f"processes of theirs seen are all gone (psutil)")
    if cluster_note:
        screen.say(f"  cluster:  {cluster_note}")
    return 0 if report["ok"] else 1


def _has_time(p: psutil.Process) -> bool:
    try:
        p.create_time()
        return True
    except psutil.Error:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
