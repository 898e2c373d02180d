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
from pathlib import Path
from typing import Any

from kubernetes import client

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


def test_tmp(sim, tmp_path):
    print(run_playbook(sim, tmp_path, "item36_configmap_lifecycle.yml"))
