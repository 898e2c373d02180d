"""The executor: one reconcile's playbook or role run by ansible-runner, and the means to kill it.

`start(spec)` writes ansible-operator's runner input directory (spec §2.6), starts the
`ansible-runner` CLI of this virtualenv with ansible-operator's argv (spec §2.7) in a session of
its own, and returns an `Execution`. `Execution.wait()` returns a `RunResult` read from the
run's job events after it ended (spec §2.8-9): the failure messages, the stats of
`localhost`, a `requeue_after` period.

Fencing: `Execution.kill()` SIGKILLs every process of the run, including the module processes
ansible-playbook started in sessions of their own and daemonized `async` jobs, and reaps them
(election_operator.proctree explains how they are found). Every process of a run has
`ELECTION_OPERATOR_RUN=<runtime pid>:<ident>` in its environment. Call `become_subreaper()`
once at start-up so that orphans come back to the runtime, and `reap_orphans()` after
killing runs (and from time to time) to kill what finished runs left behind (`async` with
`poll: 0`) and to reap zombies.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from election_operator import proctree
from election_operator.proctree import MARKER_ENV, become_subreaper
from election_operator.watches import parse_duration

log = logging.getLogger(__name__)

__all__ = ["RunSpec", "RunResult", "Execution", "RunnerStartError", "start", "become_subreaper",
           "reap_orphans", "MARKER_ENV", "command", "write_input_dir", "summarize"]

KILL_WAIT = 1.0  # seconds kill() waits for the killed processes to disappear
DEFAULT_FAILURE = "unknown playbook failure"
REQUEUE_ACTIONS = ("operator_sdk.util.requeue_after", "requeue_after",
                   "election.kubernetes.requeue_after")
_EVENT_FILE = re.compile(r"^(\d+)-[0-9a-fA-F-]+\.json$")


class RunnerStartError(Exception):
    """The input directory could not be written or ansible-runner could not be started."""


@dataclass
class RunSpec:
    ident: str                       # unique per run: the artifact directory's name
    private_data_dir: Path           # per-object input dir, reused across runs (spec §2.6)
    playbook: str | None = None      # absolute path of the playbook; or
    role: str | None = None          # absolute role dir (name = basename, roles path = dirname)
    extravars: dict[str, Any] = field(default_factory=dict)
    envvars: dict[str, str] = field(default_factory=dict)  # e.g. K8S_AUTH_KUBECONFIG
    verbosity: int = 0
    rotate_artifacts: int = 20
    role_skip_facts: bool = False    # ANSIBLE_GATHERING=explicit (roles only)
    cmdline: str | None = None       # --ansible-args, written to env/cmdline
    inventory: str | None = None     # ANSIBLE_INVENTORY file or dir to copy; else localhost
    cleanup: tuple[Path, ...] = ()   # files removed when the run ends (its kubeconfig)


@dataclass
class RunResult:
    status: str                # successful | failed | killed | error
    rc: int | None             # ansible-runner's exit code (negative: killed by that signal)
    failures: list[str]        # res.msg of each failed task that was neither ignored nor rescued
    stats: dict[str, Any] | None   # {"ok","changed","skipped","failures","completion"} of
    #                                localhost; None without a playbook_on_stats event
    requeue_after: float | None    # seconds, from a requeue_after task; when set, ansible-
    #                                operator returns at once and ignores failures and stats
    stdout: str                # path of artifacts/<ident>/stdout
    duration: float            # seconds from start to the runner's exit
    error: str | None = None   # why status is "error", or an unparsable requeue period


# --------------------------------------------------------------------------- input dir

def _go_json(value: Any) -> str:
    """JSON as Go's json.Marshal writes it: compact, keys sorted, <>& and U+2028/9 escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _strip_quotes(cmdline: str) -> str:
    # ansible-operator strips one pair of surrounding single quotes from --ansible-args.
    if len(cmdline) >= 2 and cmdline[0] == "'" and cmdline[-1] == "'":
        return cmdline[1:-1]
    return cmdline


