"""The operator: informers feed work queues, workers reconcile, only while leading.

Safety, in layers:
1. Followers dispatch nothing: the queues are paused unless this replica leads.
2. On loss (renew deadline passed, another holder seen, or the local deadline watchdog)
   the queues pause and every in-flight run is killed with its whole process tree.
3. Every write of this replica — the runs' Ansible modules and the operator's own status
   and finalizer updates — goes through the fencing proxy, which forwards a request only
   if this replica's leadership is valid at that instant. Only the election itself and the
   read-only informers talk to the API server directly.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.election.kubernetes.plugins.module_utils import kube
from election_operator import runner
from election_operator.fence import FencingProxy
from election_operator.gate import LeadershipGate
from election_operator.health import Metrics, ProbeServer, gvk_label
from election_operator.informer import Informer
from election_operator.reconciler import Reconciler
from election_operator.watches import Watch, WatchesError, load_watches, per_kind_int
from election_operator.workqueue import WorkQueue

log = logging.getLogger("election_operator")

_RESOURCE_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/?]+)")


@dataclass
class Options:
    watches_file: str = "./watches.yaml"
    leader_elect: bool = False
    election: str = "lease"  # lease | life | none (lease/life only with leader_elect)
    leader_election_id: str = ""
    leader_election_namespace: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    on_lost_leadership: str = "exit"  # exit | recampaign
    max_concurrent_reconciles: int = field(default_factory=lambda: os.cpu_count() or 1)
    reconcile_period: float = 36000.0
    health_probe_bind_address: str = ":6789"
    metrics_bind_address: str = ":8443"
    graceful_shutdown_timeout: float = 30.0
    ansible_verbosity: int = 2
    ansible_args: str | None = None
    runner_dir: str = ""
    watch_namespace: str = ""
    identity: str = ""
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def label_selector_string(selector: dict[str, Any] | None) -> str | None:
    """A metav1.LabelSelector as the `labelSelector` query string."""
    if not selector:
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or None


def passes_predicates(watch: Watch, etype: str, obj: dict[str, Any],
                      old: dict[str, Any] | None) -> bool:
    """Generation changed, or no generation; or annotations changed when asked; deletion."""
    if etype != "MODIFIED" or old is None:
        return True
    md, omd = obj.get("metadata") or {}, old.get("metadata") or {}
    if not md.get("generation"):
        return True
    if md.get("generation") != omd.get("generation"):
        return True
    if md.get("deletionTimestamp") and not omd.get("deletionTimestamp"):
        return True
    if watch.watch_annotations_changes and md.get("annotations") != omd.get("annotations"):
        return True
    return False


def _without_noise(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.pop("status", None)
    md = out.get("metadata") or {}
    for f in ("resourceVersion", "managedFields"):
        md.pop(f, None)
    return out


def dependent_update_matters(obj: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """operator-lib's DependentPredicate for updates: only status, resourceVersion or
    managedFields changed -> not worth a reconcile."""
    return old is None or _without_noise(obj) != _without_noise(old)


def owner_group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


class Operator:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.env = options.environ
        self.watches = load_watches(options.watches_file, environ=self.env)
        self.identity = options.identity or self.env.get("POD_NAME") or \
            f"{socket.gethostname()}_{uuid.uuid4()}"
        self.mode = options.election if options.leader_elect else "none"
        self.stop_event = threading.Event()
        self.exit_code = 0
        self.metrics = Metrics(options.leader_election_id)
        self.gate = LeadershipGate(self.mode, self._on_started, self._on_lost)
        self.executions: set[runner.Execution] = set()
        self._exec_lock = threading.Lock()
        self.queues: dict[Watch, WorkQueue] = {}
        self.informers: dict[Watch, list[Informer]] = {}
        self.reconcilers: dict[Watch, Reconciler] = {}
        self.threads: list[threading.Thread] = []
        self.campaign: Any = None
        self.proxy: FencingProxy | None = None
        self.probes: ProbeServer | None = None
        self.metrics_server: ProbeServer | None = None
        self.dependent_types: set[tuple[str, str, str]] = set()
        self.dependent_informers: list[Informer] = []
        self._dep_lock = threading.Lock()

    # ------------------------------------------------------------ setup
    def _namespaces(self) -> list[str | None]:
        raw = self.o.watch_namespace or self.env.get("WATCH_NAMESPACE", "")
        names = [n.strip() for n in raw.split(",") if n.strip()]
        return list(names) if names else [None]

    def _election_namespace(self) -> str:
        ns = self.o.leader_election_namespace or kube.in_cluster_namespace()
        if not ns:
            raise SystemExit("--leader-election-namespace is required outside a cluster "
                             "(there is no service account namespace file)")
        return ns

    def setup(self) -> None:
        from kubernetes.dynamic import DynamicClient

        runner.become_subreaper()
        self.runner_dir = Path(self.o.runner_dir or tempfile.mkdtemp(prefix="election-operator-"))
        self.runner_dir.mkdir(parents=True, exist_ok=True)
        direct = kube.make_api_client({}, self.env, user_agent=f"election-operator "
                                                               f"({self.identity})")
        self.direct = direct
        cache_dir = self.runner_dir / ".discovery"
        cache_dir.mkdir(exist_ok=True)
        direct_dyn = DynamicClient(direct, cache_file=str(cache_dir / "direct.json"))
        self.direct_dyn = direct_dyn
        self._check_served(direct_dyn)  # before anything starts: a bad GVK stops here
        self.proxy = FencingProxy(direct.configuration, self.gate.is_valid,
                                  on_refused=self._on_refused, fence_reads=False,
                                  on_write=self._on_write).start()
        run_kubeconfig = self.proxy.write_kubeconfig(self.runner_dir / "kubeconfig")
        fenced = kube.make_api_client({"kubeconfig": str(run_kubeconfig)}, self.env,
                                      user_agent=f"election-operator ({self.identity})")
        fenced_dyn = DynamicClient(fenced, cache_file=str(cache_dir / "fenced.json"))
        envvars = {"K8S_AUTH_KUBECONFIG": str(run_kubeconfig), "KUBECONFIG": str(run_kubeconfig)}
        skip_facts = self.env.get("ANSIBLE_GATHERING", "") == "explicit"
        for w in self.watches:
            queue = WorkQueue()
            queue.pause()
            self.queues[w] = queue
            resource = fenced_dyn.resources.get(api_version=w.api_version, kind=w.kind)
            verbosity = per_kind_int(self.env, "ANSIBLE_VERBOSITY", w,
                                     self.o.ansible_verbosity, range(0, 8))
            self.reconcilers[w] = Reconciler(
                w, resource, self.runner_dir, envvars, self.o.reconcile_period,
                verbosity=verbosity, role_skip_facts=skip_facts and bool(w.role),
                ansible_args=self.o.ansible_args, on_start=self._run_started,
                on_end=self._run_ended, metrics=self.metrics,
                inventory=self.env.get("ANSIBLE_INVENTORY") or None)
            self.informers[w] = [
                Informer(direct_dyn, w.api_version, w.kind, ns,
                         self._handler(w, queue), label_selector_string(w.selector))
                for ns in self._namespaces()]
            workers = per_kind_int(self.env, "MAX_CONCURRENT_RECONCILES", w,
                                   self.o.max_concurrent_reconciles, None)
            for i in range(workers):
                t = threading.Thread(target=self._worker, args=(w, queue),
                                     name=f"worker-{w.kind}-{i}", daemon=True)
                self.threads.append(t)

    def _check_served(self, dyn: Any) -> None:
        """Every watched kind must be served by the API server: a group, version or kind that
        is misspelt in watches.yaml (or whose CustomResourceDefinition is not installed) stops
        the operator with one message naming the entry, as controller-runtime stops."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

        for index, w in enumerate(self.watches):
            try:
                dyn.resources.get(api_version=w.api_version, kind=w.kind)
            except (ResourceNotFoundError, ResourceNotUniqueError):
                raise WatchesError(
                    f"{self.o.watches_file}: entry {index} ({w.gvk}): kind: the API server does "
                    f"not serve kind {w.kind} in {w.api_version}; install its "
                    f"CustomResourceDefinition, or correct group, version and kind",
                    path=self.o.watches_file, index=index, gvk=w.gvk, field="kind") from None

    def _handler(self, w: Watch, queue: WorkQueue) -> Any:
        def handle(etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
            if passes_predicates(w, etype, obj, old):
                md = obj.get("metadata") or {}
                queue.add((md.get("namespace", "") or "", md.get("name", "")))
        return handle

    # ------------------------------------------------------------ dependents
    def _on_write(self, method: str, path: str) -> None:
        """A run wrote an object: watch its type for changes to dependents (as
        ansible-operator's proxy adds a watch for each type a run creates)."""
        if method != "POST" or not any(w.watch_dependent_resources for w in self.watches):
            return
        m = _RESOURCE_PATH.match(path.split("?", 1)[0])
        if m is None:
            return
        group = m["group"] or ""
        version = m["version"] or m["core"] or "v1"
        key = (group, version, m["plural"])
        with self._dep_lock:
            if key in self.dependent_types:
                return
            self.dependent_types.add(key)
        threading.Thread(target=self._watch_dependents, args=key, name="dependents",
                         daemon=True).start()

    def _watch_dependents(self, group: str, version: str, plural: str) -> None:
        api_version = f"{group}/{version}" if group else version
        try:
            resource = self.direct_dyn.resources.get(api_version=api_version, name=plural)
        except Exception as e:  # an unknown type: nothing to watch
            log.warning("cannot watch dependents of type %s %s: %s", api_version, plural, e)
            return
        if any(w.group == group and w.kind == resource.kind for w in self.watches):
            return  # a primary type: already watched
        for ns in self._namespaces():
            inf = Informer(self.direct_dyn, api_version, resource.kind, ns,
                           self._dependent_event)
            with self._dep_lock:
                self.dependent_informers.append(inf)
            inf.start()
        log.info("watching dependents of type %s %s", api_version, resource.kind)

    def _dependent_event(self, etype: str, obj: dict[str, Any],
                         old: dict[str, Any] | None) -> None:
        if etype == "ADDED":
            return  # creations are the runs' own doing (and the initial list)
        if etype == "MODIFIED" and not dependent_update_matters(obj, old):
            return
        md = obj.get("metadata") or {}
        gvk = (owner_group(obj.get("apiVersion", "")),
               obj.get("apiVersion", "").rsplit("/", 1)[-1], obj.get("kind", ""))
        for ref in md.get("ownerReferences") or []:
            for w in self.watches:
                if not w.watch_dependent_resources or ref.get("kind") != w.kind or \
                        owner_group(ref.get("apiVersion", "")) != w.group:
                    continue
                if gvk in set(w.blacklist):
                    continue
                self.queues[w].add((md.get("namespace", "") or "", ref.get("name", "")))

    # ------------------------------------------------------------ leadership
    def _start_election(self) -> None:
        if self.mode == "none":
            self.gate.started()
            return
        ns = self._election_namespace()
        lock = self.o.leader_election_id
        if not lock:
            raise SystemExit("--leader-election-id is required with --leader-elect")
        if self.mode == "lease":
            from ansible_collections.election.kubernetes.plugins.module_utils import lease

            cfg = lease.ElectionConfig(lock, ns, self.identity, self.o.lease_duration,
                                       self.o.renew_deadline, self.o.retry_period).validate()
            api = lease.KubeLeaseAPI(self.direct)
            elector = lease.LeaseElector(cfg, api, on_new_leader=lambda h: log.info(
                "observed leader: %s", h or "(none)"))
            self.campaign = lease.LeaseCampaign(
                elector, api, self.gate.started, self.gate.stopped, release_on_cancel=True,
                recampaign=self.o.on_lost_leadership == "recampaign",
                on_error=lambda e: log.warning("cannot take the leader lease: %s", e))
            self.gate.attach_campaign(self.campaign)
            self.campaign.start()
        else:
            from ansible_collections.election.kubernetes.plugins.module_utils import (
                leader_for_life as life,
            )

            pod = self.env.get("POD_NAME", "")
            cfg_life = life.LifeConfig(lock, ns, pod)

            def run_life() -> None:
                # become() raises LifeError for what waiting cannot fix (no such Pod, no
                # permission): a replica that can never lead must say so and exit non-zero,
                # not go on as a silent follower.
                life_api = life.KubeLifeAPI(self.direct, log=log.info)
                try:
                    res = life.become(cfg_life, life_api, log=log.info)
                except Exception as e:  # noqa: BLE001 - LifeError, or a bug: same outcome
                    log.error("leader for life: %s; exiting", e,
                              exc_info=not isinstance(e, life.LifeError))
                    self.exit_code = 1
                    self.stop_event.set()
                    return
                finally:
                    life_api.close()  # stop watching the lock and its holder's Pod
                if res.is_leader and not self.stop_event.is_set():
                    self.gate.started()
            threading.Thread(target=run_life, name="leader-for-life", daemon=True).start()

    def _on_started(self) -> None:
        # Called on the campaign's thread: never block it (renewals must go on). The paused
        # queues kept every key whose object changed while following, so resuming is enough.
        self.metrics.set_leader(True)
        for queue in self.queues.values():
            queue.resume()

    def _on_lost(self, reason: str) -> None:
        self.metrics.set_leader(False)
        for queue in self.queues.values():
            queue.pause()
        self.kill_runs(f"leadership lost: {reason}")
        if self.o.on_lost_leadership != "recampaign" and not self.stop_event.is_set():
            log.error("leader election lost (%s); exiting", reason)
            self.exit_code = 1
            self.stop_event.set()

    def _on_refused(self, what: str) -> None:
        self.metrics.fenced.inc()  # the proxy logs the refusal itself

    # ------------------------------------------------------------ runs
    def _run_started(self, execution: runner.Execution) -> None:
        with self._exec_lock:
            self.executions.add(execution)
        if not self.gate.is_valid():  # lost between dispatch and start
            execution.kill("leadership not valid at start")

    def _run_ended(self, execution: runner.Execution) -> None:
        with self._exec_lock:
            self.executions.discard(execution)

    def kill_runs(self, reason: str) -> int:
        with self._exec_lock:
            running = list(self.executions)
        threads = [threading.Thread(target=e.kill, args=(reason,)) for e in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join(2)
        runner.reap_orphans()
        self.metrics.killed_runs.inc(len(running))
        return len(running)

    def _worker(self, w: Watch, queue: WorkQueue) -> None:
        reconciler = self.reconcilers[w]
        while True:
            key = queue.get()
            if key is None:
                return
            self.metrics.queue_depth.labels(GVK=gvk_label(w)).set(queue.stats()["depth"])
            ns, name = key
            try:
                if not self.gate.is_valid():
                    queue.add_after(key, 1.0)
                    continue
                start = time.monotonic()
                log.info("reconcile start %s %s/%s", w.kind, ns, name)
                outcome = reconciler.reconcile(ns, name)
                log.info("reconcile end %s %s/%s: %s in %.2f s%s", w.kind, ns, name,
                         outcome.result, time.monotonic() - start,
                         f" ({outcome.error})" if outcome.error else "")
                if outcome.killed:
                    queue.add(key)
                elif outcome.error:
                    delay = queue.add_rate_limited(key)
                    log.info("%s %s/%s will be retried in %.0f s", w.kind, ns, name, delay)
                else:
                    queue.forget(key)
                    if outcome.requeue_after:
                        queue.add_after(key, outcome.requeue_after)
            except Exception as e:  # one object's trouble must not stop the others
                log.exception("reconcile of %s %s/%s failed: %s", w.kind, ns, name, e)
                queue.add_rate_limited(key)
            finally:
                queue.done(key)

    # ------------------------------------------------------------ health
    def healthy(self) -> str | None:
        if self.campaign is not None and self.gate.leading:
            return self.campaign.elector.check(self.o.renew_deadline)
        return None

    def ready(self) -> bool:
        return all(inf.synced.is_set() for infs in self.informers.values() for inf in infs)

    # ------------------------------------------------------------ run
    def run(self) -> int:
        self.setup()
        for infs in self.informers.values():
            for inf in infs:
                inf.start()
        for t in self.threads:
            t.start()
        self.probes = ProbeServer(self.o.health_probe_bind_address, self.healthy, self.ready,
                                  self.metrics).start()
        if self.o.metrics_bind_address and self.o.metrics_bind_address != "0" and \
                self.o.metrics_bind_address != self.o.health_probe_bind_address:
            self.metrics_server = ProbeServer(self.o.metrics_bind_address, self.healthy,
                                              self.ready, self.metrics).start()
        if threading.current_thread() is threading.main_thread():
            # (Run in another thread, e.g. in-process in tests, stop it with stop_event.)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        self._start_election()
        self.stop_event.wait()
        self.shutdown()
        return self.exit_code

    def shutdown(self) -> None:
        """Stop dispatching, let in-flight runs finish (up to the graceful timeout), kill
        what is left, then release the lease so another replica takes over at once."""
        for queue in self.queues.values():
            queue.pause()
        if self.exit_code == 0:
            deadline = time.monotonic() + self.o.graceful_shutdown_timeout
            while self.executions and time.monotonic() < deadline:
                time.sleep(0.1)
        self.kill_runs("shutdown")
        if self.campaign is not None:
            self.campaign.stop(timeout=self.o.renew_deadline)
        self.gate.stop()
        for queue in self.queues.values():
            queue.shutdown()
        for infs in [*self.informers.values(), self.dependent_informers]:
            for inf in infs:
                inf.stop()
        for server in (self.probes, self.metrics_server):
            if server is not None:
                server.stop()
        if self.proxy is not None:
            self.proxy.stop()
