# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Leader for life: a ConfigMap lock owned by the leader Pod (operator-lib's leader.Become).

The first candidate Pod that creates the lock ConfigMap, with exactly one ownerReference
to itself, is the leader until that Pod is deleted; the garbage collector then deletes
the lock and another candidate creates it. There is no renewal and no lease: while the
ownerReference holds there is never a second leader.

Kept from operator-lib: the lock format, create-if-absent, deleting an Evicted leader
Pod, the NotReady-node takeover, backoff from 1 s doubling, +0-20 % jitter. Fixed:

- "already own the lock" is decided by the Pod's UID, not its name: a recreated Pod with
  the same name (StatefulSet) is a new candidate and waits for the old lock to go;
- every retry path backs off, errors included (operator-lib hot-loops on a failed GET);
- the backoff never exceeds its cap (operator-lib overshoots a cap that is not a power of
  two: 10 s becomes 16 s);
- a candidate losing the create race, or finding the lock already deleted by another
  candidate, carries on instead of failing;
- Failed and Succeeded leader Pods (any reason: Evicted, Preempting, ...) are deleted,
  not only Evicted ones; deletes carry a UID precondition so a replacement Pod is never
  deleted by mistake;
- the NotReady-node takeover is configurable, with a grace period, because it trades
  away the single-leader guarantee (the old Pod may still run on a partitioned node);
- while waiting, the lock ConfigMap and the leader Pod are watched, so a candidate tries
  again as soon as the lock is deleted instead of sleeping out its backoff (up to 16 s);
- the caller may bound the wait (operator-lib blocks forever).

Each decision is reported in one line saying what was seen and what happens next.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ansible_collections.election.kubernetes.plugins.module_utils.kube import (
    ApiFailure,
    LostRace,
    Target,
    raw_call,
)

INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 16.0
JITTER = 0.2
MIN_WAKE_GAP = 0.5  # a pass woken by a change starts at least this long after the last one
NODE_NOT_READY_CHOICES = ("delete", "wait")
TERMINAL_PHASES = ("Failed", "Succeeded")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class LifeError(Exception):
    """Leader election cannot proceed: bad input, a missing permission, a missing Pod."""


