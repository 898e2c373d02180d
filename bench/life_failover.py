"""Leader for life: time from the leader Pod's deletion to the new leader, ours against
operator-lib's algorithm, in the same run on the same kubesim.

kubesim (with its garbage collector and kubelet stand-in) runs in this process. Each
repetition creates a leader Pod that owns two lock ConfigMaps, exactly as `Become` writes
them, and two waiting candidates, each on its own lock, started together:

- ours: `become()` of plugins/module_utils/leader_for_life.py (backoff plus a watch of the
  lock and of the leader Pod);
- operator-lib: bench/_operatorlib_become.py, a transcription of `leader.Become` (create; on
  AlreadyExists re-GET, check the owner, sleep Jitter(backoff, 0.2), double up to 16 s; no
  watch).

After a random wait (seeded; uniform in 0..--max-wait s, so operator-lib's candidate is caught
at different points of its backoff) the leader Pod is deleted; GC deletes both locks. The
figure is, from kubesim's audit log, the time from that DELETE to each candidate's successful
create of its lock.

    .venv/bin/python bench/life_failover.py [--reps 5] [--max-wait 20] [--seed 1] [--quick]
        [--json FILE]

--quick: 3 repetitions, waits of 0..6 s. --json saves the figures and the Markdown section
for the report of `make bench` (bench/_report.py).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import _operatorlib_become as operatorlib  # noqa: E402
from _report import command_line, machine, save  # noqa: E402
from kubernetes import client  # noqa: E402

from ansible_collections.election.kubernetes.plugins.module_utils.kube import (  # noqa: E402
    make_api_client,
)
from ansible_collections.election.kubernetes.plugins.module_utils.leader_for_life import (  # noqa: E402,E501
    KubeLifeAPI,
    LifeConfig,
    become,
)
from kubesim import KubeSim  # noqa: E402

NS = "default"
DRIVER = "bench-driver"
IMPLS = ("ours", "operator-lib")


@dataclass
class Rep:
    wait: float  # seconds the candidates had been waiting when the leader Pod was deleted
    failover: dict[str, float]  # impl -> leader Pod DELETE -> the candidate's lock create
    attempts: dict[str, int]  # impl -> lock GETs the candidate made


def _pod(core: client.CoreV1Api, name: str, node: str) -> str:
    core.create_namespaced_pod(NS, {
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "op", "image": "op:1"}]}})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, NS)
        if pod.status and pod.status.phase == "Running":
            return pod.metadata.uid
        time.sleep(0.02)
    raise RuntimeError(f"Pod {name} never ran")


def one_rep(sim: KubeSim, core: client.CoreV1Api, i: int, wait: float) -> Rep:
    leader = f"leader-{i}"
    leader_uid = _pod(core, leader, "kubesim-node-1")
    for impl in IMPLS:
        _pod(core, f"{impl}-{i}", "kubesim-node-2")
        core.create_namespaced_config_map(NS, {"metadata": {
            "name": f"{impl}-lock-{i}", "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": leader, "uid": leader_uid}]}})
    identity = {impl: f"bench-{impl}-{i}" for impl in IMPLS}
    errors: list[BaseException] = []
    stop = threading.Event()
    closers: list[Any] = []

    def ours() -> None:
        api_client = make_api_client({"host": sim.url}, user_agent=identity["ours"])
        api = KubeLifeAPI(api_client)
        closers.extend([api.close, api_client.close])
        res = become(LifeConfig(f"ours-lock-{i}", NS, f"ours-{i}"), api, timeout=120)
        if not res.is_leader:
            raise RuntimeError(f"ours did not lead: {res.message}")

    def theirs() -> None:
        api_client = make_api_client({"host": sim.url}, user_agent=identity["operator-lib"])
        closers.append(api_client.close)
        operatorlib.become(client.CoreV1Api(api_client), f"operator-lib-lock-{i}",
                           namespace=NS, pod_name=f"operator-lib-{i}", stop=stop)

    def guard(fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # reported after the join
                errors.append(e)
        return run

    threads = [threading.Thread(target=guard(fn), daemon=True) for fn in (ours, theirs)]
    for t in threads:
        t.start()
    time.sleep(wait)
    for impl in IMPLS:
        if [e for e in sim.audit.entries(identity=identity[impl], writes_only=True)
                if e.code == 201]:
            raise RuntimeError(f"{impl} took a lock held by a live leader")
    core.delete_namespaced_pod(leader, NS)
    for t in threads:
        t.join(60)
    stop.set()
    for close in closers:
        close()
    if errors:
        raise errors[0]
    deleted = next(e for e in sim.audit.entries(identity=DRIVER)
                   if e.verb == "delete" and e.resource == "pods" and e.name == leader)
    failover, attempts = {}, {}
    for impl in IMPLS:
        entries = sim.audit.entries(identity=identity[impl])
        created = next(e for e in entries if e.verb == "create" and e.code == 201
                       and e.resource == "configmaps")
        failover[impl] = created.monotonic - deleted.monotonic
        attempts[impl] = len([e for e in entries if e.verb == "get"
                              and e.resource == "configmaps"])
    return Rep(wait, failover, attempts)


def stats(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 5; 3 quick)")
    p.add_argument("--max-wait", type=float, default=None,
                   help="longest wait before the deletion, seconds (default 20; 6 quick)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", help="results file for the report (bench/_report.py)")
    args = p.parse_args()
    reps = args.reps if args.reps is not None else (3 if args.quick else 5)
    max_wait = args.max_wait if args.max_wait is not None else (6.0 if args.quick else 20.0)
    rng = random.Random(args.seed)
    waits = [round(rng.uniform(0, max_wait), 2) for _ in range(reps)]
    results: list[Rep] = []
    with KubeSim(controllers=True, nodes=2) as sim:
        driver = make_api_client({"host": sim.url}, user_agent=DRIVER)
        core = client.CoreV1Api(driver)
        for i, wait in enumerate(waits, 1):
            rep = one_rep(sim, core, i, wait)
            results.append(rep)
            print(f"rep {i}: deleted after {wait:5.2f} s of waiting; new leader after "
                  + ", ".join(f"{impl} {rep.failover[impl]:.3f} s" for impl in IMPLS),
                  flush=True)
        driver.close()
    summary = {impl: stats([r.failover[impl] for r in results]) for impl in IMPLS}
    for impl in IMPLS:
        lo, med, hi = summary[impl]
        print(f"{impl}: min {lo:.3f} s, median {med:.3f} s, max {hi:.3f} s")
    if args.json:
        lines = section(summary, results, max_wait, args.seed)
        print("\n".join(lines))
        save(args.json, "life_failover.py",
             {"max_wait": max_wait, "seed": args.seed, "reps": [asdict(r) for r in results]},
             [("life_failover", lines)])
    return 0


def section(summary: dict[str, tuple[float, float, float]], results: list[Rep],
            max_wait: float, seed: int) -> list[str]:
    names = {"ours": "ours (`become()`, backoff + watch)",
             "operator-lib": "operator-lib's algorithm (backoff only)"}
    lines = [
        "## Leader for life: failover time (`bench/life_failover.py`)",
        "",
        "Time from the leader Pod's deletion to the new leader: from the DELETE of the leader "
        "Pod to the waiting candidate's successful create of the lock ConfigMap, both read "
        "from kubesim's audit log (one monotonic clock). In between, kubesim's garbage "
        "collector deletes the lock, which the Pod owns.",
        "",
        "Each repetition has one leader Pod owning two locks and two candidates started "
        "together, one per lock: ours, and a transcription of operator-lib's `leader.Become` "
        "(bench/_operatorlib_become.py: create; on AlreadyExists re-GET the lock and check "
        "its owner; sleep Jitter(backoff, 0.2), doubling from 1 s up to 16 s; no watch). "
        f"The leader Pod is deleted after a random wait, uniform in 0-{max_wait:g} s "
        f"(seed {seed}), so operator-lib's candidate is caught at different points of its "
        "backoff. kubesim, the GC and both candidates run in one Python process.",
        "",
        f"Command: `{command_line('life_failover.py')}`",
        "",
        f"Machine: {machine()}.",
        "",
        "| candidate | min | median | max |",
        "|---|---:|---:|---:|",
        *[f"| {names[impl]} | {lo:.3f} s | {med:.3f} s | {hi:.3f} s |"
          for impl, (lo, med, hi) in summary.items()],
        "",
        "Per repetition. Lock GETs: the load each candidate put on the API server while it "
        "waited (ours reads the lock before each create, operator-lib after each failed "
        "create; ours also has its two watches).",
        "",
        "| rep | waiting when deleted | ours | operator-lib | lock GETs ours / operator-lib |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {i} | {r.wait:.2f} s | {r.failover['ours']:.3f} s | "
          f"{r.failover['operator-lib']:.3f} s | {r.attempts['ours']} / "
          f"{r.attempts['operator-lib']} |" for i, r in enumerate(results, 1)],
        "",
        "operator-lib's candidate notices the free lock only at its next attempt: its sleeps "
        "run 1, 2, 4, 8, 16, 16 ... s (each +0-20 %), so once its backoff reaches 16 s "
        "(after 15-18 s of waiting) a failover can take up to 19.2 s. Ours backs off the same "
        "way but watches the lock and the leader Pod, and tries again as soon as the lock is "
        "deleted (issue 4: within 1 s); what remains is the GC's reaction and two requests.",
        "",
    ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
