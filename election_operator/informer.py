"""List + watch of one resource type, with a cache and change notifications.

An informer lists the objects (optionally in one namespace, with a label selector), then
watches from the list's resourceVersion with bookmarks, resuming from the last version it
saw after a stream ends. When the history is gone (410) it lists again and reports the
difference as events, so nothing is missed. The handler receives
`(event_type, new_obj, old_obj)`; for DELETED `new_obj` is the last state seen.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("election_operator.informer")

Handler = Callable[[str, dict[str, Any], "dict[str, Any] | None"], None]
ObjKey = tuple[str, str]


def obj_key(obj: dict[str, Any]) -> ObjKey:
    md = obj.get("metadata") or {}
    return md.get("namespace", "") or "", md.get("name", "")


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Informer:
    def __init__(self, dyn: Any, api_version: str, kind: str, namespace: str | None,
                 handler: Handler, label_selector: str | None = None,
                 watch_timeout: int = 300, retry: float = 1.0) -> None:
        self.dyn = dyn
        self.api_version, self.kind = api_version, kind
        self.namespace = namespace or None
        self.handler = handler
        self.label_selector = label_selector or None
        self.watch_timeout = watch_timeout
        self.retry = retry
        self.cache: dict[ObjKey, dict[str, Any]] = {}
        self.synced = threading.Event()
        self.resource_version = ""
        self.errors = 0
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.path = self._collection_path()

    def _collection_path(self) -> str:
        resource = self.dyn.resources.get(api_version=self.api_version, kind=self.kind)
        group_path = f"/apis/{self.api_version}" if "/" in self.api_version else \
            f"/api/{self.api_version}"
        if resource.namespaced and self.namespace:
            return f"{group_path}/namespaces/{self.namespace}/{resource.name}"
        return f"{group_path}/{resource.name}"

    # -- control
    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.kind}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once. The open watch's socket is shut down rather than the response
        closed: closing waits for the reading thread to release the response's buffer,
        which it holds until the next event or bookmark arrives."""
        self._stop.set()
        resp = self._resp
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.cache.get((namespace or "", name))

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.cache.values())

    # -- loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.synced.is_set() or not self.resource_version:
                    self._relist()
                self._watch()
            except Gone:
                self.resource_version = ""
                self.synced.clear()
            except Exception as e:  # connection trouble, API errors: retry
                if self._stop.is_set():
                    return
                self.errors += 1
                log.warning("%s informer: %s; retrying in %.1f s", self.kind, e, self.retry)
                self._stop.wait(self.retry)

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.label_selector:
            params["label_selector"] = self.label_selector
        return params

    def _relist(self) -> None:
        resp = self.dyn.request("get", self.path, serialize=False, _request_timeout=60,
                                **self._params())
        data = json.loads(resp.read())
        fresh = {obj_key(o): dict(o, apiVersion=self.api_version, kind=self.kind)
                 for o in data.get("items") or []}
        with self._lock:
            old_cache, self.cache = self.cache, dict(fresh)
        for key, obj in fresh.items():
            old = old_cache.get(key)
            if old is None:
                self.handler("ADDED", obj, None)
            elif _rv(old) != _rv(obj):
                self.handler("MODIFIED", obj, old)
        for key, old in old_cache.items():
            if key not in fresh:
                self.handler("DELETED", old, old)
        self.resource_version = (data.get("metadata") or {}).get("resourceVersion", "")
        self.synced.set()

    def _watch(self) -> None:
        resp = self.dyn.request("get", self.path, watch=True, serialize=False,
                                resource_version=self.resource_version,
                                allow_watch_bookmarks=True,
                                timeout_seconds=self.watch_timeout,
                                _request_timeout=(10, self.watch_timeout + 30),
                                **self._params())
        self._resp = resp
        try:
            for event in _lines(resp):
                if self._stop.is_set():
                    return
                self._dispatch(event)
        finally:
            self._resp = None
            try:
                resp.release_conn()
            except Exception:
                pass

    def _dispatch(self, event: dict[str, Any]) -> None:
        etype, obj = event.get("type"), event.get("object") or {}
        if etype == "ERROR":
            if obj.get("code") == 410:
                raise Gone(obj.get("message", "resource version too old"))
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = obj_key(obj)
        with self._lock:
            old = self.cache.get(key)
            if etype == "DELETED":
                self.cache.pop(key, None)
            else:
                self.cache[key] = obj
        if rv:
            self.resource_version = rv
        self.handler(str(etype), obj, old)


def _rv(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


def _lines(resp: Any) -> Iterator[dict[str, Any]]:
    """Newline-delimited JSON events from a streaming response."""
    buf = b""
    for chunk in resp.stream(65536, decode_content=True):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if buf.strip():
        yield json.loads(buf)
