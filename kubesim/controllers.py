"""Opt-in workload controllers: Deployment -> ReplicaSet -> Pods, a scheduler/kubelet
stand-in that runs Pods at once, and Nodes whose Ready condition tests can flip.

Pods are named `<deployment>-<template hash>-<5 chars>` and owned by their ReplicaSet, which
is owned by the Deployment, as on a real cluster; deleting a Deployment cascades through GC.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .lifecycle import Loop
from .meta import format_time, generate_name, now_utc

NODE_KEY = ("", "nodes")
POD_KEY = ("", "pods")
RS_KEY = ("apps", "replicasets")
DEPLOY_KEY = ("apps", "deployments")


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(digest[:16], 16)
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(alphabet))
        out += alphabet[r]
    return out


def _controller_of(obj: dict[str, Any]) -> str:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid", "")
    return ""


def _owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _pod_ready(pod: dict[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def _set_condition(conds: list[dict[str, Any]], ctype: str, status: str, reason: str,
                   message: str, now: str, update_time: bool = False) -> list[dict[str, Any]]:
    out = []
    found = False
    for c in conds:
        if c.get("type") == ctype:
            found = True
            c = dict(c)
            if c.get("status") != status:
                c["lastTransitionTime"] = now
                if update_time:
                    c["lastUpdateTime"] = now
            c.update({"status": status, "reason": reason, "message": message})
        out.append(c)
    if not found:
        c = {"type": ctype, "status": status, "lastTransitionTime": now, "reason": reason,
             "message": message}
        if update_time:
            c["lastUpdateTime"] = now
        out.append(c)
    return out


class Workloads(Loop):
    name_prefix = "kubesim-controllers"
    idle = 0.3

    def __init__(self, api: Any, nodes: int = 1) -> None:
        super().__init__(api)
        node_rt = api.registry.lookup("", "v1", "nodes")
        for i in range(1, nodes + 1):
            api.create(self.ctx, node_rt, None, {"metadata": {
                "name": f"kubesim-node-{i}",
                "labels": {"kubernetes.io/hostname": f"kubesim-node-{i}",
                           "kubernetes.io/os": "linux"}}})
            self.set_node_ready(f"kubesim-node-{i}", True)

    def set_node_ready(self, name: str, ready: bool) -> None:
        rt = self.api.registry.lookup("", "v1", "nodes")
        with self.api.store.lock:
            node = self.api.store.get(NODE_KEY, "", name)
            if node is None:
                raise KeyError(name)
            new = copy.deepcopy(node)
            now = format_time(now_utc())
            status = new.setdefault("status", {})
            status["conditions"] = _set_condition(
                status.get("conditions") or [], "Ready", "True" if ready else "Unknown",
                "KubeletReady" if ready else "NodeStatusUnknown",
                "kubelet is posting ready status" if ready else "Kubelet stopped posting node "
                                                                "status.", now)
            status.setdefault("addresses", [{"type": "InternalIP", "address": "127.0.0.1"},
                                            {"type": "Hostname", "address": name}])
            status.setdefault("capacity", {"cpu": "2", "memory": "24Gi", "pods": "110"})
            status.setdefault("allocatable", {"cpu": "2", "memory": "24Gi", "pods": "110"})
            self.write(rt, node, new, "status")

    def reconcile(self) -> None:
        self._deployments()
        self._replicasets()
        self._pods()
        self._deployment_status()

    # ------------------------------------------------------------ deployments
    def _deployments(self) -> None:
        store = self.api.store
        rs_rt = self.rt(RS_KEY)
        for d in store.items(DEPLOY_KEY):
            if d["metadata"].get("deletionTimestamp"):
                continue
            ns = d["metadata"]["namespace"]
            spec = d.get("spec") or {}
            template = copy.deepcopy(spec.get("template") or {})
            h = template_hash(template)
            owned = [rs for rs in store.items(RS_KEY, ns)
                     if _controller_of(rs) == d["metadata"]["uid"]]
            current = next((rs for rs in owned
                            if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == h),
                           None)
            replicas = spec.get("replicas", 1)
            if current is None:
                labels = dict((template.get("metadata") or {}).get("labels") or {})
                labels["pod-template-hash"] = h
                template.setdefault("metadata", {})["labels"] = labels
                selector = copy.deepcopy(spec.get("selector") or {})
                selector.setdefault("matchLabels", {})["pod-template-hash"] = h
                self.api._create_decoded(self.ctx, rs_rt, ns, {
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": f"{d['metadata']['name']}-{h}", "namespace": ns,
                                 "labels": labels, "ownerReferences": [_owner_ref(d)],
                                 "annotations": {"deployment.kubernetes.io/revision":
                                                 str(len(owned) + 1)}},
                    "spec": {"replicas": replicas, "selector": selector,
                             "template": template}}, None)
            for rs in owned:
                want = replicas if rs is current else 0
                if (rs.get("spec") or {}).get("replicas") != want:
                    new = copy.deepcopy(rs)
                    new["spec"]["replicas"] = want
                    self.write(rs_rt, rs, new)

    def _deployment_status(self) -> None:
        store = self.api.store
        d_rt = self.rt(DEPLOY_KEY)
        for d in store.items(DEPLOY_KEY):
            ns = d["metadata"]["namespace"]
            spec = d.get("spec") or {}
            h = template_hash(spec.get("template") or {})
            owned = [rs for rs in store.items(RS_KEY, ns)
                     if _controller_of(rs) == d["metadata"]["uid"]]
            replicas = sum((rs.get("status") or {}).get("replicas", 0) for rs in owned)
            ready = sum((rs.get("status") or {}).get("readyReplicas", 0) for rs in owned)
            updated = sum((rs.get("status") or {}).get("replicas", 0) for rs in owned
                          if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == h)
            want = spec.get("replicas", 1)
            now = format_time(now_utc())
            old_status = d.get("status") or {}
            status: dict[str, Any] = {"observedGeneration": d["metadata"].get("generation", 1)}
            if replicas:
                status["replicas"] = replicas
            if updated:
                status["updatedReplicas"] = updated
            if ready:
                status["readyReplicas"] = ready
                status["availableReplicas"] = ready
            if replicas - ready > 0:
                status["unavailableReplicas"] = replicas - ready
            available = ready >= want
            conds = _set_condition(copy.deepcopy(old_status.get("conditions") or []),
                                   "Available", "True" if available else "False",
                                   "MinimumReplicasAvailable" if available
                                   else "MinimumReplicasUnavailable",
                                   "Deployment has minimum availability." if available
                                   else "Deployment does not have minimum availability.",
                                   now, update_time=True)
            progressed = updated == want and ready == want
            conds = _set_condition(conds, "Progressing", "True",
                                   "NewReplicaSetAvailable" if progressed
                                   else "ReplicaSetUpdated",
                                   f'ReplicaSet "{d["metadata"]["name"]}-{h}" has successfully '
                                   f"progressed." if progressed else
                                   f'ReplicaSet "{d["metadata"]["name"]}-{h}" is progressing.',
                                   now, update_time=True)
            status["conditions"] = conds
            if status != old_status:
                new = copy.deepcopy(d)
                new["status"] = status
                self.write(d_rt, d, new, "status")

    # ------------------------------------------------------------ replicasets
    def _replicasets(self) -> None:
        store = self.api.store
        rs_rt = self.rt(RS_KEY)
        pod_rt = self.rt(POD_KEY)
        for rs in store.items(RS_KEY):
            if rs["metadata"].get("deletionTimestamp"):
                continue
            ns = rs["metadata"]["namespace"]
            spec = rs.get("spec") or {}
            want = spec.get("replicas", 1)
            pods = [p for p in store.items(POD_KEY, ns)
                    if _controller_of(p) == rs["metadata"]["uid"]
                    and not p["metadata"].get("deletionTimestamp")]
            base = rs["metadata"]["name"] + "-"
            for _ in range(want - len(pods)):
                template = copy.deepcopy(spec.get("template") or {})
                md = template.get("metadata") or {}
                self.api._create_decoded(self.ctx, pod_rt, ns, {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": generate_name(base), "generateName": base,
                                 "namespace": ns, "labels": md.get("labels") or {},
                                 "annotations": md.get("annotations") or {},
                                 "ownerReferences": [_owner_ref(rs)]},
                    "spec": template.get("spec") or {}}, None)
            if len(pods) > want:
                doomed = sorted(pods, key=lambda p: (p["metadata"]["creationTimestamp"],
                                                     p["metadata"]["name"]))[want:]
                for p in doomed:
                    self.delete(pod_rt, p, "Background")
            pods = [p for p in store.items(POD_KEY, ns)
                    if _controller_of(p) == rs["metadata"]["uid"]
                    and not p["metadata"].get("deletionTimestamp")]
            ready = sum(1 for p in pods if _pod_ready(p))
            status: dict[str, Any] = {"replicas": len(pods), "fullyLabeledReplicas": len(pods),
                                      "observedGeneration": rs["metadata"].get("generation", 1)}
            if ready:
                status["readyReplicas"] = ready
                status["availableReplicas"] = ready
            if status != (rs.get("status") or {}):
                new = copy.deepcopy(rs)
                new["status"] = status
                self.write(rs_rt, rs, new, "status")

    # ------------------------------------------------------------ scheduler + kubelet
    def _pods(self) -> None:
        store = self.api.store
        pod_rt = self.rt(POD_KEY)
        nodes = store.items(NODE_KEY)
        node_ready = {n["metadata"]["name"]: any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (n.get("status") or {}).get("conditions") or []) for n in nodes}
        ready_nodes = sorted(n for n, r in node_ready.items() if r)
        for i, pod in enumerate(store.items(POD_KEY)):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                continue
            new = copy.deepcopy(pod)
            spec = new.setdefault("spec", {})
            if not spec.get("nodeName"):
                if not ready_nodes:
                    continue
                spec["nodeName"] = ready_nodes[i % len(ready_nodes)]
                pod = self.write(pod_rt, pod, new)
                pod = store.get(POD_KEY, pod["metadata"]["namespace"], pod["metadata"]["name"])
                if pod is None:
                    continue
                new = copy.deepcopy(pod)
            node = new["spec"]["nodeName"]
            ready = node_ready.get(node, False)
            now = format_time(now_utc())
            status = new.setdefault("status", {})
            status["phase"] = "Running"
            status.setdefault("startTime", now)
            status.setdefault("hostIP", "127.0.0.1")
            status.setdefault("podIP", "10.244.0." + str(
                int(hashlib.sha256(pod["metadata"]["uid"].encode()).hexdigest()[:4], 16) % 250
                + 2))
            conds = status.get("conditions") or []
            for ctype in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
                ok = "True" if (ready or ctype in ("PodScheduled", "Initialized")) else "False"
                conds = _set_condition(conds, ctype, ok, "" if ok == "True" else "NodeNotReady",
                                       "", now)
                for c in conds:
                    if c["type"] == ctype and ok == "True":
                        c.pop("reason", None)
                        c.pop("message", None)
            status["conditions"] = conds
            status["containerStatuses"] = [{
                "name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
                "ready": ready, "restartCount": 0, "started": True,
                "state": {"running": {"startedAt": status["startTime"]}}}
                for c in (new.get("spec") or {}).get("containers") or []]
            if new != pod:
                self.write(pod_rt, pod, new, "status")

