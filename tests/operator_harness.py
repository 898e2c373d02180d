"""election-operator replicas as real processes, and the sample operator they run.

Shared by the process tests (tests/integration/test_operator_replicas.py for the lease,
test_operator_life.py for leader for life). Each replica is `election-operator run` with its
own kubeconfig and bearer token, so kubesim's audit log names it `token:<its token>` for
everything it sends: its election requests directly, and its own and its runs' writes through
its fencing proxy (which forwards with the replica's credentials).

The watched kind `Sample` is reconciled by a role that may start a background writer
(`spec.beat`), may sleep (`spec.sleep` seconds, a `sleep` command) and then writes a
ConfigMap `<name>-out` with `spec.size`; the ConfigMaps are not owned by the custom
resource, so a reconcile causes no dependent event. Every process started is killed by PID
(the replica, its descendants and every process carrying its run marker).
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import yaml
from helpers import until
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from kubesim import KubeSim

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = ROOT / ".venv" / "bin" / "election-operator"
NS = "default"
GROUP, VERSION, KIND, PLURAL = "test.example.com", "v1alpha1", "Sample", "samples"
API_VERSION = f"{GROUP}/{VERSION}"
MARKER_ENV = "ELECTION_OPERATOR_RUN"
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")

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


# --------------------------------------------------------------------------- processes

def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if alive(p)]
    except psutil.Error:
        return []


def marked(replica_pid: int) -> list[psutil.Process]:
    """Processes of the runs of the replica `replica_pid` (they carry its run marker), also
    after they were orphaned."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARKER_ENV, "").startswith(f"{replica_pid}:") and alive(p):
                found.append(p)
        except psutil.Error:
            continue
    return found


def cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def log_time(line: str) -> float:
    """The wall-clock time of a log line of the operator (logging's asctime, local time)."""
    m = _LOG_TIME.match(line)
    assert m, f"not a log line: {line!r}"
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


class Replica:
    """One `election-operator run` process with its own token, log and runner dir.

    `args` are added to the command line (the election flags); `env` overrides the
    environment, a value of None removing the variable (POD_NAME is the replica's name
    unless overridden)."""

    def __init__(self, sim: KubeSim, tmp_path: Path, name: str, watches: Path,
                 args: tuple[str, ...] = (), env: dict[str, str | None] | None = None
                 ) -> None:
        self.name = name
        self.token = f"token-{name}"
        self.identity = f"token:{self.token}"
        self.dir = tmp_path / name
        self.dir.mkdir()
        kubeconfig = sim.write_kubeconfig(self.dir / "kubeconfig", token=self.token)
        self.log_path = self.dir / "operator.log"
        self.runner_dir = self.dir / "runner"
        environ: dict[str, str] = dict(os.environ, KUBECONFIG=str(kubeconfig), POD_NAME=name,
                                       ANSIBLE_GATHERING="explicit")
        environ.pop(MARKER_ENV, None)
        for key, value in (env or {}).items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        argv = [str(OPERATOR), "run", "--watches-file", str(watches),
                "--health-probe-bind-address", "127.0.0.1:0", "--metrics-bind-address", "0",
                "--runner-dir", str(self.runner_dir), *args]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, env=environ, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.seen: set[psutil.Process] = set()  # run processes noticed while it ran

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.text().splitlines() if re.search(pattern, line)]

    def reconciles(self) -> int:
        return len(self.lines(r"reconcile start Sample "))

    def reconciles_ended(self) -> int:
        return len(self.lines(r"reconcile end Sample "))

    def run_processes(self) -> list[psutil.Process]:
        procs = descendants(self.pid)
        self.seen.update(procs)
        return procs

    def tree(self) -> list[psutil.Process]:
        try:
            return [psutil.Process(self.pid), *descendants(self.pid)]
        except psutil.Error:
            return descendants(self.pid)

    def freeze(self) -> list[psutil.Process]:
        """SIGSTOP the replica and every descendant (the replica first, so it starts no
        more; then its descendants until no new one appears)."""
        frozen: dict[int, psutil.Process] = {}
        stable = 0
        while stable < 2:
            new = [p for p in self.tree() if p.pid not in frozen]
            stable = stable + 1 if not new else 0
            for p in new:
                try:
                    p.suspend()
                    frozen[p.pid] = p
                except psutil.Error:
                    pass
        self.seen.update(p for p in frozen.values() if p.pid != self.pid)
        return list(frozen.values())

    def thaw(self, frozen: list[psutil.Process]) -> None:
        """SIGCONT them: descendants first (they get a head start on the replica)."""
        for p in sorted(frozen, key=lambda p: p.pid == self.pid):
            try:
                p.resume()
            except psutil.Error:
                pass

    def kill(self) -> None:
        """SIGKILL the replica and whatever of its runs is left, by PID, and reap it."""
        victims = {p.pid: p for p in [*self.tree(), *marked(self.pid), *self.seen]}
        for p in victims.values():
            try:
                if p.is_running():
                    p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(list(victims.values()), timeout=5)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        self.kill()
        self._log.close()


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
