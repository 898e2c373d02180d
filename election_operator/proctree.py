"""Find, freeze, kill and reap every process of one ansible run (Linux, /proc).

A reconcile's processes cannot be found from the runner's process group: ansible-playbook runs
each worker in a session of its own (`os.setsid` in WorkerProcess), module processes live in
the worker's session, and `async` tasks daemonize into further sessions whose parents exit, so
killing the runner's group, or ansible-runner's own cancel, leaves them running. A run's
processes are therefore found by three independent marks:

- descent: the roots (the runner) and all their descendants, from the parent links;
- session: every process in a session that one of the run's processes is in;
- environment: every process whose environment has a `MARKER_ENV` value the caller asks for.
  The runner sets it (`<runtime pid>:<ident>`) and every descendant inherits it, also after
  it was orphaned and re-parented (async jobs), and other runtimes on the host have another.

`freeze_and_kill` SIGSTOPs what it finds and looks again until nothing new appears (a stopped
process can neither fork nor exit, and its pid cannot be reused while it exists), then
SIGKILLs all of them, children first. `await_gone` waits until each one is gone or is a
zombie that someone else reaps, and reaps those that are our children: with
`become_subreaper()`, orphans are re-parented to this process instead of init.

Never touched: this process, its own session, init, kernel threads.

Not guaranteed: a process that leaves the run's sessions, clears its environment and whose
parent chain is broken (`setsid env -i ...` from a daemonized child) is not found. A process in
uninterruptible sleep (D state) dies only when it leaves that state; `await_gone` gives up at
its deadline and returns the survivors.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

MARKER_ENV = "ELECTION_OPERATOR_RUN"
_PR_SET_CHILD_SUBREAPER = 36

MarkerTest = Callable[[str | None], bool]


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    state: str   # R, S, D, T, Z, ... as in /proc/<pid>/stat
    start: int   # start time in clock ticks since boot: with pid, a process's identity


def stat(pid: int) -> Proc | None:
    """The process `pid` from /proc/<pid>/stat, None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()  # the command name may contain spaces
    try:
        return Proc(pid, int(fields[1]), int(fields[3]), fields[0].decode(), int(fields[19]))
    except (IndexError, ValueError):
        return None


def snapshot() -> dict[int, Proc]:
    """Every process of the host, by pid."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            p = stat(int(name))
            if p is not None:
                procs[p.pid] = p
    return procs


def marker_of(pid: int) -> str | None:
    """The MARKER_ENV value in the environment `pid` was started with, if any."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return None
    key = MARKER_ENV.encode() + b"="
    for entry in env.split(b"\0"):
        if entry.startswith(key):
            return entry[len(key):].decode(errors="replace")
    return None


def members(snap: dict[int, Proc], roots: set[int], wanted: MarkerTest) -> set[int]:
    """The live processes of a run in `snap`: the `roots` and the processes whose marker
    passes `wanted`, closed under descent and shared sessions."""
    me, my_sid = os.getpid(), os.getsid(0)

    def allowed(p: Proc) -> bool:
        return p.pid not in (me, 1) and p.sid not in (my_sid, 0) and p.ppid != 2 \
            and p.state not in ("Z", "X")

    children: dict[int, list[int]] = {}
    by_session: dict[int, list[int]] = {}
    for p in snap.values():
        children.setdefault(p.ppid, []).append(p.pid)
        by_session.setdefault(p.sid, []).append(p.pid)
    todo = [pid for pid in roots if pid in snap]
    todo += [p.pid for p in snap.values() if allowed(p) and wanted(marker_of(p.pid))]
    found: set[int] = set()
    sessions: set[int] = set()
    while todo:
        pid = todo.pop()
        p = snap.get(pid)
        if pid in found or p is None or not allowed(p):
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
        if p.sid not in sessions:
            sessions.add(p.sid)
            todo.extend(by_session.get(p.sid, ()))
    return found


def _depth(pid: int, procs: dict[int, Proc]) -> int:
    depth, seen = 0, set()
    while pid in procs and pid not in seen:
        seen.add(pid)
        pid = procs[pid].ppid
        depth += 1
    return depth


def freeze_and_kill(roots: set[int], wanted: MarkerTest) -> dict[int, Proc]:
    """SIGSTOP every process of the run (see `members`) until a look finds no new one, then
    SIGKILL them all, deepest first. Returns the processes killed."""
    frozen: dict[int, Proc] = {}
    for _ in range(50):
        snap = snapshot()
        new = [snap[pid] for pid in members(snap, roots | set(frozen), wanted)
               if pid not in frozen]
        if not new:
            break
        for p in new:
            try:
                os.kill(p.pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            frozen[p.pid] = p
    for p in sorted(frozen.values(), key=lambda p: -_depth(p.pid, frozen)):
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return frozen


def _reap(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True  # not (or no longer) our child: someone else reaped it


def await_gone(killed: dict[int, Proc], deadline: float) -> set[int]:
    """Wait until each killed process is gone, reaping the ones that are our children
    (directly, or re-parented to us as subreaper). A zombie whose parent is neither us nor
    one of the killed is dead and left to its parent. Returns the pids still alive at
    `deadline` (time.monotonic)."""
    me = os.getpid()
    pending = dict(killed)
    while True:
        for pid, old in list(pending.items()):
            now = stat(pid)
            if now is None or now.start != old.start:
                del pending[pid]
            elif now.state in ("Z", "X"):
                if (now.ppid == me and _reap(pid)) or (now.ppid != me
                                                       and now.ppid not in pending):
                    del pending[pid]
        if not pending or time.monotonic() >= deadline:
            return {pid for pid, p in pending.items() if (stat(pid) or p).state not in "ZX"}
        time.sleep(0.005)


def reap_zombie_children(keep: set[int], sessions: set[int] | None = None) -> list[int]:
    """Reap the zombie children of this process that are in a session other than ours (so
    not started by ordinary subprocess calls), in one of `sessions` if given, and not in
    `keep` (children whose owner will wait for them, like the runners' Popen objects). As
    subreaper these are the orphans of daemonizing processes (async jobs). Returns the pids
    reaped."""
    me, my_sid = os.getpid(), os.getsid(0)
    reaped = []
    for p in snapshot().values():
        if p.ppid == me and p.state == "Z" and p.sid != my_sid and p.pid not in keep \
                and (sessions is None or p.sid in sessions) and _reap(p.pid):
            reaped.append(p.pid)
    return reaped


def become_subreaper(enable: bool = True) -> bool:
    """Make this process the child subreaper (prctl PR_SET_CHILD_SUBREAPER; `enable=False`
    clears it): orphaned descendants are then re-parented to it instead of init, so it can
    find and reap them. False when the platform does not support it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enable), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
