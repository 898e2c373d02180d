"""Lease failover time and API load: our LeaseCampaign and `kubernetes.leaderelection`.

kubesim runs in this process; three candidates of one implementation run as separate
processes (bench/_lease_candidate.py), so a SIGKILL is a real crash. For each implementation:

1. API load: once a leader is established, count each candidate's requests in kubesim's
   audit log over a steady-state window (per minute; watch requests apart).
2. SIGKILL: kill the leader; time until another candidate reports leading (its
   on_started_leading), and, from the audit log, from the killed leader's last renewal to the
   new leader's first write. A new candidate replaces the killed one. Repeated --reps times.
3. Release: SIGTERM the leader. Ours stops its campaign with release_on_cancel (holder "" is
   written after on_stopped_leading returned); the package has no release, so its leader just
   ends: that is what its users get. Same two times; for ours, from the release write to the
   new leader's first write.

    .venv/bin/python bench/lease_failover.py [--reps 5] [--window 60] [--quick]
        [--impl ours,theirs] [--json FILE]

Default durations are production ones (15/10/2 s); --quick uses 4/3/1 (the package refuses a
retry period under 1 s) and a 20 s window. --json saves the figures and the Markdown section
for the report of `make bench` (bench/_report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import kubernetes  # noqa: E402
from _report import command_line, machine, save, summary  # noqa: E402

from kubesim import KubeSim  # noqa: E402

CANDIDATE = ROOT / "bench" / "_lease_candidate.py"
NS = "default"
NAMES = {"ours": "ours (LeaseCampaign)",
         "theirs": f"`kubernetes.leaderelection` {kubernetes.__version__}"}
SLACK = 0.5  # seconds of request latency allowed above an upper bound
EARLY = 0.05  # audit times are taken at the end of a request: tolerance on lower bounds


@dataclass
class Durations:
    lease: int
    renew: float
    retry: float


@dataclass
class Worker:
    ident: str
    proc: subprocess.Popen[str]
    leading: bool = False
    ended: bool = False

    @property
    def audit_identity(self) -> str:
        return f"token:{self.ident}"


@dataclass
class Rep:
    scenario: str  # "kill" or "release"
    old: str
    new: str
    from_signal: float  # signal sent -> new leader's on_started_leading
    from_last_write: float  # old leader's last successful write -> new leader's first write
    old_last_write: str  # "renew" or "release"
    release_after_signal: float | None = None  # ours: signal -> release written


@dataclass
class Fleet:
    """Three candidates of one implementation, their events, and replacements."""

    sim: KubeSim
    impl: str
    name: str
    d: Durations
    tmp: Path
    workers: dict[str, Worker] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    q: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    n: int = 0

    def spawn(self) -> Worker:
        self.n += 1
        ident = f"{self.impl}-{self.n}"
        kc = self.sim.write_kubeconfig(self.tmp / f"kubeconfig-{ident}", token=ident)
        err = open(self.tmp / f"{ident}.stderr", "w")  # the child keeps it
        proc = subprocess.Popen(
            [sys.executable, str(CANDIDATE), "--impl", self.impl, "--kubeconfig", str(kc),
             "--name", self.name, "--namespace", NS, "--identity", ident,
             "--lease", str(self.d.lease), "--renew", str(self.d.renew),
             "--retry", str(self.d.retry)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        w = Worker(ident, proc)
        self.workers[ident] = w

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    self.q.put(json.loads(line))
                except ValueError:
                    pass
            self.q.put({"event": "eof", "id": ident, "t": time.monotonic()})

        threading.Thread(target=read, daemon=True).start()
        return w

    def pump(self, timeout: float) -> None:
        try:
            ev = self.q.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return
        self.log.append(ev)
        w = self.workers.get(ev["id"])
        if w is not None:
            if ev["event"] == "started_leading":
                w.leading = True
            elif ev["event"] in ("stopped_leading", "eof"):
                w.leading = False
            if ev["event"] == "eof":
                w.ended = True

    def idle(self, seconds: float) -> None:
        """Sleep, taking in events meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.pump(left)

    def wait_for(self, pred: Any, timeout: float, start: int = 0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.log):
                if pred(self.log[i]):
                    return self.log[i]
                i += 1
            if time.monotonic() > end:
                raise TimeoutError(f"{self.impl}: no matching event in {timeout:.0f} s; "
                                   f"see the candidates' stderr in {self.tmp}")
            self.pump(end - time.monotonic())

    def alive(self) -> list[Worker]:
        return [w for w in self.workers.values() if not w.ended and w.proc.poll() is None]

    def leader(self) -> Worker | None:
        leaders = [w for w in self.alive() if w.leading]
        if len(leaders) > 1:
            raise AssertionError(f"two candidates report leading: {[w.ident for w in leaders]}")
        return leaders[0] if leaders else None

    def settle(self) -> Worker:
        """Three live candidates, one of them leading, followers through a few renewals; a
        random extra fraction of a retry period so that signals fall at any renewal phase."""
        start = len(self.log)
        new = [self.spawn() for _ in range(3 - len(self.alive()))]
        for w in new:
            self.wait_for(lambda e, i=w.ident: e["id"] == i and e["event"] == "ready", 60,
                          start)
        if self.leader() is None:
            self.wait_for(lambda e: e["event"] == "started_leading", 4 * self.d.lease + 30,
                          start)
        self.idle(max(3 * self.d.retry, 3.0) + random.uniform(0, self.d.retry))
        leader = self.leader()
        if leader is None:
            raise AssertionError(f"{self.impl}: no leader after settling")
        return leader

    def stop_all(self) -> None:
        for w in self.workers.values():
            if w.proc.poll() is None:
                w.proc.kill()  # only our own children, by PID
        for w in self.workers.values():
            w.proc.wait()


