"""Probes and Prometheus metrics.

- `/healthz` fails (500) when this replica leads but has not renewed its lease for longer
  than the lease duration plus a tolerance (client-go's HealthzAdaptor), so a wedged leader
  is restarted by its liveness probe. Followers are healthy.
- `/readyz` is 200 once the informers have listed their objects.
- `/metrics`: ansible-operator's metric names (`ansible_operator_build_info`,
  `ansible_operator_reconcile_result`, `ansible_operator_reconciles`), controller-runtime's
  `leader_election_master_status`, and ours (`election_operator_*`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from election_operator import __version__


def gvk_label(watch: Any) -> str:
    """`cache.example.com/v1alpha1, Kind=Memcached`, as ansible-operator labels its metrics."""
    gv = f"{watch.group}/{watch.version}" if watch.group else watch.version
    return f"{gv}, Kind={watch.kind}"


class Metrics:
    def __init__(self, lease_name: str = "") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.build_info = Gauge("ansible_operator_build_info", "Build information",
                                ["commit", "version"], registry=r)
        self.build_info.labels(commit="", version=__version__).set(1)
        self.reconcile_result = Gauge("ansible_operator_reconcile_result",
                                      "Reconcile results, by GVK and result", ["GVK", "result"],
                                      registry=r)
        self.reconciles = Histogram("ansible_operator_reconciles",
                                    "Duration of reconciles (the whole Ansible run), seconds",
                                    ["GVK"], registry=r,
                                    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
        self.leader = Gauge("leader_election_master_status",
                            "1 while this replica leads", ["name"], registry=r)
        self.lease_name = lease_name
        self.leader.labels(name=lease_name).set(0)
        self.killed_runs = Counter("election_operator_killed_runs_total",
                                   "Runs killed because leadership ended or at shutdown",
                                   registry=r)
        self.fenced = Gauge("election_operator_fenced_requests",
                            "Requests the fencing proxy refused (not the leader)", registry=r)
        self.queue_depth = Gauge("election_operator_queue_depth", "Keys waiting, by GVK",
                                 ["GVK"], registry=r)

    def observe_run(self, watch: Any, seconds: float) -> None:
        self.reconciles.labels(GVK=gvk_label(watch)).observe(seconds)

    def count_result(self, watch: Any, success: bool) -> None:
        self.reconcile_result.labels(GVK=gvk_label(watch),
                                     result="succeeded" if success else "failed").inc()

    def set_leader(self, leading: bool) -> None:
        self.leader.labels(name=self.lease_name).set(1 if leading else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ProbeServer:
    """Serves /healthz, /readyz and /metrics on one address (host:port)."""

    def __init__(self, address: str, healthy: Callable[[], str | None],
                 ready: Callable[[], bool], metrics: Metrics | None) -> None:
        host, _, port = address.rpartition(":")
        self.healthy, self.ready, self.metrics = healthy, ready, metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/healthz", "/livez"):
                    problem = outer.healthy()
                    self._send(500 if problem else 200, problem or "ok")
                elif path == "/readyz":
                    ok = outer.ready()
                    self._send(200 if ok else 503, "ok" if ok else "informers not synced")
                elif path == "/metrics" and outer.metrics is not None:
                    self._send(200, outer.metrics.render(), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, "not found")

            def _send(self, code: int, body: str | bytes, ctype: str = "text/plain") -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((host or "0.0.0.0", int(port or 0)), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def start(self) -> ProbeServer:
        threading.Thread(target=self.httpd.serve_forever, name="probes", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