def default_hosts() -> str:
    """inventory/hosts as ansible-operator writes it (no trailing newline)."""
    venv = os.environ.get("VIRTUAL_ENV", "")
    python = os.path.join(venv, "bin", "python3") if venv else "{{ansible_playbook_python}}"
    return f"localhost ansible_connection=local ansible_python_interpreter={python}"


def write_input_dir(spec: RunSpec) -> None:
    """Write ansible-operator's runner input dir for `spec` (spec §2.6). A stale env/settings
    (which would override the command line) and a stale env/cmdline are removed."""
    base = spec.private_data_dir
    env_dir, project, inventory = base / "env", base / "project", base / "inventory"
    for d in (env_dir, project):
        d.mkdir(parents=True, exist_ok=True)
    _write(env_dir / "extravars", _go_json(spec.extravars))
    _write(env_dir / "envvars", _go_json({k: str(v) for k, v in spec.envvars.items()}))
    (env_dir / "settings").unlink(missing_ok=True)
    cmdline = _strip_quotes(spec.cmdline or "")
    if cmdline:
        _write(env_dir / "cmdline", cmdline)
    else:
        (env_dir / "cmdline").unlink(missing_ok=True)
    shutil.rmtree(inventory, ignore_errors=True)
    if spec.inventory:
        src = Path(spec.inventory)
        if src.is_dir():
            shutil.copytree(src, inventory)
        elif src.is_file():
            inventory.mkdir(parents=True)
            shutil.copy2(src, inventory / "hosts")
        else:
            raise RunnerStartError(f"inventory {spec.inventory!r} (ANSIBLE_INVENTORY) is "
                                   "neither a file nor a directory")
    else:
        inventory.mkdir(parents=True)
        _write(inventory / "hosts", default_hosts())
    if spec.playbook:
        shutil.copyfile(spec.playbook, project / "playbook.yaml")


def runner_executable() -> str:
    """The ansible-runner of this interpreter's virtualenv, else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-runner"
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-runner")
    if not found:
        raise RunnerStartError("ansible-runner is not installed next to "
                               f"{sys.executable} nor on PATH")
    return found


def command(spec: RunSpec, executable: str = "ansible-runner") -> list[str]:
    """ansible-operator's ansible-runner argv for `spec` (spec §2.7)."""
    argv = [executable, "run", str(spec.private_data_dir),
            "--rotate-artifacts", str(spec.rotate_artifacts)]
    if spec.playbook:
        argv += ["-p", spec.playbook, "-i", spec.ident]
    else:
        role = Path(spec.role or "")
        argv += ["--role", role.name, "--roles-path", str(role.parent), "--hosts", "localhost",
                 "-i", spec.ident]
    if spec.verbosity > 0:
        argv.append("-" + "v" * spec.verbosity)
    if spec.role and not spec.playbook and spec.role_skip_facts:
        argv.append("--role-skip-facts")
    return argv


# --------------------------------------------------------------------------- events

def read_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """The job events of one run, ordered by counter (partial or unreadable files skipped)."""
    events_dir = artifact_dir / "job_events"
    found: list[tuple[int, dict[str, Any]]] = []
    try:
        names = os.listdir(events_dir)
    except OSError:
        return []
    for name in names:
        m = _EVENT_FILE.match(name)
        if not m:
            continue
        try:
            with open(events_dir / name, encoding="utf-8") as f:
                event = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(event, dict):
            found.append((int(event.get("counter", m.group(1))), event))
    found.sort(key=lambda pair: pair[0])
    return [event for _, event in found]


def _go_time(created: str) -> str:
    """`created` as ansible-operator's EventTime renders it: 2006-01-02T15:04:05.99999999+00:00
    (UTC, trailing zeros of the fraction dropped)."""
    try:
        t = datetime.fromisoformat(created).astimezone(UTC)
    except (TypeError, ValueError):
        return created
    fraction = f".{t.microsecond:06d}".rstrip("0") if t.microsecond else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "+00:00"


