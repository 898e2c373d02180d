"""`make chaos`: three election-operator replicas reconcile Memcacheds while a seeded schedule of
faults hits them; a split-brain detector judges, from what the API server saw, whether only one
replica acted at a time and whether anything was lost.

1. kubesim, in this process, with its Deployment/ReplicaSet/Pod controllers and RBAC: the
   replicas authenticate as the ServiceAccount `memcached-operator` of namespace `chaos`,
   bound only to deploy/role.yaml (deploy/service_account.yaml, deploy/role_binding.yaml).
   Every replica *process* gets its own token, so the audit log names the process.
2. deploy/crd.yaml and `--crs` Memcacheds (memcached-0, ...) with seeded sizes.
3. Three replicas (replica-a, -b, -c): `election-operator run --watches-file
   deploy/watches.yaml --leader-elect` with a short lease (4 s, renew deadline 3 s, retry 1 s),
   supervised as a Deployment's kubelet would: a replica that exits or is killed is started
   again after `--restart-delay` seconds, with the same Pod name (its identity in the Lease,
   as a container restarted in its Pod) but as a new process with a new token.
4. After the replicas reconciled every Memcached once, the faults of the schedule
   (bench/_chaos_schedule.py; printed first), while the Memcacheds' sizes change at seeded
   moments: SIGKILL of a whole process tree, SIGTERM, SIGSTOP longer than the lease then
   SIGCONT, an API outage for every replica longer than the renew deadline, 500/429/503
   bursts, latency above the election's request timeout, a network partition of one replica
   (its requests held unanswered or refused), and a replica restarted under Debian's
   faketime (wall clock offset, or running fast; the monotonic clock is left alone, as on a
   real host).
5. Then it waits, bounded, for every Memcached to converge, stops the replicas, and judges
   (bench/_chaos_detect.py has the precise definitions): (a) fencing violations, (b) overlaps
   of reconciles, (c) periods with no leader longer than the bound, (d) Memcacheds that did
   not converge, (e) lost objects and lost size changes, and counts the 401/403 answers to
   the replicas (RBAC: must be none).

    .venv/bin/python bench/chaos.py [--faults 200] [--seed 20261122] [--crs 5]
        [--workdir DIR] [--json FILE] [--write docs/chaos.md]

Exit status: 0 when nothing was violated, 1 otherwise (the report says what), 2 for bad
arguments or when the setup itself failed. Same seed, same schedule.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _chaos_detect as detect  # noqa: E402
import _chaos_schedule as plan  # noqa: E402

from election_operator import local  # noqa: E402
from kubesim import KubeSim  # noqa: E402

DEFAULT_SEED = 20261122
NS = "chaos"
SA = "memcached-operator"
LEASE_NAME = "memcached-operator"
SLOTS = ("replica-a", "replica-b", "replica-c")
DEPLOY = ROOT / "deploy"
WATCHES = DEPLOY / "watches.yaml"
COLLECTIONS = ROOT / ".venv" / "collections"
DEFAULT_WORKDIR = ROOT / ".venv" / "chaos"
GROUP, VERSION, PLURAL, KIND = "cache.example.com", "v1alpha1", "memcacheds", "Memcached"
CR_KEY, DEPLOY_KEY, POD_KEY = (GROUP, PLURAL), ("apps", "deployments"), ("", "pods")
LEASE_KEY = ("coordination.k8s.io", "leases")
DRIVER_AGENT = "chaos-driver"
GRACEFUL = 5.0  # --graceful-shutdown-timeout of the replicas
TICK = 0.1
# (c): the longest legitimate wait for a new leader is a follower seeing the last renewal,
# waiting leaseDuration, then up to JITTER x retryPeriod more, then a GET and a PUT.
JITTER = 1.2
HANDOVER_SLACK = 2.0
# (b): a replica thawed after its lease ended must have killed its reconciles within this.
STALE_BOUND = 2.0
# A reconcile that raised (e.g. its first GET got a 429) ends with this line, not "reconcile end".
RECONCILE_FAILED = re.compile(local.LOG_LINE.pattern.removesuffix("(?P<msg>.*)$")
                              + r"reconcile of (?P<kind>\S+) (?P<ns>[^/\s]*)/(?P<name>\S+) "
                                r"failed: ")
LIBFAKETIME_GLOBS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1")
SLEEP_FIX = '''"""For processes under libfaketime with FAKETIME_DONT_FAKE_MONOTONIC=1:
libfaketime 0.9.10 breaks clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), which time.sleep
uses (every sleep fails with EINVAL). Sleep with select() until the monotonic clock says so."""
import select
import time


def _sleep(seconds):
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
'''


class SetupError(Exception):
    """The run could not be set up (not a verdict on the runtime)."""


# --------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    faults: int = 200
    seed: int = DEFAULT_SEED
    crs: int = 5
    lease: plan.Lease = plan.Lease()
    restart_delay: float = 1.0
    gap: tuple[float, float] = (1.5, 4.0)
    max_size: int = 4
    workdir: Path = DEFAULT_WORKDIR
    command: str = ""  # how this run was started, for the report
    # A deliberate split brain, to show the detector finds one (tests only): from the start
    # of the fault phase a fourth replica, "rogue", runs without leader election.
    rogue: bool = False

    @property
    def handover_bound(self) -> float:
        return self.lease.duration + JITTER * self.lease.retry_period + HANDOVER_SLACK

    def replica_args(self) -> tuple[str, ...]:
        lease = self.lease
        return ("--leader-elect", "--leader-election-id", LEASE_NAME,
                "--leader-election-namespace", NS,
                "--leader-elect-lease-duration", f"{lease.duration:g}s",
                "--leader-elect-renew-deadline", f"{lease.renew_deadline:g}s",
                "--leader-elect-retry-period", f"{lease.retry_period:g}s",
                "--graceful-shutdown-timeout", f"{GRACEFUL:g}s")


def libfaketime() -> Path:
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[0]
    raise SetupError("libfaketime is missing: install Debian's faketime "
                     "(scripts/system_packages.sh, run by make setup)")


# --------------------------------------------------------------------------- the cluster

class Recorder:
    """Every committed version of the Lease, at its commit (a kubesim store listener)."""

    def __init__(self, sim: KubeSim) -> None:
        self.lease: list[tuple[int, float, str, float]] = []  # rv, time, holder, duration
        sim.store.listeners.append(self._on_event)

    def _on_event(self, ev: Any) -> None:
        if ev.key != LEASE_KEY or ev.type == "DELETED":
            return
        md = ev.obj.get("metadata") or {}
        if md.get("namespace") != NS or md.get("name") != LEASE_NAME:
            return
        spec = ev.obj.get("spec") or {}
        self.lease.append((ev.rv, time.monotonic(), spec.get("holderIdentity") or "",
                           float(spec.get("leaseDurationSeconds") or 0)))


class Cluster:
    """The driver's own view of kubesim: an admin client (not subject to the faults, which
    match the replicas' tokens only) for writes, and the store for reads."""

    def __init__(self, sim: KubeSim, workdir: Path) -> None:
        self.sim = sim
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig-driver")
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.api.user_agent = DRIVER_AGENT
        self.core = client.CoreV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.ext = client.ApiextensionsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.uids: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def close(self) -> None:
        self.api.close()

    def install(self) -> None:
        """Namespace, the operator's ServiceAccount bound to deploy/role.yaml, the CRD."""
        self.core.create_namespace({"metadata": {"name": NS}})
        self.core.create_namespaced_service_account(
            NS, yaml.safe_load((DEPLOY / "service_account.yaml").read_text()))
        self.rbac.create_namespaced_role(NS, yaml.safe_load((DEPLOY / "role.yaml").read_text()))
        self.rbac.create_namespaced_role_binding(
            NS, yaml.safe_load((DEPLOY / "role_binding.yaml").read_text()))
        self.ext.create_custom_resource_definition(
            yaml.safe_load((DEPLOY / "crd.yaml").read_text()))
        local.until(self._served, 30, "the Memcached kind to be served", error=SetupError)

    def _served(self) -> bool:
        try:
            self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
            return True
        except ApiException:
            return False

    def create(self, name: str, size: int) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                "metadata": {"name": name, "namespace": NS}, "spec": {"size": size}}
        made = self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
        self.uids[name] = made["metadata"]["uid"]
        self.sizes[name] = size

    def set_size(self, name: str, size: int) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name,
                                                   {"spec": {"size": size}})
        self.sizes[name] = size

    # -- reads, from the store
    def _get(self, key: tuple[str, str], name: str) -> dict[str, Any] | None:
        with self.sim.store.lock:
            obj = self.sim.store.get(key, NS, name)
            return copy.deepcopy(obj) if obj is not None else None

    def _pods(self, cr: str) -> list[str]:
        with self.sim.store.lock:
            pods = self.sim.store.items(POD_KEY, NS)
            return sorted(p["metadata"]["name"] for p in pods
                          if (p["metadata"].get("labels") or {}).get("memcached_cr") == cr
                          and (p["metadata"].get("labels") or {}).get("app") == "memcached"
                          and not p["metadata"].get("deletionTimestamp"))

    def problem(self, name: str) -> str:
        """Why the Memcached `name` has not converged ("" when it has): (d) Successful=True,
        its Deployment has `size` replicas, status.nodes names exactly its `size` Pods; and
        (e) the Memcached is the one created, with the last size set, and its Deployment is
        owned by it."""
        size = self.sizes[name]
        cr = self._get(CR_KEY, name)
        if cr is None:
            return "LOST: the Memcached is gone"
        if cr["metadata"]["uid"] != self.uids[name]:
            return "LOST: the Memcached was replaced (another uid)"
        if (cr.get("spec") or {}).get("size") != size:
            return f"LOST UPDATE: spec.size is {cr['spec'].get('size')!r}, set to {size}"
        dep = self._get(DEPLOY_KEY, name)
        if dep is None:
            return "LOST: no Deployment"
        owners = [o for o in dep["metadata"].get("ownerReferences") or []
                  if o.get("controller") and o.get("uid") == self.uids[name]]
        if not owners:
            return "LOST: the Deployment is not owned by the Memcached"
        status = cr.get("status") or {}
        successful = next((c for c in status.get("conditions") or []
                           if c.get("type") == "Successful"), None)
        if not successful or successful.get("status") != "True":
            why = (successful or {}).get("message", "") or "no Successful condition"
            return f"Successful is not True ({why[:120]})"
        if (dep.get("spec") or {}).get("replicas") != size:
            return f"Deployment replicas {dep['spec'].get('replicas')} != size {size}"
        pods = self._pods(name)
        if len(pods) != size:
            return f"{len(pods)} Pods for size {size}"
        if list(status.get("nodes") or []) != pods:
            return f"status.nodes {status.get('nodes')} != Pods {pods}"
        return ""

    def problems(self) -> dict[str, str]:
        return {n: p for n in self.sizes if (p := self.problem(n))}

    def extra_deployments(self) -> list[str]:
        with self.sim.store.lock:
            names = [d["metadata"]["name"] for d in self.sim.store.items(DEPLOY_KEY, NS)]
        return sorted(n for n in names if n not in self.sizes)


