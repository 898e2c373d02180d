"""election-operator replicas as real processes, and the sample operator they run.

Shared by the process tests (tests/integration/test_operator_replicas.py for the lease,
test_operator_life.py for leader for life). Each replica is `election-operator run` started
by election_operator.local with its own kubeconfig and bearer token, so kubesim's audit log
names it `token:token-<name>` for everything it sends: its election requests directly, and its
own and its runs' writes through its fencing proxy (which forwards with the replica's
credentials).

The watched kind `Sample` is reconciled by a role that may start a background writer
(`spec.beat`), may sleep (`spec.sleep` seconds, a `sleep` command) and then writes a
ConfigMap `<name>-out` with `spec.size`; the ConfigMaps are not owned by the custom
resource, so a reconcile causes no dependent event. Every process started is killed by PID
(the replica, its descendants and every process carrying its run marker: `Replica.kill()`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from helpers import until
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from election_operator import local
from kubesim import KubeSim

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = ROOT / ".venv" / "bin" / "election-operator"
NS = "default"
GROUP, VERSION, KIND, PLURAL = "test.example.com", "v1alpha1", "Sample", "samples"
API_VERSION = f"{GROUP}/{VERSION}"

# With `spec.beat: true`, a background job (async, poll 0: it daemonizes) writes the
# ConfigMap `<name>-beat` through the run's kubeconfig every 0.1 s, whatever answer it gets.
BEAT = """\
import sys, time
from kubernetes import client, config
ns, name = sys.argv[1], sys.argv[2]
config.load_kube_config()
api = client.CoreV1Api()
n = 0
while True:
    n += 1
    body = {"metadata": {"name": name}, "data": {"n": str(n)}}
    try:
        try:
            api.patch_namespaced_config_map(name, ns, body)
        except client.ApiException as e:
            if e.status != 404:
                raise
            api.create_namespaced_config_map(ns, body)
    except Exception:
        pass
    time.sleep(0.1)
"""

ROLE_TASKS = [
    {"name": "keep writing in the background when asked",
     "shell": "{{ ansible_playbook_python }} {{ role_path }}/files/beat.py "
              "{{ ansible_operator_meta.namespace }} {{ ansible_operator_meta.name }}-beat",
     "async": 300, "poll": 0, "when": "beat | default(false) | bool"},
    {"name": "sleep when asked", "command": "sleep {{ sleep }}",
     "when": "(sleep | default(0) | int) > 0"},
    {"name": "record the size (an object the custom resource does not own)",
     "kubernetes.core.k8s": {"definition": {
         "apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "{{ ansible_operator_meta.name }}-out",
                      "namespace": "{{ ansible_operator_meta.namespace }}"},
         "data": {"size": "{{ size | default(0) | string }}"}}}},
]


def sample_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "sample", "kind": KIND},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "status": {"type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}},
            }],
        },
    }


def write_sample_operator(directory: Path) -> Path:
    """The role `sample` and a watches.yaml mapping Sample to it; returns the watches file."""
    tasks = directory / "roles" / "sample" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(yaml.safe_dump(ROLE_TASKS, sort_keys=False))
    (tasks.parent / "files").mkdir()
    (tasks.parent / "files" / "beat.py").write_text(BEAT)
    path = directory / "watches.yaml"
    path.write_text(yaml.safe_dump([{"version": VERSION, "group": GROUP, "kind": KIND,
                                     "role": str(directory / "roles" / "sample")}]))
    return path


# --------------------------------------------------------------------------- replicas

class Replica(local.Replica):
    """A replica (election_operator.local) on the test's kubesim, in `tmp_path/<name>`,
    watching the Sample kind; `args` are the election flags, `env` overrides the
    environment (None removes a variable)."""

    def __init__(self, sim: KubeSim, tmp_path: Path, name: str, watches: Path,
                 args: tuple[str, ...] = (), env: dict[str, str | None] | None = None
                 ) -> None:
        super().__init__(name, tmp_path, watches, args, sim=sim, env=env, executable=OPERATOR)

    def reconciles(self) -> int:
        return len(self.starts(KIND))

    def reconciles_ended(self) -> int:
        return len(self.ends(KIND))


# --------------------------------------------------------------------------- cluster

class Cluster:
    """The test's own view of kubesim (no token: its identity is its User-Agent), with the
    Sample kind installed."""

    def __init__(self, sim: KubeSim, tmp_path: Path) -> None:
        self.sim = sim
        path = sim.write_kubeconfig(tmp_path / "kubeconfig-test")
        self.api = config.new_client_from_config(config_file=str(path))
        self.dyn = DynamicClient(self.api, cache_file=str(tmp_path / "discovery.json"))
        self.core = client.CoreV1Api(self.api)
        self.dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                               kind="CustomResourceDefinition").create(body=sample_crd())
        self.samples = until(lambda: self._samples(), 5, "the Sample kind in discovery")

    def _samples(self) -> Any:
        try:
            self.dyn.resources.invalidate_cache()
            return self.dyn.resources.get(api_version=API_VERSION, kind=KIND)
        except Exception:  # noqa: BLE001 - not served yet
            return None

    def create(self, name: str, **spec: Any) -> None:
        self.samples.create(namespace=NS, body={
            "apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name, "namespace": NS}, "spec": spec})

    def change(self, name: str, **spec: Any) -> None:
        self.samples.patch(namespace=NS, name=name, body={"spec": spec},
                           content_type="application/merge-patch+json")

    def change_status(self, name: str, **status: Any) -> None:
        self.samples.status.patch(namespace=NS, name=name, body={"status": status},
                                  content_type="application/merge-patch+json")

    def configmap(self, name: str) -> Any:
        """The ConfigMap `name` in NS, or None."""
        try:
            return self.core.read_namespaced_config_map(name, NS)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def output(self, name: str) -> str | None:
        """The size the role last recorded for `name`."""
        cm = self.configmap(f"{name}-out")
        return None if cm is None else (cm.data or {}).get("size")

    def writes(self, identity: str, since: int = 0) -> list[Any]:
        """Successful, real (not dry-run) writes of `identity` in the audit log."""
        return [e for e in self.sim.audit.entries(since=since, writes_only=True,
                                                  identity=identity) if 200 <= e.code < 300]

    def status_writes(self, identity: str, since: int = 0) -> list[Any]:
        return [e for e in self.writes(identity, since)
                if e.resource == PLURAL and e.subresource == "status"]

    def last_seq(self) -> int:
        entries = self.sim.audit.entries()
        return entries[-1].seq if entries else 0

    def close(self) -> None:
        self.api.close()


def reconciled(cluster: Cluster, replica: Replica, name: str, size: str, ended: int) -> None:
    """`replica` has finished `ended` reconciles and the role recorded `size` for `name`."""
    until(lambda: replica.reconciles_ended() >= ended and cluster.output(name) == size, 30,
          f"{replica.name}'s reconcile #{ended} recording size {size} for {name}")
    assert replica.lines(r"reconcile end Sample .*: succeeded")[-1:], replica.text()
