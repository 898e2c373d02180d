"""One `election-operator run` process (election mode none) against kubesim, reconciling six
kinds of custom resources with small roles, checked the way a user would: the objects, their
status conditions (spec §3), the operator's log, its probes and metrics, its runner
directory.

All custom resources are created when the operator starts, so their Ansible runs (about 2 s
each here) overlap; each test then waits for and checks its own resources. The kinds:

- Dump: a role that writes the variables its run received into a ConfigMap owned by the
  resource (the extravars contract; a dependent resource).
- Behave: a role that succeeds, fails a task, ignores and rescues failures, or rejects a
  size above 10 with `assert`, as the resource's spec says.
- Periodic: the same role, reconcilePeriod 1s, maxRunnerArtifacts 3.
- Final: the same role with a finalizer role that records its cleanup, or refuses it.
- Quiet: the same role with manageStatus false.
- Slow: a role that sleeps, with MAX_CONCURRENT_RECONCILES_SLOW_TEST_EXAMPLE_COM=3 over the
  flag's 2.

The last tests run the CLI on broken watches files: it exits 2 at start with one message.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import until
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from kubesim import KubeSim

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / ".venv" / "bin" / "election-operator"
GROUP, VERSION, NS = "test.example.com", "v1alpha1", "default"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = "test.example.com/cleanup"
KINDS = ("Dump", "Behave", "Periodic", "Final", "Quiet", "Slow")
SLEEP = 4  # seconds the Slow role sleeps
COMPLETION = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")

# Every variable of the run except Ansible's own (facts, magic and role variables).
ANSIBLE_OWN = (r"^(?!(ansible_(?!operator_meta$)|inventory_|role_|play_|groups?$|group_names$|"
               r"playbook_dir$|gather_subset$|module_setup$|hostvars$|environment$|vars$|"
               r"omit$|dump_names_$)).+")

DUMP_ROLE = f"""\
- name: write the variables of this run into a ConfigMap owned by the resource
  vars:
    dump_names_: "{{{{ query('ansible.builtin.varnames', '{ANSIBLE_OWN}') }}}}"
  kubernetes.core.k8s:
    definition:
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: "{{{{ ansible_operator_meta.name }}}}-vars"
        namespace: "{{{{ ansible_operator_meta.namespace }}}}"
        ownerReferences:
          - apiVersion: "{{{{ _test_example_com_dump.apiVersion }}}}"
            kind: Dump
            name: "{{{{ ansible_operator_meta.name }}}}"
            uid: "{{{{ _test_example_com_dump.metadata.uid }}}}"
      data:
        vars: "{{{{ dict(dump_names_ | zip(query('ansible.builtin.vars', *dump_names_)))
                  | to_json }}}}"
"""

BEHAVE_ROLE = """\
- name: size must be at most 10
  ansible.builtin.assert:
    that: (size | default(1) | int) <= 10
    fail_msg: "size {{ size | default(1) }} is too large: at most 10"
    quiet: true
- name: a task that fails
  ansible.builtin.fail:
    msg: the task failed on purpose
  when: mode | default('ok') == 'fail'
- name: a failure that is ignored
  ansible.builtin.fail:
    msg: ignored failure
  ignore_errors: true
  when: mode | default('ok') == 'tolerate'
- name: a failure that is rescued
  when: mode | default('ok') == 'tolerate'
  block:
    - name: fail inside the block
      ansible.builtin.fail:
        msg: rescued failure
  rescue:
    - name: rescue it
      ansible.builtin.debug:
        msg: rescued
"""

CLEANUP_ROLE = """\
- name: refuse the cleanup when the spec asks
  ansible.builtin.fail:
    msg: "cleanup of {{ ansible_operator_meta.name }} refused"
  when: fail_finalizer | default(false)
- name: record the cleanup (not owned, so it outlives the resource)
  kubernetes.core.k8s:
    definition:
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: "{{ ansible_operator_meta.name }}-cleaned"
        namespace: "{{ ansible_operator_meta.namespace }}"
      data:
        note: "{{ cleanup_note }}"
"""

SLEEPY_ROLE = f"""\
- name: a long task
  ansible.builtin.command: sleep {SLEEP}
  changed_when: false