def lease_writes(sim: KubeSim, name: str, identity: str) -> list[Any]:
    return [e for e in sim.audit.entries(writes_only=True, identity=identity)
            if e.resource == "leases" and e.name == name and 200 <= e.code < 300]


def measure(fleet: Fleet, scenario: str) -> Rep:
    d = fleet.d
    old = fleet.settle()
    start = len(fleet.log)
    sig = signal.SIGKILL if scenario == "kill" else signal.SIGTERM
    t0 = time.monotonic()
    os.kill(old.proc.pid, sig)
    ev = fleet.wait_for(lambda e: e["event"] == "started_leading" and e["id"] != old.ident,
                        d.lease + 6 * d.retry + 15, start)
    new = fleet.workers[ev["id"]]
    old.proc.wait(d.renew + 10)
    fleet.idle(0.2)  # the new leader's first write is in the log by now
    old_writes = lease_writes(fleet.sim, fleet.name, old.audit_identity)
    new_first = [e for e in lease_writes(fleet.sim, fleet.name, new.audit_identity)
                 if e.monotonic >= t0][0]
    last_old = [e for e in old_writes if e.monotonic <= new_first.monotonic][-1]
    released = [e for e in fleet.log[start:] if e["event"] == "released" and
                e["id"] == old.ident and e.get("wrote")]
    rep = Rep(scenario, old.ident, new.ident, ev["t"] - t0,
              new_first.monotonic - last_old.monotonic,
              "release" if released else "renew",
              released[0]["t"] - t0 if released else None)
    print(f"  {fleet.impl} {scenario}: {old.ident} -> {new.ident}: "
          f"{rep.from_signal:.3f} s after the signal, {rep.from_last_write:.3f} s after "
          f"{old.ident}'s last write ({rep.old_last_write})", flush=True)
    return rep


