"""One leader-election candidate in its own process, for bench/lease_failover.py.

    .venv/bin/python bench/_lease_candidate.py --impl ours|theirs --kubeconfig K \
        --name LEASE --identity ID [--lease 15 --renew 10 --retry 2]

`ours` runs a LeaseCampaign (watch-driven followers, release_on_cancel); `theirs` runs the
`kubernetes` package's `kubernetes.leaderelection` LeaderElection with a LeaseLock (on the
global default client configuration, loaded from K). Prints one JSON object per line on
stdout: {"event": ..., "id": ID, "t": CLOCK_MONOTONIC seconds, ...}. Events: ready,
started_leading, stopped_leading, new_leader (ours), released (ours), exit. CLOCK_MONOTONIC
is one clock for every process of the host, so the parent compares these times with its own
and with kubesim's audit log.

SIGTERM: ours stops its campaign, which releases the lease after on_stopped_leading (then
exits); theirs has no release and no handler (the process just ends, as it would for a user).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

_print_lock = threading.Lock()
IDENTITY = ""


def emit(event: str, **data: Any) -> None:
    line = json.dumps({"event": event, "id": IDENTITY, "t": time.monotonic(), **data})
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def run_ours(args: argparse.Namespace) -> int:
    from ansible_collections.election.kubernetes.plugins.module_utils.kube import (
        make_api_client,
    )
    from ansible_collections.election.kubernetes.plugins.module_utils.lease import (
        ElectionConfig,
        KubeLeaseAPI,
        LeaseCampaign,
        LeaseElector,
    )

    api = KubeLeaseAPI(make_api_client({"kubeconfig": args.kubeconfig},
                                       user_agent=f"bench/{args.identity}"))
    el = LeaseElector(ElectionConfig(args.name, args.namespace, args.identity, args.lease,
                                     args.renew, args.retry), api,
                      on_new_leader=lambda holder: emit("new_leader", holder=holder))
    release = el.release

    def reporting_release(*a: Any, **kw: Any) -> Any:
        att = release(*a, **kw)
        emit("released", wrote=att.wrote, reason=att.reason, error=att.error)
        return att

    el.release = reporting_release  # type: ignore[method-assign]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    campaign = LeaseCampaign(el, api,
                             on_started_leading=lambda: emit("started_leading"),
                             on_stopped_leading=lambda why: emit("stopped_leading", reason=why),
                             release_on_cancel=True)
    campaign.start()
    emit("ready")
    while not stop.wait(0.2):
        pass
    emit("stopping")
    campaign.stop(timeout=args.renew + 5)
    emit("exit")
    return 0


def run_theirs(args: argparse.Namespace) -> int:
    from kubernetes import config
    from kubernetes.leaderelection import electionconfig, leaderelection
    from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

    config.load_kube_config(config_file=args.kubeconfig)  # the package's global default
    lock = LeaseLock(args.name, args.namespace, args.identity)
    # The package builds leaseDurationSeconds with int(str(lease_duration)): an int, please.
    cfg = electionconfig.Config(lock, lease_duration=int(args.lease),
                                renew_deadline=args.renew, retry_period=args.retry,
                                onstarted_leading=lambda: emit("started_leading"),
                                onstopped_leading=lambda: emit("stopped_leading"))
    emit("ready")
    leaderelection.LeaderElection(cfg).run()  # returns only when a leader failed to renew
    emit("exit")
    return 0


def main() -> int:
    global IDENTITY
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=["ours", "theirs"], required=True)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--namespace", default="default")
    p.add_argument("--identity", required=True)
    p.add_argument("--lease", type=float, default=15)
    p.add_argument("--renew", type=float, default=10)
    p.add_argument("--retry", type=float, default=2)
    args = p.parse_args()
    IDENTITY = args.identity
    return run_ours(args) if args.impl == "ours" else run_theirs(args)


if __name__ == "__main__":
    raise SystemExit(main())
