"""Checklist item 36: kubernetes.core through ansible-playbook and ansible-runner.

The playbooks under playbooks/ assert on their registered results themselves (a failed
`assert` task fails the run); the tests here run them with the real `ansible-playbook` (and
once with `ansible_runner.run`, as the runtime does) against kubesim and then check, from
Python, what the server saw: the audit log of writes and the objects through a GET.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ansible_runner
from helpers import until as eventually
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubesim import KubeSim

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
VENV_BIN = Path(sys.executable).parent
# pyenv shims confuse interpreter discovery: run modules with the controller's own Python.
INVENTORY = ('localhost ansible_connection=local '
             'ansible_python_interpreter="{{ ansible_playbook_python }}"\n')


def _env(sim: KubeSim, tmp_path: Path) -> dict[str, str]:
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
    tmpdir = tmp_path / "tmp"  # kubernetes.core caches discovery in $TMPDIR/k8srcp-<hash>.json
    tmpdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("K8S_AUTH_", "ANSIBLE_")) and k != "KUBECONFIG"}
    env.update(K8S_AUTH_KUBECONFIG=str(kubeconfig), TMPDIR=str(tmpdir),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmpdir / "ansible-local"),
               ANSIBLE_HOME=str(tmp_path / "ansible-home"))
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_playbook(sim: KubeSim, tmp_path: Path, playbook: str, *args: str,
                 extra_vars: dict[str, Any] | None = None) -> str:
    """Run one playbook to completion; fail the test with its output if any task failed."""
    inventory = tmp_path / "inventory"
    inventory.write_text(INVENTORY)
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOKS / playbook),
           *args]
    for k, v in (extra_vars or {}).items():
        cmd += ["-e", f"{k}={v}"]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(sim, tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"{playbook} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def core_for(sim: KubeSim, tmp_path: Path) -> client.CoreV1Api:
    path = sim.write_kubeconfig(tmp_path / "kubeconfig-python")
    return client.CoreV1Api(config.new_client_from_config(config_file=str(path)))


def writes(sim: KubeSim, since: int) -> list[tuple[str, str, str, int]]:
    return [(e.verb, e.name, e.subresource, e.code)
            for e in sim.audit.entries(since=since, writes_only=True)]


def last_seq(sim: KubeSim) -> int:
    entries = sim.audit.entries()
    return entries[-1].seq if entries else 0


def get_status(read: Callable[[], Any]) -> int:
    try:
        read()
    except ApiException as e:
        return e.status
    return 200


# ------------------------------------------------------------------ item 36
def test_item36_k8s_create_idempotent_apply_ssa_absent(sim: KubeSim, tmp_path: Path) -> None:
    """Item 36: `k8s` create is changed and its re-run is not; `apply: true` likewise;
    `server_side_apply` (field_manager) creates, is idempotent, hits FieldManagerConflict
    for a second manager and wins with force_conflicts; `state: absent` + `wait` deletes.
    The playbook asserts on every registered result; here we check what reached the server.
    """
    since = last_seq(sim)
    run_playbook(sim, tmp_path, "item36_configmap_lifecycle.yml")

    assert writes(sim, since) == [
        ("create", "ans-plain", "", 201),   # k8s create
        ("patch", "ans-plain", "", 200),    # the identical re-run: a no-op patch
        ("patch", "ans-plain", "", 200),    # the data change
        ("create", "ans-apply", "", 201),   # apply: true on a missing object creates it
        ("patch", "ans-apply", "", 200),    # the third apply (the second found no diff
                                            # against last-applied and sent nothing)
        ("patch", "ans-ssa", "", 201),      # SSA creates through PATCH -> 201
        ("patch", "ans-ssa", "", 200),      # SSA re-run: a no-op
        ("patch", "ans-ssa", "", 409),      # another manager: conflict
        ("patch", "ans-ssa", "", 200),      # force_conflicts
        ("delete", "ans-plain", "", 200),
        ("delete", "ans-apply", "", 200),
        ("delete", "ans-ssa", "", 200),
    ]
    entries = sim.audit.entries(since=since, writes_only=True)
    # a no-op write keeps the resourceVersion (what makes the re-run report changed: false)
    assert entries[1].resource_version == entries[0].resource_version
    assert entries[2].resource_version != entries[1].resource_version
    assert entries[6].resource_version == entries[5].resource_version
    core = core_for(sim, tmp_path)
    for name in ("ans-plain", "ans-apply", "ans-ssa"):
        assert get_status(lambda n=name: core.read_namespaced_config_map(n, "default")) == 404


def test_item36_check_mode_writes_nothing(sim: KubeSim, tmp_path: Path) -> None:
    """Item 36: `ansible-playbook --check` reports create/update/apply/delete as changed, but
    nothing is written. kubernetes.core (>= kubernetes 18.20) does check mode as a server-side
    dry run, so the server sees each write with `dryRun=All`: the audit log holds no real
    write, and GETs show nothing moved (item 30 through Ansible).
    """
    core = core_for(sim, tmp_path)
    existing = core.create_namespaced_config_map("default", {
        "metadata": {"name": "ans-existing"}, "data": {"a": "1"}})
    since = last_seq(sim)

    run_playbook(sim, tmp_path, "item36_check_mode.yml", "--check")

    dry = [(e.verb, e.name, e.code) for e in sim.audit.entries(since=since)
           if e.verb not in ("get", "list")]
    assert all(e.dry_run for e in sim.audit.entries(since=since) if e.verb not in ("get", "list"))
    assert dry == [("create", "ans-check-new", 201), ("patch", "ans-existing", 200),
                   ("patch", "ans-existing", 200), ("delete", "ans-existing", 200)]
    assert writes(sim, since) == []
    assert get_status(lambda: core.read_namespaced_config_map("ans-check-new", "default")) == 404
    after = core.read_namespaced_config_map("ans-existing", "default")
    assert after.data == {"a": "1"}
    assert after.metadata.resource_version == existing.metadata.resource_version


def test_item36_deployment_wait_info_json_patch_scale(sim_workloads: KubeSim,
                                                      tmp_path: Path) -> None:
    """Item 36: a Deployment with `wait: true` (`wait_sleep: 1`) returns once the fake
    controllers made it ready; k8s_info reads it and its Running Pods; k8s_json_patch applies
    (and a failed `test` op is a 422 that changes nothing); k8s_scale patches /scale and
    waits; `state: absent` + `wait` deletes it, and GC then removes its ReplicaSet and Pods.
    """
    sim = sim_workloads
    since = last_seq(sim)
    run_playbook(sim, tmp_path, "item36_deployment.yml")

    # (the controllers and GC write in-process: only the modules' requests are audited)
    assert writes(sim, since) == [
        ("create", "web", "", 201),
        ("patch", "web", "", 200),          # k8s_json_patch
        ("patch", "web", "", 422),          # the failed `test`
        ("patch", "web", "scale", 200),     # k8s_scale goes through the scale subresource
        ("delete", "web", "", 200),
    ]
    entries = sim.audit.entries(since=since)
    # `wait: true` polled with GETs rather than trusting the create response
    polls = [e for e in entries if e.verb == "get" and e.resource == "deployments"
             and e.name == "web"]
    assert len(polls) >= 2
    core = core_for(sim, tmp_path)
    apps = client.AppsV1Api(core.api_client)
    assert get_status(lambda: apps.read_namespaced_deployment("web", "default")) == 404
    eventually(lambda: not core.list_namespaced_pod("default", label_selector="app=web").items
               and not apps.list_namespaced_replica_set("default").items)


def test_item36_ansible_runner_create(sim: KubeSim, tmp_path: Path) -> None:
    """Item 36 through `ansible_runner.run` (as the runtime runs playbooks): a k8s create is
    changed and the re-run is not, read from the runner's events. A fresh private_data_dir
    with suppress_env_files keeps a stale env/ or settings from leaking between runs.
    """
    private = tmp_path / "runner"
    (private / "inventory").mkdir(parents=True)
    (private / "inventory" / "hosts").write_text(INVENTORY)
    env = _env(sim, tmp_path)
    envvars = {k: v for k, v in env.items()
               if k.startswith(("K8S_AUTH_", "ANSIBLE_")) or k in ("TMPDIR", "PATH")}
    result = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO),
        playbook=str(PLAYBOOKS.relative_to(REPO) / "item36_runner_create.yml"),
        envvars=envvars, settings={},  # PATH in envvars picks the venv's ansible-playbook
        suppress_env_files=True, quiet=True, timeout=120)
    assert (result.status, result.rc) == ("successful", 0), result.stdout.read()
    ok = {e["event_data"]["task"]: e["event_data"]["res"]
          for e in result.events if e["event"] == "runner_on_ok"}
    assert ok["Create a ConfigMap"]["changed"] is True
    assert ok["Create it again"]["changed"] is False
    assert result.stats["failures"] == {}
    cm = core_for(sim, tmp_path).read_namespaced_config_map("ans-runner", "default")
    assert cm.data == {"via": "ansible-runner"}
    assert cm.metadata.uid == ok["Create a ConfigMap"]["result"]["metadata"]["uid"]

