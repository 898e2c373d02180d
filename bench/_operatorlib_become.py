"""operator-lib's `leader.Become`, transcribed to Python for the leader-for-life benchmark.

A faithful transcription of ../shared/spec/election.md section 1 (operator-lib
`leader/leader.go`), bugs included, so that bench/life_failover.py compares our `become()`
with what Operator SDK users run today. It polls with backoff and never watches:

- namespace from the service-account file (or the `namespace` argument: the benchmark runs
  outside a cluster), identity from POD_NAME and a GET of that Pod;
- "already own the lock" compares owner *names* (not UIDs);
- acquire loop: Create; on AlreadyExists re-GET the lock (a failed GET `continue`s at once,
  with no sleep: operator-lib's hot loop), check it has exactly one owner and that it is a
  Pod, GET that Pod: NotFound -> wait for GC; other error -> return it; Evicted or
  Preempting and not being deleted -> DELETE it (errors only logged); on a NotReady node ->
  delete the Pod, then the lock (a NotFound is returned as an error); otherwise wait.
  Then sleep wait.Jitter(backoff, 0.2) and double backoff while it is below the cap (so a
  cap that is not a power of two is overshot);
- any other Create error is returned.

Not ours: this file is only a benchmark peer. Do not use it.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client

SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_MAX_BACKOFF = 16.0


class NoNamespace(Exception):
    """ErrNoNamespace: namespace not found for current environment."""


class Cancelled(Exception):
    """ctx.Err(): the context was cancelled while sleeping."""


def jitter(duration: float, max_factor: float = 0.2) -> float:
    """k8s.io/apimachinery wait.Jitter: duration + rand.Float64() * max_factor * duration."""
    return duration + random.random() * max_factor * duration


def _get_operator_namespace(namespace_file: str = SA_NAMESPACE) -> str:
    try:
        with open(namespace_file, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        raise NoNamespace("namespace not found for current environment") from None


def _is_not_found(e: client.ApiException) -> bool:
    return e.status == 404


def _is_pod_evicted(pod: client.V1Pod) -> bool:
    status = pod.status
    return bool(status) and status.phase == "Failed" and status.reason == "Evicted"


def _is_pod_preempted(pod: client.V1Pod) -> bool:
    status = pod.status
    return bool(status) and status.phase == "Failed" and status.reason == "Preempting"


def _is_not_ready_node(core: client.CoreV1Api, node_name: str,
                       log: Callable[[str], None]) -> bool:
    if not node_name:
        return False
    try:
        node = core.read_node(node_name)
    except client.ApiException as e:  # a failed GET (e.g. Forbidden) counts as ready
        log(f"Failed to get the node resource: {e.status}")
        return False
    for cond in (node.status.conditions if node.status else None) or []:
        if cond.type == "Ready" and cond.status != "True":
            return True
    return False


def _delete_leader(core: client.CoreV1Api, pod: client.V1Pod, ns: str, lock_name: str
                   ) -> None:
    core.delete_namespaced_pod(pod.metadata.name, ns)  # errors are returned
    core.delete_namespaced_config_map(lock_name, ns)  # NotFound included


def become(core: client.CoreV1Api, lock_name: str, *, namespace: str | None = None,
           pod_name: str | None = None, max_backoff: float = 0,
           stop: threading.Event | None = None,
           log: Callable[[str], None] = lambda _m: None) -> None:
    """Block until this Pod is the leader (operator-lib `Become`); raise on its errors."""
    if max_backoff <= 0:  # setDefaults
        max_backoff = DEFAULT_MAX_BACKOFF
    stop = stop or threading.Event()
    log("Trying to become the leader.")
    ns = namespace if namespace is not None else _get_operator_namespace()
    name = pod_name if pod_name is not None else os.environ.get("POD_NAME", "")
    if not name:
        raise RuntimeError("required env POD_NAME not set, please configure downward API")
    my_pod = core.read_namespaced_pod(name, ns)  # GET errors are returned
    owner = {"apiVersion": "v1", "kind": "Pod", "name": my_pod.metadata.name,
             "uid": my_pod.metadata.uid}

    try:
        existing = core.read_namespaced_config_map(lock_name, ns)
    except client.ApiException as e:
        if not _is_not_found(e):
            raise
        log("No pre-existing lock was found.")
    else:
        for ref in existing.metadata.owner_references or []:
            if ref.name == my_pod.metadata.name:  # by name, not UID (operator-lib's bug)
                log("Found existing lock with my name. I was likely restarted.")
                log("Continuing as the leader.")
                return
            log(f"Found existing lock, owner {ref.name}")

    cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": lock_name, "namespace": ns,
                                       "ownerReferences": [owner]}}
    backoff = 1.0
    while True:
        try:
            core.create_namespaced_config_map(ns, cm)
        except client.ApiException as e:
            if e.status != 409 or "AlreadyExists" not in (e.body or ""):
                log(f"Unknown error creating ConfigMap: {e.status}")
                raise
        else:
            log("Became the leader.")
            return
        # AlreadyExists: refresh the lock so we use the current leader
        try:
            existing = core.read_namespaced_config_map(lock_name, ns)
        except client.ApiException:
            log("Leader lock configmap not found.")
            continue  # no sleep: operator-lib hot-loops here on a non-NotFound error
        owners = existing.metadata.owner_references or []
        if len(owners) != 1:
            log("Leader lock configmap must have exactly one owner reference.")
        elif owners[0].kind != "Pod":
            log("Leader lock configmap owner reference must be a pod.")
        else:
            leader = None
            try:
                leader = core.read_namespaced_pod(owners[0].name, ns)
            except client.ApiException as e:
                if not _is_not_found(e):
                    raise
                log("Leader pod has been deleted, waiting for garbage collection to remove "
                    "the lock.")
            if leader is None:
                pass
            elif (_is_pod_evicted(leader) or _is_pod_preempted(leader)) and \
                    leader.metadata.deletion_timestamp is None:
                log(f"Operator pod with leader lock has been evicted. leader "
                    f"{leader.metadata.name}")
                log("Deleting evicted leader.")
                try:  # the Pod may not go at once: continue with backoff
                    core.delete_namespaced_pod(leader.metadata.name, ns)
                except client.ApiException as e:
                    log(f"Leader pod could not be deleted: {e.status}")
            elif _is_not_ready_node(core, (leader.spec.node_name if leader.spec else "") or "",
                                    log):
                log("the status of the node where operator pod with leader lock was running "
                    "has been 'notReady'")
                log("Deleting the leader.")
                _delete_leader(core, leader, ns, lock_name)
            else:
                log("Not the leader. Waiting.")
        if stop.wait(jitter(backoff, 0.2)):
            raise Cancelled("context canceled")
        if backoff < max_backoff:
            backoff *= 2