def _failure_message(event: dict[str, Any]) -> str:
    res = event.get("event_data", {}).get("res")
    if isinstance(res, dict) and isinstance(res.get("msg"), str):
        return res["msg"]
    return DEFAULT_FAILURE


def _flagged_rescued(data: dict[str, Any]) -> bool:
    # ansible-operator's check; ansible-runner's runner_on_failed events do not carry it.
    rescued = data.get("rescued")
    return isinstance(rescued, dict) and any(v == 1 for v in rescued.values())


def failures_of(events: list[dict[str, Any]], stats_event: dict[str, Any] | None) -> list[str]:
    """Messages of the failed tasks that were neither `ignore_errors` nor rescued.

    A runner_on_failed event does not say whether a `rescue` section caught it, but the stats
    do: `failures[host]` counts exactly the failures that were not rescued, and a failure that
    is not rescued ends the host's play (only `always` sections run after it), so the host's
    last `failures[host]` failed events are the real ones. Without stats, every failed event
    that was not ignored counts."""
    failed = [e for e in events if e.get("event") == "runner_on_failed"
              and e.get("event_data", {}).get("ignore_errors") is not True
              and not _flagged_rescued(e.get("event_data", {}))]
    if stats_event is None:
        return [_failure_message(e) for e in failed]
    counts = stats_event.get("event_data", {}).get("failures") or {}
    by_host: dict[Any, list[int]] = {}
    for i, e in enumerate(failed):
        by_host.setdefault(e.get("event_data", {}).get("host"), []).append(i)
    keep: set[int] = set()
    for host, indexes in by_host.items():
        n = counts.get(host, 0) if isinstance(counts, dict) else 0
        if isinstance(n, int) and n > 0:
            keep.update(indexes[-n:])
    return [_failure_message(e) for i, e in enumerate(failed) if i in keep]


def stats_of(stats_event: dict[str, Any]) -> dict[str, Any]:
    """ansibleResult of spec §3: the counts of host localhost and the completion time."""
    data = stats_event.get("event_data", {})

    def count(key: str) -> int:
        per_host = data.get(key) or {}
        value = per_host.get("localhost", 0) if isinstance(per_host, dict) else 0
        return value if isinstance(value, int) else 0

    return {"ok": count("ok"), "changed": count("changed"), "skipped": count("skipped"),
            "failures": count("failures"), "completion": _go_time(stats_event.get("created", ""))}


def requeue_period(event: dict[str, Any]) -> str | None:
    """The `res.period` of a requeue_after task event (spec §2.8), else None. A failed plain
    `requeue_after` or `election.kubernetes.requeue_after` does not count; a failed
    `operator_sdk.util.requeue_after` does (as in ansible-operator, by Go's operator
    precedence)."""
    data = event.get("event_data", {})
    action = data.get("task_action")
    if action == REQUEUE_ACTIONS[0] or (action in REQUEUE_ACTIONS[1:]
                                        and event.get("event") != "runner_on_failed"):
        res = data.get("res")
        if isinstance(res, dict) and isinstance(res.get("period"), str):
            return res["period"]
    return None


def summarize(events: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any] | None,
                                                      float | None, str | None]:
    """(failures, stats, requeue_after seconds, error) of a run's ordered events."""
    stats_event = None
    requeue: float | None = None
    error = None
    for event in events:
        if event.get("event") == "playbook_on_stats":
            stats_event = event
        period = requeue_period(event)
        if period is not None and requeue is None and error is None:
            try:
                requeue = parse_duration(period)
            except ValueError as exc:
                error = f"requeue_after: {exc}"
    failures = failures_of(events, stats_event)
    return failures, (stats_of(stats_event) if stats_event else None), requeue, error


# --------------------------------------------------------------------------- orphans

