"""The local processes of molecule's default scenario: kubesim and the operator's replicas.

    processes.py kubesim start --dir DIR
    processes.py kubesim stop --dir DIR
    processes.py replicas start --dir DIR --watches-file F --namespace NS \
        --collections-path P --name A --name B [-- ELECTION-OPERATOR-ARGS...]
    processes.py replicas kill --dir DIR --name NAME
    processes.py replicas stop --dir DIR [--timeout S]

DIR is molecule's ephemeral directory. kubesim writes DIR/kubeconfig; its pid, output and URL
are in DIR/kubesim/. Each replica is `election-operator run` in DIR/replicas/<name>/ (its
log operator.log, its runner dir, its kubeconfig), started by election_operator.local in a
session of its own, with POD_NAME=<name> and WATCH_NAMESPACE=NS; against our kubesim its
kubeconfig carries the token `token-<name>`, so kubesim's audit log names it. Its pid is in
DIR/replicas/<name>.pid.

A process is recorded as "<pid> <start time>" (the start time in clock ticks since boot, from
/proc), so a pid that was reused by another process is never taken for ours. Starting is
idempotent: what runs already is left alone. `kill` SIGKILLs a replica and every process of
its runs (election_operator.proctree: frozen first, so none forks away); `stop` asks each
replica to stop (SIGTERM: it releases its lease), then kills whatever of it is left.

Each command prints one JSON object; "changed" says whether it started or stopped anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from election_operator import local, proctree

READY_TIMEOUT = 30.0


# --------------------------------------------------------------------------- pid files

def record(path: Path, pid: int) -> None:
    me = proctree.stat(pid)
    if me is None:
        raise SystemExit(f"process {pid} exited at once; see {path.parent}")
    path.write_text(f"{pid} {me.start}\n")


def recorded(path: Path) -> int | None:
    """The pid recorded in `path` if that very process still runs (not a zombie)."""
    try:
        pid, start = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return None
    now = proctree.stat(pid)
    if now is None or now.start != start or now.state in ("Z", "X"):
        return None
    return pid


def kill_tree(pid: int) -> int:
    """SIGKILL `pid`, its descendants, their sessions and every process of its runs (they
    carry its run marker, also when orphaned); returns how many processes were killed."""
    killed = proctree.freeze_and_kill(
        {pid}, lambda marker: marker is not None and marker.startswith(f"{pid}:"))
    left = proctree.await_gone(killed, time.monotonic() + 10)
    if left:
        raise SystemExit(f"processes {sorted(left)} of {pid} survived SIGKILL")
    return len(killed)


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM `pid`, wait up to `timeout` s for it to go, then kill what is left of it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    start = proctree.stat(pid)
    while time.monotonic() < deadline:
        now = proctree.stat(pid)
        if now is None or start is None or now.start != start.start or now.state in "ZX":
            break
        time.sleep(0.1)
    # What is left of it: the process itself if it did not stop, and whatever of its runs
    # carries its marker (only the marker once its pid may belong to another process).
    now = proctree.stat(pid)
    if now is not None and start is not None and now.start == start.start:
        kill_tree(pid)
    else:
        killed = proctree.freeze_and_kill(
            set(), lambda marker: marker is not None and marker.startswith(f"{pid}:"))
        proctree.await_gone(killed, time.monotonic() + 10)


# --------------------------------------------------------------------------- kubesim

def kubesim_start(directory: Path) -> dict[str, object]:
    state = directory / "kubesim"
    kubeconfig = directory / "kubeconfig"
    pid = recorded(state / "pid")
    if pid is not None:
        return {"changed": False, "pid": pid, "url": (state / "url").read_text().strip(),
                "kubeconfig": str(kubeconfig)}
    state.mkdir(parents=True, exist_ok=True)
    kubeconfig.unlink(missing_ok=True)
    with open(state / "stdout", "wb") as out, open(state / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubesim", "--port", "0", "--kubeconfig", str(kubeconfig),
             "--controllers"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=state,
            start_new_session=True)
    record(state / "pid", proc.pid)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kubesim exited with {proc.returncode}: "
                             f"{(state / 'stderr').read_text()[-2000:]}")
        lines = (state / "stdout").read_text().splitlines()
        if lines and kubeconfig.exists() and answers(lines[0]):
            (state / "url").write_text(lines[0] + "\n")
            return {"changed": True, "pid": proc.pid, "url": lines[0],
                    "kubeconfig": str(kubeconfig)}
        time.sleep(0.1)
    kill_tree(proc.pid)
    raise SystemExit(f"kubesim did not answer within {READY_TIMEOUT:.0f} s")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/version", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def kubesim_stop(directory: Path) -> dict[str, object]:
    pid = recorded(directory / "kubesim" / "pid")
    if pid is not None:
        terminate(pid, 5)
    (directory / "kubesim" / "pid").unlink(missing_ok=True)
    return {"changed": pid is not None}


class TokenKubeconfig:
    """Writes copies of kubesim's kubeconfig with a bearer token (`local.Replica`'s `sim`)."""

    def __init__(self, base: Path) -> None:
        self.base = yaml.safe_load(base.read_text())

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path:
        config = json.loads(json.dumps(self.base))
        for user in config["users"]:
            user["user"] = {"token": token} if token else {}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


# --------------------------------------------------------------------------- replicas

def replicas_start(args: argparse.Namespace) -> dict[str, object]:
    directory: Path = args.dir
    parent = directory / "replicas"
    kubeconfig = directory / "kubeconfig"
    if not kubeconfig.exists():
        raise SystemExit(f"{kubeconfig} does not exist: run molecule's create step first")
    ours = recorded(directory / "kubesim" / "pid") is not None
    extra = list(args.operator_args)
    started, running = [], {}
    for name in args.name:
        pid = recorded(parent / f"{name}.pid")
        if pid is not None:
            running[name] = pid
            continue
        shutil.rmtree(parent / name, ignore_errors=True)  # a replica that was killed
        parent.mkdir(parents=True, exist_ok=True)
        replica = local.Replica(
            name, parent, args.watches_file.resolve(), tuple(extra),
            sim=TokenKubeconfig(kubeconfig) if ours else None,
            kubeconfig=None if ours else kubeconfig,
            env={"WATCH_NAMESPACE": args.namespace,
                 "ANSIBLE_COLLECTIONS_PATH": str(args.collections_path.resolve()),
                 # what a killed run leaves behind stays in DIR (molecule prunes it)
                 "ANSIBLE_LOCAL_TEMP": str(parent / name / "ansible-tmp")})
        record(parent / f"{name}.pid", replica.pid)
        started.append(name)
        running[name] = replica.pid
    time.sleep(1 if started else 0)
    for name in started:  # one that cannot start (bad flag, bad kubeconfig) exits at once
        if recorded(parent / f"{name}.pid") is None:
            log = (parent / name / "operator.log").read_text(errors="replace")
            raise SystemExit(f"replica {name} exited at once; its log:\n{log[-3000:]}")
    return {"changed": bool(started), "started": started, "replicas": running,
            "logs": {name: str(parent / name / "operator.log") for name in args.name}}


def replicas_kill(directory: Path, name: str) -> dict[str, object]:
    pidfile = directory / "replicas" / f"{name}.pid"
    pid = recorded(pidfile)
    if pid is None:
        raise SystemExit(f"replica {name} is not running (no live process in {pidfile})")
    killed = kill_tree(pid)
    pidfile.unlink()
    return {"changed": True, "pid": pid, "killed": killed}


def replicas_stop(directory: Path, timeout: float) -> dict[str, object]:
    stopped = []
    for pidfile in sorted((directory / "replicas").glob("*.pid")):
        pid = recorded(pidfile)
        if pid is not None:
            terminate(pid, timeout)
            stopped.append(pidfile.stem)
        pidfile.unlink()
    return {"changed": bool(stopped), "stopped": stopped}


# --------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="processes.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kubesim")
    k.add_argument("op", choices=["start", "stop"])
    k.add_argument("--dir", type=Path, required=True)
    r = sub.add_parser("replicas")
    r.add_argument("op", choices=["start", "kill", "stop"])
    r.add_argument("--dir", type=Path, required=True)
    r.add_argument("--name", action="append", default=[])
    r.add_argument("--namespace")
    r.add_argument("--watches-file", type=Path)
    r.add_argument("--collections-path", type=Path)
    r.add_argument("--timeout", type=float, default=10.0)
    argv = list(sys.argv[1:] if argv is None else argv)
    operator_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = p.parse_args(argv[:len(argv) - len(operator_args) - (1 if "--" in argv else 0)])
    args.operator_args = operator_args

    if args.what == "kubesim":
        result = kubesim_start(args.dir) if args.op == "start" else kubesim_stop(args.dir)
    elif args.op == "start":
        missing = [f"--{f.replace('_', '-')}" for f in
                   ("name", "namespace", "watches_file", "collections_path")
                   if not getattr(args, f)]
        if missing:
            p.error(f"replicas start needs {', '.join(missing)}")
        result = replicas_start(args)
    elif args.op == "kill":
        if len(args.name) != 1:
            p.error("replicas kill needs the name of one replica (--name)")
        result = replicas_kill(args.dir, args.name[0])
    else:
        result = replicas_stop(args.dir, args.timeout)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