"""

WATCHES = f"""\
- {{version: {VERSION}, group: {GROUP}, kind: Dump, role: dump,
   vars: {{size: 5, from_watch: watch-var}}}}
- {{version: {VERSION}, group: {GROUP}, kind: Behave, role: behave}}
- {{version: {VERSION}, group: {GROUP}, kind: Periodic, role: behave, reconcilePeriod: 1s,
   maxRunnerArtifacts: 3}}
- version: {VERSION}
  group: {GROUP}
  kind: Final
  role: behave
  finalizer: {{name: {FINALIZER}, role: cleanup, vars: {{cleanup_note: from-finalizer-vars}}}}
- {{version: {VERSION}, group: {GROUP}, kind: Quiet, role: behave, manageStatus: false}}
- {{version: {VERSION}, group: {GROUP}, kind: Slow, role: sleepy}}
"""

DUMP_SPEC = {"size": 3, "sizeK8sBuckets": 8, "egressIPs": ["10.0.0.1"],
             "ThisShouldHaveUnderscores": True,
             "nestedConfig": {"innerKey": "x", "listOfThings": [{"itemName": "a"}]}}

# name -> (kind, spec), created in this order when the operator starts.
RESOURCES: dict[str, tuple[str, dict[str, Any]]] = {
    "slow-0": ("Slow", {}), "slow-1": ("Slow", {}), "slow-2": ("Slow", {}),
    "dump": ("Dump", DUMP_SPEC),
    "fails": ("Behave", {"mode": "fail"}),
    "tolerant": ("Behave", {"mode": "tolerate"}),
    "rejected": ("Behave", {"size": 20}),
    "fine": ("Behave", {"size": 2}),
    "tick": ("Periodic", {}),
    "goes": ("Final", {}),
    "stays": ("Final", {"failFinalizer": True}),
    "quiet": ("Quiet", {}),
}


def crd(kind: str) -> dict[str, Any]:
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------- the log

LOG_TIME = r"(?P<t>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
START = re.compile(LOG_TIME + r" INFO election_operator: reconcile start (?P<kind>\w+) "
                   r"(?P<ns>[^/\s]+)/(?P<name>\S+)$")
END = re.compile(LOG_TIME + r" INFO election_operator: reconcile end (?P<kind>\w+) "
                 r"(?P<ns>[^/\s]+)/(?P<name>\S+): (?P<result>\w+) in (?P<secs>\d+\.\d\d) s"
                 r"(?: \((?P<error>.*)\))?$")
RETRY = re.compile(LOG_TIME + r" INFO election_operator: (?P<kind>\w+) (?P<ns>[^/\s]+)/"
                   r"(?P<name>\S+) will be retried in (?P<delay>\d+) s$")


def log_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class Run:
    """One reconcile as the log tells it: start and end times, result, error."""

    name: str
    start: float
    end: float | None = None
    result: str = ""
    seconds: float = 0.0
    error: str = ""


class Operator:
    """The operator process, its log and its probe port."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, port: int, runner_dir: Path
                 ) -> None:
        self.proc, self.log, self.port, self.runner_dir = proc, log, port, runner_dir

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def runs(self, name: str, kind: str | None = None) -> list[Run]:
        """The reconciles of `name` (in namespace default), in order."""
        out: list[Run] = []
        for line in self.lines():
            m = START.match(line)
            if m and m["name"] == name and m["ns"] == NS and kind in (None, m["kind"]):
                out.append(Run(name, log_time(m["t"])))
                continue
            m = END.match(line)
            if m and m["name"] == name and m["ns"] == NS and kind in (None, m["kind"]):
                assert out and out[-1].end is None, f"an end without a start: {line}"
                out[-1].end, out[-1].result = log_time(m["t"]), m["result"]
                out[-1].seconds, out[-1].error = float(m["secs"]), m["error"] or ""
        return out

    def ended(self, name: str, count: int = 1, kind: str | None = None) -> list[Run] | None:
        """The first `count` runs of `name` once they have all ended, else None."""
        runs = [r for r in self.runs(name, kind) if r.end is not None]
        return runs if len(runs) >= count else None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


