"""Running playbooks of this collection's modules against kubesim, for the tests.

`Playbooks` writes a play from task dicts, runs `ansible-playbook` from the repository root
(so ansible.cfg finds the collections) with a clean environment pointing at the emulator,
and returns every registered result; `module_task` builds one task.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from kubesim import KubeSim

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
# pyenv shims break interpreter discovery: pin the interpreter running ansible-playbook.
INVENTORY = ('localhost ansible_connection=local '
             'ansible_python_interpreter="{{ ansible_playbook_python }}"\n')


def module_task(module: str, register: str, args: dict[str, Any], *,
                check_mode: bool = False, environment: dict[str, str] | None = None
                ) -> dict[str, Any]:
    """One task of `module` whose result (failed or not) is registered as `register`."""
    task: dict[str, Any] = {"name": register,
                            module: {k: v for k, v in args.items() if v is not None},
                            "register": register, "ignore_errors": True}
    if check_mode:
        task["check_mode"] = True
    if environment:
        task["environment"] = environment
    return task


class Run:
    """One ansible-playbook process; `result()` waits and returns the registered results."""

    def __init__(self, proc: subprocess.Popen[str], out: Path, log: Path) -> None:
        self.proc, self.out, self.log = proc, out, log

    def result(self, timeout: float = 90) -> dict[str, Any]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        text = self.log.read_text()
        assert self.proc.returncode == 0, f"ansible-playbook failed:\n{text[-4000:]}"
        assert "Traceback" not in text, text[-4000:]
        return json.loads(self.out.read_text())


class Playbooks:
    def __init__(self, sim: KubeSim, tmp_path: Path) -> None:
        self.sim, self.tmp = sim, tmp_path
        self.kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        self.inventory = tmp_path / "inventory"
        self.inventory.write_text(INVENTORY)
        self.runs: list[Run] = []
        self._n = 0

    def env(self, **extra: str) -> dict[str, str]:
        """The process environment minus anything that could point elsewhere."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("K8S_AUTH_", "ANSIBLE_")) and k != "POD_NAME"}
        env.update(KUBECONFIG=str(self.kubeconfig), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_LOCAL_TEMP=str(self.tmp / "ans"),
                   ANSIBLE_HOME=str(self.tmp / "ansible-home"), TMPDIR=str(self.tmp))
        env.update(extra)
        return env

    def start(self, tasks: list[dict[str, Any]], prefix: list[str] | None = None,
              env: dict[str, str] | None = None, playbook: Path | None = None,
              extra_vars: dict[str, Any] | None = None) -> Run:
        self._n += 1
        out = self.tmp / f"result-{self._n}.json"
        if playbook is None:
            regs = [t["register"] for t in tasks if "register" in t]
            collect = "{{ {" + ", ".join(f"'{r}': {r}" for r in regs) + "} | to_json }}"
            play = [{"name": f"run {self._n}", "hosts": "localhost", "gather_facts": False,
                     "tasks": tasks + [{"name": "results", "ansible.builtin.copy": {
                         "content": collect, "dest": str(out)}}]}]
            playbook = self.tmp / f"play-{self._n}.yml"
            playbook.write_text(yaml.safe_dump(play, sort_keys=False))
        cmd = [*(prefix or []), str(BIN / "ansible-playbook"), "-i", str(self.inventory),
               str(playbook)]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        log = self.tmp / f"log-{self._n}.txt"
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env(), stdout=f,
                                    stderr=subprocess.STDOUT, text=True)
        run = Run(proc, out, log)
        self.runs.append(run)
        return run

    def run(self, tasks: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
        return self.start(tasks, **kw).result()

    def close(self) -> None:
        for r in self.runs:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