_live: dict[str, Execution] = {}
_live_lock = threading.Lock()  # held while a runner is spawned and while zombies are reaped


def _marker_prefix() -> str:
    return f"{os.getpid()}:"


def reap_orphans() -> list[int]:
    """Kill and reap what our runs left behind: processes carrying this runtime's run marker
    of a run that is no longer live (e.g. `async` with `poll: 0`), and zombie children
    re-parented to us as subreaper. Processes of live runs, of other runtimes, and children
    this process started otherwise in its own session are left alone. Returns the pids
    killed or reaped."""
    prefix = _marker_prefix()
    with _live_lock:
        live = {e.marker for e in _live.values()}

    def orphaned(marker: str | None) -> bool:
        return marker is not None and marker.startswith(prefix) and marker not in live

    killed = proctree.freeze_and_kill(set(), orphaned)
    if killed:
        log.warning("killed %d leftover process(es) of finished runs: %s", len(killed),
                    sorted(killed))
        proctree.await_gone(killed, time.monotonic() + KILL_WAIT)
    with _live_lock:
        runners = {e._popen.pid for e in _live.values()}
        reaped = proctree.reap_zombie_children(keep=runners)
    return sorted(set(killed) | set(reaped))


# --------------------------------------------------------------------------- execution

class Execution:
    """One started run. Thread-safe: `kill()` may be called from any thread, also while
    another thread is in `wait()`."""

    def __init__(self, spec: RunSpec, popen: subprocess.Popen[bytes], started: float,
                 stderr: Any) -> None:
        self.spec = spec
        self._popen = popen
        self._started = started
        self._stderr = stderr
        self._lock = threading.RLock()
        self._killed: str | None = None
        self._result: RunResult | None = None
        self._ended: float | None = None
        self.marker = f"{_marker_prefix()}{spec.ident}"

    def __repr__(self) -> str:
        return f"<Execution {self.spec.ident} pid={self._popen.pid}>"

    @property
    def ident(self) -> str:
        return self.spec.ident

    @property
    def artifact_dir(self) -> Path:
        return self.spec.private_data_dir / "artifacts" / self.spec.ident

    @property
    def pids(self) -> set[int]:
        """The processes of this run alive now (runner tree, its sessions, marked ones)."""
        return proctree.members(proctree.snapshot(), self._roots(), self._is_mine)

    def _is_mine(self, marker: str | None) -> bool:
        return marker == self.marker

    def _roots(self) -> set[int]:
        # The runner's pid is ours until it is reaped; after that it may belong to anyone.
        return {self._popen.pid} if self._popen.returncode is None else set()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait for the run to end and return its result; None if `timeout` passed first."""
        try:
            rc = self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        with self._lock:
            if self._result is None:
                self._result = self._finish(rc)
            return self._result

    def kill(self, reason: str) -> None:
        """SIGKILL every process of the run (see the module doc) and reap them. Idempotent;
        returns within about KILL_WAIT seconds. The result's status becomes `killed` unless
        the run had already ended and its result was taken."""
        with self._lock:
            first = self._killed is None and self._result is None
            if first:
                self._killed = reason
            t0 = time.monotonic()
            killed = proctree.freeze_and_kill(self._roots(), self._is_mine)
            deadline = t0 + KILL_WAIT
            if self._popen.returncode is None:  # killed, or exited and not yet reaped
                try:
                    self._popen.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            others = {pid: p for pid, p in killed.items() if pid != self._popen.pid}
            survivors = proctree.await_gone(others, deadline)
            # Orphans of the run that had died before (daemonizing parents) as well.
            proctree.reap_zombie_children(keep={self._popen.pid},
                                          sessions={p.sid for p in killed.values()})
            if self._popen.returncode is None:
                survivors.add(self._popen.pid)
            if first or killed:
                log.warning("run %s killed (%s): %d process(es) in %.3f s", self.spec.ident,
                            reason, len(killed), time.monotonic() - t0)
            if survivors:
                log.error("run %s: process(es) %s still alive %.1f s after SIGKILL",
                          self.spec.ident, sorted(survivors), KILL_WAIT)
            if self._result is None and self._popen.returncode is not None:
                self._result = self._finish(self._popen.returncode)

    def _finish(self, rc: int) -> RunResult:
        self._ended = time.monotonic()
        with _live_lock:
            _live.pop(self.spec.ident, None)
        for path in self.spec.cleanup:
            try:
                Path(path).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("run %s: could not remove %s: %s", self.spec.ident, path, exc)
        stderr = self._read_stderr()
        artifacts = self.artifact_dir
        _point_latest(self.spec.private_data_dir / "artifacts", self.spec.ident)
        failures, stats, requeue, error = summarize(read_events(artifacts))
        if self._killed is not None:
            status, error = "killed", f"killed: {self._killed}"
        elif stats is None:
            status = "error"
            detail = _tail(artifacts / "stdout") or stderr
            error = error or ("ansible-runner produced no playbook_on_stats event (rc "
                              f"{rc}){': ' + detail if detail else ''}")
        elif error is not None:
            status = "error"
        else:
            status = "successful" if rc == 0 else "failed"
        return RunResult(status=status, rc=rc, failures=failures, stats=stats,
                         requeue_after=requeue, stdout=str(artifacts / "stdout"),
                         duration=self._ended - self._started, error=error)

    def _read_stderr(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace").strip()
            self._stderr.close()
        except (OSError, ValueError):
            return ""
        return text[-2000:]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tail(path: Path, lines: int = 15) -> str:
    """The last lines of a run's stdout, without colours (for an error message)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in _ANSI.sub("", text).splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _point_latest(artifacts: Path, ident: str) -> None:
    """artifacts/latest -> <ident>, replaced atomically (as ansible-operator does)."""
    if not (artifacts / ident).is_dir():
        return
    tmp = artifacts / f".latest-{ident}"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(ident, tmp)
        os.replace(tmp, artifacts / "latest")
    except OSError as exc:
        log.warning("could not point %s/latest at %s: %s", artifacts, ident, exc)


