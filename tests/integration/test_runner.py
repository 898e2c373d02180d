"""election_operator.runner against the real ansible-runner, on tiny playbooks and roles
written to tmp_path (no cluster needed).

The kill tests are the fencing guarantee: after `kill()` returns (within 1 s), no process of
the run is alive, including module processes in sessions of their own and async jobs."""

from __future__ import annotations

import json
import os
import random
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import until

from election_operator import runner
from election_operator.runner import RunSpec

PLAY = """\
- hosts: all
  gather_facts: false
  tasks:
"""

# A module named requeue_after like operator_sdk.util's: returns {period: <time>}.
REQUEUE_MODULE = """\
#!/usr/bin/python
# WANT_JSON
import json
import sys

with open(sys.argv[1]) as f:
    args = json.load(f)
print(json.dumps({"changed": False, "period": args["time"]}))
"""


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def playbook(tmp_path: Path, tasks: str, name: str = "playbook.yml") -> str:
    body = PLAY + textwrap.indent(textwrap.dedent(tasks), "    ")
    return write(tmp_path / "content" / name, body)


def spec(tmp_path: Path, **kw) -> RunSpec:
    kw.setdefault("ident", uuid.uuid4().hex[:12])
    kw.setdefault("private_data_dir", tmp_path / "runner" / "cache.example.com" / "v1" / "M" /
                  "ns" / "name")
    return RunSpec(**kw)


def run(s: RunSpec, timeout: float = 60) -> runner.RunResult:
    result = runner.start(s).wait(timeout)
    assert result is not None, "the run did not end in time"
    return result


def alive(proc: psutil.Process) -> bool:
    """Running (or stopped) and not a zombie; a reused pid does not count."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def unique_seconds() -> int:
    """A sleep length no other test run on this host uses, to find our `sleep` by cmdline."""
    return random.randrange(100_000, 10_000_000)


def sleeps(seconds: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] == ["sleep", str(seconds)] and alive(p):
            found.append(p)
    return found


@pytest.fixture
def subreaper() -> Iterator[None]:
    assert runner.become_subreaper()
    yield
    runner.reap_orphans()
    runner.become_subreaper(False)


# --------------------------------------------------------------------------- results

def test_successful_run_reports_stats_and_gets_exact_extravars(tmp_path: Path) -> None:
    extravars = {"size": 3, "ansible_operator_meta": {"name": "m", "namespace": "ns"},
                 "_cache_example_com_memcached": {"spec": {"nested": {"list": [1, {"a": None}],
                                                                      "html": "<&>"}}},
                 "unicode": "ünï"}
    out = tmp_path / "vars.json"
    pb = playbook(tmp_path, """\
        - name: dump what the play received
          copy:
            dest: OUT
            content: "{{ {'size': size, 'ansible_operator_meta': ansible_operator_meta,
              '_cache_example_com_memcached': _cache_example_com_memcached,
              'unicode': unicode} | to_json }}"
        - debug: msg=hello
        - command: /bin/true
          when: false
        """.replace("OUT", str(out)))
    s = spec(tmp_path, playbook=pb, extravars=extravars)
    env = s.private_data_dir / "env"
    env.mkdir(parents=True)
    # A stale settings file from an older runtime would override our arguments.
    (env / "settings").write_text(json.dumps({"runner_http_url": "/tmp/nowhere",
                                              "suppress_ansible_output": True}))
    t0 = time.monotonic()
    result = run(s)
    assert result.status == "successful", result
    assert result.rc == 0
    assert result.failures == []
    assert result.requeue_after is None
    assert {k: result.stats[k] for k in ("ok", "changed", "skipped", "failures")} == \
        {"ok": 2, "changed": 1, "skipped": 1, "failures": 0}
    assert result.stats["completion"].endswith("+00:00")
    assert 0 < result.duration <= time.monotonic() - t0
    assert json.loads(out.read_text()) == extravars
    assert not (env / "settings").exists()
    assert "hello" in Path(result.stdout).read_text()
    assert Path(result.stdout) == s.private_data_dir / "artifacts" / s.ident / "stdout"
    assert os.readlink(s.private_data_dir / "artifacts" / "latest") == s.ident


def test_failed_task_gives_its_message(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        - debug: msg=before
        - fail:
            msg: the replica count must be positive
        - debug: msg=never
        """)
    result = run(spec(tmp_path, playbook=pb))
    assert result.status == "failed"
    assert result.failures == ["the replica count must be positive"]
    assert result.stats is not None and result.stats["failures"] == 1


