"""The results of the benchmarks, and the report step of `make bench`.

Shared by the benchmarks: the machine line, statistics, and `save()`: given `--json FILE`, a
benchmark saves there its command, the run's date, machine and load average, its raw figures
("data") and its own detailed Markdown sections.

The report step reads every results file of a directory and writes one Markdown file: a table
of ours against the peer measured in the same run, the figures of ours alone, PNG plots, what
the figures say, and each benchmark's detailed sections; every table and plot names the command
that produced it and the run's date and machine. The results files are copied next to the
plots, so that the report can be rendered again without running anything:

    .venv/bin/python bench/_report.py .venv/bench-results --out docs/benchmarks.md

writes docs/benchmarks.md, docs/benchmarks/*.png and docs/benchmarks/results/*.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUN_STARTED = time.time()
RUN_T0 = time.monotonic()
LOAD_AT_START = os.getloadavg()[0]
FORMAT = 1
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- for the benchmarks

def command_line(script: str) -> str:
    return " ".join([f".venv/bin/python bench/{script}", shlex.join(sys.argv[1:])]).rstrip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(extra: str = "") -> str:
    import kubernetes

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, kubernetes {kubernetes.__version__}{extra}, "
            f"{time.strftime('%Y-%m-%d')}; load average (1 min) {LOAD_AT_START:.2f} at the "
            f"start, {os.getloadavg()[0]:.2f} at the end (other work on the machine shows "
            f"there)")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary(values: list[float]) -> tuple[float, float, float]:
    """(min, median, max)."""
    return min(values), statistics.median(values), max(values)


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def run_info(script: str, versions: dict[str, str] | None = None) -> dict[str, Any]:
    """What a results file says about its run: command, start (UTC), duration, host, load."""
    import kubernetes

    return {
        "script": script,
        "command": command_line(script),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(RUN_STARTED)),
        "seconds": round(time.monotonic() - RUN_T0, 1),
        "host": {"arch": platform.machine(), "cores": os.cpu_count(), "cpu": cpu_model(),
                 "memory_gib": round(_memory_gib(), 1), "os": _os_name()},
        "versions": {"python": platform.python_version(),
                     "kubernetes": kubernetes.__version__, **(versions or {})},
        "load": [round(LOAD_AT_START, 2), round(os.getloadavg()[0], 2)],
    }


def save(path: str | Path, script: str, data: dict[str, Any],
         sections: list[tuple[str, list[str]]], versions: dict[str, str] | None = None) -> None:
    """Write a benchmark's results file: the run, its figures and its Markdown sections."""
    doc = {"format": FORMAT, "benchmark": Path(script).stem,
           "run": run_info(script, versions), "data": data,
           "sections": [{"key": key, "lines": lines} for key, lines in sections]}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"results written to {p}", flush=True)


# --------------------------------------------------------------------------- the report

PEER_LEASE = "`kubernetes.leaderelection`"
REPORT = "bench/_report.py"
ORDER = ("lease_failover", "life_failover", "module_time", "operator_bench", "kubesim_get")


def s(x: float) -> str:
    return f"{x:.2f} s"


def s3(x: float) -> str:
    return f"{x:.3f} s"


def ms(x: float) -> str:
    return f"{round(x * 1000) + 0:d} ms"


def best(x: float) -> str:
    """Seconds, in ms below one second."""
    return ms(x) if abs(x) < 1 else s(x)


def med(values: list[float]) -> float:
    return statistics.median(values)


def ratio(ours: float, peer: float) -> str:
    if peer == 0:
        return "—"
    r = ours / peer
    return f"{r:.2f}×" if r >= 0.1 else f"1/{peer / ours:.0f}" if ours else "0×"