def start(spec: RunSpec) -> Execution:
    """Write the input dir and start ansible-runner for `spec`. Raises ValueError for a spec
    without exactly one of playbook and role, RunnerStartError if it cannot start."""
    if bool(spec.playbook) == bool(spec.role):
        raise ValueError("a run needs exactly one of playbook and role")
    with _live_lock:
        if spec.ident in _live:
            raise RunnerStartError(f"a run with ident {spec.ident!r} is already running")
    try:
        write_input_dir(spec)
        executable = runner_executable()
        # ansible-runner's rotation counts every entry of artifacts/ and cannot delete a
        # symlink, so `latest` is taken away during the run and put back at its end.
        (spec.private_data_dir / "artifacts" / "latest").unlink(missing_ok=True)
    except OSError as exc:
        raise RunnerStartError(f"cannot prepare {spec.private_data_dir}: {exc}") from exc
    env = dict(os.environ)
    env.update({k: str(v) for k, v in spec.envvars.items()})
    bindir = str(Path(executable).parent)
    if env.get("PATH", "").split(os.pathsep)[0] != bindir:
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env[MARKER_ENV] = f"{_marker_prefix()}{spec.ident}"
    argv = command(spec, executable)
    stderr = tempfile.TemporaryFile()
    with _live_lock:
        try:
            popen = subprocess.Popen(argv, env=env, cwd=spec.private_data_dir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=stderr, start_new_session=True)
        except OSError as exc:
            stderr.close()
            raise RunnerStartError(f"cannot start {argv[0]}: {exc}") from exc
        execution = Execution(spec, popen, time.monotonic(), stderr)
        _live[spec.ident] = execution
    log.debug("run %s started: pid %d: %s", spec.ident, popen.pid, " ".join(argv))
    return execution