# --------------------------------------------------------------------------- the replicas

@dataclass
class Process:
    """One replica process (a "container start" of a slot)."""

    name: str  # e.g. replica-a.3
    slot: str
    replica: local.Replica
    started: float  # monotonic, just before it was started
    started_wall: float
    clock: str  # its FAKETIME, or ""
    frozen: list[psutil.Process] | None = None
    frozen_at: float = 0.0
    freezes: list[tuple[float, float]] = field(default_factory=list)
    ended: float | None = None  # monotonic: killed, or its exit noticed
    how: str = ""
    term_deadline: float | None = None  # after a SIGTERM: kill it if it still runs then
    next_sample: float = 0.0

    @property
    def identity(self) -> str:
        return f"token:token-{self.name}"

    def alive(self) -> bool:
        return self.ended is None


@dataclass
class Slot:
    name: str
    count: int = 0
    current: Process | None = None
    restart_at: float | None = None
    clock: str = ""  # FAKETIME for the processes started while a clock fault lasts
    processes: list[Process] = field(default_factory=list)


class Fleet:
    """The three slots, supervised: a process that exits or is killed is started again after
    `restart_delay` seconds, same Pod name (identity), new process and token."""

    def __init__(self, sim: KubeSim, settings: Settings) -> None:
        self.sim = sim
        self.s = settings
        self.slots = {name: Slot(name) for name in (*SLOTS, *(("rogue",) if settings.rogue
                                                               else ()))}
        self.stopping = False
        self.parent = settings.workdir / "replicas"
        self.parent.mkdir(parents=True)
        self.fix_dir = settings.workdir / "faketime-fix"
        self.fix_dir.mkdir()
        (self.fix_dir / "sitecustomize.py").write_text(SLEEP_FIX)
        self.lib: Path | None = None

    def processes(self) -> list[Process]:
        return [p for s in self.slots.values() for p in s.processes]

    def by_identity(self) -> dict[str, Process]:
        return {p.identity: p for p in self.processes()}

    def running(self) -> list[Slot]:
        """The replicas' slots whose process is alive and not stopped (the rogue aside)."""
        return [s for s in self.slots.values() if s.name in SLOTS
                and s.current is not None and s.current.alive() and s.current.frozen is None]

    def start(self, slot: Slot) -> Process:
        slot.count += 1
        name = f"{slot.name}.{slot.count}"
        token = f"token-{name}"
        self.sim.serviceaccount_token(NS, SA, token=token)
        env: dict[str, str | None] = {"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
                                      "WATCH_NAMESPACE": NS, "POD_NAME": slot.name}
        if slot.clock:
            if self.lib is None:
                self.lib = libfaketime()
            env.update({"LD_PRELOAD": str(self.lib), "FAKETIME": slot.clock,
                        "FAKETIME_DONT_FAKE_MONOTONIC": "1", "PYTHONPATH": str(self.fix_dir)})
        started, wall = time.monotonic(), time.time()
        args = self.s.replica_args() if slot.name in SLOTS else \
            ("--graceful-shutdown-timeout", f"{GRACEFUL:g}s")  # the rogue: no election
        replica = local.Replica(name, self.parent, WATCHES, args, sim=self.sim, env=env)
        p = Process(name, slot.name, replica, started, wall, slot.clock)
        slot.current = p
        slot.restart_at = None
        slot.processes.append(p)
        return p

    def tick(self, now: float) -> None:
        for slot in self.slots.values():
            p = slot.current
            if p is not None and p.alive():
                if not p.replica.running():
                    self._ended(slot, p, f"exited with status {p.replica.proc.returncode}")
                elif p.term_deadline is not None and now > p.term_deadline:
                    self.kill(slot, "still running long after SIGTERM")
                elif now >= p.next_sample:
                    p.next_sample = now + 1.0
                    p.replica.sample()
            if (slot.current is None or not slot.current.alive()) and not self.stopping and \
                    slot.restart_at is not None and now >= slot.restart_at:
                self.start(slot)

    def _ended(self, slot: Slot, p: Process, how: str) -> None:
        p.ended = time.monotonic()
        p.how = how
        if p.frozen is not None:  # killed while stopped
            p.freezes.append((p.frozen_at, p.ended))
            p.frozen = None
        p.replica.close()  # whatever of it is left, and its log
        if not self.stopping:
            slot.restart_at = p.ended + self.s.restart_delay

    def kill(self, slot: Slot, how: str) -> Process | None:
        p = slot.current
        if p is None or not p.alive():
            return None
        p.replica.kill()  # what might survive it is reported at the end (survivors())
        self._ended(slot, p, how)
        return p

    def terminate(self, slot: Slot, how: str) -> Process | None:
        """SIGTERM (a stopped process gets it when thawed); killed if it does not exit."""
        p = slot.current
        if p is None or not p.alive():
            return None
        try:
            p.replica.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        p.term_deadline = time.monotonic() + GRACEFUL + self.s.lease.renew_deadline + 10
        p.how = how
        return p

    def freeze(self, slot: Slot) -> Process | None:
        p = slot.current
        if p is None or not p.alive() or p.frozen is not None:
            return None
        p.frozen = p.replica.freeze()
        p.frozen_at = time.monotonic()
        return p

    def thaw(self, p: Process) -> None:
        if p.frozen is None:
            return  # killed meanwhile
        t = time.monotonic()
        p.replica.thaw(p.frozen)
        p.freezes.append((p.frozen_at, t))
        p.frozen = None

    def stop_all(self, leader_slot: str) -> None:
        """SIGTERM the followers, then the leader; kill whatever does not exit."""
        self.stopping = True
        order = sorted(self.slots.values(), key=lambda s: s.name == leader_slot)
        for slot in order:
            p = slot.current
            if p is None or not p.alive():
                continue
            if p.frozen is not None:
                self.thaw(p)
            p.replica.terminate(GRACEFUL + self.s.lease.renew_deadline + 5)
            self._ended(slot, p, p.how or "stopped at the end")

    def survivors(self) -> list[psutil.Process]:
        return [x for p in self.processes() for x in p.replica.survivors()]

    def close(self) -> None:
        self.stopping = True
        for p in self.processes():
            p.replica.close()


