"""One reconcile of one custom resource, as ansible-operator does it (spec §2).

GET the object; add the finalizer (or skip a terminated object); mark the status Running;
run the role or playbook with ansible-runner and exactly ansible-operator's extravars;
then re-read the object, remove the finalizer after a successful finalizer run, and write
the conditions (or not, with manageStatus: false). Every write carries the object's
resourceVersion; a 409 is re-read and retried, never a crash.

All writes go through the client handed in, which in the operator points at the fencing
proxy: a replica whose leadership ended cannot write, whatever state its threads are in.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.election.kubernetes.plugins.module_utils import status as conditions
from election_operator import runner
from election_operator.paramconv import map_to_snake
from election_operator.watches import Watch

log = logging.getLogger("election_operator.reconciler")

DELETED_DURING_RUN_REQUEUE = 5.0


@dataclass
class Outcome:
    requeue_after: float | None = None  # seconds; None = no timed requeue
    error: str = ""  # non-empty: requeue with backoff
    ran: bool = False
    killed: bool = False
    result: str = ""  # succeeded | failed | skipped | gone | killed


def var_prefix(watch: Watch) -> str:
    """`_<group>_<kind>` with '.' and '-' as '_' (core group: `__secret`)."""
    return f"_{watch.group}_{watch.kind.lower()}".replace(".", "_").replace("-", "_")


def _unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    return value


def make_parameters(watch: Watch, obj: dict[str, Any], finalizer_run: bool = False
                    ) -> dict[str, Any]:
    """ansible-operator's extravars: spec keys (snake_cased), ansible_operator_meta, the
    whole object and its raw spec, then the watch's vars, then the finalizer's vars."""
    spec = obj.get("spec") or {}
    params = map_to_snake(copy.deepcopy(spec)) if watch.snake_case_parameters \
        else copy.deepcopy(spec)
    whole = copy.deepcopy(obj)
    if watch.mark_unsafe:
        params, whole = _unsafe(params), _unsafe(whole)
    md = obj.get("metadata") or {}
    params["ansible_operator_meta"] = {"name": md.get("name", ""),
                                       "namespace": md.get("namespace", "")}
    prefix = var_prefix(watch)
    params[prefix] = whole
    params[prefix + "_spec"] = copy.deepcopy(spec)
    params.update(copy.deepcopy(watch.vars or {}))
    if finalizer_run and watch.finalizer is not None:
        params.update(copy.deepcopy(watch.finalizer.vars or {}))
    return params


class Reconciler:
    def __init__(self, watch: Watch, resource: Any, runner_dir: Path,
                 run_envvars: dict[str, str], reconcile_period: float,
                 verbosity: int = 0, role_skip_facts: bool = False,
                 ansible_args: str | None = None,
                 on_start: Callable[[runner.Execution], None] | None = None,
                 on_end: Callable[[runner.Execution], None] | None = None,
                 metrics: Any = None, inventory: str | None = None) -> None:
        self.watch = watch
        self.resource = resource  # a DynamicClient resource (writes go through the proxy)
        self.runner_dir = runner_dir
        self.run_envvars = run_envvars
        self.period = watch.reconcile_period or reconcile_period
        self.verbosity = verbosity
        self.role_skip_facts = role_skip_facts
        self.ansible_args = ansible_args
        self.on_start = on_start or (lambda e: None)
        self.on_end = on_end or (lambda e: None)
        self.metrics = metrics
        self.inventory = inventory

    # -- API helpers
    def _get(self, ns: str, name: str) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self.resource.get(name=name, namespace=ns or None).to_dict()
        except NotFoundError:
            return None

    def _update_finalizers(self, ns: str, name: str,
                           change: Callable[[list[str]], list[str]]) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import ConflictError

        for _ in range(5):
            obj = self._get(ns, name)
            if obj is None:
                return None
            current = list(obj["metadata"].get("finalizers") or [])
            wanted = change(current)
            if wanted == current:
                return obj
            patch = {"metadata": {"finalizers": wanted,
                                  "resourceVersion": obj["metadata"]["resourceVersion"]}}
            try:
                return self.resource.patch(name=name, namespace=ns or None, body=patch,
                                           content_type="application/merge-patch+json"
                                           ).to_dict()
            except ConflictError:
                continue
        raise RuntimeError(f"could not update the finalizers of {ns}/{name}: kept conflicting")

    def _write_status(self, ns: str, name: str,
                      change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        from kubernetes.dynamic.exceptions import ConflictError

        for _ in range(5):
            obj = self._get(ns, name)
            if obj is None:
                return
            new_status = change(copy.deepcopy(obj.get("status") or {}))
            if new_status == (obj.get("status") or {}):
                return
            obj["status"] = new_status
            try:
                self.resource.status.replace(body=obj, name=name, namespace=ns or None)
                return
            except ConflictError:
                continue
        raise RuntimeError(f"could not write the status of {ns}/{name}: kept conflicting")

    # -- the reconcile
    def reconcile(self, ns: str, name: str) -> Outcome:
        w = self.watch
        obj = self._get(ns, name)
        if obj is None:
            return Outcome(result="gone")
        deleting = bool(obj["metadata"].get("deletionTimestamp"))
        fin = w.finalizer.name if w.finalizer is not None else ""
        has_fin = fin in (obj["metadata"].get("finalizers") or [])
        if deleting and not has_fin:
            log.info("%s %s/%s: resource is terminated, skipping reconciliation", w.kind, ns,
                     name)
            return Outcome(result="skipped")
        if fin and not deleting and not has_fin:
            obj = self._update_finalizers(ns, name, lambda f: f + [fin])
            if obj is None:
                return Outcome(result="gone")
        now = conditions.now_time()
        if w.manage_status:
            self._write_status(ns, name, lambda s: conditions.mark_running(s, now))
        finalizer_run = deleting and has_fin
        spec = self._run_spec(obj, finalizer_run)
        started = time.monotonic()
        execution = runner.start(spec)
        self.on_start(execution)
        try:
            result = execution.wait()
        finally:
            self.on_end(execution)
        if self.metrics is not None:
            self.metrics.observe_run(w, time.monotonic() - started)
        if result is None or result.status == "killed":
            return Outcome(ran=True, killed=True, result="killed",
                           error="the run was killed (leadership ended or shutdown)")
        if result.status == "error" and result.stats is not None:
            return Outcome(ran=True, error=result.error or "the run failed", result="failed")
        if result.requeue_after is not None:
            return Outcome(ran=True, requeue_after=result.requeue_after, result="requeued")
        if result.stats is None:
            log.error("%s %s/%s: the run produced no stats (status stays Running); output in "
                      "%s", w.kind, ns, name, result.stdout)
            return Outcome(ran=True, error="ansible-runner produced no result",
                           result="failed")
        success = not result.failures
        if not success:  # the failed tasks' output (ansible-operator's [playbook task failed])
            log.error("%s %s/%s: failed task(s): %s\n--- Ansible output (end of %s) ---\n%s",
                      w.kind, ns, name, "; ".join(result.failures), result.stdout,
                      runner._tail(Path(result.stdout)))
        obj = self._get(ns, name)
        if obj is None:
            return Outcome(ran=True, result="gone")
        outcome = Outcome(ran=True, result="succeeded" if success else "failed")
        now_deleting = bool(obj["metadata"].get("deletionTimestamp"))
        if finalizer_run and success:
            self._update_finalizers(ns, name, lambda f: [x for x in f if x != fin])
        elif now_deleting and not finalizer_run:
            outcome.requeue_after = DELETED_DURING_RUN_REQUEUE
        if w.manage_status:  # markDone, which also counts the result (spec §3)
            now = conditions.now_time()
            self._write_status(ns, name, lambda s: conditions.mark_done(
                s, success, result.failures, result.stats, now))
            if self.metrics is not None:
                self.metrics.count_result(w, success)
        if not success:
            outcome.error = "; ".join(result.failures)
            return outcome
        if outcome.requeue_after is None and self.period > 0:
            outcome.requeue_after = self.period
        return outcome

    def _run_spec(self, obj: dict[str, Any], finalizer_run: bool) -> runner.RunSpec:
        w = self.watch
        md = obj["metadata"]
        fin = w.finalizer
        playbook, role = w.playbook, w.role
        if finalizer_run and fin is not None and (fin.playbook or fin.role):
            playbook, role = fin.playbook, fin.role
        ident = uuid.uuid4().hex[:16]
        path = self.runner_dir / (w.group or "core") / w.version / w.kind / \
            (md.get("namespace") or "_cluster") / md["name"]
        return runner.RunSpec(
            ident=ident, private_data_dir=path, playbook=playbook, role=role,
            extravars=make_parameters(w, obj, finalizer_run), envvars=dict(self.run_envvars),
            verbosity=self.verbosity, rotate_artifacts=w.max_runner_artifacts,
            role_skip_facts=self.role_skip_facts, cmdline=self.ansible_args,
            inventory=self.inventory)