class Report:
    """Renders the results of one `make bench` (a directory of results files)."""

    def __init__(self, results: dict[str, dict[str, Any]], plots: Path, out: Path,
                 command: str, target: str = "make bench") -> None:
        self.target = target
        self.results = results
        self.plots = plots
        self.out = out
        self.command = command
        self.ref = {name: i for i, name in enumerate(
            [n for n in ORDER if n in results] + sorted(set(results) - set(ORDER)), 1)}
        self.figures: list[Path] = []

    # ------------------------------------------------------------------ helpers

    def data(self, name: str) -> dict[str, Any]:
        return self.results[name]["data"]

    def run(self, name: str) -> dict[str, Any]:
        return self.results[name]["run"]

    def src(self, name: str) -> str:
        return f"[{self.ref[name]}](#run-{self.ref[name]})"

    def rel(self, p: Path) -> str:
        return os.path.relpath(p, self.out.parent)

    def when(self, name: str) -> str:
        r = self.run(name)
        h = r["host"]
        return (f"{r['started']}, {h['arch']} {h['cores']} cores ({h['cpu']}), load average "
                f"{r['load'][0]:.2f} → {r['load'][1]:.2f}")

    def caption(self, name: str, what: str) -> list[str]:
        return [f"*{what}* Data: `{self.run(name)['command']}` (run {self.src(name)}: "
                f"{self.when(name)}). Plot: `{self.command}`.", ""]

    def figure(self, name: str, stem: str, alt: str, draw: Callable[[Any, Any], None],
               size: tuple[float, float] = (9.0, 4.2), ncols: int = 1) -> str:
        """Draw a PNG with matplotlib; its footer names the data's command and run."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, ncols, figsize=size, dpi=110)
        draw(fig, axes)
        r = self.run(name)
        fig.text(0.01, 0.005, f"data: {r['command']}  ·  {r['started']}, {r['host']['arch']} "
                 f"{r['host']['cores']} cores, load {r['load'][0]:.2f}→{r['load'][1]:.2f}\n"
                 f"plot: {self.command}", fontsize=6.5, color="#555555", ha="left",
                 va="bottom", linespacing=1.4)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        path = self.plots / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        self.figures.append(path)
        return f"![{alt}]({self.rel(path)})"

    # ------------------------------------------------------------------ document

    def render(self) -> str:
        lines = self.head()
        lines += self.comparison()
        lines += self.alone()
        lines += self.runs()
        for name, part in (("lease_failover", self.part_lease),
                           ("life_failover", self.part_life),
                           ("module_time", self.part_modules),
                           ("operator_bench", self.part_operator),
                           ("kubesim_get", self.part_kubesim)):
            if name in self.results:
                lines += part()
        lines += self.reproducing()
        return "\n".join(lines).rstrip("\n") + "\n"

    def head(self) -> list[str]:
        total = sum(r["run"]["seconds"] for r in self.results.values())
        dates = sorted({r["run"]["started"][:10] for r in self.results.values()})
        loads = [x for r in self.results.values() for x in r["run"]["load"]]
        return [
            "# Benchmarks",
            "",
            f"<!-- Written by `{self.target}` ({REPORT}) from the results files in "
            f"{self.rel(self.plots / 'results')}/: do not edit; run `{self.target}` "
            "again. -->",
            "",
            f"Every figure below was measured by `{self.target}` and rendered by "
            f"`{self.command}` from the results files of that run "
            f"([{self.rel(self.plots / 'results')}/]({self.rel(self.plots / 'results')})); "
            "each table and "
            "plot names the command that measured it and its run (date, machine, load "
            "average; [the runs](#the-runs)). Where there is a peer, ours and the peer were "
            "measured in the same run, on the same kubesim, interleaved or one after the "
            "other. kubesim answers on loopback in a few milliseconds: against a real API "
            "server, add its request latency to every API step.",
            "",
            f"Runs of {', '.join(dates)}; the benchmarks took {total / 60:.1f} minutes in "
            f"all; the 1-minute load average was between {min(loads):.2f} and "
            f"{max(loads):.2f} at their starts and ends (2 cores: above 2 the machine was "
            "busy with other work too).",
            "",
        ]

    def comparison(self) -> list[str]:
        rows: list[str] = []
        if "lease_failover" in self.results:
            rows += self.rows_lease()
        if "life_failover" in self.results:
            rows += self.rows_life()
        if "operator_bench" in self.results and "latency" in self.data("operator_bench"):
            rows += self.rows_overhead()
        if "module_time" in self.results:
            rows += self.rows_modules()
        return ["## Ours against the peer, measured in the same run", "",
                "Medians, with min–max or p90 where it says so. \"run\": the command, date and "
                "machine of the run that measured both ([the runs](#the-runs)).", "",
                "| figure | ours is | peer is | ours | peer | ours − peer (ours/peer) | run |",
                "|---|---|---|---:|---:|---:|---|", *rows, ""]

    def alone(self) -> list[str]:
        rows: list[str] = []
        if "operator_bench" in self.results:
            rows += self.rows_operator()
        if "kubesim_get" in self.results:
            d = self.data("kubesim_get")
            for r in d["rows"]:
                rows.append(f"| kubesim: GETs of one ConfigMap per second, {r['clients']} "
                            f"client thread(s), best of {len(r['trials'])} trials (median) | "
                            f"{r['rate']:.0f} GET/s ({r['median']:.0f}) | "
                            f"{self.src('kubesim_get')} |")
        if not rows:
            return []
        return ["## Ours alone", "",
                "Figures with no peer to run on this machine (ansible-operator is a Go "
                "binary with no build here).", "",
                "| figure | value | run |", "|---|---:|---|", *rows, ""]

    def runs(self) -> list[str]:
        lines = ["## The runs", ""]
        for name, i in self.ref.items():
            r = self.run(name)
            h = r["host"]
            v = ", ".join(f"{k} {val}" for k, val in r["versions"].items())
            lines += [f"<a id=\"run-{i}\"></a>{i}. `{r['command']}`: started {r['started']}, "
                      f"took {r['seconds'] / 60:.1f} min; {h['arch']}, {h['cores']} cores "
                      f"({h['cpu']}), {h['memory_gib']:g} GiB, {h['os']}; {v}; load average "
                      f"(1 min) {r['load'][0]:.2f} at the start, {r['load'][1]:.2f} at the "
                      "end."]
        return [*lines, ""]

    def reproducing(self) -> list[str]:
        total = sum(r["run"]["seconds"] for r in self.results.values())
        longest = max(self.results.values(), key=lambda r: r["run"]["seconds"])["run"]
        return [
            "## Reproducing",
            "",
            f"`{self.target}` runs every benchmark above, each writing its results file, then "
            f"this report; here the benchmarks took {total / 60:.1f} minutes, the longest "
            f"`{longest['script']}` ({longest['seconds'] / 60:.1f} minutes). `make bench` "
            "runs the failovers at production durations and renders docs/benchmarks.md; "
            "`make bench-quick` runs the same benchmarks with short durations and few "
            "repetitions and renders the same report into `.venv/bench-quick/` (docs/ "
            "untouched). To render this page again from its results files, without running "
            f"anything: `.venv/bin/python {REPORT} <its results directory> --out <this "
            "file>`, for docs/benchmarks.md `.venv/bin/python bench/_report.py "
            "docs/benchmarks/results --out docs/benchmarks.md`. Benchmarks are not part of "
            "`make test`.",
            "",
        ]

    def sections(self, name: str) -> list[str]:
        """The benchmark's own sections, their headings one level below the topic's."""
        out: list[str] = []
        for sec in self.results[name]["sections"]:
            body = ["#" + line if line.startswith("#") else line for line in sec["lines"]]
            while body and not body[-1].strip():
                body.pop()
            out += [*body, ""]
        return out

    # ------------------------------------------------------------------ lease

    def lease_reps(self, impl: str, scenario: str) -> list[dict[str, Any]]:
        return [r for r in self.data("lease_failover")["impls"][impl]["reps"]
                if r["scenario"] == scenario]

    def rows_lease(self) -> list[str]:
        d = self.data("lease_failover")
        impls = d["impls"]
        if not {"ours", "theirs"} <= set(impls):
            return []
        du = d["durations"]
        src = self.src("lease_failover")
        peer = f"{PEER_LEASE} {self.run('lease_failover')['versions']['kubernetes']}"
        ours = "`LeaseCampaign` (the lease engine of election-operator)"
        lease = f"LD {du['lease']:g} s, RP {du['retry']:g} s"
        rows = []

        def row(label: str, key: str, scen_ours: str, scen_theirs: str) -> None:
            a = [r[key] for r in self.lease_reps("ours", scen_ours)]
            b = [r[key] for r in self.lease_reps("theirs", scen_theirs)]
            if a and b:
                rows.append(f"| {label} | {ours} | {peer} | {s(med(a))} ({min(a):.2f}–"
                            f"{max(a):.2f}) | {s(med(b))} ({min(b):.2f}–{max(b):.2f}) | "
                            f"{best(med(a) - med(b))} ({ratio(med(a), med(b))}) | {src} |")

        row(f"Lease, SIGKILL of the leader: signal → new leader leading ({lease})",
            "from_signal", "kill", "kill")
        row("Lease, SIGKILL: old leader's last renewal → new leader's first write",
            "from_last_write", "kill", "kill")
        row("Lease, handover on shutdown (SIGTERM): signal → new leader leading (ours "
            "releases; the peer has no release)", "from_signal", "release", "release")

        def load(impl: str) -> tuple[float, float, float]:
            rs = impls[impl]["load"]
            leader = [r["total"] for r in rs if r["role"].startswith("leader")]
            followers = [r["total"] for r in rs if not r["role"].startswith("leader")]
            return sum(r["total"] for r in rs), leader[0], med(followers)

        (ta, la, fa), (tb, lb, fb) = load("ours"), load("theirs")
        rows.append(f"| Lease, API requests per minute in steady state, leader + 2 followers "
                    f"(leader / each follower; open watches apart) | {ours} | {peer} | "
                    f"{ta:.0f} ({la:.0f} / {fa:.0f}) | {tb:.0f} ({lb:.0f} / {fb:.0f}) | "
                    f"{ta - tb:+.0f}/min ({ratio(ta, tb)}) | {src} |")
        return rows

    def part_lease(self) -> list[str]:
        d = self.data("lease_failover")
        du = d["durations"]
        lines = ["## Lease", ""]
        if {"ours", "theirs"} <= set(d["impls"]):
            lines += [self.figure("lease_failover", "lease_failover",
                                  "lease failover, ours and the peer", self.draw_lease,
                                  size=(10, 4.2), ncols=2), ""]
            lines += self.caption(
                "lease_failover",
                f"Left: SIGKILL of the leader, from its last renewal to the new leader's "
                f"first write (kubesim's audit log); shaded: [LD, LD + 2·RP]. Right: SIGTERM "
                f"of the leader, from the signal to the new leader's `on_started_leading` "
                f"(log scale). Every repetition is a dot; lease duration (LD) {du['lease']:g} "
                f"s, renew deadline {du['renew']:g} s, retry period (RP) {du['retry']:g} s.")
            lines += [self.figure("lease_failover", "lease_api_load",
                                  "lease API requests per minute", self.draw_lease_load,
                                  size=(9, 3.8)), ""]
            lines += self.caption(
                "lease_failover",
                f"API requests per minute of each of three candidates in steady state "
                f"({d['window']:.0f} s window, no leader change), by verb; a follower's open "
                "watch stream is not a request per minute and is not counted.")
            lines += self.says_lease()
        lines += self.sections("lease_failover")
        return lines

    def draw_lease(self, fig: Any, axes: Any) -> None:
        d = self.data("lease_failover")
        du = d["durations"]
        names = {"ours": "ours", "theirs": "kubernetes.\nleaderelection"}
        colours = {"ours": "#1565c0", "theirs": "#ef6c00"}
        left, right = axes
        for i, impl in enumerate(("ours", "theirs")):
            ys = [r["from_last_write"] for r in self.lease_reps(impl, "kill")]
            xs = [i + (j - (len(ys) - 1) / 2) * 0.06 for j in range(len(ys))]
            left.scatter(xs, ys, color=colours[impl], zorder=3)
            if ys:
                left.hlines(med(ys), i - 0.25, i + 0.25, color=colours[impl], linewidth=2)
        left.axhspan(du["lease"], du["lease"] + 2 * du["retry"], color="#e0e0e0", zorder=0,
                     label="[LD, LD + 2·RP]: the peer's window")
        left.axhline(du["lease"] + 1.2 * du["retry"], color="#1565c0", linestyle="--",
                     linewidth=1, label="LD + 1.2·RP: our design bound")
        left.set_xticks([0, 1], [names["ours"], names["theirs"]])
        left.set_xlim(-0.6, 1.6)
        left.set_ylabel("seconds")
        left.set_title("SIGKILL: last renewal → new leader's first write", fontsize=9.5)
        left.legend(fontsize=8, loc="lower right")
        left.grid(axis="y", alpha=0.3)
        labels = {"ours": "ours\n(release)", "theirs": "kubernetes.leaderelection\n(no release)"}
        for i, impl in enumerate(("ours", "theirs")):
            ys = [r["from_signal"] for r in self.lease_reps(impl, "release")]
            xs = [i + (j - (len(ys) - 1) / 2) * 0.06 for j in range(len(ys))]
            right.scatter(xs, ys, color=colours[impl], zorder=3)
            if ys:
                right.hlines(med(ys), i - 0.25, i + 0.25, color=colours[impl], linewidth=2)
                right.annotate(f"median\n{best(med(ys))}", (i + 0.27, med(ys)),
                               textcoords="offset points", xytext=(3, 0), ha="left",
                               va="center", fontsize=8)
        right.set_yscale("log")
        right.set_xticks([0, 1], [labels["ours"], labels["theirs"]])
        right.set_xlim(-0.6, 1.6)
        right.set_ylim(0.005, 100)
        right.set_ylabel("seconds (log)")
        right.set_title("SIGTERM: signal → new leader leading", fontsize=9.5)
        right.grid(axis="y", alpha=0.3)

    def draw_lease_load(self, fig: Any, ax: Any) -> None:
        impls = self.data("lease_failover")["impls"]
        labels, gets, puts, others = [], [], [], []
        for impl, name in (("ours", "ours"), ("theirs", "kubernetes.\nleaderelection")):
            for r in impls[impl]["load"]:
                role = r["role"].split(" (")[0]
                labels.append(f"{name}\n{role}")
                gets.append(r["get"])
                puts.append(r["update"])
                others.append(r["total"] - r["get"] - r["update"])
        xs = list(range(len(labels)))
        ax.bar(xs, gets, color="#90caf9", label="GET")
        ax.bar(xs, puts, bottom=gets, color="#1565c0", label="PUT")
        ax.bar(xs, others, bottom=[g + p for g, p in zip(gets, puts, strict=True)],
               color="#9e9e9e", label="other")
        for x, g, p, o in zip(xs, gets, puts, others, strict=True):
            ax.text(x, g + p + o + 1, f"{g + p + o:.0f}", ha="center", fontsize=8)
        ax.set_xticks(xs, labels, fontsize=7.5)
        ax.axvline(len(impls["ours"]["load"]) - 0.5, color="#9e9e9e", linewidth=0.8)
        ax.set_ylabel("requests per minute")
        ax.set_ylim(0, max(g + p + o for g, p, o in zip(gets, puts, others, strict=True)) * 1.2
                    + 1)
        ax.set_title("Lease: API requests per minute in steady state", fontsize=9.5)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    def says_lease(self) -> list[str]:
        d = self.data("lease_failover")
        du = d["durations"]
        kill_o = [r["from_last_write"] for r in self.lease_reps("ours", "kill")]
        kill_t = [r["from_last_write"] for r in self.lease_reps("theirs", "kill")]
        rel_o = self.lease_reps("ours", "release")
        rel_t = [r["from_signal"] for r in self.lease_reps("theirs", "release")]
        out = ["What the figures say:", ""]
        if kill_o and kill_t:
            hi = du["lease"] + 1.2 * du["retry"]
            inside = sum(1 for x in kill_o if du["lease"] - 0.05 <= x <= hi + 0.5)
            out.append(
                f"- **Crash.** Ours took over {s(min(kill_o))}–{s(max(kill_o))} after the "
                f"killed leader's last renewal (median {s(med(kill_o))}; {inside}/"
                f"{len(kill_o)} inside [LD, LD + 1.2·RP] = [{du['lease']:g}, {hi:g}] s, with "
                f"0.5 s of latency allowed); the peer {s(min(kill_t))}–{s(max(kill_t))} "
                f"(median {s(med(kill_t))}). Our followers see each renewal on their watch "
                f"and count the lease from it; the peer's followers see it at their next "
                f"poll (every RP), check expiry only at polls, and count their own "
                f"configured lease duration, not the one in the record.")
        if rel_o and rel_t:
            sig = [r["from_signal"] for r in rel_o]
            out.append(
                f"- **Shutdown.** Ours releases the Lease when its campaign stops and a "
                f"watching follower takes it: {best(min(sig))}–{best(max(sig))} from the "
                f"SIGTERM to the new leader. The peer has no release: its users wait a whole "
                f"lease duration ({s(min(rel_t))}–{s(max(rel_t))}) at every rolling update.")
        impls = d["impls"]
        if {"ours", "theirs"} <= set(impls):
            to = sum(r["total"] for r in impls["ours"]["load"])
            tt = sum(r["total"] for r in impls["theirs"]["load"])
            out.append(
                f"- **API load.** Three candidates cost the API server {to:.0f} requests per "
                f"minute with ours and {tt:.0f} with the peer. Our leader renews with one PUT "
                f"per retry period at the resourceVersion it holds; our followers wait on a "
                f"watch. The peer's leader makes a GET and a PUT per retry period and each "
                f"follower a GET.")
        return [*out, ""]

    # ------------------------------------------------------------------ leader for life

    def rows_life(self) -> list[str]:
        reps = self.data("life_failover")["reps"]
        a = [r["failover"]["ours"] for r in reps]
        b = [r["failover"]["operator-lib"] for r in reps]
        return [f"| Leader for life: leader Pod deleted → new leader's lock created (max) | "
                f"`become()` (`k8s_leader_become`) | operator-lib's `leader.Become` "
                f"algorithm (poller, bench/_operatorlib_become.py) | {s3(med(a))} (max "
                f"{s3(max(a))}) | {s3(med(b))} (max {s3(max(b))}) | {best(med(a) - med(b))} "
                f"({ratio(med(a), med(b))}) | {self.src('life_failover')} |"]

    def part_life(self) -> list[str]:
        d = self.data("life_failover")
        lines = ["## Leader for life", "",
                 self.figure("life_failover", "life_failover",
                             "leader-for-life failover against the wait", self.draw_life,
                             size=(9, 4.2)), ""]
        lines += self.caption(
            "life_failover",
            f"Time from the leader Pod's DELETE to each candidate's create of the lock, against "
            f"how long the candidates had been waiting when the Pod was deleted (uniform in "
            f"0–{d['max_wait']:g} s, seed {d['seed']}; log scale). Shaded: when "
            "operator-lib's next attempt falls, from its backoff 1, 2, 4, 8, 16, 16 … s with "
            "0–20 % jitter.")
        reps = d["reps"]
        a = [r["failover"]["ours"] for r in reps]
        b = [r["failover"]["operator-lib"] for r in reps]
        lines += ["What the figures say:", "",
                  f"- Ours created the lock {best(min(a))}–{best(max(a))} after the leader "
                  f"Pod's deletion: it watches the lock and the leader Pod and tries as soon "
                  f"as the garbage collector deletes the lock. operator-lib's algorithm "
                  f"notices only at its next attempt: {s(min(b))}–{s(max(b))} (median "
                  f"{s(med(b))}), up to 19.2 s once its backoff has reached 16 s.", ""]
        lines += self.sections("life_failover")
        return lines

    def draw_life(self, fig: Any, ax: Any) -> None:
        d = self.data("life_failover")
        reps = d["reps"]
        top = d["max_wait"]
        # operator-lib's attempts: at 0, then after sleeps of backoff·(1 + 0..0.2), the
        # backoff doubling from 1 s while below 16 s. The k-th attempt falls in
        # [T_k, 1.2·T_k], T_k the sum of the first k backoffs; after a deletion at w the
        # next attempt is the first one after w: the band is its earliest and latest time.
        nominal = [0.0]
        b = 1.0
        while nominal[-1] <= top + 40:
            nominal.append(nominal[-1] + b)
            b = min(b * 2, 16.0) if b < 16 else b
        xs = [i * top / 600 for i in range(601)]
        lo, hi = [], []
        for w in xs:
            ks = [k for k in range(1, len(nominal)) if 1.2 * nominal[k] > w
                  and nominal[k - 1] <= w]
            lo.append(max(nominal[ks[0]] - w, 0.001))
            hi.append(1.2 * nominal[ks[-1]] - w)
        ax.fill_between(xs, lo, hi, color="#ffe0b2",
                        label="operator-lib's next attempt (backoff + 0–20 % jitter)")
        ax.scatter([r["wait"] for r in reps], [r["failover"]["operator-lib"] for r in reps],
                   color="#ef6c00", zorder=3, label="operator-lib's algorithm (poller)")
        ax.scatter([r["wait"] for r in reps], [r["failover"]["ours"] for r in reps],
                   color="#1565c0", zorder=3, label="ours (backoff + watch)")
        ax.set_yscale("log")
        ax.set_ylim(0.001, 40)
        ax.set_xlim(0, top)
        ax.set_xlabel("seconds the candidates had waited when the leader Pod was deleted")
        ax.set_ylabel("deletion → new leader (s, log)")
        ax.set_title("Leader for life: failover after the leader Pod's deletion", fontsize=9.5)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)

    # ------------------------------------------------------------------ modules

    def module_rows(self) -> dict[str, dict[str, Any]]:
        return {r["action"]: r for r in self.data("module_time")["rows"]}

    def rows_modules(self) -> list[str]:
        rows = self.module_rows()
        info = rows.get("kubernetes.core.k8s_info")
        if info is None:
            return []
        out = []
        for action, r in rows.items():
            if not action.startswith("election.kubernetes."):
                continue
            short = action.removeprefix("election.kubernetes.")
            out.append(f"| Module task time, warm (p90): `{short}` {r['what']} against "
                       f"`k8s_info` reading {info['what_read']} | `{short}` | "
                       f"`kubernetes.core.k8s_info` | {s3(r['median'])} ({s3(r['p90'])}) | "
                       f"{s3(info['median'])} ({s3(info['p90'])}) | "
                       f"{best(r['median'] - info['median'])} "
                       f"({ratio(r['median'], info['median'])}) | {self.src('module_time')} |")
        return out

    def part_modules(self) -> list[str]:
        rows = self.module_rows()
        lines = ["## Module task time", "",
                 self.figure("module_time", "module_time", "module task times",
                             self.draw_modules, size=(9, 4.2)), ""]
        lines += self.caption(
            "module_time",
            "Time of each task from its start to its result in one `ansible-playbook` run, "
            "warm rounds (round 1 left out), the modules interleaved round by round; box: "
            "quartiles, whiskers: min–max. `ansible.builtin.ping` is what any task costs.")
        ping = rows.get("ansible.builtin.ping")
        info = rows.get("kubernetes.core.k8s_info")
        says = ["What the figures say:", ""]
        if ping and info:
            ours = [r for a, r in rows.items() if a.startswith("election.kubernetes.")]
            says.append(
                f"- A task of ours costs {s3(min(r['median'] for r in ours))}–"
                f"{s3(max(r['median'] for r in ours))} (medians), `k8s_info` "
                f"{s3(info['median'])}, `ping` {s3(ping['median'])}: most of a module's time "
                f"is Ansible's per-task work and a new Python process importing the "
                f"`kubernetes` client; the requests themselves take milliseconds on kubesim. "
                f"`k8s_info` also builds the `DynamicClient` with its discovery cache.")
        become = rows.get("election.kubernetes.k8s_leader_become")
        elect = rows.get("election.kubernetes.k8s_lease_elect")
        if become and elect and become["median"] - elect["median"] > 0.2:
            says.append(
                f"- `k8s_leader_become` costs {best(become['median'] - elect['median'])} more "
                f"than `k8s_lease_elect` for two requests like it: it uses the client's "
                f"`CoreV1Api` (ConfigMaps, Pods), whose import builds the model classes of the "
                f"whole core API group (pydantic, in kubernetes "
                f"{self.run('module_time')['versions']['kubernetes']}); `k8s_lease_elect` "
                f"imports only `CoordinationV1Api`.")
        if elect:
            says.append(
                "- A call of `k8s_lease_elect` renews with a GET and a PUT at that "
                "resourceVersion (client-go's slow path): its observation file keeps the "
                "record and a monotonic stamp, not the whole object. election-operator's "
                "campaign, a long-lived process, renews with one PUT (the Lease rows above).")
        lines += [*says, ""]
        lines += self.sections("module_time")
        return lines

    def draw_modules(self, fig: Any, ax: Any) -> None:
        d = self.data("module_time")
        order = [a for a in d["tasks"]]
        data = [d["tasks"][a]["durations"][1:] for a in order]
        labels = [a.replace("election.kubernetes.", "").replace("kubernetes.core.", "")
                  .replace("ansible.builtin.", "") for a in order]
        colours = ["#1565c0" if a.startswith("election.") else "#ef6c00"
                   if a.startswith("kubernetes.") else "#9e9e9e" for a in order]
        bp = ax.boxplot(data, whis=(0, 100), patch_artist=True, widths=0.5)
        for patch, c in zip(bp["boxes"], colours, strict=True):
            patch.set_facecolor(c)
            patch.set_alpha(0.55)
        for m in bp["medians"]:
            m.set_color("black")
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8.5)
        ax.set_ylabel("task time (s)")
        ax.set_ylim(bottom=0)
        ax.set_title("Module task time in one ansible-playbook run (blue: ours, orange: "
                     "kubernetes.core, grey: ping)", fontsize=9.5)
        ax.grid(axis="y", alpha=0.3)

    # ------------------------------------------------------------------ operator

    def rows_overhead(self) -> list[str]:
        lat = self.data("operator_bench")["latency"]
        recon = [c["reconcile"] for c in lat["changes"]]
        done = [c["to_done"] for c in lat["changes"]]
        bare = lat["bare"]
        src = self.src("operator_bench")
        return [
            f"| Reconcile of a one-task playbook: election-operator's reconcile (\"reconcile "
            f"start\" → \"reconcile end\") against the same playbook and input run by bare "
            f"ansible-runner (process start → exit) | election-operator | bare "
            f"`ansible-runner run` | {s(med(recon))} | {s(med(bare))} | "
            f"{ms(med(recon) - med(bare))} ({ratio(med(recon), med(bare))}) | {src} |",
            f"| … from the spec change to status Successful written, against the bare run | "
            f"election-operator | bare `ansible-runner run` | {s(med(done))} | "
            f"{s(med(bare))} | {ms(med(done) - med(bare))} ({ratio(med(done), med(bare))}) "
            f"| {src} |",
        ]

    def rows_operator(self) -> list[str]:
        d = self.data("operator_bench")
        src = self.src("operator_bench")
        rows = []
        if "latency" in d:
            ch = d["latency"]["changes"]
            rows.append(f"| election-operator: spec change → reconcile's first write (status "
                        f"Running), median | {ms(med([c['to_running'] for c in ch]))} | "
                        f"{src} |")
        for r in d.get("throughput", []):
            rows.append(f"| election-operator: reconciles per minute, {r['count']} resources, "
                        f"`--max-concurrent-reconciles {r['concurrency']}` | "
                        f"{r['per_min']:.1f} | {src} |")
        fo = d.get("failover", [])
        du = d.get("fail_durations", {})
        for scen, label in (("kill", "SIGKILL"), ("term", "SIGTERM")):
            rs = [r["to_start"] for r in fo if r["scenario"] == scen]
            if rs:
                rows.append(f"| election-operator: {label} of the leader → new leader's first "
                            f"reconcile start, median (max), LD {du.get('lease', 0):g} s | "
                            f"{best(med(rs))} ({best(max(rs))}) | {src} |")
        for r in d.get("memory", []):
            rows.append(f"| election-operator: RSS of the replica following, {r['n']} "
                        f"resources watched | {r['follower'] / 2**20:.1f} MiB | {src} |")
        return rows

    def part_operator(self) -> list[str]:
        d = self.data("operator_bench")
        lines = ["## election-operator", ""]
        if "latency" in d:
            lines += [self.figure("operator_bench", "reconcile_overhead",
                                  "reconcile time against bare ansible-runner",
                                  self.draw_overhead, size=(9, 4.0)), ""]
            lines += self.caption(
                "operator_bench",
                "Each of the changes of one Widget: election-operator's reconcile and the bare "
                "ansible-runner run of the same playbook and input that followed it (same "
                "iteration, same x). The runtime's overhead is the gap between the two lines.")
            lines += self.says_operator()
        if d.get("failover"):
            lines += [self.figure("operator_bench", "operator_failover",
                                  "election-operator failover", self.draw_operator_failover,
                                  size=(9, 3.6)), ""]
            du = d["fail_durations"]
            lines += self.caption(
                "operator_bench",
                f"Three election-operator replicas (lease {du['lease']:g} s, renew deadline "
                f"{du['renew']:g} s, retry {du['retry']:g} s): from the signal sent to the "
                "leader to the new leader's first reconcile start (its first status write), each "
                "repetition a dot (log scale).")
        lines += self.sections("operator_bench")
        return lines

    def says_operator(self) -> list[str]:
        d = self.data("operator_bench")
        out = ["What the figures say:", ""]
        if "latency" in d:
            lat = d["latency"]
            recon = [c["reconcile"] for c in lat["changes"]]
            running = [c["to_running"] for c in lat["changes"]]
            diff = med(recon) - med(lat["bare"])
            pairs = [a - b for a, b in zip(recon, lat["bare"], strict=True)]
            more = f"{ms(diff)} more" if diff >= 0 else f"{ms(-diff)} less"
            out.append(
                f"- **Overhead.** A reconcile took {more} than bare ansible-runner (difference "
                f"of the medians, {s(med(recon))} against {s(med(lat['bare']))}; in the same "
                f"iteration the difference scattered from {ms(min(pairs))} to "
                f"{ms(max(pairs))}, the noise of starting Python processes on a shared "
                f"machine): nearly all of a trivial reconcile is starting ansible-runner and "
                f"ansible-playbook, which bare ansible-runner does too. The reconcile's first "
                f"write (status Running) follows the change by {ms(med(running))} (median).")
        tp = {r["concurrency"]: r for r in d.get("throughput", [])}
        if 1 in tp and 2 in tp:
            cores = self.run("operator_bench")["host"]["cores"]
            out.append(
                f"- **Throughput.** {tp[1]['per_min']:.0f} reconciles per minute with one "
                f"worker, {tp[2]['per_min']:.0f} with two "
                f"({tp[2]['per_min'] / tp[1]['per_min']:.1f}×) on {cores} cores. A run is "
                f"mostly the start-up of the ansible-runner and ansible-playbook processes, so "
                f"this figure moves with the machine's load more than any other (the load "
                f"average at the start and end of the run is in its section below).")
        fo = d.get("failover", [])
        kill = [r for r in fo if r["scenario"] == "kill"]
        term = [r for r in fo if r["scenario"] == "term"]
        if kill and term:
            du = d["fail_durations"]
            out.append(
                f"- **Failover.** After a SIGKILL the new leader took the Lease "
                f"{s(min(r['from_last_write'] for r in kill))}–"
                f"{s(max(r['from_last_write'] for r in kill))} after the old leader's last "
                f"renewal (lease duration {du['lease']:g} s) and started its first reconcile "
                f"{best(med([r['to_start'] - r['to_lease'] for r in kill]))} after that "
                f"(median). After a SIGTERM the old leader releases the Lease and the new "
                f"leader's first reconcile starts {best(min(r['to_start'] for r in term))}–"
                f"{best(max(r['to_start'] for r in term))} after the signal.")
        mem = d.get("memory", [])
        if len(mem) >= 2:
            lo, hi = mem[0], mem[-1]
            per = (hi["follower"] - lo["follower"]) / (hi["n"] - lo["n"]) / 1024
            out.append(
                f"- **Memory.** The runtime's process: {lo['follower'] / 2**20:.1f} MiB "
                f"watching {lo['n']} resources, {hi['follower'] / 2**20:.1f} MiB watching "
                f"{hi['n']} (about {per:.1f} KiB per watched resource); each concurrent run "
                f"(ansible-runner, ansible-playbook, modules) costs far more: the tree's peak "
                f"was {max(r['peak_tree'] for r in mem) / 2**20:.0f} MiB.")
        return [*out, ""]

    def draw_overhead(self, fig: Any, ax: Any) -> None:
        lat = self.data("operator_bench")["latency"]
        from matplotlib.ticker import MaxNLocator

        n = range(1, len(lat["bare"]) + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.plot(n, [c["reconcile"] for c in lat["changes"]], marker="o", markersize=3.5,
                color="#1565c0", label="election-operator: reconcile start → end")
        ax.plot(n, lat["bare"], marker="s", markersize=3.5, color="#ef6c00",
                label="bare ansible-runner: process start → exit")
        ax.set_xlabel("change (iteration)")
        ax.set_ylabel("seconds")
        ax.set_ylim(bottom=0)
        ax.set_title("One-task playbook: reconcile against bare ansible-runner", fontsize=9.5)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)

    def draw_operator_failover(self, fig: Any, ax: Any) -> None:
        fo = self.data("operator_bench")["failover"]
        for i, scen in enumerate(("kill", "term")):
            ys = [r["to_start"] for r in fo if r["scenario"] == scen]
            xs = [i + (j - (len(ys) - 1) / 2) * 0.05 for j in range(len(ys))]
            ax.scatter(xs, ys, color="#1565c0", zorder=3)
            if ys:
                ax.annotate(f"median {best(med(ys))}", (i, med(ys)), textcoords="offset points",
                            xytext=(40, 0), va="center", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(0.005, 100)
        ax.set_xticks([0, 1], ["SIGKILL of the leader", "SIGTERM of the leader (release)"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylabel("signal → first reconcile start (s, log)")
        ax.set_title("election-operator: failover to the new leader's first reconcile",
                     fontsize=9.5)
        ax.grid(axis="y", alpha=0.3)

    # ------------------------------------------------------------------ kubesim

    def part_kubesim(self) -> list[str]:
        return ["## kubesim", "", *self.sections("kubesim_get")]


def check(text: str) -> None:
    """Every plot is followed by its caption with the data's command and the plot's; every row
    of a summary table names its run; every benchmark section has its command."""
    lines = text.splitlines()
    problems = []
    for i, line in enumerate(lines):
        if line.startswith("!["):
            caption = next((x for x in lines[i + 1:] if x.strip()), "")
            if "Data: `" not in caption or "Plot: `" not in caption:
                problems.append(f"plot without its commands: {line}")
        if line.startswith("| ") and line.rstrip().endswith("|") and "](#run-" not in line \
                and in_summary(lines, i):
            problems.append(f"summary row without its run: {line}")
        if line.startswith("### ") and line.endswith(".py`)"):
            section = lines[i + 1:next((j for j in range(i + 1, len(lines))
                                        if lines[j].startswith("### ") and
                                        lines[j].endswith(".py`)")), len(lines))]
            if not any(x.startswith("Command: `") for x in section):
                problems.append(f"section without its command: {line}")
    if problems:
        raise SystemExit("the report is incomplete:\n" + "\n".join(problems))


def in_summary(lines: list[str], i: int) -> bool:
    """Whether line i is a data row of a table under "## Ours ..." (the summary tables)."""
    if lines[i].startswith(("| figure", "|---")):
        return False
    heading = next((lines[j] for j in range(i, -1, -1) if lines[j].startswith("## ")), "")
    return heading.startswith("## Ours")


def load(results_dir: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(results_dir.glob("*.json")):
        doc = json.loads(p.read_text())
        if doc.get("format") != FORMAT or "benchmark" not in doc:
            raise SystemExit(f"{p}: not a results file of format {FORMAT}")
        if doc["benchmark"] in out:
            raise SystemExit(f"{p}: a second results file of {doc['benchmark']}")
        doc["_path"] = str(p)
        out[doc["benchmark"]] = doc
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description="Render the benchmarks' results files into one Markdown report with PNG "
                    "plots.")
    p.add_argument("results", help="directory of results files (*.json, one per benchmark)")
    p.add_argument("--out", default="docs/benchmarks.md",
                   help="the Markdown file; plots and a copy of the results go into the "
                        "directory of the same name without .md (default docs/benchmarks.md)")
    p.add_argument("--target", default="make bench",
                   help="what ran the benchmarks, for the text (default: make bench)")
    args = p.parse_args()
    results_dir = Path(args.results)
    results = load(results_dir)
    if not results:
        p.error(f"no results files in {results_dir}")
    out = Path(args.out)
    plots = out.with_suffix("")
    copies = plots / "results"
    command = f".venv/bin/python {REPORT} {shlex.join(sys.argv[1:])}"
    report = Report(results, plots, out, command, args.target)
    text = report.render()
    check(text)
    if copies.resolve() != results_dir.resolve():
        copies.mkdir(parents=True, exist_ok=True)
        for old in copies.glob("*.json"):
            old.unlink()
        for name, doc in results.items():
            shutil.copyfile(doc["_path"], copies / f"{name}.json")
    for old in plots.glob("*.png"):
        if old not in report.figures:
            old.unlink()
    out.write_text(text)
    print(f"wrote {out}, {len(report.figures)} plots in {plots}/ and the results files in "
          f"{copies}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
