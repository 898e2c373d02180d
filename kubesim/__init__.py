"""kubesim: a Kubernetes API server emulator on loopback HTTP, strict where a real one is.

    with KubeSim(controllers=True) as sim:
        sim.write_kubeconfig("/tmp/k.yaml")
        ...            # any client: kubernetes, kubernetes.core, kubectl
        sim.audit.entries(writes_only=True)
        sim.faults.add({"identity": "token:b", "action": "error", "code": 500})
        token = sim.serviceaccount_token("default", "operator")  # RBAC applies to it

Test hooks are also served over HTTP under /kubesim/v1/ (faults, audit, compact, tokens,
serviceaccounts/<ns>/<name>/token, nodes/<name>/ready) so that clients in other processes can
drive them.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import yaml

from .api import Api
from .controllers import Workloads
from .faults import Audit, Fault, Faults
from .lifecycle import Lifecycle
from .rbac import Auth, User
from .registry import Registry
from .server import make_server, self_signed_certificate
from .store import Store

__all__ = ["KubeSim", "Fault"]

ADMIN_TOKEN = "kubesim-admin"  # never registered: the cluster admin


class KubeSim:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, controllers: bool = False,
                 nodes: int = 1, strict_microtime: bool = True, history: int = 10000,
                 bookmark_interval: float = 1.0, watch_timeout: float = 1800.0,
                 tls: bool = False) -> None:
        self.host = host
        self.registry = Registry()
        self.store = Store(history=history)
        self.api = Api(self.store, self.registry, strict_microtime=strict_microtime)
        self.auth = Auth(self.api)
        self.faults = Faults()
        self.audit = Audit()
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.lifecycle = Lifecycle(self.api)
        self.workloads = Workloads(self.api, nodes) if controllers else None
        # With tls=True it serves HTTPS with a self-signed certificate (`ca_data`, PEM), which
        # kubectl needs before it sends a bearer token; the kubeconfig carries the CA.
        self.ca_data: bytes | None = None
        keypair = None
        if tls:
            keypair = self_signed_certificate(host)
            self.ca_data = keypair[0]
        self._httpd = make_server(self, host, port, keypair)
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ca_data else "http"
        return f"{scheme}://{self.host}:{self.port}"

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
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_data:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_data).decode()
            # Over TLS kubectl asks for a user name when it has no credentials; a token no one
            # registered is the cluster admin, as no token is.
            token = token or ADMIN_TOKEN
        user: dict[str, Any] = {"token": token} if token else {}
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "kubesim", "cluster": cluster}],
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

    def add_token(self, token: str, user: str, groups: list[str] | tuple[str, ...] = ()
                  ) -> User:
        """Authenticate bearer `token` as `user` in `groups` (and system:authenticated):
        its requests are then authorized by RBAC. Unregistered tokens stay cluster admin."""
        return self.auth.add_token(token, user, groups)

    def serviceaccount_token(self, namespace: str, name: str, token: str | None = None) -> str:
        """A bearer token for system:serviceaccount:<namespace>:<name>, with the groups
        system:serviceaccounts, system:serviceaccounts:<namespace>, system:authenticated:
        `token` if given (e.g. one per replica, to tell them apart in the audit log), else a
        fresh one."""
        return self.auth.serviceaccount_token(namespace, name, token)

    def set_node_ready(self, name: str, ready: bool) -> None:
        if self.workloads is None:
            raise KeyError(name)
        self.workloads.set_node_ready(name, ready)
