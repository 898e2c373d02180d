"""How many simple GET requests per second kubesim serves to the Python client.

One kubesim in this process's thread pool, N client threads each with its own
`kubernetes` ApiClient (keep-alive connections, as a real client has), reading one
ConfigMap for a fixed time. Prints the figure; with --write, also records it in a
Markdown file together with this command.

    .venv/bin/python bench/kubesim_get.py [--seconds 5] [--clients 1,4] [--write FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
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
    p.add_argument("--write", help="Markdown file to record the result in")
    args = p.parse_args()
    rows = []
    with KubeSim() as sim, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = sim.write_kubeconfig(Path(tmp) / "k.yaml")
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        core.create_namespaced_config_map("default", {"metadata": {"name": "bench"},
                                                      "data": {"k": "v"}})
        for n in [int(x) for x in args.clients.split(",")]:
            rate = run(sim, kubeconfig, n, args.seconds)
            rows.append((n, rate))
            print(f"{n} client thread(s): {rate:.0f} GET/s")
    if args.write:
        cmd = ".venv/bin/python bench/kubesim_get.py " + " ".join(sys.argv[1:])
        lines = [
            "# kubesim: simple GET throughput",
            "",
            "Reads of one ConfigMap by the `kubernetes` Python client (37.0.2) over loopback, "
            "kubesim in the same process (so client and server share the 2 cores and the GIL: "
            "a conservative figure).",
            "",
            f"Command: `{cmd}`",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
            "",
            "| client threads | GET/s |",
            "|---:|---:|",
            *[f"| {n} | {rate:.0f} |" for n, rate in rows],
            "",
            "Target (issue: foundation): at least 500 GET/s.",
            "",
        ]
        Path(args.write).write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
