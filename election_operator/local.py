"""Run replicas of election-operator as local processes, each with its own kubeconfig (and
bearer token), log and runner dir; stop them and everything they started.

What the tests, the benchmarks and `make demo` use to run several replicas on one host.
`Replica` starts `election-operator run` in a session of its own with a clean environment
(no inherited `ANSIBLE_*`, `K8S_AUTH_*`, `KUBECONFIG`, `WATCH_NAMESPACE`, `POD_NAME`,
`MAX_CONCURRENT_*` or run marker; `ANSIBLE_GATHERING=explicit` as ansible-operator sets it;
`POD_NAME` is the replica's name), its output in `<dir>/operator.log` and its runs in
`<dir>/runner`. Against kubesim (`sim=`) it gets a kubeconfig with the token
`token-<name>`, so kubesim's audit log names it `token:token-<name>` for everything it sends:
its election requests directly, its own and its runs' writes through its fencing proxy
(which forwards with the replica's credentials). Against another cluster it uses the
kubeconfig it is given.

Stopping: `kill()` SIGSTOPs the replica and its descendants until no new one appears (a
stopped process can neither fork nor exit), then SIGKILLs them, together with every process
that carries the replica's run marker (`ELECTION_OPERATOR_RUN=<replica pid>:...`, also
orphans whose parent is gone) and every process of its runs noticed earlier, and reaps them.
`terminate()` asks first (SIGTERM: the replica drains and releases its lease) and kills what
is left. `survivors()` says which of the processes it ever saw are still alive; a caller that
wants that answer to cover short-lived processes calls `sample()` from time to time.
`until()` polls for what the caller waits for (a leader, a reconcile, a status).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

import psutil

from election_operator.proctree import MARKER_ENV

OPERATOR = Path(sys.executable).parent / "election-operator"

# A line of the operator's log: logging's asctime (local time), level, logger, message.
LOG_LINE = re.compile(r"^(?P<t>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<level>[A-Z]+) "
                      r"(?P<logger>\S+): (?P<msg>.*)$")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})(?:\s|$)")
# The messages of a reconcile's start and end; START/END match whole log lines.
START_MESSAGE = re.compile(r"reconcile start (?P<kind>\S+) (?P<ns>[^/\s]*)/(?P<name>\S+)$")
END_MESSAGE = re.compile(r"reconcile end (?P<kind>\S+) (?P<ns>[^/\s]*)/(?P<name>\S+): "
                         r"(?P<result>\w+) in (?P<secs>\d+\.\d\d) s")
_PREFIX = LOG_LINE.pattern.removesuffix("(?P<msg>.*)$")
RECONCILE_START = re.compile(_PREFIX + START_MESSAGE.pattern)
RECONCILE_END = re.compile(_PREFIX + END_MESSAGE.pattern)

T = TypeVar("T")
_DROPPED_PREFIXES = ("ANSIBLE_", "MAX_CONCURRENT", "K8S_AUTH_")
_DROPPED = ("KUBECONFIG", MARKER_ENV, "WATCH_NAMESPACE", "POD_NAME")


class KubeconfigWriter(Protocol):
    """What `Replica` needs of a kubesim: `KubeSim.write_kubeconfig`."""

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path: ...


# --------------------------------------------------------------------------- waiting

def until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02,
          *, error: type[Exception] = TimeoutError,
          between: Callable[[], None] | None = None) -> T:
    """Poll `probe` until it returns something truthy and return that; after `timeout`
    seconds raise `error`, naming `what` was awaited. Between polls: sleep `interval`, or
    call `between` (which does something useful for about as long)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g} s waiting for {what}")
        if between is not None:
            between()
        else:
            time.sleep(interval)


# --------------------------------------------------------------------------- processes

def alive(p: psutil.Process) -> bool:
    """Whether `p` (the very process, not a reuse of its pid) runs and is not a zombie."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def descendants(pid: int) -> list[psutil.Process]:
    """The live descendants of `pid` (none if it is gone)."""
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if alive(p)]
    except psutil.Error:
        return []


def marked(replica_pid: int) -> list[psutil.Process]:
    """The live processes of the runs of the replica `replica_pid` (they carry its run
    marker), also after they were orphaned."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARKER_ENV, "").startswith(f"{replica_pid}:") and alive(p):
                found.append(p)
        except psutil.Error:
            continue
    return found


def cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def log_time(line: str) -> float:
    """The wall-clock time (seconds since the epoch) of a log line of the operator, or of its
    timestamp alone (logging's asctime, local time)."""
    m = _STAMP.match(line)
    if not m:
        raise ValueError(f"not a log line of election-operator: {line!r}")
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra: Mapping[str, str | None] = ()) -> dict[str, str]:
    """This process's environment without what would change how a replica or a run behaves
    (see the module doc), with ANSIBLE_GATHERING=explicit, then `extra` (None removes)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
    env["ANSIBLE_GATHERING"] = "explicit"  # ansible-operator's way to skip the facts
    for key, value in dict(extra).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def kill_all(procs: list[psutil.Process], timeout: float = 5.0) -> list[psutil.Process]:
    """SIGKILL `procs` and wait up to `timeout` for them to go (reaping our children);
    returns those still alive."""
    for p in procs:
        try:
            if p.is_running():
                p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=timeout)
    return [p for p in procs if alive(p)]


# --------------------------------------------------------------------------- a replica

class Replica:
    """One `election-operator run` process in `<parent>/<name>/`.

    Exactly one of `sim` (a kubesim: a kubeconfig with the token `token-<name>` is written)
    and `kubeconfig` (used as it is; `identity` is then None). `args` are added to the
    command line (the election flags, ...); `env` is added to the clean environment, a value
    of None removing the variable. `probes=True` binds /healthz, /readyz and /metrics to a
    free port of 127.0.0.1 (`port`, `get()`, `ready()`, `metric()`); otherwise they get a
    port of the kernel's choice that nobody asks for."""

    def __init__(self, name: str, parent: Path, watches: Path, args: tuple[str, ...] = (),
                 *, sim: KubeconfigWriter | None = None, kubeconfig: Path | None = None,
                 env: Mapping[str, str | None] | None = None, probes: bool = False,
                 executable: Path = OPERATOR) -> None:
        if (sim is None) == (kubeconfig is None):
            raise ValueError("Replica needs exactly one of sim (a kubesim) and kubeconfig")
        self.name = name
        self.dir = parent / name
        self.dir.mkdir(parents=True)
        if sim is not None:
            self.token: str | None = f"token-{name}"
            self.identity: str | None = f"token:{self.token}"
            kubeconfig = sim.write_kubeconfig(self.dir / "kubeconfig", token=self.token)
        else:
            self.token = self.identity = None
        self.kubeconfig = kubeconfig
        self.log_path = self.dir / "operator.log"
        self.runner_dir = self.dir / "runner"
        self.port = free_port() if probes else None
        bind = f"127.0.0.1:{self.port if probes else 0}"
        environ = clean_env({"KUBECONFIG": str(kubeconfig), "POD_NAME": name, **(env or {})})
        self.argv = [str(executable), "run", "--watches-file", str(watches),
                     "--health-probe-bind-address", bind, "--metrics-bind-address", "0",
                     "--runner-dir", str(self.runner_dir), *args]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, env=environ, cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        self.seen: set[psutil.Process] = set()  # its processes noticed while it ran
        try:
            self.seen.add(psutil.Process(self.pid))
        except psutil.Error:
            pass

    # -- the log
    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.text().splitlines() if re.search(pattern, line)]

    def starts(self, kind: str | None = None) -> list[re.Match[str]]:
        """Its "reconcile start" lines (of `kind`, if given), parsed."""
        return [m for line in self.text().splitlines()
                if (m := RECONCILE_START.match(line)) and kind in (None, m["kind"])]

    def ends(self, kind: str | None = None) -> list[re.Match[str]]:
        """Its "reconcile end" lines (of `kind`, if given), parsed."""
        return [m for line in self.text().splitlines()
                if (m := RECONCILE_END.match(line)) and kind in (None, m["kind"])]

    def idle(self) -> bool:
        return len(self.starts()) == len(self.ends())

    # -- probes
    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of GET `path` on its probe port; (0, "") if it does not answer."""
        if self.port is None:
            raise RuntimeError(f"replica {self.name} was started without probes=True")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def metric(self, name: str) -> float:
        """The sum of the samples of one metric on /metrics (0 if absent)."""
        total = 0.0
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    # -- its processes
    def running(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise RuntimeError, with the end of its log, if the replica has exited."""
        if not self.running():
            raise RuntimeError(f"replica {self.name} exited with {self.proc.returncode}; its "
                               f"log:\n{self.text()[-3000:]}")

    def tree(self) -> list[psutil.Process]:
        """The replica's process (while it lives) and its live descendants."""
        try:
            return [psutil.Process(self.pid), *descendants(self.pid)]
        except psutil.Error:
            return descendants(self.pid)

    def run_processes(self) -> list[psutil.Process]:
        """Its live descendants (ansible-runner, ansible-playbook, modules, ...)."""
        procs = descendants(self.pid)
        self.seen.update(procs)
        return procs

    def sample(self) -> None:
        """Note the processes it has now (for `survivors()` and `kill()`)."""
        self.seen.update(self.tree())

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def tree_rss(self) -> int:
        """RSS of the replica and every process below it (its runs)."""
        total = 0
        for p in self.tree():
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def freeze(self) -> list[psutil.Process]:
        """SIGSTOP the replica and every descendant (the replica first, so it starts no
        more; then its descendants until no new one appears)."""
        frozen: dict[int, psutil.Process] = {}
        stable = 0
        while stable < 2:
            new = [p for p in self.tree() if p.pid not in frozen]
            stable = stable + 1 if not new else 0
            for p in new:
                try:
                    p.suspend()
                    frozen[p.pid] = p
                except psutil.Error:
                    pass
        self.seen.update(frozen.values())
        return list(frozen.values())

    def thaw(self, frozen: list[psutil.Process]) -> None:
        """SIGCONT them: descendants first (they get a head start on the replica)."""
        for p in sorted(frozen, key=lambda p: p.pid == self.pid):
            try:
                p.resume()
            except psutil.Error:
                pass

    def kill(self) -> list[psutil.Process]:
        """SIGKILL the replica and everything of its runs (frozen first, so nothing forks
        away), by PID, and reap them. Returns what is still alive 5 s later (nothing, unless a
        process is stuck in the kernel)."""
        victims = {p.pid: p for p in [*self.freeze(), *marked(self.pid), *self.seen]}
        left = kill_all(list(victims.values()))
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return left

    def terminate(self, timeout: float) -> list[psutil.Process]:
        """SIGTERM the replica (it stops dispatching, lets its runs finish and releases its
        lease), wait up to `timeout` s for it to exit, then kill whatever of it is left.
        Returns what is still alive after that."""
        self.sample()
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def survivors(self) -> list[psutil.Process]:
        """The processes of this replica ever noticed, or carrying its run marker, that are
        alive (after `kill()`: none)."""
        self.sample()
        return [p for p in {*self.seen, *marked(self.pid)} if alive(p)]

    def close(self) -> None:
        """Kill it (see `kill()`) and close its log."""
        if not self._log.closed:
            self.kill()
            self._log.close()