# --------------------------------------------------------------------------- the faults

@dataclass
class Applied:
    """A fault as it happened."""

    fault: plan.Fault
    slot: str = ""  # the replica it hit ("" for all)
    process: str = ""  # its process at the start
    leader: str = ""  # the process holding the lease at the start (API server's record)
    started: float = 0.0  # monotonic
    ended: float = 0.0
    rules: list[int] = field(default_factory=list)
    victim: Process | None = None
    note: str = ""


class Executor:
    def __init__(self, sim: KubeSim, fleet: Fleet, recorder: Recorder) -> None:
        self.sim = sim
        self.fleet = fleet
        self.recorder = recorder
        self.applied: list[Applied] = []
        self.excused: list[tuple[float, float]] = []  # all-target faults: nobody can lead
        self._seen = 0  # audit entries read so far, for the Lease's writers
        self._lease_writers: dict[int, str] = {}  # resourceVersion -> identity

    def leader_process(self, now: float) -> str:
        """The process holding the lease now, by the API server's record: the process whose
        write the latest version of the Lease is, if it names that process's Pod and is not
        older than its leaseDurationSeconds."""
        if not self.recorder.lease:
            return ""
        rv, t, holder, duration = self.recorder.lease[-1]
        if not holder or now - t > duration:
            return ""
        deadline = time.monotonic() + 0.5
        while True:  # the audit entry follows the commit by a moment
            for e in self.sim.audit.entries(since=self._seen):
                self._seen = e.seq
                if e.resource == "leases" and e.write and 200 <= e.code < 300:
                    self._lease_writers[int(e.resource_version or 0)] = e.identity
            if rv in self._lease_writers or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        p = self.fleet.by_identity().get(self._lease_writers.get(rv, ""))
        return p.name if p is not None and p.slot == holder else ""

    def resolve(self, f: plan.Fault, leader: str) -> tuple[Slot | None, str]:
        """The replica a fault hits, and a note when that is not what its target says (the
        leader's process is stopped or gone: then a running replica, chosen by `pick`)."""
        running = self.fleet.running()
        leader_slot = leader.rsplit(".", 1)[0] if leader else ""
        note = ""
        if f.target == "leader":
            if leader_slot and self.fleet.slots[leader_slot] in running:
                return self.fleet.slots[leader_slot], ""
            pool = running
            note = "the leader was not running: hit another replica"
        else:
            pool = [s for s in running if s.name != leader_slot]
        if not pool:
            return None, "skipped: no running replica to hit"
        return pool[min(int(f.pick * len(pool)), len(pool) - 1)], note

    def identity_pattern(self, slot: Slot | None) -> str:
        # Every process of the slot (or of every slot): those started while it lasts too.
        return f"token:token-{slot.name}.*" if slot is not None else "token:token-replica-*"

    def start(self, f: plan.Fault) -> Applied:
        now = time.monotonic()
        a = Applied(f, started=now, leader=self.leader_process(now))
        self.applied.append(a)
        slot = None
        if f.target != "all":
            slot, a.note = self.resolve(f, a.leader)
            if slot is None:
                return a
            a.slot = slot.name
            a.process = slot.current.name if slot.current else ""
        if f.kind == "sigkill":
            a.victim = self.fleet.kill(slot, f"SIGKILL (fault {f.index})")
        elif f.kind == "sigterm":
            a.victim = self.fleet.terminate(slot, f"SIGTERM (fault {f.index})")
        elif f.kind == "sigstop":
            a.victim = self.fleet.freeze(slot)
        elif f.kind == "clock":
            slot.clock = f.clock
            self._restart(slot, f)
        else:
            rule: dict[str, Any] = {"identity": self.identity_pattern(slot)}
            if f.kind in ("outage", "burst"):
                rule.update({"action": "error", "code": f.code} if f.action == "error"
                            else {"action": "refuse"})
            elif f.kind == "latency":
                rule.update({"action": "latency", "seconds": f.latency})
            elif f.kind == "partition":
                rule.update({"action": f.action})
            a.rules.append(self.sim.faults.add(rule).id)
        return a

    def _restart(self, slot: Slot, f: plan.Fault) -> None:
        p = slot.current
        if p is None or not p.alive():
            return  # it starts (under the slot's clock) when its restart is due
        if p.frozen is not None:
            self.fleet.kill(slot, f"SIGKILL to restart it, stopped (fault {f.index})")
        else:
            self.fleet.terminate(slot, f"SIGTERM to restart it (fault {f.index})")

    def end(self, a: Applied) -> None:
        f = a.fault
        if f.kind == "sigstop" and a.victim is not None:
            self.fleet.thaw(a.victim)
        elif f.kind == "clock" and a.slot:
            slot = self.fleet.slots[a.slot]
            slot.clock = ""
            self._restart(slot, f)
        for rule in a.rules:
            self.sim.faults.remove(rule)
        a.ended = time.monotonic() if f.kind not in plan.INSTANT else a.started
        if f.target == "all":
            self.excused.append((a.started, a.ended))

    def end_all(self) -> None:
        """Undo whatever is still in effect (after an error)."""
        self.sim.faults.clear()
        for a in self.applied:
            if a.fault.kind == "sigstop" and a.victim is not None:
                self.fleet.thaw(a.victim)
        for slot in self.fleet.slots.values():
            slot.clock = ""