def api_load(fleet: Fleet, window: float) -> list[dict[str, Any]]:
    """Per-candidate request counts per minute over a steady-state window."""
    leader = fleet.settle()
    entries = fleet.sim.audit.entries()
    seq0 = entries[-1].seq if entries else 0
    t0 = time.monotonic()
    fleet.idle(window)
    t1 = time.monotonic()
    seq1 = fleet.sim.audit.entries()[-1].seq
    if fleet.leader() is not leader:
        raise AssertionError(f"{fleet.impl}: the leader changed during the load window")
    steady = [e for e in fleet.sim.audit.entries(since=seq0) if e.seq <= seq1]
    rows = []
    followers = 0
    for w in sorted(fleet.alive(), key=lambda w: w is not leader):
        mine = [e for e in steady if e.identity == w.audit_identity]
        if w is leader:
            role = f"leader ({w.ident})"
        else:
            followers += 1
            role = f"follower {followers} ({w.ident})"
        per_min = 60.0 / (t1 - t0)
        counts = {v: sum(1 for e in mine if e.verb == v) for v in ("get", "update", "create")}
        other = sum(1 for e in mine if e.verb not in ("get", "update", "create", "watch"))
        rows.append({"role": role, "window": t1 - t0,
                     "get": counts["get"] * per_min, "update": counts["update"] * per_min,
                     "create": counts["create"] * per_min, "other": other * per_min,
                     "total": (len(mine) - sum(1 for e in mine if e.verb == "watch"))
                     * per_min,
                     "watch": sum(1 for e in mine if e.verb == "watch")})
        print(f"  {fleet.impl} {role}: {rows[-1]['total']:.1f} requests/min besides watch "
              f"(GET {rows[-1]['get']:.1f}, PUT {rows[-1]['update']:.1f}); watch requests "
              f"ended in the window: {rows[-1]['watch']}", flush=True)
    return rows


def bounds(impl: str, scenario: str, d: Durations) -> tuple[float, float, str]:
    """(lower, upper, text) for "old leader's last write -> new leader's first write"."""
    if scenario == "release" and impl == "ours":
        return 0.0, 0.5, "≤ 0.5 s (docs/lease.md: a watching follower tries within 0.1 s)"
    if impl == "ours":
        hi = d.lease + 1.2 * d.retry
        return d.lease, hi, (f"[LD, LD + 1.2·RP] = [{d.lease:g}, {hi:g}] s (design); "
                             f"acceptance: ≤ LD + 2.2·RP = {d.lease + 2.2 * d.retry:g} s")
    hi = d.lease + 2 * d.retry
    return d.lease, hi, (f"[LD, LD + 2·RP] = [{d.lease:g}, {hi:g}] s (polls every RP; "
                         f"observed at its own poll)")


def fmt3(values: list[float]) -> str:
    lo, med, hi = summary(values)
    return f"{lo:.2f} / {med:.2f} / {hi:.2f}"


