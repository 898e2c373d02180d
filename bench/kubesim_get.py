"""How many simple GET requests per second kubesim serves to the Python client.

One kubesim in this process's thread pool, N client threads each with its own
`kubernetes` ApiClient (keep-alive connections, as a real client has), reading one
ConfigMap for a fixed time; --trials times per thread count, the trials of the thread counts
interleaved. The best trial is the server's capacity on this machine; the median shows how
much other work on a shared machine took away. Prints the figures; --json saves them, with
this command and a Markdown section, for the report of `make bench` (bench/_report.py).

    .venv/bin/python bench/kubesim_get.py [--seconds 5] [--clients 1,4] [--trials 3]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import kubernetes
from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _report import command_line, machine, save  # noqa: E402

from kubesim import KubeSim  # noqa: E402


def run(sim: KubeSim, kubeconfig: Path, clients: int, seconds: float) -> float:
    apis = [client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
            for _ in range(clients)]
    for a in apis:  # open the connections before timing
        a.read_namespaced_config_map("bench", "default")
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        api = apis[i]
        while time.monotonic() < stop:
            api.read_namespaced_config_map("bench", "default")
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    for a in apis:
        a.api_client.close()
    return sum(counts) / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--clients", default="1,4", help="comma-separated client thread counts")
    p.add_argument("--trials", type=int, default=3, help="trials per thread count")
    p.add_argument("--json", help="results file for the report (bench/_report.py)")
    args = p.parse_args()
    rows: list[dict[str, object]] = []
    with KubeSim() as sim, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = sim.write_kubeconfig(Path(tmp) / "k.yaml")
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        core.create_namespaced_config_map("default", {"metadata": {"name": "bench"},
                                                      "data": {"k": "v"}})
        counts = [int(x) for x in args.clients.split(",")]
        trials: dict[int, list[float]] = {n: [] for n in counts}
        for i in range(1, args.trials + 1):
            for n in counts:
                trials[n].append(run(sim, kubeconfig, n, args.seconds))
                print(f"trial {i}: {n} client thread(s): {trials[n][-1]:.0f} GET/s", flush=True)
        for n in counts:
            rows.append({"clients": n, "rate": max(trials[n]),
                         "median": statistics.median(trials[n]), "trials": trials[n]})
            print(f"{n} client thread(s): best {max(trials[n]):.0f} GET/s, median "
                  f"{statistics.median(trials[n]):.0f}")
    if args.json:
        lines = [
            "## kubesim: simple GET throughput (`bench/kubesim_get.py`)",
            "",
            f"Reads of one ConfigMap by the `kubernetes` Python client "
            f"({kubernetes.__version__}) over loopback, "
            "kubesim in the same process (so client and server share the 2 cores and the GIL: "
            "a conservative figure).",
            "",
            f"Command: `{command_line('kubesim_get.py')}`",
            "",
            f"Machine: {machine()}.",
            "",
            f"{args.trials} trials of {args.seconds:g} s per thread count, interleaved.",
            "",
            "| client threads | GET/s, best trial | median | every trial |",
            "|---:|---:|---:|---|",
            *[f"| {r['clients']} | {r['rate']:.0f} | {r['median']:.0f} | "
              f"{', '.join(f'{x:.0f}' for x in r['trials'])} |" for r in rows],
            "",
            "Target (issue: foundation): at least 500 GET/s.",
            "",
        ]
        save(args.json, "kubesim_get.py",
              {"seconds": args.seconds, "trials": args.trials, "rows": rows},
             [("kubesim_get", lines)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
