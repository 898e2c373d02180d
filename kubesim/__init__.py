"""kubesim: a Kubernetes API server emulator on loopback HTTP, strict where a real one is.

    with KubeSim(controllers=True) as sim:
        sim.write_kubeconfig("/tmp/k.yaml")
        ...            # any client: kubernetes, kubernetes.core, kubectl
        sim.audit.entries(writes_only=True)
        sim.faults.add({"identity": "token:b", "action": "error", "code": 500})

Test hooks are also served over HTTP under /kubesim/v1/ (faults, audit, compact,
nodes/<name>/ready) so that clients in other processes can drive them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

from .api import Api
from .controllers import Workloads
from .faults import Audit, Fault, Faults
from .lifecycle import Lifecycle
from .registry import Registry
from .server import make_server
from .store import Store

__all__ = ["KubeSim", "Fault"]


class KubeSim:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, controllers: bool = False,
                 nodes: int = 1, strict_microtime: bool = True, history: int = 10000,
                 bookmark_interval: float = 1.0, watch_timeout: float = 1800.0) -> None:
        self.host = host
        self.registry = Registry()
        self.store = Store(history=history)
        self.api = Api(self.store, self.registry, strict_microtime=strict_microtime)
        self.faults = Faults()
        self.audit = Audit()
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.lifecycle = Lifecycle(self.api)
        self.workloads = Workloads(self.api, nodes) if controllers else None
        self._httpd = make_server(self, host, port)
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> KubeSim:
        self.lifecycle.start()
        if self.workloads is not None:
            self.workloads.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="kubesim-http",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.faults.clear()
        self.store.close_watchers()
        self._httpd.shutdown()
        self._httpd.server_close()
        self.lifecycle.stop()
        if self.workloads is not None:
            self.workloads.stop()

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def kubeconfig(self, token: str | None = None, namespace: str = "default") -> dict[str, Any]:
        user: dict[str, Any] = {"token": token} if token else {}
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "kubesim", "cluster": {"server": self.url}}],
            "users": [{"name": "kubesim", "user": user}],
            "contexts": [{"name": "kubesim", "context": {
                "cluster": "kubesim", "user": "kubesim", "namespace": namespace}}],
            "current-context": "kubesim",
        }

    def write_kubeconfig(self, path: str | Path, token: str | None = None,
                         namespace: str = "default") -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump(self.kubeconfig(token, namespace), sort_keys=False))
        return p

    def set_node_ready(self, name: str, ready: bool) -> None:
        if self.workloads is None:
            raise KeyError(name)
        self.workloads.set_node_ready(name, ready)