# --------------------------------------------------------------------------- reading logs

@dataclass
class LogFacts:
    spans: list[tuple[float, float]]  # monotonic
    results: dict[str, int]
    fenced: int
    starts: int


def faked_to_real(p: Process) -> Callable[[float], float]:
    """Undo libfaketime on the time of a log line: FAKETIME "+O" or "+O xR" gives
    fake = S + O + (real - S) * R, S being when the process started."""
    if not p.clock:
        return lambda t: t
    parts = p.clock.split()
    offset = float(parts[0])
    rate = float(parts[1][1:]) if len(parts) > 1 else 1.0
    s = p.started_wall
    return lambda t: s + (t - offset - s) / rate


def read_log(p: Process, wall_to_mono: float) -> LogFacts:
    """The reconciles of one process (monotonic times), by its log."""
    real = faked_to_real(p)
    end_default = p.ended if p.ended is not None else time.monotonic()
    open_: dict[tuple[str, str, str], float] = {}
    spans: list[tuple[float, float]] = []
    results: dict[str, int] = {}
    fenced = starts = 0
    for line in p.replica.text().splitlines():
        if (m := local.RECONCILE_START.match(line)) is not None:
            starts += 1
            open_[(m["kind"], m["ns"], m["name"])] = real(local.log_time(m["t"])) - wall_to_mono
        elif (m := local.RECONCILE_END.match(line) or RECONCILE_FAILED.match(line)) \
                is not None:
            t0 = open_.pop((m["kind"], m["ns"], m["name"]), None)
            if t0 is not None:
                t1 = real(local.log_time(m["t"])) - wall_to_mono
                spans.append((t0, max(t0, t1)))
            result = m.groupdict().get("result") or "raised"
            results[result] = results.get(result, 0) + 1
        elif "fenced: refused" in line:
            fenced += 1
    for t0 in open_.values():  # cut short by a kill or an exit
        spans.append((t0, max(t0, end_default)))
        results["cut short"] = results.get("cut short", 0) + 1
    return LogFacts(sorted(spans), results, fenced, starts)


# --------------------------------------------------------------------------- the run

@dataclass
class Outcome:
    ok: bool
    figures: dict[str, Any]
    report: list[str]


