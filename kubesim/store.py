"""Object storage with one global resourceVersion, an event history and watchers.

Like etcd behind the API server: every committed write gets the next revision; the history
keeps the last `history` events (older resourceVersions are "compacted" and a watch or a
continue token that needs them gets 410); a paged list sees one consistent snapshot.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]  # (group, plural)
Matcher = Callable[[dict[str, Any]], bool]


@dataclass
class Event:
    rv: int
    key: Key
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]
    prev: dict[str, Any] | None


def obj_ns_name(obj: dict[str, Any]) -> tuple[str, str]:
    md = obj["metadata"]
    return md.get("namespace", "") or "", md["name"]


class Watcher:
    """One watch stream: filtered, selector-transition-aware events on a queue."""

    def __init__(self, key: Key, namespace: str | None, match: Matcher) -> None:
        self.key = key
        self.namespace = namespace
        self.match = match
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()

    def _sees(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.match(obj)

    def translate(self, ev: Event) -> tuple[str, dict[str, Any]] | None:
        if ev.key != self.key:
            return None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if self._sees(ev.obj) or self._sees(ev.prev) else None
        before, after = self._sees(ev.prev), self._sees(ev.obj)
        if after and not before:
            return ("ADDED", ev.obj)
        if after and before:
            return (ev.type, ev.obj)
        if before and not after:
            return ("DELETED", ev.obj)  # left the selector: the client must drop it
        return None

    def close(self) -> None:
        self.queue.put(None)


class TooOld(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Store:
    def __init__(self, history: int = 10000) -> None:
        self.lock = threading.RLock()
        self.rv = 1
        self._objects: dict[Key, dict[tuple[str, str], dict[str, Any]]] = {}
        self._uids: dict[str, tuple[Key, str, str]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._floor = 1  # events with rv > floor are in history
        self._watchers: list[Watcher] = []
        self.listeners: list[Callable[[Event], None]] = []

    # -- reads (callers hold self.lock or accept a racy copy)
    def get(self, key: Key, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self._objects.get(key, {}).get((ns or "", name))

    def items(self, key: Key, ns: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            objs = self._objects.get(key, {})
            keys = sorted(k for k in objs if ns is None or k[0] == ns)
            return [objs[k] for k in keys]

    def by_uid(self, uid: str) -> tuple[Key, dict[str, Any]] | None:
        with self.lock:
            ref = self._uids.get(uid)
            if ref is None:
                return None
            key, ns, name = ref
            obj = self._objects.get(key, {}).get((ns, name))
            return (key, obj) if obj is not None else None

    def keys(self) -> list[Key]:
        with self.lock:
            return list(self._objects)

    def all_objects(self) -> list[tuple[Key, dict[str, Any]]]:
        with self.lock:
            return [(k, o) for k, objs in self._objects.items() for o in objs.values()]

    # -- writes
    def commit(self, key: Key, obj: dict[str, Any], etype: str) -> dict[str, Any]:
        """Store `obj` (ADDED/MODIFIED) or remove it (DELETED) at the next revision."""
        with self.lock:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            ns, name = obj_ns_name(obj)
            bucket = self._objects.setdefault(key, {})
            prev = bucket.get((ns, name))
            uid = obj["metadata"].get("uid", "")
            if etype == "DELETED":
                bucket.pop((ns, name), None)
                self._uids.pop(uid, None)
            else:
                bucket[(ns, name)] = obj
                if uid:
                    self._uids[uid] = (key, ns, name)
            ev = Event(self.rv, key, etype, obj, prev)
            if len(self._history) == self._history.maxlen:
                self._floor = self._history[0].rv
            self._history.append(ev)
            for w in self._watchers:
                out = w.translate(ev)
                if out is not None:
                    w.queue.put(out)
            for listener in self.listeners:
                listener(ev)
            return obj

    def drop_key(self, key: Key) -> None:
        """Forget a whole resource (a CRD is gone); its objects were already deleted."""
        with self.lock:
            self._objects.pop(key, None)

    def compact(self) -> int:
        """Forget the history up to now, as etcd compaction does; returns the new floor."""
        with self.lock:
            self._history.clear()
            self._floor = self.rv
            return self._floor

    @property
    def floor(self) -> int:
        return self._floor

    # -- snapshots and watches
    def snapshot(self, key: Key, ns: str | None, at_rv: int) -> list[dict[str, Any]]:
        """The objects of `key` as they were at revision `at_rv` (needs history back to it)."""
        with self.lock:
            if at_rv < self._floor:
                raise TooOld(at_rv, self._floor + 1)
            state = {obj_ns_name(o): o for o in self.items(key, ns)}
            for ev in reversed(self._history):
                if ev.rv <= at_rv:
                    break
                if ev.key != key:
                    continue
                k = obj_ns_name(ev.obj)
                if ns is not None and k[0] != ns:
                    continue
                if ev.prev is None:
                    state.pop(k, None)
                else:
                    state[k] = ev.prev
            return [state[k] for k in sorted(state)]

    def watch(self, key: Key, ns: str | None, match: Matcher,
              since: int | None) -> tuple[Watcher, list[tuple[str, dict[str, Any]]]]:
        """Register a watcher. since=None: initial ADDED events of the current state;
        since=N: replay of events after N (410 via TooOld when compacted)."""
        with self.lock:
            w = Watcher(key, ns, match)
            initial: list[tuple[str, dict[str, Any]]] = []
            if since is None:
                initial = [("ADDED", o) for o in self.items(key, ns) if w.match(o)]
            else:
                if since < self._floor:
                    raise TooOld(since, self._floor + 1)
                for ev in self._history:
                    if ev.rv > since:
                        out = w.translate(ev)
                        if out is not None:
                            initial.append(out)
            self._watchers.append(w)
            return w, initial

    def unwatch(self, w: Watcher) -> None:
        with self.lock:
            if w in self._watchers:
                self._watchers.remove(w)

    def close_watchers(self, key: Key | None = None) -> None:
        with self.lock:
            for w in list(self._watchers):
                if key is None or w.key == key:
                    w.close()
                    self._watchers.remove(w)