def test_ignored_and_rescued_failures_are_not_failures(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        - fail: msg=ignored
          ignore_errors: true
        - block:
            - command: /bin/false
          rescue:
            - debug: msg=rescued
        - debug: msg=after
        """)
    result = run(spec(tmp_path, playbook=pb))
    assert result.status == "successful", result
    assert result.failures == []
    assert result.stats["failures"] == 0


def test_role_run(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "memcachedish"
    write(role / "tasks" / "main.yml", """\
        - name: report
          copy:
            dest: "{{ out }}"
            content: "{{ replicas }}"
        """)
    write(role / "defaults" / "main.yml", "replicas: 1\n")
    out = tmp_path / "role-out"
    s = spec(tmp_path, role=str(role), extravars={"out": str(out), "replicas": 4},
             role_skip_facts=True)
    result = run(s)
    assert result.status == "successful", Path(result.stdout).read_text()
    assert out.read_text() == "4"
    assert result.stats["changed"] == 1
    assert "Gathering Facts" not in Path(result.stdout).read_text()


def test_requeue_after_from_a_local_module(tmp_path: Path) -> None:
    write(tmp_path / "content" / "library" / "requeue_after.py", REQUEUE_MODULE)
    pb = playbook(tmp_path, """\
        - requeue_after:
            time: 1m30s
        """)
    result = run(spec(tmp_path, playbook=pb))
    assert result.requeue_after == 90.0
    assert result.status == "successful"


def test_requeue_after_from_operator_sdk_util(tmp_path: Path) -> None:
    collections = tmp_path / "collections"
    write(collections / "ansible_collections" / "operator_sdk" / "util" / "plugins" /
          "modules" / "requeue_after.py", REQUEUE_MODULE)
    pb = playbook(tmp_path, """\
        - operator_sdk.util.requeue_after:
            time: 250ms
        """)
    result = run(spec(tmp_path, playbook=pb,
                      envvars={"ANSIBLE_COLLECTIONS_PATH": str(collections)}))
    assert result.requeue_after == 0.25, Path(result.stdout).read_text()


def test_requeue_after_from_this_collection(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        - election.kubernetes.requeue_after:
            time: 1m
        """)
    result = run(spec(tmp_path, playbook=pb))
    assert result.requeue_after == 60.0, Path(result.stdout).read_text()
    assert result.status == "successful"


