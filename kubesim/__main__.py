"""`python -m kubesim`: run the emulator, or drive the test hooks of a running one.

    python -m kubesim --port 0 --kubeconfig /tmp/k.yaml [--controllers]
    python -m kubesim fault add --url URL --identity token:b --action error --code 500
    python -m kubesim fault clear --url URL
    python -m kubesim audit --url URL [--writes]
    python -m kubesim token add --url URL --token T --user alice [--group devs]
    python -m kubesim token serviceaccount --url URL --namespace NS --name NAME
    python -m kubesim token revoke --url URL --token T
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
import urllib.error
import urllib.request
from typing import Any

from . import KubeSim


def _serve(args: argparse.Namespace) -> int:
    sim = KubeSim(host=args.host, port=args.port, controllers=args.controllers,
                  nodes=args.nodes, strict_microtime=not args.relaxed_microtime, tls=args.tls)
    sim.start()
    if args.kubeconfig:
        sim.write_kubeconfig(args.kubeconfig, token=args.token)
    print(sim.url, flush=True)
    if args.kubeconfig:
        print(f"kubeconfig written to {args.kubeconfig}; try: "
              f"KUBECONFIG={args.kubeconfig} kubectl get ns", file=sys.stderr, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    sim.stop()
    return 0


def _call(url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + "/kubesim/v1/" + path, data=data,
                                 method=method, headers={"Content-Type": "application/json"})
    # An emulator started with --tls has a self-signed certificate; the hooks are test-only.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"kubesim answered {e.code}: {e.read().decode()}") from None


def _fault(args: argparse.Namespace) -> int:
    if args.op == "add":
        spec = {"identity": args.identity, "action": args.action, "seconds": args.seconds,
                "code": args.code, "verbs": args.verb or [], "resources": args.resource or [],
                "remaining": args.count}
        print(json.dumps(_call(args.url, "POST", "faults", spec)))
    elif args.op == "remove":
        print(json.dumps(_call(args.url, "DELETE", f"faults/{args.id}")))
    elif args.op == "clear":
        print(json.dumps(_call(args.url, "DELETE", "faults")))
    else:
        print(json.dumps(_call(args.url, "GET", "faults"), indent=2))
    return 0


def _audit(args: argparse.Namespace) -> int:
    q = f"audit?since={args.since}" + ("&writes=true" if args.writes else "")
    for e in _call(args.url, "GET", q)["entries"]:
        print(json.dumps(e))
    return 0


def _token(args: argparse.Namespace) -> int:
    if args.op == "add":
        if not args.token or not args.user:
            raise SystemExit("token add needs --token and --user")
        out = _call(args.url, "POST", "tokens", {"token": args.token, "user": args.user,
                                                 "groups": args.group or []})
    elif args.op == "serviceaccount":
        if not args.namespace or not args.name:
            raise SystemExit("token serviceaccount needs --namespace and --name")
        out = _call(args.url, "POST", f"serviceaccounts/{args.namespace}/{args.name}/token")
    elif args.op == "revoke":
        if not args.token:
            raise SystemExit("token revoke needs --token")
        out = _call(args.url, "DELETE", f"tokens/{args.token}")
    else:
        out = _call(args.url, "GET", "tokens")
    print(json.dumps(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("fault", "audit", "token"):
        p = argparse.ArgumentParser(prog="python -m kubesim")
        sub = p.add_subparsers(dest="cmd", required=True)
        f = sub.add_parser("fault", help="add, list, remove or clear injected faults")
        f.add_argument("op", choices=["add", "list", "remove", "clear"])
        f.add_argument("--url", required=True, help="the emulator's URL")
        f.add_argument("--identity", default="*",
                       help="token:<bearer token>, a User-Agent (prefix*), or * for all")
        f.add_argument("--action", default="error",
                       choices=["latency", "error", "refuse", "blackhole"])
        f.add_argument("--seconds", type=float, default=0.0,
                       help="latency to add, or how long a blackhole holds (0: until removed)")
        f.add_argument("--code", type=int, default=500, help="HTTP status for --action error")
        f.add_argument("--verb", action="append", help="only these verbs (repeatable)")
        f.add_argument("--resource", action="append", help="only these plurals (repeatable)")
        f.add_argument("--count", type=int, default=-1, help="apply to N requests (-1: all)")
        f.add_argument("--id", type=int, help="fault id, for remove")
        a = sub.add_parser("audit", help="print the audit log as JSON lines")
        a.add_argument("--url", required=True)
        a.add_argument("--since", type=int, default=0)
        a.add_argument("--writes", action="store_true", help="only writes")
        t = sub.add_parser("token", help="register bearer tokens that RBAC applies to")
        t.add_argument("op", choices=["add", "serviceaccount", "revoke", "list"])
        t.add_argument("--url", required=True)
        t.add_argument("--token", help="the bearer token (add, revoke)")
        t.add_argument("--user", help="the user name it authenticates as (add)")
        t.add_argument("--group", action="append", help="a group of the user (repeatable)")
        t.add_argument("--namespace", help="the ServiceAccount's namespace (serviceaccount)")
        t.add_argument("--name", help="the ServiceAccount's name (serviceaccount)")
        args = p.parse_args(argv)
        if args.cmd == "token":
            return _token(args)
        return _fault(args) if args.cmd == "fault" else _audit(args)
    p = argparse.ArgumentParser(prog="python -m kubesim",
                                description="Run the Kubernetes API emulator on loopback HTTP.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--kubeconfig", help="write a kubeconfig for the emulator here")
    p.add_argument("--token", help="bearer token to put in the kubeconfig")
    p.add_argument("--controllers", action="store_true",
                   help="run Deployment/ReplicaSet/Pod controllers and Nodes")
    p.add_argument("--nodes", type=int, default=1, help="Nodes to create with --controllers")
    p.add_argument("--tls", action="store_true",
                   help="serve HTTPS with a self-signed certificate (kubectl sends a bearer "
                        "token only over TLS); the kubeconfig carries its CA")
    p.add_argument("--relaxed-microtime", action="store_true",
                   help="accept any RFC 3339 time where MicroTime is expected")
    return _serve(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