def report(args: argparse.Namespace, d: Durations, results: dict[str, Any]) -> list[str]:
    lines = [
        "## Failover time and API load (`bench/lease_failover.py`)",
        "",
        f"Command: `{command_line('lease_failover.py')}`",
        "",
        f"Machine: {machine()}.",
        "",
        f"Durations: lease_duration (LD) {d.lease:g} s, renew_deadline {d.renew:g} s, "
        f"retry_period (RP) {d.retry:g} s. Three candidates of one implementation, each its "
        f"own process (`bench/_lease_candidate.py`), on one kubesim (in the benchmark's "
        f"process); a killed or stopped candidate is replaced before the next repetition. "
        f"{args.reps} repetitions per scenario; each signal falls at a random phase of the "
        f"renewal cycle.",
        "",
        "### Failover time (seconds: min / median / max)",
        "",
        "\"signal → leading\": from the signal to the new leader's `on_started_leading` "
        "(CLOCK_MONOTONIC of both processes). \"last write → first write\": in kubesim's "
        "audit log, from the old leader's last successful write (its last renewal, or its "
        "release) to the new leader's first write; this is what the bounds of "
        "docs/lease.md are about. \"within\": repetitions inside the bound, with "
        f"{EARLY * 1000:.0f} ms tolerance below (audit times are taken at the end of a request) "
        f"and {SLACK:g} s of request latency above.",
        "",
        "| implementation | scenario | signal → leading | last write → first write | "
        "bound (last write → first write) | within |",
        "|---|---|---:|---:|---|---:|",
    ]
    details = []
    for impl, res in results.items():
        for scenario in ("kill", "release"):
            reps: list[Rep] = [r for r in res["reps"] if r.scenario == scenario]
            if not reps:
                continue
            lo, hi, text = bounds(impl, scenario, d)
            within = sum(1 for r in reps if lo - EARLY <= r.from_last_write <= hi + SLACK)
            if scenario == "kill":
                label = "SIGKILL of the leader"
            elif impl == "ours":
                label = "release (SIGTERM → campaign stop → release)"
            else:
                label = "SIGTERM of the leader (the package has no release)"
            lines.append(f"| {NAMES[impl]} | {label} | {fmt3([r.from_signal for r in reps])} "
                         f"| {fmt3([r.from_last_write for r in reps])} | {text} | "
                         f"{within}/{len(reps)} |")
            details.append(
                f"- {NAMES[impl]}, {label}: signal → leading "
                f"{', '.join(f'{r.from_signal:.2f}' for r in reps)}; last write → first "
                f"write {', '.join(f'{r.from_last_write:.2f}' for r in reps)}"
                + ("; signal → release written "
                   + ", ".join(f"{r.release_after_signal:.3f}" for r in reps
                               if r.release_after_signal is not None)
                   if any(r.release_after_signal is not None for r in reps) else ""))
    lines += ["", "Every repetition (seconds):", "", *details, ""]
    window = next(iter(results.values()))["load"][0]["window"] if results else 0
    lines += [
        f"### API requests per minute in steady state ({window:.0f} s window)",
        "",
        "Counted per candidate in kubesim's audit log (one Lease, three candidates, no "
        "leader change during the window). A watch is logged when it ends: \"watch\" is the "
        "number of watch requests that ended in the window (0 = the follower's one stream "
        "stayed open; our campaign re-opens it every 300 s).",
        "",
        "| implementation | candidate | GET/min | PUT/min | create/min | total besides "
        "watch /min | watch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for impl, res in results.items():
        for row in res["load"]:
            lines.append(f"| {NAMES[impl]} | {row['role']} | {row['get']:.1f} | "
                         f"{row['update']:.1f} | {row['create']:.1f} | {row['total']:.1f} | "
                         f"{row['watch']} |")
    lines.append("")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5, help="repetitions per scenario")
    p.add_argument("--window", type=float, help="steady-state load window, s (60; 20 quick)")
    p.add_argument("--quick", action="store_true", help="4/3/1 s instead of 15/10/2 s")
    p.add_argument("--impl", default="ours,theirs", help="ours, theirs or both")
    p.add_argument("--json", help="results file for the report (bench/_report.py)")
    args = p.parse_args()
    d = Durations(4, 3, 1) if args.quick else Durations(15, 10, 2)
    window = args.window or (20.0 if args.quick else 60.0)
    results: dict[str, Any] = {}
    with KubeSim() as sim, tempfile.TemporaryDirectory(prefix="lease-failover-") as tmp:
        for impl in args.impl.split(","):
            fleet = Fleet(sim, impl, f"bench-{impl}", d, Path(tmp))
            try:
                print(f"{impl}: API load over {window:g} s", flush=True)
                load = api_load(fleet, window)
                reps = []
                for scenario in ("kill", "release"):
                    for _ in range(args.reps):
                        reps.append(measure(fleet, scenario))
                results[impl] = {"load": load, "reps": reps}
            finally:
                fleet.stop_all()
    lines = report(args, d, results)
    print("\n".join(lines))
    if args.json:
        data = {
            "durations": asdict(d), "reps_per_scenario": args.reps, "window": window,
            "slack": SLACK, "early": EARLY,
            "impls": {impl: {"name": NAMES[impl], "load": res["load"],
                             "reps": [asdict(r) for r in res["reps"]]}
                      for impl, res in results.items()},
            "bounds": {impl: {sc: list(bounds(impl, sc, d)) for sc in ("kill", "release")}
                       for impl in results},
        }
        save(args.json, "lease_failover.py", data, [("lease_failover", lines)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