class Cluster:
    def __init__(self, sim: KubeSim, tmp: Path) -> None:
        self.api = config.new_client_from_config(
            config_file=str(sim.write_kubeconfig(tmp / "test-kubeconfig")))
        self.core = client.CoreV1Api(self.api)
        self.dyn = DynamicClient(self.api, cache_file=str(tmp / "test-discovery.json"))

    def res(self, kind: str) -> Any:
        return self.dyn.resources.get(api_version=API_VERSION, kind=kind)

    def kind_of(self, name: str) -> str:
        return RESOURCES[name][0]

    def cr(self, name: str) -> dict[str, Any] | None:
        try:
            return self.res(self.kind_of(name)).get(name=name, namespace=NS).to_dict()
        except NotFoundError:
            return None

    def conditions(self, name: str) -> list[dict[str, Any]]:
        obj = self.cr(name) or {}
        return (obj.get("status") or {}).get("conditions") or []

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.res(self.kind_of(name)).patch(
            name=name, namespace=NS, body={"spec": spec},
            content_type="application/merge-patch+json")

    def delete(self, name: str) -> None:
        self.res(self.kind_of(name)).delete(name=name, namespace=NS)

    def configmap(self, name: str) -> client.V1ConfigMap | None:
        try:
            return self.core.read_namespaced_config_map(name, NS)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL of the process and of whatever it started (by pid)."""
    if proc.poll() is not None:
        return
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    for child in family:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Operator, Cluster]]:
    tmp = tmp_path_factory.mktemp("operator")
    project = tmp / "project"
    for role, text in (("dump", DUMP_ROLE), ("behave", BEHAVE_ROLE),
                       ("cleanup", CLEANUP_ROLE), ("sleepy", SLEEPY_ROLE)):
        (project / "roles" / role / "tasks").mkdir(parents=True)
        (project / "roles" / role / "tasks" / "main.yml").write_text(text)
    (project / "watches.yaml").write_text(WATCHES)
    with KubeSim(bookmark_interval=0.5) as sim:
        cluster = Cluster(sim, tmp)
        crds = cluster.dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                                         kind="CustomResourceDefinition")
        for kind in KINDS:
            crds.create(body=crd(kind))
        for name, (kind, spec) in RESOURCES.items():
            cluster.res(kind).create(namespace=NS, body={
                "apiVersion": API_VERSION, "kind": kind,
                "metadata": {"name": name, "namespace": NS}, "spec": spec})
        port = free_port()
        runner_dir = tmp / "runner"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_",
                                                                        "MAX_CONCURRENT"))}
        env.update({
            "KUBECONFIG": str(sim.write_kubeconfig(tmp / "kubeconfig")),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
            "ANSIBLE_GATHERING": "explicit",  # ansible-operator's way to skip the facts
            # Per kind: three Slow runs at once, and a worker for each Behave resource so
            # that a retry starts when its backoff ends.
            f"MAX_CONCURRENT_RECONCILES_SLOW_{GROUP.upper().replace('.', '_')}": "3",
            f"MAX_CONCURRENT_RECONCILES_BEHAVE_{GROUP.upper().replace('.', '_')}": "4",
        })
        log = tmp / "operator.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(OPERATOR), "run", "--watches-file", "watches.yaml",
                 "--health-probe-bind-address", f"127.0.0.1:{port}",
                 "--metrics-bind-address", "0", "--max-concurrent-reconciles", "2",
                 "--ansible-verbosity", "0", "--graceful-shutdown-timeout", "2s",
                 "--runner-dir", str(runner_dir)],
                cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield Operator(proc, log, port, runner_dir), cluster
        finally:
            stop_process(proc)
            cluster.api.close()


def without_times(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conditions without lastTransitionTime and ansibleResult.completion (which is
    checked for its format)."""
    out = []
    for c in conditions:
        c = copy.deepcopy(c)
        assert "lastTransitionTime" in c, c
        del c["lastTransitionTime"]
        if "ansibleResult" in c:
            assert COMPLETION.match(c["ansibleResult"].pop("completion")), c
        out.append(c)
    return out


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in without_times(conditions)}