@dataclass(frozen=True)
class LifeConfig:
    lock_name: str
    namespace: str
    pod_name: str
    max_backoff: float = DEFAULT_MAX_BACKOFF
    node_not_ready: str = "delete"  # what to do when the leader's node is NotReady
    node_not_ready_grace: float = 0.0  # seconds the node must stay NotReady first
    request_timeout: float = 10.0

    def validate(self) -> LifeConfig:
        if not isinstance(self.lock_name, str) or len(self.lock_name) > 253 or \
                not _SUBDOMAIN.match(self.lock_name):
            raise LifeError(f"lock_name {self.lock_name!r} is not a valid ConfigMap name: a "
                            f"lowercase RFC 1123 subdomain (lower case letters, digits, '-' "
                            f"and '.', starting and ending with a letter or digit, at most "
                            f"253 characters)")
        if not isinstance(self.namespace, str) or len(self.namespace) > 63 or \
                not _LABEL.match(self.namespace):
            raise LifeError(f"namespace {self.namespace!r} is not a valid namespace name: a "
                            f"lowercase RFC 1123 label of at most 63 characters")
        if not self.pod_name:
            raise LifeError("pod_name is required: set the POD_NAME environment variable from "
                            "the downward API (env valueFrom fieldRef metadata.name) or the "
                            "pod_name option")
        if not isinstance(self.pod_name, str) or len(self.pod_name) > 253 or \
                not _SUBDOMAIN.match(self.pod_name):
            raise LifeError(f"pod_name {self.pod_name!r} is not a valid Pod name: a lowercase "
                            f"RFC 1123 subdomain (lower case letters, digits, '-' and '.', "
                            f"starting and ending with a letter or digit, at most 253 "
                            f"characters)")
        for name in ("max_backoff", "node_not_ready_grace", "request_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value):
                raise LifeError(f"{name} must be a finite number of seconds, got {value!r}")
        if self.max_backoff < INITIAL_BACKOFF:
            raise LifeError(f"max_backoff must be at least {INITIAL_BACKOFF:g} s (the first "
                            f"backoff step), got {self.max_backoff:g}")
        if self.node_not_ready_grace < 0:
            raise LifeError(f"node_not_ready_grace must be 0 or more seconds, got "
                            f"{self.node_not_ready_grace:g}")
        if self.request_timeout <= 0:
            raise LifeError(f"request_timeout must be greater than 0, got "
                            f"{self.request_timeout:g}")
        if self.node_not_ready not in NODE_NOT_READY_CHOICES:
            raise LifeError(f"node_not_ready must be one of {', '.join(NODE_NOT_READY_CHOICES)}"
                            f", got {self.node_not_ready!r}")
        return self


def backoff_steps(max_backoff: float) -> Iterator[float]:
    """1, 2, 4, ... doubling, never above `max_backoff` (the cap is exact)."""
    step = INITIAL_BACKOFF
    while True:
        yield min(step, max_backoff)
        step = min(step * 2, max_backoff)


def jitter(step: float, rng: Callable[[], float] = random.random) -> float:
    """operator-lib's wait.Jitter(step, 0.2): step x [1, 1.2)."""
    return step * (1 + JITTER * rng())


# ---------------------------------------------------------------- cluster access

class LifeAPI(Protocol):
    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def delete_pod(self, namespace: str, name: str, uid: str) -> bool: ...

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_configmap(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete_configmap(self, namespace: str, name: str, uid: str) -> bool: ...

    def get_node(self, name: str) -> dict[str, Any] | None: ...

    def wait_for_change(self, namespace: str, lock_name: str, leader_pod: str,
                        seconds: float) -> bool: ...


class KubeLifeAPI:
    """LifeAPI over the `kubernetes` client. Deletes carry a UID precondition; waiting
    watches the lock ConfigMap and the leader Pod and returns early when either changes."""

    def __init__(self, api_client: Any, timeout: float = 10.0,
                 log: Callable[[str], None] | None = None) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.timeout = timeout
        self.log = log or (lambda _m: None)
        self._changed = threading.Event()
        self._watching: dict[str, tuple[str, threading.Event]] = {}
        self._watch_failed: set[str] = set()
        # resourceVersion of the object last read, per (kind, name): a watch starts there,
        # so that a change between that read and the watch's start is not missed
        self._read_rv: dict[tuple[str, str], str] = {}

    def _remember(self, kind: str, name: str, obj: dict[str, Any] | None
                  ) -> dict[str, Any] | None:
        rv = ((obj or {}).get("metadata") or {}).get("resourceVersion", "")
        if rv:
            self._read_rv[(kind, name)] = rv
        else:
            self._read_rv.pop((kind, name), None)
        return obj

    def _call(self, fn: Any, target: Target, *args: Any, missing_ok: bool = False,
              **kwargs: Any) -> Any:
        return raw_call(self.api_client, fn, target, self.timeout, *args,
                        missing_ok=missing_ok, **kwargs)

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._remember("pod", name, self._call(
            self.core.read_namespaced_pod, Target("get", "pods", "", name, namespace), name,
            namespace, missing_ok=True))

    def _delete(self, fn: Any, resource: str, namespace: str, name: str, uid: str) -> bool:
        try:
            done = self._call(fn, Target("delete", resource, "", name, namespace), name,
                              namespace, missing_ok=True,
                              body={"preconditions": {"uid": uid}})
        except LostRace:
            return False  # the UID changed: a different object now has that name
        return done is not None

    def delete_pod(self, namespace: str, name: str, uid: str) -> bool:
        return self._delete(self.core.delete_namespaced_pod, "pods", namespace, name, uid)

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._remember("configmap", name, self._call(
            self.core.read_namespaced_config_map,
            Target("get", "configmaps", "", name, namespace), name, namespace,
            missing_ok=True))

    def create_configmap(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.core.create_namespaced_config_map,
                          Target("create", "configmaps", "", body["metadata"]["name"],
                                 namespace), namespace, body)

    def delete_configmap(self, namespace: str, name: str, uid: str) -> bool:
        return self._delete(self.core.delete_namespaced_config_map, "configmaps", namespace,
                            name, uid)

    def get_node(self, name: str) -> dict[str, Any] | None:
        return self._call(self.core.read_node, Target("get", "nodes", "", name), name,
                          missing_ok=True)

    # -- waiting with wake-ups
    def _ensure_watch(self, kind: str, namespace: str, name: str) -> None:
        current = self._watching.get(kind)
        if current is not None and current[0] == name:
            return
        if current is not None:
            current[1].set()  # stop the watch of the previous object
        if kind in self._watch_failed:
            return
        stop = threading.Event()
        self._watching[kind] = (name, stop)
        list_fn = self.core.list_namespaced_config_map if kind == "configmap" \
            else self.core.list_namespaced_pod
        t = threading.Thread(target=self._watch, args=(kind, list_fn, namespace, name, stop,
                                                       self._read_rv.get((kind, name), "")),
                             name=f"life-watch-{kind}", daemon=True)
        t.start()

    def _watch(self, kind: str, list_fn: Any, namespace: str, name: str,
               stop: threading.Event, rv: str = "") -> None:
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        while not stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(list_fn, namespace, field_selector=f"metadata.name={name}",
                                   resource_version=rv, timeout_seconds=30,
                                   deserialize=False, _request_timeout=40):
                    if stop.is_set():
                        w.stop()
                        return
                    # deserialize=False yields the object under "object" ("raw_object"
                    # only exists when the client deserializes)
                    obj = ev.get("raw_object") or ev.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    if ev["type"] in ("DELETED", "MODIFIED"):
                        self._changed.set()
            except ApiException as e:
                if e.status in (401, 403):
                    self._watch_failed.add(kind)
                    self.log(f"Cannot watch {kind}s ({e.status}); waiting out the backoff "
                             f"instead (grant list and watch on {kind}s to wake up early).")
                    return
                rv = ""
                stop.wait(1.0)
            except Exception:  # connection trouble: try again shortly
                rv = ""
                stop.wait(1.0)

    def wait_for_change(self, namespace: str, lock_name: str, leader_pod: str,
                        seconds: float) -> bool:
        self._ensure_watch("configmap", namespace, lock_name)
        if leader_pod:
            self._ensure_watch("pod", namespace, leader_pod)
        woke = self._changed.wait(max(0.0, seconds))
        self._changed.clear()
        return woke

    def close(self) -> None:
        for _name, stop in self._watching.values():
            stop.set()


# ---------------------------------------------------------------- become

@dataclass
class LifeResult:
    is_leader: bool = False
    acquired: bool = False  # this call created the lock
    skipped: bool = False
    skip_reason: str = ""
    holder_name: str = ""
    holder_uid: str = ""
    lock_uid: str = ""
    attempts: int = 0
    waited: float = 0.0
    wrote: bool = False
    would_write: bool = False  # check mode: a write was skipped
    timed_out: bool = False
    decisions: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return self.decisions[-1] if self.decisions else ""


def _node_ready(node: dict[str, Any]) -> tuple[bool, str]:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True", str(c.get("status"))
    # no Ready condition yet (a node that has not reported): not NotReady, as in operator-lib
    return True, "missing"


def become(cfg: LifeConfig, api: LifeAPI, *, wait: bool = True, timeout: float = 0,
           check_mode: bool = False, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep,
           rng: Callable[[], float] = random.random,
           log: Callable[[str], None] | None = None) -> LifeResult:
    """Become the leader (or find out who is). See the module docstring for the rules.

    `wait=False` makes one pass; `timeout` (seconds, 0 = none) bounds a waiting call.
    Raises LifeError for what retrying cannot fix (missing Pod, missing permission).
    """
    cfg.validate()
    res = LifeResult()
    ns, lock_name = cfg.namespace, cfg.lock_name
    start = clock()
    end = start + timeout if timeout and timeout > 0 else math.inf

    def say(msg: str) -> None:
        res.decisions.append(msg)
        if log is not None:
            log(msg)

    def finish() -> LifeResult:
        res.waited = round(clock() - start, 3)
        return res

    steps = backoff_steps(cfg.max_backoff)
    not_ready_since: dict[str, float] = {}
    my_uid = ""
    immediate = 0  # consecutive retries without sleeping (bounded)
    while True:
        res.attempts += 1
        pass_started = clock()
        leader_pod = ""
        error = ""
        retry_now = False
        try:
            if not my_uid:
                me = api.get_pod(ns, cfg.pod_name)
                if me is None:
                    raise LifeError(f"Pod {cfg.pod_name} not found in namespace {ns}: pod_name "
                                    f"(POD_NAME) must name the Pod this runs in")
                my_uid = me["metadata"]["uid"]
            lock = api.get_configmap(ns, lock_name)
            if lock is None:
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": lock_name, "namespace": ns,
                                     "ownerReferences": [{"apiVersion": "v1", "kind": "Pod",
                                                          "name": cfg.pod_name,
                                                          "uid": my_uid}]}}
                if check_mode:
                    res.would_write = True
                    say(f"No lock {ns}/{lock_name}; would create it owned by Pod "
                        f"{cfg.pod_name} (uid {my_uid}) and become the leader (check mode).")
                    return finish()
                try:
                    created = api.create_configmap(ns, body)
                except LostRace:
                    say(f"Another candidate created lock {ns}/{lock_name} first; inspecting "
                        f"it.")
                    lock = api.get_configmap(ns, lock_name)
                    if lock is None:
                        retry_now = True
                else:
                    res.wrote = res.acquired = res.is_leader = True
                    res.holder_name, res.holder_uid = cfg.pod_name, my_uid
                    res.lock_uid = created["metadata"]["uid"]
                    say(f"Became the leader: created lock {ns}/{lock_name} owned by Pod "
                        f"{cfg.pod_name} (uid {my_uid}).")
                    return finish()
            if lock is not None:
                res.lock_uid = lock["metadata"].get("uid", "")
                owners = lock["metadata"].get("ownerReferences") or []
                pods = [o for o in owners if o.get("kind") == "Pod"]
                if any(o.get("uid") == my_uid for o in pods):
                    res.is_leader = True
                    res.holder_name, res.holder_uid = cfg.pod_name, my_uid
                    say(f"Found existing lock {ns}/{lock_name} owned by me (Pod "
                        f"{cfg.pod_name}, uid {my_uid}); continuing as the leader.")
                    return finish()
                if len(owners) != 1 or len(pods) != 1:
                    say(f"Lock {ns}/{lock_name} has {len(owners)} owner(s), not exactly one "
                        f"Pod; leaving it alone and waiting.")
                else:
                    owner = pods[0]
                    leader_pod = owner.get("name", "")
                    res.holder_name, res.holder_uid = leader_pod, owner.get("uid", "")
                    retry_now = _inspect_leader(cfg, api, res, owner, my_uid, lock, clock,
                                                not_ready_since, check_mode, say)
        except LifeError:
            raise
        except ApiFailure as e:
            if e.permanent:
                raise LifeError(str(e)) from None
            error = str(e)
        if check_mode and res.would_write:
            return finish()  # what follows the skipped write cannot be simulated
        if retry_now and immediate < 3:
            immediate += 1
            continue
        immediate = 0
        if not wait:
            return finish()
        step = jitter(next(steps), rng)
        left = end - clock()
        # attempts are always a full step apart: when the deadline comes before the next
        # attempt is due, wait until the deadline (a change still wakes us) and give up
        cut = step >= left
        if left > 0:
            if error:
                say(f"{error}; retrying in {step:.1f} s." if not cut else
                    f"{error}; the timeout comes before the next try (in {left:.1f} s).")
                sleep(min(step, left))  # errors always wait the full step: never a hot loop
                if not cut:
                    continue
            elif api.wait_for_change(ns, lock_name, leader_pod, min(step, left)):
                say(f"Saw lock {ns}/{lock_name}"
                    + (f" or leader Pod {leader_pod}" if leader_pod else "")
                    + " change; trying again now.")
                # a leader Pod that changes often must not turn wake-ups into a hot loop
                gap = MIN_WAKE_GAP - (clock() - pass_started)
                if gap > 0:
                    sleep(gap)
                continue
            elif not cut:
                continue
        res.timed_out = True
        say(f"Not the leader after {timeout:g} s; giving up (timeout)."
            + (f" The last attempt failed: {error}" if error else ""))
        return finish()


