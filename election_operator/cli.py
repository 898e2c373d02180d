"""`election-operator run`: flags named like ansible-operator's, plus the election mode."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from election_operator import __version__


def _duration(text: str) -> float:
    from election_operator.watches import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="election-operator",
        description="Reconcile the custom resources of a watches.yaml with Ansible, only on "
                    "the replica that holds the leader lock.")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the operator",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--watches-file", default="./watches.yaml",
                   help="the watches.yaml mapping custom resources to roles/playbooks")
    r.add_argument("--leader-elect", "--enable-leader-election", nargs="?", const=True,
                   default=False, type=_bool,
                   help="reconcile only while holding the leader lock (see --election)")
    r.add_argument("--election", choices=["lease", "life", "none"], default="lease",
                   help="with --leader-elect: lease = coordination.k8s.io Lease (renewed, "
                        "fast failover); life = leader for life (ConfigMap owned by this "
                        "Pod, needs POD_NAME); none = no election")
    r.add_argument("--leader-election-id", default=os.environ.get("OPERATOR_NAME", ""),
                   help="name of the Lease or lock ConfigMap (env OPERATOR_NAME)")
    r.add_argument("--leader-election-namespace", default="",
                   help="namespace of the lock (default: this Pod's namespace; required "
                        "outside a cluster)")
    r.add_argument("--leader-elect-lease-duration", type=_duration, default=15.0,
                   help="how long a lease lasts without renewal (Go duration, e.g. 15s)")
    r.add_argument("--leader-elect-renew-deadline", type=_duration, default=10.0,
                   help="how long the leader keeps trying to renew before it stops acting")
    r.add_argument("--leader-elect-retry-period", type=_duration, default=2.0,
                   help="time between renewals")
    r.add_argument("--on-lost-leadership", choices=["exit", "recampaign"], default="exit",
                   help="after losing the lock: exit non-zero (like controller-runtime) or "
                        "stop reconciling and campaign again")
    r.add_argument("--max-concurrent-reconciles", type=int, default=os.cpu_count() or 1,
                   help="reconciles in parallel per kind (env MAX_CONCURRENT_RECONCILES_"
                        "<KIND>_<GROUP> overrides it per kind)")
    r.add_argument("--reconcile-period", type=_duration, default=36000.0,
                   help="requeue a resource this long after a successful reconcile (watches "
                        "reconcilePeriod overrides it)")
    r.add_argument("--health-probe-bind-address", default=":6789",
                   help="address of /healthz and /readyz")
    r.add_argument("--metrics-bind-address", "--metrics-addr", default=":8443",
                   help="address of /metrics (0 disables a separate metrics server)")
    r.add_argument("--graceful-shutdown-timeout", type=_duration, default=30.0,
                   help="on SIGTERM, how long in-flight reconciles may finish before they are "
                        "killed; the lease is released after that")
    r.add_argument("--ansible-verbosity", type=int, default=2,
                   help="ansible-runner verbosity 0-7 (env ANSIBLE_VERBOSITY_<KIND>_<GROUP>)")
    r.add_argument("--ansible-args", default=None,
                   help="extra arguments for ansible-playbook (written to env/cmdline)")
    r.add_argument("--runner-dir", default="",
                   help="where ansible-runner input and artifact directories live")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ansible_collections.election.kubernetes.plugins.module_utils.kube import (
        KubeConfigError,
    )
    from election_operator.operator import Operator, Options
    from election_operator.watches import WatchesError

    options = Options(
        watches_file=args.watches_file, leader_elect=bool(args.leader_elect),
        election=args.election, leader_election_id=args.leader_election_id,
        leader_election_namespace=args.leader_election_namespace,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
        on_lost_leadership=args.on_lost_leadership,
        max_concurrent_reconciles=args.max_concurrent_reconciles,
        reconcile_period=args.reconcile_period,
        health_probe_bind_address=args.health_probe_bind_address,
        metrics_bind_address=args.metrics_bind_address,
        graceful_shutdown_timeout=args.graceful_shutdown_timeout,
        ansible_verbosity=args.ansible_verbosity, ansible_args=args.ansible_args,
        runner_dir=args.runner_dir)
    try:
        operator = Operator(options)
        # A watches.yaml kind the cluster does not serve, or a kubeconfig that cannot be used,
        # stops the run during its setup, before any thread starts.
        return operator.run()
    except (WatchesError, KubeConfigError) as e:
        print(f"election-operator: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
