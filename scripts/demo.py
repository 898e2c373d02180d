"""`make demo`, until the election runtime exists: start kubesim (or use $KUBECONFIG),
show that ordinary clients work against it, print how to reach it, and stop.

Set DEMO_KEEP=1 to leave kubesim serving until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kubesim import KubeSim  # noqa: E402

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo-web, namespace: default, labels: {app: demo-web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: demo-web}}
  template:
    metadata: {labels: {app: demo-web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
"""


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    print(f"$ kubectl {' '.join(args)}", flush=True)
    if shutil.which("kubectl") is None:
        print("  (kubectl is not installed; skipping)")
        return
    subprocess.run(["kubectl", *args], env=env, input=stdin, text=True, check=False)


def show(env: dict[str, str]) -> None:
    kubectl(env, "get", "namespaces")
    kubectl(env, "get", "nodes")
    kubectl(env, "apply", "-f", "-", stdin=DEPLOYMENT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["kubectl", "get", "deploy", "demo-web", "-o",
                              "jsonpath={.status.readyReplicas}"], env=env, text=True,
                             capture_output=True).stdout
        if out.strip() == "2":
            break
        time.sleep(0.3)
    kubectl(env, "get", "deploy,rs,pods", "-l", "app=demo-web")
    kubectl(env, "delete", "deploy", "demo-web")


def main() -> int:
    env = dict(os.environ)
    if env.get("KUBECONFIG"):
        print(f"Using the cluster of KUBECONFIG={env['KUBECONFIG']}")
        show(env)
        return 0
    with KubeSim(controllers=True, nodes=2) as sim, tempfile.TemporaryDirectory() as tmp:
        path = sim.write_kubeconfig(Path(tmp) / "kubeconfig")
        env["KUBECONFIG"] = str(path)
        print(f"kubesim is serving at {sim.url} (kubeconfig: {path})\n")
        show(env)
        writes = sim.audit.entries(writes_only=True)
        print(f"\nkubesim saw {len(sim.audit.entries())} requests, {len(writes)} of them "
              f"writes (audit log: GET {sim.url}/kubesim/v1/audit?writes=true).")
        if os.environ.get("DEMO_KEEP"):
            print(f"\nServing until Ctrl-C. In another shell: KUBECONFIG={path} kubectl get ns")
            done = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: done.set())
            signal.signal(signal.SIGTERM, lambda *_: done.set())
            done.wait()
        else:
            print("\nTo keep a kubesim running: make kubesim  (or DEMO_KEEP=1 make demo)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