def _inspect_leader(cfg: LifeConfig, api: LifeAPI, res: LifeResult, owner: dict[str, Any],
                    my_uid: str, lock: dict[str, Any], clock: Callable[[], float],
                    not_ready_since: dict[str, float], check_mode: bool,
                    say: Callable[[str], None]) -> bool:
    """Look at the Pod that owns the lock and act; True to retry at once."""
    ns, name, uid = cfg.namespace, owner.get("name", ""), owner.get("uid", "")
    if name == cfg.pod_name:
        say(f"Found lock {ns}/{cfg.lock_name} owned by an earlier Pod named {name} (uid "
            f"{uid}; mine is {my_uid}); waiting for garbage collection to remove it.")
        return False
    pod = api.get_pod(ns, name)
    if pod is None or pod["metadata"].get("uid") != uid:
        say(f"Leader Pod {name} (uid {uid}) is gone; waiting for garbage collection to remove "
            f"lock {ns}/{cfg.lock_name}.")
        return False
    status = pod.get("status") or {}
    phase, reason = status.get("phase", ""), status.get("reason", "")
    deleting = bool(pod["metadata"].get("deletionTimestamp"))
    if phase in TERMINAL_PHASES and not deleting:
        why = f"{phase}, reason {reason}" if reason else phase
        if check_mode:
            res.would_write = True
            say(f"Leader Pod {name} is {why}; would delete it so that garbage collection "
                f"frees the lock (check mode).")
            return False
        say(f"Leader Pod {name} is {why}; deleting it so that garbage collection frees the "
            f"lock.")
        if api.delete_pod(ns, name, uid):
            res.wrote = True
        return False
    node_name = (pod.get("spec") or {}).get("nodeName", "")
    if node_name and not deleting:
        try:
            node = api.get_node(node_name)
        except ApiFailure as e:
            say(f"Cannot read node {node_name} of leader Pod {name} ({e}); treating it as "
                f"Ready. Grant get on nodes to handle leaders on NotReady nodes.")
            node = None
        ready, state = _node_ready(node) if node is not None else (True, "unknown")
        if ready:
            # the grace counts a continuous NotReady spell: a recovery starts it again
            not_ready_since.pop(f"{node_name}/{uid}", None)
        else:
            if cfg.node_not_ready == "wait":
                say(f"Leader Pod {name} runs on node {node_name}, which is NotReady (Ready="
                    f"{state}); node_not_ready=wait, so waiting.")
                return False
            first = not_ready_since.setdefault(f"{node_name}/{uid}", clock())
            seen = clock() - first
            if seen < cfg.node_not_ready_grace:
                say(f"Leader Pod {name} runs on node {node_name}, NotReady (Ready={state}) for "
                    f"{seen:.0f} s of the {cfg.node_not_ready_grace:g} s grace; waiting.")
                return False
            if check_mode:
                res.would_write = True
                say(f"Leader Pod {name} runs on node {node_name}, which is NotReady (Ready="
                    f"{state}); would delete the Pod and the lock (check mode).")
                return False
            say(f"Leader Pod {name} runs on node {node_name}, which is NotReady (Ready={state});"
                f" deleting the Pod and then the lock (node_not_ready=delete).")
            if api.delete_pod(ns, name, uid):
                res.wrote = True
            if api.delete_configmap(ns, cfg.lock_name, lock["metadata"].get("uid", "")):
                res.wrote = True
            else:
                say(f"Lock {ns}/{cfg.lock_name} was already gone or replaced; carrying on.")
            return True
    say(f"Not the leader: lock {ns}/{cfg.lock_name} is held by Pod {name} (uid {uid}); "
        f"waiting.")
    return False