@contextmanager
def interrupts_as_errors() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run through its clean-up, as Ctrl-C does (main thread
    only: signal handlers cannot be set elsewhere)."""
    def raise_interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {sig: signal.signal(sig, raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class Run:
    def __init__(self, s: Settings, say: Callable[[str], None]) -> None:
        self.s = s
        self.say = say
        self.schedule = plan.make_schedule(s.seed, s.faults, s.crs, s.lease, s.gap, s.max_size)
        self.names = [f"memcached-{i}" for i in range(s.crs)]
        self.t0 = 0.0  # monotonic: the fault phase began
        self.times: dict[str, float] = {}

    def rel(self, t: float) -> float:
        return t - self.t0

    def main(self) -> Outcome:
        s = self.s
        self.print_schedule()
        prepare_workdir(s.workdir)
        started = time.monotonic()
        wall_to_mono = time.time() - time.monotonic()
        with KubeSim(controllers=True, nodes=2) as sim:
            recorder = Recorder(sim)
            cluster = Cluster(sim, s.workdir)
            fleet = Fleet(sim, s)
            executor = Executor(sim, fleet, recorder)
            try:
                self.setup(cluster, fleet)
                self.faults(cluster, fleet, executor)
                converged = self.converge(cluster, fleet, executor)
                leader = executor.leader_process(time.monotonic())
                self.times["teardown"] = time.monotonic()
                fleet.stop_all(leader.rsplit(".", 1)[0] if leader else "")
            finally:
                executor.end_all()
                fleet.close()
                cluster.close()
            left = fleet.survivors()
            audit = sim.audit.entries()
            problems = cluster.problems()
            extra = cluster.extra_deployments()
        duration = time.monotonic() - started
        drift = (time.time() - time.monotonic()) - wall_to_mono
        return self.judge(recorder, fleet, executor, audit, wall_to_mono, converged, problems,
                          extra, left, duration, drift)

    # -- phases
    def print_schedule(self) -> None:
        s, sc = self.s, self.schedule
        self.say(f"chaos: seed {s.seed}, {s.faults} faults over {sc.length:.0f} s, "
                 f"{len(SLOTS)} replicas, {s.crs} Memcacheds, {len(sc.changes)} size changes")
        self.say(f"  lease {s.lease.duration:g} s, renew deadline {s.lease.renew_deadline:g} s, "
                 f"retry {s.lease.retry_period:g} s (request timeout "
                 f"{s.lease.request_timeout:g} s); restart delay {s.restart_delay:g} s")
        self.say("schedule (seconds after the fault phase began; targets resolved at the "
                 "start):")
        self.say(f"  {'#':>4} {'start':>7} {'end':>7}  {'kind':<9} {'target':<8} what")
        for f in sc.faults:
            self.say(f"  {f.index:>4} {f.start:>7.2f} {f.end:>7.2f}  {f.kind:<9} {f.target:<8} "
                     f"{f.what()}")
        sizes = ", ".join(f"{n}={z}" for n, z in zip(self.names, sc.initial_sizes, strict=True))
        self.say(f"  Memcacheds at first: {sizes}; size changes at "
                 f"{', '.join(f'{c.t:.1f}' for c in sc.changes[:8])}"
                 f"{', ...' if len(sc.changes) > 8 else ''}")

    def setup(self, cluster: Cluster, fleet: Fleet) -> None:
        cluster.install()
        for name, size in zip(self.names, self.schedule.initial_sizes, strict=True):
            cluster.create(name, size)
        t = time.monotonic()
        for name in SLOTS:
            fleet.start(fleet.slots[name])

        def settled() -> bool:
            fleet.tick(time.monotonic())
            return not cluster.problems()
        local.until(settled, 240, "the replicas to reconcile every Memcached once",
                    interval=0.25, error=SetupError)
        self.times["settle"] = time.monotonic() - t
        self.say(f"setup: every Memcached reconciled {self.times['settle']:.1f} s after the "
                 f"replicas started; the faults begin")

    def faults(self, cluster: Cluster, fleet: Fleet, executor: Executor) -> None:
        self.t0 = time.monotonic()
        if self.s.rogue:
            rogue = fleet.start(fleet.slots["rogue"])
            self.say(f"{0:7.2f}  started {rogue.name}: a replica WITHOUT leader election "
                     f"(--rogue: a split brain on purpose)")
        order = itertools.count()
        queue: list[tuple[float, int, str, Any]] = []
        for f in self.schedule.faults:
            heapq.heappush(queue, (self.t0 + f.start, next(order), "start", f))
        for c in self.schedule.changes:
            heapq.heappush(queue, (self.t0 + c.t, next(order), "size", c))
        applied: dict[int, Applied] = {}
        while queue:
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                _, _, what, item = heapq.heappop(queue)
                if what == "start":
                    a = executor.start(item)
                    applied[item.index] = a
                    heapq.heappush(queue, (self.t0 + item.end, next(order), "end", item))
                    self.say(f"{self.rel(a.started):7.2f}  fault {item.index:>3} {item.kind:<9} "
                             f"{a.process or item.target:<12} {item.what()}"
                             f"{'; ' + a.note if a.note else ''}")
                elif what == "end":
                    executor.end(applied[item.index])
                else:
                    name = self.names[item.cr]
                    cluster.set_size(name, item.size)
                now = time.monotonic()
            fleet.tick(now)
            wait = min(TICK, queue[0][0] - time.monotonic()) if queue else 0
            if wait > 0:
                time.sleep(wait)
        self.times["faults_end"] = time.monotonic()

    def converge_bound(self) -> float:
        """Seconds the Memcacheds may take after the last fault ended: a handover (bound of
        (c)), a restart and a replica's start-up, then twice what reconciling every
        Memcached from scratch took at the beginning of this run, on this machine."""
        return (self.s.handover_bound + self.s.restart_delay + 15.0
                + 2 * self.times["settle"] + 30.0)

    def converge(self, cluster: Cluster, fleet: Fleet, executor: Executor) -> bool:
        bound = self.converge_bound()
        start = self.times["faults_end"]
        while True:
            now = time.monotonic()
            fleet.tick(now)
            problems = cluster.problems()
            if not problems and executor.leader_process(now):
                self.times["converged"] = now - start
                self.say(f"{self.rel(now):7.2f}  every Memcached converged "
                         f"{now - start:.1f} s after the last fault ended (bound {bound:.0f} s)")
                return True
            if now - start > bound:
                self.times["converged"] = float("nan")
                self.say(f"{self.rel(now):7.2f}  NOT converged {bound:.0f} s after the last "
                         f"fault ended: {problems}")
                return False
            time.sleep(0.25)

    # -- the verdict
    def judge(self, recorder: Recorder, fleet: Fleet, executor: Executor, audit: list[Any],
              wall_to_mono: float, converged: bool, problems: dict[str, str],
              extra: list[str], left: list[psutil.Process], duration: float,
              drift: float) -> Outcome:
        s = self.s
        procs = fleet.by_identity()
        by_name = {p.name: p for p in procs.values()}
        slot_of = {p.name: p.slot for p in procs.values()}
        lease_writers = {}
        writes: list[detect.Write] = []
        refused: list[str] = []
        requests = 0
        first_request: dict[str, float] = {}
        for e in audit:
            p = procs.get(e.identity)
            if p is None:
                continue
            requests += 1
            first_request.setdefault(p.name, e.monotonic)
            if e.code in (401, 403):
                refused.append(f"{p.name}: {e.code} {e.verb} {e.resource} {e.name}")
            if not (e.write and 200 <= e.code < 300):
                continue
            if e.resource == "leases" and e.namespace == NS and e.name in (LEASE_NAME, ""):
                lease_writers[int(e.resource_version)] = p.name
                continue
            writes.append(detect.Write(e.monotonic, p.name, e.verb, e.resource, e.subresource,
                                       e.namespace, e.name, e.seq))
        lease_writes = [detect.LeaseWrite(t, lease_writers.get(rv, ""), holder, dur, rv)
                        for rv, t, holder, dur in recorder.lease]
        facts = {p.name: read_log(p, wall_to_mono) for p in procs.values()}
        frozen = {p.name: p.freezes for p in procs.values()}
        excused = list(executor.excused) + self.incapable(fleet, executor, first_request)
        j = detect.judge(lease_writes, writes, lambda proc: slot_of.get(proc, proc),
                         {n: f.spans for n, f in facts.items()}, frozen, excused,
                         s.handover_bound, STALE_BOUND)
        over = [g for g in j.gaps if g.over_bound]
        stale_over = [t for t in j.stale_tails if t.over_bound]
        unknown_lease = [w for w in lease_writes if not w.writer]
        verdicts = {
            "fencing violations": len(j.violations),
            "overlaps": len(j.overlaps),
            "stale tails over the bound": len(stale_over),
            "no-leader periods over the bound": len(over),
            "Memcacheds not converged": len(problems),
            "lost objects": sum(1 for p in problems.values() if p.startswith("LOST")),
            "unexpected Deployments": len(extra),
            "401/403 answers to the replicas": len(refused),
            "Lease writes by no replica": len(unknown_lease),
            "processes left running": len(left),
        }
        ok = converged and not any(verdicts.values())
        history = detect.LeaseHistory(lease_writes, lambda proc: slot_of.get(proc, proc))
        rows = self.fault_rows(executor, j.terms, history)
        handovers = [r["handover"] for r in rows if r["handover"] is not None]
        results: dict[str, int] = {}
        for f in facts.values():
            for k, v in f.results.items():
                results[k] = results.get(k, 0) + v
        figures = {
            "seed": s.seed, "faults": s.faults, "crs": s.crs,
            "command": s.command or command_line(s),
            "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": machine(),
            "lease": {"duration": s.lease.duration, "renew_deadline": s.lease.renew_deadline,
                      "retry_period": s.lease.retry_period},
            "restart_delay": s.restart_delay,
            "duration_s": round(duration, 1),
            "fault_phase_s": round(self.times["faults_end"] - self.t0, 1),
            "settle_s": round(self.times["settle"], 1),
            "converged_after_s": round(self.times.get("converged", float("nan")), 1),
            "converge_bound_s": round(self.converge_bound(), 1),
            "handover_bound_s": s.handover_bound,
            "stale_bound_s": STALE_BOUND,
            "verdicts": verdicts, "ok": ok,
            "kinds": count_kinds(executor.applied),
            "processes": len(procs), "restarts": len(procs) - len(SLOTS),
            "clocked_processes": sum(1 for p in procs.values() if p.clock),
            "terms": len(j.terms),
            "terms_under_faketime": sum(1 for t in j.terms if by_name.get(t.process)
                                        and by_name[t.process].clock),
            "requests_by_replicas": requests,
            "writes_checked": j.writes_checked,
            "lease_writes": len(lease_writes),
            "oldest_lease_at_a_write_s": round(j.oldest_lease_at_write, 3),
            "reconciles": sum(f.starts for f in facts.values()),
            "reconcile_results": results,
            "fenced_requests": sum(f.fenced for f in facts.values()),
            "stale_tails": len(j.stale_tails),
            "longest_stale_tail_s": round(max((t.length for t in j.stale_tails), default=0), 3),
            "longest_gap_s": round(max((g.length for g in j.gaps), default=0), 3),
            "longest_counted_gap_s": round(max((g.counted for g in j.gaps), default=0), 3),
            "handovers": len(handovers),
            "handover_s": summary(handovers),
            "handover_by_kind": {k: summary([r["handover"] for r in rows if r["kind"] == k
                                             and r["handover"] is not None])
                                 for k in plan.KINDS},
            "clock_drift_s": round(drift, 4),
            "rows": rows,
            "violations": [f"{v.write.writer}: {v.write.describe()} at "
                           f"{self.rel(v.write.t):.3f} s: {v.reason}" for v in j.violations],
            "overlap_list": [f"{o.a} and {o.b}: {self.rel(o.start):.3f}-{self.rel(o.end):.3f} s "
                             f"({o.duration:.3f} s)" for o in j.overlaps],
            "gaps_over": [f"{self.rel(g.start):.2f}-{self.rel(g.end):.2f} s ({g.before} -> "
                          f"{g.after}): {g.length:.2f} s, {g.counted:.2f} s counted"
                          for g in over],
            "stale_over": [f"{t.process}: thawed at {self.rel(t.thawed):.2f} s, its reconcile "
                           f"ran {t.length:.2f} s more" for t in stale_over],
            "not_converged": problems, "unexpected_deployments": extra,
            "refused": refused[:20],
            "unknown_lease_writes": [f"rv {w.rv} at {self.rel(w.t):.2f} s"
                                     for w in unknown_lease],
            "left_running": [f"{x.pid} {local.cmdline(x)[:3]}" for x in left],
        }
        return Outcome(ok, figures, self.report(figures))

    def incapable(self, fleet: Fleet, executor: Executor,
                  first_request: dict[str, float]) -> list[tuple[float, float]]:
        """The moments at which no replica could have taken the lease: every slot dead or
        starting (until its next process's first request), stopped, or cut off by a fault
        aimed at it."""
        end = self.times.get("teardown", time.monotonic())
        per_slot: dict[str, list[tuple[float, float]]] = {name: [] for name in SLOTS}
        for slot in (fleet.slots[name] for name in SLOTS):
            procs = slot.processes
            for i, p in enumerate(procs):
                per_slot[slot.name].extend(p.freezes)
                if p.ended is not None:
                    nxt = procs[i + 1] if i + 1 < len(procs) else None
                    back = first_request.get(nxt.name, end) if nxt is not None else end
                    per_slot[slot.name].append((p.ended, back))
        for a in executor.applied:
            if a.slot and a.fault.kind in ("burst", "latency", "partition"):
                per_slot[a.slot].append((a.started, a.ended or end))
        together = detect.union(per_slot[SLOTS[0]])
        for name in SLOTS[1:]:
            together = detect.intersect(together, detect.union(per_slot[name]))
        return together

    def fault_rows(self, executor: Executor, terms: list[detect.Term],
                   history: detect.LeaseHistory) -> list[dict[str, Any]]:
        rows = []
        for a in executor.applied:
            f = a.fault
            a.leader = history.holder(a.started)  # exact, from the whole history
            hit_leader = f.target == "all" or (a.process and a.process == a.leader)
            nxt = detect.handover(terms, a.started, a.leader) if hit_leader and a.leader \
                else None
            rows.append({
                "index": f.index, "kind": f.kind, "target": f.target,
                "process": a.process or ("all" if f.target == "all" else "-"),
                "start": round(self.rel(a.started), 2),
                "end": round(self.rel(a.ended or a.started), 2),
                "leader": a.leader or "-",
                "handover": round(nxt.start - a.started, 2) if nxt is not None else None,
                "new_leader": nxt.process if nxt is not None else "",
                "what": f.what(), "note": a.note,
            })
        return rows

    def report(self, fg: dict[str, Any]) -> list[str]:
        out = ["", "per fault (s after the fault phase began; handover: from the fault's start "
                   "to the next term of another process, for faults that hit the leader):",
               f"  {'#':>4} {'kind':<9} {'target':<8} {'process':<12} {'start':>7} {'end':>7}  "
               f"{'leader':<12} {'handover':>8}  new leader"]
        for r in fg["rows"]:
            h = f"{r['handover']:.2f}" if r["handover"] is not None else "-"
            out.append(f"  {r['index']:>4} {r['kind']:<9} {r['target']:<8} {r['process']:<12} "
                       f"{r['start']:>7.2f} {r['end']:>7.2f}  {r['leader']:<12} {h:>8}  "
                       f"{r['new_leader'] or '-'}{'  ' + r['note'] if r['note'] else ''}")
        v = fg["verdicts"]
        hs = fg["handover_s"]
        out += [
            "",
            f"report: seed {fg['seed']}, {fg['faults']} faults, {fg['duration_s']:.0f} s in "
            f"all ({fg['fault_phase_s']:.0f} s of faults); {fg['machine']}",
            f"  (a) fencing violations: {v['fencing violations']} ({fg['writes_checked']} "
            f"writes by the replicas checked against {fg['lease_writes']} Lease writes; the "
            f"oldest lease at a write: {fg['oldest_lease_at_a_write_s']:.3f} s after its "
            f"renewal, leaseDurationSeconds {fg['lease']['duration']:g})",
            f"  (b) overlaps: {v['overlaps']} ({fg['reconciles']} reconciles: "
            f"{fmt_counts(fg['reconcile_results'])}; {fg['stale_tails']} stale tails after "
            f"SIGCONT, longest {fg['longest_stale_tail_s']:.2f} s, bound {STALE_BOUND:g} s; "
            f"{fg['fenced_requests']} requests refused by the fencing proxies)",
            f"  (c) no-leader periods over the bound: {v['no-leader periods over the bound']} "
            f"(bound {fg['handover_bound_s']:g} s; {fg['terms']} terms; longest period "
            f"{fg['longest_gap_s']:.2f} s, longest counted {fg['longest_counted_gap_s']:.2f} s)",
            f"  (d) Memcacheds not converged: {v['Memcacheds not converged']} of {fg['crs']} "
            f"(converged {fg['converged_after_s']:.1f} s after the last fault ended; bound "
            f"{fg['converge_bound_s']:.0f} s)",
            f"  (e) lost objects: {v['lost objects']}; unexpected Deployments: "
            f"{v['unexpected Deployments']}",
            f"  RBAC: {v['401/403 answers to the replicas']} answers 401/403 to "
            f"{fg['requests_by_replicas']} requests of the replicas",
            f"  handovers: {fg['handovers']}, median {hs['median']:.2f} s, p95 {hs['p95']:.2f} "
            f"s, max {hs['max']:.2f} s; {fg['processes']} replica processes "
            f"({fg['restarts']} restarts, {fg['clocked_processes']} under faketime, "
            f"{fg['terms_under_faketime']} terms led under faketime)",
            f"  processes left running: {v['processes left running']}",
        ]
        for key, title in (("violations", "fencing violations"), ("overlap_list", "overlaps"),
                           ("gaps_over", "no-leader periods over the bound"),
                           ("stale_over", "stale tails over the bound"),
                           ("refused", "401/403"), ("unknown_lease_writes",
                                                    "Lease writes by no replica"),
                           ("left_running", "left running")):
            if fg[key]:
                out.append(f"  {title}:")
                out += [f"    {x}" for x in fg[key][:30]]
        if fg["not_converged"]:
            out.append("  not converged:")
            out += [f"    {k}: {p}" for k, p in fg["not_converged"].items()]
        out.append(f"verdict: {'PASS' if fg['ok'] else 'FAIL'}")
        return out


# --------------------------------------------------------------------------- helpers

def count_kinds(applied: list[Applied]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in applied:
        out[a.fault.kind] = out.get(a.fault.kind, 0) + 1
    return out


WORKDIR_ENTRIES = {"replicas", "faketime-fix", "kubeconfig-driver", "results.json"}


def prepare_workdir(workdir: Path) -> None:
    """Create `workdir`, or empty it of what an earlier run left there; refuse a directory
    with anything else in it."""
    if workdir.exists():
        if not workdir.is_dir():
            raise SetupError(f"--workdir {workdir} is not a directory")
        others = sorted(p.name for p in workdir.iterdir() if p.name not in WORKDIR_ENTRIES)
        if others:
            raise SetupError(f"--workdir {workdir} holds other files than an earlier chaos "
                             f"run's ({', '.join(others[:5])}); name a new or empty directory")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "median": float("nan"), "p95": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "median": round(statistics.median(values), 2),
            "p95": round(p95, 2), "max": round(ordered[-1], 2)}


def fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) \
        or "none"


def command_line(s: Settings) -> str:
    return f".venv/bin/python bench/chaos.py --faults {s.faults} --seed {s.seed} --crs {s.crs}"


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end")


MARK_BEGIN = "<!-- chaos figures: written by bench/chaos.py --write -->"
MARK_END = "<!-- end of chaos figures -->"


def figures_markdown(fg: dict[str, Any]) -> str:
    v, hs = fg["verdicts"], fg["handover_s"]
    lines = [MARK_BEGIN, "",
             f"`{fg['command']}` on {fg['date']} ({fg['machine']}): "
             f"**{'PASS' if fg['ok'] else 'FAIL'}**, {fg['duration_s'] / 60:.1f} minutes in all "
             f"({fg['fault_phase_s']:.0f} s of faults).", "",
             "| check | result |", "|---|---|",
             f"| (a) fencing violations | {v['fencing violations']} of {fg['writes_checked']} "
             f"writes by the replicas ({fg['lease_writes']} Lease writes; oldest lease at a "
             f"write {fg['oldest_lease_at_a_write_s']:.3f} s) |",
             f"| (b) overlaps | {v['overlaps']} ({fg['reconciles']} reconciles; "
             f"{fg['stale_tails']} stale tails after SIGCONT, longest "
             f"{fg['longest_stale_tail_s']:.2f} s; {fg['fenced_requests']} requests fenced) |",
             f"| (c) no-leader periods over {fg['handover_bound_s']:g} s | "
             f"{v['no-leader periods over the bound']} (longest period "
             f"{fg['longest_gap_s']:.2f} s, longest counted {fg['longest_counted_gap_s']:.2f} s)"
             f" |",
             f"| (d) Memcacheds not converged | {v['Memcacheds not converged']} of {fg['crs']} "
             f"(all converged {fg['converged_after_s']:.1f} s after the last fault; bound "
             f"{fg['converge_bound_s']:.0f} s) |",
             f"| (e) lost objects | {v['lost objects']} (unexpected Deployments: "
             f"{v['unexpected Deployments']}) |",
             f"| 401/403 answers to the replicas | {v['401/403 answers to the replicas']} of "
             f"{fg['requests_by_replicas']} requests |",
             f"| processes left running | {v['processes left running']} |", "",
             "| faults | " + " | ".join(plan.KINDS) + " |",
             "|---|" + "---|" * len(plan.KINDS),
             f"| {sum(fg['kinds'].values())} | "
             + " | ".join(str(fg["kinds"].get(k, 0)) for k in plan.KINDS) + " |", "",
             f"Handovers (fault start to the next term of another process, faults that hit "
             f"the leader): {fg['handovers']}, median {hs['median']:.2f} s, p95 "
             f"{hs['p95']:.2f} s, max {hs['max']:.2f} s. By kind:", "",
             "| kind | n | median | p95 | max |", "|---|---|---|---|---|"]
    for k, st in fg["handover_by_kind"].items():
        if st["n"]:
            lines.append(f"| {k} | {st['n']} | {st['median']:.2f} s | {st['p95']:.2f} s | "
                         f"{st['max']:.2f} s |")
    lines += ["",
              f"{fg['terms']} leadership terms, {fg['processes']} replica processes "
              f"({fg['restarts']} restarts; {fg['clocked_processes']} under faketime, which "
              f"led {fg['terms_under_faketime']} terms); reconcile results: "
              f"{fmt_counts(fg['reconcile_results'])}; {fg['requests_by_replicas']} requests by "
              f"the replicas.", "", MARK_END]
    return "\n".join(lines) + "\n"


def write_figures(path: Path, fg: dict[str, Any]) -> None:
    block = figures_markdown(fg)
    text = path.read_text() if path.exists() else "# Chaos suite\n\n"
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        _, tail = rest.split(MARK_END, 1)
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faults", type=int, default=200, help="how many faults (default 200)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"the schedule's seed (default {DEFAULT_SEED})")
    p.add_argument("--crs", type=int, default=5, help="how many Memcacheds (default 5)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                   help="replica logs and kubeconfigs; emptied first (default "
                        f"{DEFAULT_WORKDIR.relative_to(ROOT)})")
    p.add_argument("--json", type=Path, help="write the figures and the per-fault table here")
    p.add_argument("--write", type=Path,
                   help="put the figures in this Markdown file (between its chaos markers)")
    args = p.parse_args(argv)
    if args.faults < 1:
        p.error(f"--faults must be 1 or more, got {args.faults}")
    if not 1 <= args.crs <= 20:
        p.error(f"--crs must be 1 to 20, got {args.crs}")
    return args


def run(settings: Settings, say: Callable[[str], None] = print) -> Outcome:
    """One chaos run (what `make chaos` and the short test in `make test` call)."""
    if not local.OPERATOR.exists():
        raise SetupError(f"{local.OPERATOR} is missing: run `make setup`")
    libfaketime()
    with interrupts_as_errors():
        outcome = Run(settings, say).main()
    for line in outcome.report:
        say(line)
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    settings = Settings(faults=args.faults, seed=args.seed, crs=args.crs,
                        workdir=args.workdir.resolve(),
                        command=" ".join([".venv/bin/python bench/chaos.py", *argv]))
    try:
        outcome = run(settings, lambda line: print(line, flush=True))
    except SetupError as e:
        print(f"chaos.py: setup failed: {e}", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(outcome.figures, indent=2, default=str) + "\n")
    if args.write:
        write_figures(args.write, outcome.figures)
        print(f"figures written to {args.write}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