def test_requeue_after_of_this_collection_refuses_a_bad_time(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        - election.kubernetes.requeue_after:
            time: soon
        """)
    result = run(spec(tmp_path, playbook=pb))
    assert result.requeue_after is None
    assert result.status == "failed"
    assert "time: invalid duration 'soon'" in Path(result.stdout).read_text()


def test_syntax_error_is_an_error_without_stats(tmp_path: Path) -> None:
    pb = write(tmp_path / "broken.yml", "- hosts: all\n  tasks:\n    - debug: [\n")
    result = run(spec(tmp_path, playbook=pb))
    assert result.status == "error"
    assert result.stats is None
    assert result.rc != 0
    assert "YAML" in Path(result.stdout).read_text()
    assert "YAML" in result.error


def test_artifacts_are_rotated_and_latest_is_the_newest(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "- debug: msg=hi\n")
    s = spec(tmp_path, playbook=pb, rotate_artifacts=2)
    artifacts = s.private_data_dir / "artifacts"
    for i in range(4):  # leftovers of earlier runs, oldest first
        old = artifacts / f"old{i}"
        old.mkdir(parents=True)
        os.utime(old, (time.time() - 100 + i, time.time() - 100 + i))
    first = run(s)
    second = run(spec(tmp_path, playbook=pb, rotate_artifacts=2,
                      private_data_dir=s.private_data_dir))
    assert first.status == second.status == "successful"
    dirs = sorted(p.name for p in artifacts.iterdir() if not p.is_symlink())
    assert len(dirs) <= 2 and second.stdout.split("/")[-2] in dirs
    assert os.readlink(artifacts / "latest") == second.stdout.split("/")[-2]


# --------------------------------------------------------------------------- input dir

def test_input_dir_and_argv_match_ansible_operator(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    pb = playbook(tmp_path, "- debug: msg=hi\n")
    s = spec(tmp_path, playbook=pb, ident="123", extravars={"b": 1, "a": "<x>"},
             envvars={"KUBECONFIG": "/k", "K8S_AUTH_KUBECONFIG": "/k"}, verbosity=2,
             cmdline="'--vault-password-file /v'")
    (s.private_data_dir / "env").mkdir(parents=True)
    (s.private_data_dir / "env" / "settings").write_text("{}")
    runner.write_input_dir(s)
    d = s.private_data_dir
    assert (d / "env" / "extravars").read_text() == '{"a":"\\u003cx\\u003e","b":1}'
    assert (d / "env" / "envvars").read_text() == '{"K8S_AUTH_KUBECONFIG":"/k","KUBECONFIG":"/k"}'
    assert (d / "env" / "cmdline").read_text() == "--vault-password-file /v"
    assert not (d / "env" / "settings").exists()
    assert (d / "inventory" / "hosts").read_text() == \
        "localhost ansible_connection=local ansible_python_interpreter={{ansible_playbook_python}}"
    assert (d / "project" / "playbook.yaml").read_text() == Path(pb).read_text()
    assert runner.command(s) == ["ansible-runner", "run", str(d), "--rotate-artifacts", "20",
                                 "-p", pb, "-i", "123", "-vv"]
    role = spec(tmp_path, role="/opt/ansible/roles/memcached", ident="9", role_skip_facts=True)
    assert runner.command(role) == [
        "ansible-runner", "run", str(role.private_data_dir), "--rotate-artifacts", "20",
        "--role", "memcached", "--roles-path", "/opt/ansible/roles", "--hosts", "localhost",
        "-i", "9", "--role-skip-facts"]

    # Without --ansible-args the previous cmdline goes; an ANSIBLE_INVENTORY dir is copied.
    inv = tmp_path / "inv"
    write(inv / "hosts", "localhost ansible_connection=local\n")
    write(inv / "group_vars" / "all.yml", "x: 1\n")
    runner.write_input_dir(spec(tmp_path, playbook=pb, private_data_dir=d, inventory=str(inv)))
    assert not (d / "env" / "cmdline").exists()
    assert (d / "inventory" / "group_vars" / "all.yml").read_text() == "x: 1\n"
    assert (d / "inventory" / "hosts").read_text() == "localhost ansible_connection=local\n"


def test_cleanup_files_are_removed_when_the_run_ends(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig-run"
    kubeconfig.write_text("apiVersion: v1\n")
    pb = playbook(tmp_path, "- debug: msg=hi\n")
    result = run(spec(tmp_path, playbook=pb, cleanup=(kubeconfig,),
                      envvars={"KUBECONFIG": str(kubeconfig)}))
    assert result.status == "successful"
    assert not kubeconfig.exists()


def test_a_spec_needs_exactly_one_of_playbook_and_role(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        runner.start(spec(tmp_path))
    with pytest.raises(runner.RunnerStartError, match="missing.yml"):
        runner.start(spec(tmp_path, playbook=str(tmp_path / "missing.yml")))


# --------------------------------------------------------------------------- kill

def kill_and_check(execution: runner.Execution, marker_sleep: int) -> None:
    """Wait for the module's `sleep`, kill, and check nothing of the run is alive."""
    found = until(lambda: sleeps(marker_sleep), timeout=30, what=f"sleep {marker_sleep}")
    recorded = {pid: psutil.Process(pid) for pid in execution.pids}
    assert {p.pid for p in found} <= set(recorded)
    runner_pid = execution._popen.pid
    # The module process is in another session than the runner: killing the runner's
    # process group (or ansible-runner's own cancel) would leave it running.
    assert all(os.getsid(p.pid) != os.getsid(runner_pid) for p in found)
    t0 = time.monotonic()
    execution.kill("lost leadership (test)")
    took = time.monotonic() - t0
    assert took < 1.0, f"kill took {took:.3f} s"
    survivors = [p.pid for p in recorded.values() if alive(p)] + \
        [p.pid for p in sleeps(marker_sleep)]
    assert survivors == []
    assert execution.pids == set()
    result = execution.wait(5)
    assert result is not None and result.status == "killed"
    assert result.stats is None
    execution.kill("again")  # idempotent
    assert execution.wait(0).status == "killed"


def test_kill_leaves_no_module_process(tmp_path: Path) -> None:
    seconds = unique_seconds()
    pb = playbook(tmp_path, f"- command: sleep {seconds}\n")
    kill_and_check(runner.start(spec(tmp_path, playbook=pb)), seconds)


def test_kill_leaves_no_async_job_and_reaps_everything(tmp_path: Path, subreaper) -> None:
    seconds = unique_seconds()
    pb = playbook(tmp_path, f"""\
        - command: sleep {seconds}
          async: 300
          poll: 1
        """)
    def zombies() -> set[int]:
        return {c.pid for c in psutil.Process().children()
                if c.status() == psutil.STATUS_ZOMBIE}

    before = zombies()
    execution = runner.start(spec(tmp_path, playbook=pb))
    kill_and_check(execution, seconds)
    # As subreaper, the orphans came back to us, and kill() reaped them: no zombie is left.
    assert zombies() - before == set()


def test_reap_orphans_kills_what_a_finished_run_left(tmp_path: Path, subreaper) -> None:
    seconds = unique_seconds()
    pb = playbook(tmp_path, f"""\
        - command: sleep {seconds}
          async: 300
          poll: 0
        """)
    result = run(spec(tmp_path, playbook=pb))
    assert result.status == "successful"
    leftover = until(lambda: sleeps(seconds), timeout=10, what="the async job")
    # Another runtime's (or an unrelated) process is not ours to kill.
    unrelated = psutil.Popen(["sleep", str(seconds + 1)], start_new_session=True)
    try:
        reaped = runner.reap_orphans()
        assert {p.pid for p in leftover} <= set(reaped)
        assert sleeps(seconds) == []
        assert alive(unrelated)
        assert unrelated.pid not in reaped
    finally:
        unrelated.kill()
        unrelated.wait()