def result(ok: int, changed: int = 0, skipped: int = 0, failures: int = 0) -> dict[str, int]:
    return {"ok": ok, "changed": changed, "skipped": skipped, "failures": failures}


def successful(ansible_result: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {
        "Running": {"type": "Running", "status": "True", "reason": "Successful",
                    "message": "Awaiting next reconciliation", "ansibleResult": ansible_result},
        "Successful": {"type": "Successful", "status": "True", "reason": "Successful",
                       "message": "Last reconciliation succeeded"},
        "Failure": {"type": "Failure", "status": "False", "reason": "", "message": ""},
    }


def failed(message: str, ansible_result: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {
        "Running": {"type": "Running", "status": "False", "reason": "Running",
                    "message": "Running reconciliation"},
        "Failure": {"type": "Failure", "status": "True", "reason": "Failed", "message": message,
                    "ansibleResult": ansible_result},
        "Successful": {"type": "Successful", "status": "False", "reason": "", "message": ""},
    }


def settled(cluster: Cluster, name: str, reason: str) -> list[dict[str, Any]] | None:
    """The conditions of `name` once its Running condition has left `Running`."""
    conds = cluster.conditions(name)
    running = [c for c in conds if c["type"] == "Running"]
    if running and running[0]["reason"] == reason and (
            reason != "Running" or running[0]["status"] == "False"):
        return conds
    return None


# ------------------------------------------------------------------------------- tests


def test_runs_overlap_up_to_the_per_kind_limit_and_probes_answer_meanwhile(world) -> None:
    op, _ = world
    names = ("slow-0", "slow-1", "slow-2")
    until(lambda: all(op.runs(n) for n in names), 30, "three Slow reconciles to start")
    # While three playbooks sleep, the probes answer.
    assert op.get("/healthz") == (200, "ok")
    assert op.get("/readyz") == (200, "ok")
    assert any(r.end is None for n in names for r in op.runs(n)), "probed during the runs"
    runs = [until(lambda n=n: op.ended(n), 60, f"{n} to end")[0] for n in names]
    assert all(r.result == "succeeded" and r.seconds >= SLEEP for r in runs), runs
    # MAX_CONCURRENT_RECONCILES_SLOW_TEST_EXAMPLE_COM=3 beats --max-concurrent-reconciles 2:
    # all three ran at one moment.
    latest_start = max(r.start for r in runs)
    earliest_end = min(r.end for r in runs if r.end is not None)
    assert earliest_end - latest_start >= SLEEP - 1, runs


def test_the_play_gets_exactly_the_extravars_contract(world) -> None:
    op, cluster = world
    cm = until(lambda: cluster.configmap("dump-vars"), 60, "the Dump role's ConfigMap")
    got = json.loads(cm.data["vars"])
    cr = cluster.cr("dump")
    assert cr is not None
    expected = {
        # the spec's keys, snake_cased at every depth (size is overridden, see below)
        "size_k8s_buckets": 8,
        "egress_ips": ["10.0.0.1"],
        "_this_should_have_underscores": True,
        "nested_config": {"inner_key": "x", "list_of_things": [{"item_name": "a"}]},
        "ansible_operator_meta": {"name": "dump", "namespace": NS},
        "_test_example_com_dump_spec": DUMP_SPEC,  # the raw spec
        # watch vars, on top of the spec keys
        "size": 5,
        "from_watch": "watch-var",
    }
    whole = got.pop("_test_example_com_dump")
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key] == value, key
    # The whole object as the reconcile read it: before its first status write.
    assert "status" not in whole
    for obj in (whole, cr):
        obj.pop("status", None)
        for f in ("resourceVersion", "managedFields"):
            obj["metadata"].pop(f, None)
    assert whole == cr
    # The run is reflected in the status, in ansible-operator's order (spec §3).
    conds = until(lambda: settled(cluster, "dump", "Successful"), 30, "dump's conditions")
    assert without_times(conds) == list(successful(result(ok=1, changed=1)).values())


def test_status_only_change_does_not_rerun_and_an_edited_dependent_is_restored(world) -> None:
    op, cluster = world
    until(lambda: op.ended("dump"), 60, "dump's first reconcile")
    # The operator watches ConfigMaps since its run created one (a list, then a watch).
    until(lambda: any("watching dependents of type v1 ConfigMap" in x for x in op.lines()),
          10, "the dependent watch")
    before = len(op.runs("dump"))
    cluster.res("Dump").status.patch(
        name="dump", namespace=NS, body={"status": {"custom": "kept"}},
        content_type="application/merge-patch+json")
    # An event is handled in milliseconds: a reconcile would have started by then. (The
    # second also lets the new ConfigMap informer finish its first list, so that the edit
    # below reaches it as an update.)
    time.sleep(1.0)
    assert len(op.runs("dump")) == before, "a status-only change started a reconcile"

    cluster.core.patch_namespaced_config_map("dump-vars", NS, {"data": {"vars": "tampered"}})
    restored = until(lambda: (cm := cluster.configmap("dump-vars")) and
                     cm.data["vars"] != "tampered" and cm, 30, "the role to restore it")
    assert json.loads(restored.data["vars"])["ansible_operator_meta"]["name"] == "dump"
    assert len(op.runs("dump")) > before
    # Other keys of .status survive the operator's condition writes.
    until(lambda: op.ended("dump", before + 1), 30, "the restoring run to end")
    cr = cluster.cr("dump")
    assert cr is not None and cr["status"]["custom"] == "kept"
    assert {c["type"] for c in cr["status"]["conditions"]} == \
        {"Running", "Successful", "Failure"}


def test_failed_task_gives_a_failure_condition_is_logged_and_retried_with_growing_delays(
        world) -> None:
    op, cluster = world
    runs = until(lambda: op.ended("fails", 4), 90, "four reconciles of fails")
    # Conditions after a failed run (first run: ansible-operator's order; later runs reorder).
    expected = failed("the task failed on purpose", result(ok=1, failures=1))
    conds = until(lambda: settled(cluster, "fails", "Running"), 10, "conditions")
    cluster.delete("fails")
    assert by_type(conds) == expected
    assert all(r.result == "failed" and r.error == "the task failed on purpose" for r in runs)
    # The backoff: 1, 2, 4 s between the end of one run and the start of the next.
    gaps = [b.start - a.end for a, b in zip(runs, runs[1:], strict=False) if a.end]
    for gap, delay in zip(gaps, (1, 2, 4), strict=True):
        assert delay - 0.05 <= gap <= delay + 1.0, gaps
    retries = [m["delay"] for x in op.lines() if (m := RETRY.match(x)) and m["name"] == "fails"]
    assert retries[:3] == ["1", "2", "4"]
    # The failed task's output is in the log, not only its message in the end line.
    text = "\n".join(op.lines())
    assert "ERROR election_operator.reconciler: Behave default/fails: failed task(s): the task " \
        "failed on purpose" in text
    assert "TASK [behave : a task that fails]" in text
    assert 'fatal: [localhost]: FAILED! => {"changed": false, "msg": "the task failed on ' \
        'purpose"}' in text


def test_ignored_and_rescued_failures_end_successful(world) -> None:
    op, cluster = world
    conds = until(lambda: settled(cluster, "tolerant", "Successful"), 60, "tolerant to end")
    # assert ok, fail skipped, the ignored failure counts as ok, the rescued one does not count,
    # the rescue task is ok.
    assert by_type(conds) == successful(result(ok=3, skipped=1))
    assert op.ended("tolerant")[0].result == "succeeded"


def test_a_spec_the_role_rejects_fails_that_resource_only(world) -> None:
    op, cluster = world
    conds = until(lambda: settled(cluster, "rejected", "Running"), 60, "rejected to fail")
    assert by_type(conds) == failed("size 20 is too large: at most 10", result(ok=0,
                                                                               failures=1))
    until(lambda: settled(cluster, "fine", "Successful"), 60, "fine to succeed")
    # Another resource of the same kind keeps reconciling while the rejected one is retried.
    runs_before = len(op.runs("fine"))
    cluster.patch_spec("fine", {"size": 3})
    runs = until(lambda: op.ended("fine", runs_before + 1), 30, "fine's second reconcile")
    assert runs[-1].result == "succeeded"
    assert by_type(cluster.conditions("fine")) == successful(result(ok=1, skipped=3))
    assert len(op.runs("rejected")) >= 2, "the rejected resource is retried"
    cluster.delete("rejected")


def test_finalizer_runs_on_delete_then_goes_and_a_failing_one_keeps_the_resource(
        world) -> None:
    op, cluster = world
    for name in ("goes", "stays"):
        conds = until(lambda n=name: settled(cluster, n, "Successful"), 60, f"{name} to end")
        assert by_type(conds) == successful(result(ok=1, skipped=3))
        assert cluster.cr(name)["metadata"]["finalizers"] == [FINALIZER]
        cluster.delete(name)

    until(lambda: cluster.cr("goes") is None, 30, "goes to be deleted")
    cleaned = cluster.configmap("goes-cleaned")
    assert cleaned is not None and cleaned.data == {"note": "from-finalizer-vars"}

    def refused() -> list[dict[str, Any]] | None:
        return settled(cluster, "stays", "Running") if op.ended("stays", 2) else None
    conds = until(refused, 30, "the finalizer run of stays to fail")
    cr = cluster.cr("stays")
    assert cr is not None and cr["metadata"].get("deletionTimestamp")
    assert cr["metadata"]["finalizers"] == [FINALIZER]
    assert by_type(conds) == failed("cleanup of stays refused", result(ok=0, failures=1))
    assert cluster.configmap("stays-cleaned") is None
    # Allowed to clean up: the next finalizer run succeeds and the resource goes.
    cluster.patch_spec("stays", {"failFinalizer": False})
    until(lambda: cluster.cr("stays") is None, 30, "stays to be deleted")
    assert cluster.configmap("stays-cleaned").data == {"note": "from-finalizer-vars"}


def test_manage_status_false_writes_no_conditions(world) -> None:
    op, cluster = world
    runs = until(lambda: op.ended("quiet"), 60, "quiet's reconcile")
    assert runs[0].result == "succeeded"
    assert "status" not in cluster.cr("quiet")


def test_reconcile_period_requeues_and_runner_artifacts_are_rotated(world) -> None:
    op, cluster = world
    runs = until(lambda: op.ended("tick", 5), 60, "five reconciles of tick")
    cluster.delete("tick")
    assert all(r.result == "succeeded" for r in runs)
    gaps = [b.start - a.end for a, b in zip(runs, runs[1:], strict=False) if a.end]
    assert all(0.95 <= g <= 2.0 for g in gaps), gaps
    artifacts = op.runner_dir / GROUP / VERSION / "Periodic" / NS / "tick" / "artifacts"
    dirs = [p for p in artifacts.iterdir() if p.is_dir() and not p.is_symlink()]
    assert 1 <= len(dirs) <= 3, sorted(p.name for p in artifacts.iterdir())
    assert (artifacts / "latest").resolve().parent == artifacts.resolve()


def test_metrics_and_one_log_line_per_reconcile_start_and_end(world) -> None:
    op, _ = world
    status, text = op.get("/metrics")
    assert status == 200
    gvk = f'GVK="{GROUP}/{VERSION}, Kind=%s"'
    for kind in ("Dump", "Behave", "Slow"):
        assert re.search(r"^ansible_operator_reconcile_result\{" + re.escape(gvk % kind) +
                         r',result="succeeded"\} [1-9]', text, re.M), kind
    assert re.search(r"^ansible_operator_reconcile_result\{" + re.escape(gvk % "Behave") +
                     r',result="failed"\} [1-9]', text, re.M)
    assert re.search(r"^ansible_operator_reconciles_count\{" + re.escape(gvk % "Slow") +
                     r"\} 3\.0$", text, re.M)
    assert re.search(r"^leader_election_master_status\{[^}]*\} 1\.0$", text, re.M)
    # manageStatus: false -> markDone does not run, so no reconcile_result for Quiet.
    assert not re.search(r"^ansible_operator_reconcile_result\{" + re.escape(gvk % "Quiet"),
                         text, re.M)
    # Every reconcile that started and is not running now has exactly one end line.
    for name in RESOURCES:
        runs = op.runs(name)
        assert runs, name
        assert all(r.end is not None for r in runs[:-1]), name


def test_sigterm_stops_the_idle_operator_at_once(world) -> None:
    op, cluster = world
    assert op.proc.poll() is None, "the operator is still running"
    for name in RESOURCES:  # whatever the tests before left (when run alone)
        if cluster.cr(name) is not None:
            if name == "stays":
                cluster.patch_spec(name, {"failFinalizer": False})
            cluster.delete(name)
    until(lambda: all(cluster.cr(n) is None for n in RESOURCES), 60, "every resource to go")
    until(lambda: all(r.end is not None for n in RESOURCES for r in op.runs(n)), 30,
          "the last reconciles to end")
    started = time.monotonic()
    op.proc.send_signal(signal.SIGTERM)
    assert op.proc.wait(10) == 0
    # Nothing is running, so nothing to wait for: the open watches end at once.
    assert time.monotonic() - started < 2.0


def test_the_operator_runs_in_process_in_a_thread(sim: KubeSim, tmp_path: Path) -> None:
    """`Operator(...).run()` off the main thread (no signal handlers there), stopped with
    its stop_event."""
    import threading

    from election_operator.operator import Operator as InProcess
    from election_operator.operator import Options

    (tmp_path / "roles" / "noop" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "noop" / "tasks" / "main.yml").write_text("[]\n")
    (tmp_path / "watches.yaml").write_text(
        f"- {{version: v1, group: '', kind: Secret, role: {tmp_path}/roles/noop}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["KUBECONFIG"] = str(sim.write_kubeconfig(tmp_path / "kubeconfig"))
    op = InProcess(Options(watches_file=str(tmp_path / "watches.yaml"),
                           health_probe_bind_address="127.0.0.1:0", metrics_bind_address="0",
                           runner_dir=str(tmp_path / "runner"), environ=env))
    codes: list[int | str] = []

    def run() -> None:
        try:
            codes.append(op.run())
        except Exception as e:  # reported below
            codes.append(repr(e))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        until(lambda: op.probes is not None and op.ready() or codes, 10, "ready")
        assert not codes, codes
        with urllib.request.urlopen(f"http://127.0.0.1:{op.probes.port}/readyz") as r:
            assert r.status == 200
    finally:
        op.stop_event.set()
        thread.join(10)
    assert not thread.is_alive()
    assert codes == [0]


# ------------------------------------------------------------------------- bad watches files


def cli(tmp_path: Path, watches: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "roles" / "present" / "tasks").mkdir(parents=True, exist_ok=True)
    (tmp_path / "roles" / "present" / "tasks" / "main.yml").write_text("[]\n")
    (tmp_path / "watches.yaml").write_text(textwrap.dedent(watches))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")  # it must fail before any API call
    return subprocess.run([str(OPERATOR), "run", "--watches-file", "watches.yaml",
                           "--health-probe-bind-address", "127.0.0.1:0"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("watches", "entry", "field", "problem"), [
    pytest.param("""\
     - {version: v1, group: a.example.com, kind: Good, role: present}
     - {version: v1, group: b.example.com, kind: Bad, role: present, reconcilePeriodd: 5s}
     """, "entry 1", "reconcilePeriodd", "unknown key", id="unknown-key"),
    pytest.param("""\
     - {version: v1, group: b.example.com, kind: Bad, vars: {a: 1}}
     """, "entry 0", None, "playbook or a role", id="no-role-nor-playbook"),
    pytest.param("""\
     - {version: v1, group: b.example.com, kind: Bad, role: absent}
     """, "entry 0", "role", "not found", id="role-does-not-exist"),
])
def test_a_malformed_watches_file_stops_the_cli_at_start(tmp_path: Path, watches: str,
                                                         entry: str, field: str | None,
                                                         problem: str) -> None:
    done = cli(tmp_path, watches)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    message = lines[0]
    assert message.startswith("election-operator: ")
    assert entry in message and "b.example.com/v1, Kind=Bad" in message, message
    assert problem in message, message
    if field:
        assert field in message, message
