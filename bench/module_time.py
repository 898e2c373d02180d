"""Task time of this collection's modules against `kubernetes.core.k8s_info`, in one run.

One ansible-playbook run (cwd = the repository, so ansible.cfg finds the collections;
KUBECONFIG = kubesim, which runs in this process) with --rounds rounds of alternating tasks:
k8s_lease_elect renewing one Lease (one identity, so every call after the first renews),
k8s_leader_become confirming that the Pod it names holds the lock ConfigMap (the first call
creates it), k8s_status writing a status key and a condition of a Memcached, k8s_info reading
the Lease, and ansible.builtin.ping as the baseline of what any task costs (templating,
AnsiballZ, a Python process). Each task's time is taken from its start to its result by a
small callback plugin (bench/callback_plugins/bench_task_times.py); kubesim's audit log and a
count of every HTTP request kubesim answered give the requests made during each task. The
first round is reported apart (cold: the Lease and the lock are created, k8s_info fills its
discovery cache).

    .venv/bin/python bench/module_time.py [--rounds 20] [--no-baseline] [--json FILE]

--json saves the figures and the Markdown section for the report of `make bench`
(bench/_report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _report import command_line, machine, percentile, save  # noqa: E402
from kubernetes import client, config  # noqa: E402

from kubesim import KubeSim  # noqa: E402

BIN = Path(sys.executable).parent
NS = "default"
LEASE = "bench-module"
POD = "bench-pod"
LOCK = "bench-lock"
CR = "bench-memcached"
CRD = ROOT / "deploy" / "crd.yaml"
INVENTORY = ('localhost ansible_connection=local '
             'ansible_python_interpreter="{{ ansible_playbook_python }}"\n')
ELECT = "election.kubernetes.k8s_lease_elect"
BECOME = "election.kubernetes.k8s_leader_become"
STATUS = "election.kubernetes.k8s_status"
INFO = "kubernetes.core.k8s_info"
PING = "ansible.builtin.ping"
ACTIONS = (ELECT, BECOME, STATUS, INFO, PING)
# What each task does, for the report's table.
WHAT = {ELECT: "renewing a Lease", BECOME: "confirming its Pod holds the lock",
        STATUS: "writing a status key and a condition", INFO: "reading the Lease",
        PING: "(no API call)"}


def playbook(rounds: int, state_dir: Path, baseline: bool) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    for i in range(1, rounds + 1):
        tasks.append({"name": f"elect {i}", ELECT: {
            "name": LEASE, "namespace": NS, "identity": "bench-host",
            "state_dir": str(state_dir)}})
        tasks.append({"name": f"become {i}", BECOME: {
            "lock_name": LOCK, "namespace": NS, "pod_name": POD, "timeout": 30}})
        tasks.append({"name": f"status {i}", STATUS: {
            "api_version": "cache.example.com/v1alpha1", "kind": "Memcached", "name": CR,
            "namespace": NS, "status": {"benchmarkRound": i},
            "conditions": [{"type": "Benchmarked", "status": "True", "reason": "Round",
                            "message": f"round {i}"}]}})
        tasks.append({"name": f"info {i}", INFO: {
            "api_version": "coordination.k8s.io/v1", "kind": "Lease", "name": LEASE,
            "namespace": NS}})
        if baseline:
            tasks.append({"name": f"ping {i}", PING: {}})
    return [{"name": "lease module time", "hosts": "localhost", "gather_facts": False,
             "tasks": tasks}]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20,
                   help="rounds of (k8s_lease_elect, k8s_leader_become, k8s_status, "
                        "k8s_info[, ping]) tasks")
    p.add_argument("--no-baseline", action="store_true", help="leave out the ping tasks")
    p.add_argument("--json", help="results file for the report (bench/_report.py)")
    args = p.parse_args()
    with KubeSim() as sim, tempfile.TemporaryDirectory(prefix="lease-module-") as tmp_:
        tmp = Path(tmp_)
        http = count_http(sim)
        kubeconfig = sim.write_kubeconfig(tmp / "kubeconfig")
        prepare(kubeconfig)
        (tmp / "inventory").write_text(INVENTORY)
        (tmp / "play.yml").write_text(yaml.safe_dump(
            playbook(args.rounds, tmp / "state", not args.no_baseline), sort_keys=False))
        times = tmp / "times.json"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("K8S_AUTH_", "ANSIBLE_"))}
        env.update(KUBECONFIG=str(kubeconfig), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_LOCAL_TEMP=str(tmp / "ans"),
                   ANSIBLE_HOME=str(tmp / "ansible-home"), TMPDIR=str(tmp),
                   ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "bench" / "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="bench_task_times", BENCH_TASK_TIMES=str(times))
        t0 = time.monotonic()
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp / "inventory"),
                               str(tmp / "play.yml")], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            return 1
        tasks = json.loads(times.read_text())
        audit = sim.audit.entries()
    rows = []
    per_task: dict[str, dict[str, list[Any]]] = {}
    for action in ACTIONS:
        mine = [t for t in tasks if t["action"] == action]
        if not mine:
            continue
        bad = [t for t in mine if t.get("status") != "ok"]
        if bad:
            raise SystemExit(f"{action}: task(s) not ok: {bad[:2]}")
        if action in (ELECT, BECOME):
            lost = [t for t in mine if not t["result"].get("is_leader")]
            if lost:
                raise SystemExit(f"{action} did not stay leader: {lost[:2]}")
        if action == STATUS:
            unchanged = [t for t in mine if not t["result"].get("changed")]
            if unchanged:
                raise SystemExit(f"{action} did not write: {unchanged[:2]}")
        durations = [t["end"] - t["start"] for t in mine]
        requests = [sum(1 for t_end, _ in http if t["start"] <= t_end <= t["end"])
                    for t in mine]
        api = [[(e.verb, e.code) for e in audit if t["start"] <= e.monotonic <= t["end"]]
               for t in mine]
        warm, warm_req = durations[1:], requests[1:]
        rows.append({"action": action, "what": WHAT[action], "what_read": "the Lease",
                     "n": len(warm), "first": durations[0],
                     "first_req": requests[0], "median": statistics.median(warm),
                     "p90": percentile(warm, 90), "min": min(warm), "max": max(warm),
                     "req": statistics.median(warm_req), "api": verbs(api[1:]),
                     "first_api": verbs(api[:1])})
        r = rows[-1]
        print(f"{action}: first {r['first']:.3f} s ({r['first_req']} HTTP requests: "
              f"{r['first_api']}); then n={r['n']} median {r['median']:.3f} s, p90 "
              f"{r['p90']:.3f} s, min {r['min']:.3f} s, max {r['max']:.3f} s; "
              f"{r['req']:g} HTTP requests per task ({r['api']})")
        print("  each: " + " ".join(f"{x:.3f}" for x in durations), flush=True)
        per_task[action] = {"durations": durations, "requests": requests}
    print(f"ansible-playbook wall time {wall:.1f} s for {len(tasks)} tasks")
    versions = {"ansible-core": ansible_version(),
                "kubernetes.core": collection_version("kubernetes/core")}
    lines = [
        "## Module task time (`bench/module_time.py`)",
        "",
        f"Command: `{command_line('module_time.py')}`",
        "",
        f"Machine: {machine(''.join(f', {k} {v}' for k, v in versions.items()))}.",
        "",
        f"One `ansible-playbook` run (local connection, kubesim in the benchmark's process) "
        f"with {args.rounds} rounds of: `{ELECT}` renewing one Lease (same identity and "
        f"state_dir every time, defaults 15/10/2), `{BECOME}` confirming that its Pod holds "
        f"the lock ConfigMap (round 1 creates it), `{STATUS}` writing a status key and a "
        f"condition of a Memcached (a new value every round), `{INFO}` reading the Lease"
        + (f", `{PING}` (the cost of any task)" if not args.no_baseline else "")
        + ". A task's time runs from its start to its result (callback plugin "
        "`bench/callback_plugins/bench_task_times.py`), so it includes Ansible's per-task "
        "work (templating, AnsiballZ, a new Python process). Statistics over rounds 2.."
        f"{args.rounds}; round 1 (cold: the Lease and the lock are created, k8s_info fills "
        f"its discovery cache) apart. Requests: every HTTP request kubesim answered during "
        f"the task (discovery included), and in brackets the resource requests as verb and "
        f"status "
        f"(kubesim's audit log); the most common sequence is shown. Whole run: "
        f"{wall:.1f} s for {len(tasks)} tasks.",
        "",
        "| module | median (s) | p90 (s) | min – max (s) | requests per task | round 1 "
        "(s) | round 1 requests |",
        "|---|---:|---:|---:|---|---:|---|",
        *[f"| `{r['action']}` | {r['median']:.3f} | {r['p90']:.3f} | {r['min']:.3f} – "
          f"{r['max']:.3f} | {r['req']:g} ({r['api']}) | {r['first']:.3f} | "
          f"{r['first_req']} ({r['first_api']}) |" for r in rows],
        "",
    ]
    print("\n".join(lines))
    if args.json:
        save(args.json, "module_time.py",
             {"rounds": args.rounds, "wall": wall, "tasks": per_task, "rows": rows},
             [("module_time", lines)], versions)
    return 0


def prepare(kubeconfig: Path) -> None:
    """The objects the tasks need: the Pod k8s_leader_become runs as, the Memcached kind
    (deploy/crd.yaml) and one Memcached for k8s_status."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        client.CoreV1Api(api).create_namespaced_pod(NS, {
            "metadata": {"name": POD},
            "spec": {"containers": [{"name": "operator", "image": "operator:1"}]}})
        crd = yaml.safe_load(CRD.read_text())
        client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
        custom = client.CustomObjectsApi(api)
        deadline = time.monotonic() + 10
        while True:
            try:
                custom.create_namespaced_custom_object(
                    "cache.example.com", "v1alpha1", NS, "memcacheds", {
                        "apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
                        "metadata": {"name": CR}, "spec": {"size": 1}})
                break
            except client.ApiException as e:
                if e.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the new kind is not served yet
    finally:
        api.close()


def count_http(sim: KubeSim) -> list[tuple[float, str]]:
    """Every HTTP request this kubesim answers, discovery included (its audit log has only
    resource requests): (CLOCK_MONOTONIC at the end, path). Instruments this one server's
    handler class, in this process."""
    log: list[tuple[float, str]] = []
    handler = sim._httpd.RequestHandlerClass
    handle = handler._handle

    def counting(self: Any, method: str) -> None:
        try:
            handle(self, method)
        finally:
            log.append((time.monotonic(), self.path))

    handler._handle = counting
    return log


def verbs(per_task: list[list[tuple[str, int]]]) -> str:
    """The most common sequence of (verb code) resource requests of the tasks."""
    if not per_task:
        return ""
    seqs = [" + ".join(f"{v} {c}" for v, c in task) or "none" for task in per_task]
    return max(set(seqs), key=seqs.count)


def ansible_version() -> str:
    from ansible.release import __version__

    return __version__


def collection_version(path: str) -> str:
    manifest = ROOT / ".venv" / "collections" / "ansible_collections" / path / "MANIFEST.json"
    try:
        return json.loads(manifest.read_text())["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
