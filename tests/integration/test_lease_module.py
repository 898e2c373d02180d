"""Acceptance tests of issue 3 for the module `election.kubernetes.k8s_lease_elect`, run the way
users run it: `ansible-playbook` in a subprocess (cwd = the repository, so ansible.cfg finds the
collection), KUBECONFIG pointing at kubesim, one `state_dir` per simulated host.

Each playbook registers the module's results and writes them to a JSON file with `copy`; the
kubesim audit log tells what was written, and by whom (the module's User-Agent is
`election.kubernetes/k8s_lease_elect (<identity>)`). Timing bounds: "no earlier than" bounds are
strict; "no later than" bounds get SLACK seconds, and every assertion message names its bound.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from ansible_harness import BIN, ROOT, Playbooks, module_task
from helpers import until as _until
from kubernetes import client

from ansible_collections.election.kubernetes.plugins.module_utils.kube import make_api_client
from ansible_collections.election.kubernetes.plugins.module_utils.lease import (
    ElectionConfig,
    KubeLeaseAPI,
    LeaseCampaign,
    LeaseElector,
    parse_time,
)
from kubesim import KubeSim

T = TypeVar("T")
NS = "default"
SLACK = 1.0  # added to "no later than" bounds: latency on a loaded 2-core machine


def ua(identity: str) -> str:
    """The module's User-Agent, which is its identity in the kubesim audit log."""
    return f"election.kubernetes/k8s_lease_elect ({identity})"



class Ansible(Playbooks):
    """Playbooks of k8s_lease_elect tasks against kubesim."""

    def elect(self, register: str, identity: str | None, name: str = "lease", *,
              check_mode: bool = False, **params: Any) -> dict[str, Any]:
        """A k8s_lease_elect task (failures are kept in the registered result)."""
        args: dict[str, Any] = {"name": name, "namespace": NS}
        if identity is not None:
            args.update(identity=identity, state_dir=str(self.tmp / f"state-{identity}"))
        args.update(params)
        return module_task("election.kubernetes.k8s_lease_elect", register, args,
                           check_mode=check_mode)


@pytest.fixture
def ansible(sim: KubeSim, tmp_path: Path) -> Iterator[Ansible]:
    a = Ansible(sim, tmp_path)
    yield a
    a.close()


def _writes(sim: KubeSim, name: str, identity: str | None = None, ok: bool = True
            ) -> list[Any]:
    return [e for e in sim.audit.entries(writes_only=True, identity=identity)
            if e.resource == "leases" and e.name == name and (200 <= e.code < 300) == ok]


def _spec(sim: KubeSim, name: str) -> dict[str, Any]:
    api = make_api_client({"host": sim.url}, user_agent="test-reader")
    try:
        return (KubeLeaseAPI(api).get(NS, name, 5) or {}).get("spec", {})
    finally:
        api.close()


# ---------------------------------------------------------------- exactly one leader

def test_three_module_candidates_started_together(ansible: Ansible, sim: KubeSim) -> None:
    """Three concurrent ansible-playbook runs, three identities, defaults 15/10/2: exactly one
    is_leader (changed), the others report it as holder and change nothing. `timeout` bounds
    the followers' first-contact observation of the (live, just acquired) lease."""
    runs = {i: ansible.start([ansible.elect("r", i, "trio", timeout=3)])
            for i in ("mod-a", "mod-b", "mod-c")}
    results = {i: r.result()["r"] for i, r in runs.items()}
    leaders = [i for i, r in results.items() if r["is_leader"]]
    assert len(leaders) == 1, f"exactly one leader expected: {results}"
    leader = leaders[0]
    for i, r in results.items():
        assert not r.get("failed"), r
        assert r["holder"] == leader, f"{i} reports holder {r['holder']!r}, not {leader}"
        assert r["changed"] is (i == leader), f"changed only where the Lease was written: {r}"
        assert r["acquired"] is (i == leader)
        assert r["lease"]["holder_identity"] == leader
    writes = _writes(sim, "trio")
    assert [(e.identity, e.verb) for e in writes] == [(ua(leader), "create")], writes
    assert _spec(sim, "trio")["holderIdentity"] == leader


# ---------------------------------------------------------------- release and wait

def test_release_then_a_waiting_module_acquires_within_one_retry_period(
        ansible: Ansible, sim: KubeSim) -> None:
    """A holds the lease; B waits (wait: true). A's `state: released` writes holder "",
    leaseDurationSeconds 1, transitions unchanged, and B acquires within one retry period."""
    timing = {"lease_duration": 10, "renew_deadline": 4, "retry_period": 1}
    # rel-a takes the lease in-process (quicker than one more ansible-playbook run); the
    # module call with identity rel-a releases it below
    a_api = KubeLeaseAPI(make_api_client({"kubeconfig": str(ansible.kubeconfig)},
                                         user_agent="rel-a"))
    assert LeaseElector(ElectionConfig("handover", NS, "rel-a", 10, 4, 1),
                        a_api).try_acquire_or_renew().leader
    a_api.api_client.close()
    held = _spec(sim, "handover")
    waiter = ansible.start([ansible.elect("r", "rel-b", "handover", wait=True, timeout=25,
                                          **timing)])
    _until(lambda: sim.audit.entries(identity=ua("rel-b")), 15, "rel-b's first request")
    rel = ansible.run([ansible.elect("r", "rel-a", "handover", state="released", **timing)])["r"]
    assert rel["changed"] and rel["released"] and not rel["is_leader"], rel
    b = waiter.result()["r"]
    assert b["is_leader"] and b["acquired"] and b["changed"], b
    assert _writes(sim, "handover", ua("rel-b")), "rel-b must have written"
    release = _writes(sim, "handover", ua("rel-a"))[0]
    took = _writes(sim, "handover", ua("rel-b"))[0]
    gap = took.monotonic - release.monotonic
    bound = timing["retry_period"] + SLACK
    assert 0 < gap <= bound, (
        f"rel-b acquired {gap:.3f} s after the release; must be within one retry period "
        f"({timing['retry_period']} s) + {SLACK} s slack = {bound} s")
    released = rel["lease"]
    assert released["holder_identity"] == ""
    assert released["lease_duration_seconds"] == 1
    assert released["lease_transitions"] == held["leaseTransitions"]
    spec = _spec(sim, "handover")
    assert spec["holderIdentity"] == "rel-b"
    assert spec["leaseTransitions"] == held["leaseTransitions"] + 1


# ---------------------------------------------------------------- clock offset

def _faketime_sleep_fix(tmp_path: Path) -> Path:
    """A sitecustomize for processes under faketime. libfaketime 0.9.10 (Debian) with
    FAKETIME_DONT_FAKE_MONOTONIC=1 breaks clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME),
    which Python's time.sleep uses: every sleep fails with EINVAL (ansible-playbook itself
    dies). Sleep with select() instead; clocks are left as faketime makes them."""
    d = tmp_path / "faketime-fix"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(
        "import select\nimport time\n\n\n"
        "def _sleep(seconds):\n"
        "    end = time.monotonic() + seconds\n"
        "    while (left := end - time.monotonic()) > 0:\n"
        "        select.select([], [], [], left)\n\n\n"
        "time.sleep = _sleep\n")
    return d


def test_clock_offset_neither_early_nor_an_hour_late(
        ansible: Ansible, sim: KubeSim, tmp_path: Path) -> None:
    """Two waiting candidates, one under `faketime` +1 h and one at -1 h (monotonic clock not
    faked), against a live holder renewing in-process: neither takes over while it renews.
    After the holder stops, one of them takes over, then (the winner's module has exited, so
    nobody renews) the other: each takeover comes no earlier than lease_duration after the
    previous holder's last write, and no later than lease_duration + 2 retry periods (+
    slack) -- not an hour early, not an hour late."""
    lease, renew, retry = 3, 2.0, 0.5
    timing = {"lease_duration": lease, "renew_deadline": renew, "retry_period": retry}
    holder_api = KubeLeaseAPI(make_api_client({"kubeconfig": str(ansible.kubeconfig)},
                                              user_agent="clock-holder"))
    holder = LeaseCampaign(
        LeaseElector(ElectionConfig("clock", NS, "clock-holder", lease, renew, retry),
                     holder_api), holder_api, lambda: None, lambda why: None,
        release_on_cancel=False).start()
    offsets = {"clock-plus": "+1h", "clock-minus": "-1h"}
    try:
        _until(holder.leading.is_set, 3, "the in-process holder to lead")
        runs = {
            ident: ansible.start(
                [ansible.elect("r", ident, "clock", wait=True, timeout=25, **timing)],
                prefix=["faketime", "-f", offset],
                env=ansible.env(FAKETIME_DONT_FAKE_MONOTONIC="1",
                                PYTHONPATH=str(_faketime_sleep_fix(tmp_path))))
            for ident, offset in offsets.items()}
        firsts = [_until(lambda i=i: sim.audit.entries(identity=ua(i)), 15,
                         f"{i}'s first request")[0] for i in offsets]
        # let both watch the live holder for longer than one lease duration
        while time.monotonic() < max(f.monotonic for f in firsts) + lease + 2 * retry:
            time.sleep(0.05)
        for ident, run in runs.items():
            assert not _writes(sim, "clock", ua(ident)), f"{ident} took over a live holder"
            assert run.proc.poll() is None, f"{ident} stopped waiting"
        assert _spec(sim, "clock")["holderIdentity"] == "clock-holder"
    finally:
        holder.stop(timeout=5)  # no release: the holder just stops renewing
    results = {ident: run.result()["r"] for ident, run in runs.items()}
    real_now = datetime.now(UTC)
    for ident, r in results.items():
        assert r["is_leader"] and r["acquired"] and r["changed"], (ident, r)
        # faketime really shifted the module's wall clock (it wrote the shifted time)
        shift = (parse_time(r["lease"]["acquire_time"]) - real_now).total_seconds()
        expected = 3600 if offsets[ident] == "+1h" else -3600
        assert abs(shift - expected) < 120, f"{ident} wrote a time {shift:.0f} s off"
    terms = [(e.identity, e.monotonic) for e in _writes(sim, "clock")]
    takeovers = [(prev, cur) for prev, cur in zip(terms, terms[1:], strict=False)
                 if prev[0] != cur[0]]
    assert [c[0] for _, c in takeovers] in (
        [ua("clock-plus"), ua("clock-minus")], [ua("clock-minus"), ua("clock-plus")]), terms
    for (prev_who, prev_t), (who, t) in takeovers:
        after = t - prev_t
        assert after >= lease - 0.05, (
            f"{who} took over {after:.3f} s after {prev_who}'s last write; no earlier than "
            f"lease_duration={lease} s (audit times are end of request, 50 ms tolerance)")
        bound = lease + 2 * retry + SLACK
        assert after <= bound, (
            f"{who} took over {after:.3f} s after {prev_who}'s last write; no later than "
            f"lease_duration + retry_period (to see that write) + retry_period (the next "
            f"attempt) + {SLACK} s slack = {bound} s")


# ---------------------------------------------------------------- check mode

def test_check_mode_writes_nothing_and_changed_means_written(
        ansible: Ansible, sim: KubeSim) -> None:
    """Check mode reports what would happen and writes nothing; outside check mode `changed`
    is true exactly when the call wrote the Lease."""
    timing = {"lease_duration": 10, "renew_deadline": 4, "retry_period": 1}
    e = ansible.elect
    r = ansible.run([
        e("c_create", "chk-h", "chk", check_mode=True, **timing),
        e("r_create", "chk-h", "chk", **timing),
        e("c_renew", "chk-h", "chk", check_mode=True, **timing),
        e("c_release", "chk-h", "chk", check_mode=True, state="released", **timing),
        e("r_release_other", "chk-o", "chk", state="released", **timing),
        e("r_renew", "chk-h", "chk", **timing),
        e("r_release", "chk-h", "chk", state="released", **timing),
        e("c_free", "chk-o", "chk", check_mode=True, **timing),
    ])
    for key, res in r.items():
        assert not res.get("failed"), (key, res)
    assert r["c_create"]["changed"] and r["c_create"]["is_leader"], r["c_create"]
    assert "would create" in r["c_create"]["msg"]
    assert r["r_create"]["changed"] and r["r_create"]["acquired"]
    assert r["c_renew"]["changed"] and r["c_renew"]["is_leader"], r["c_renew"]
    assert "would" in r["c_renew"]["msg"]
    assert r["c_release"]["changed"] and r["c_release"]["released"], r["c_release"]
    assert not r["c_release"]["is_leader"]
    assert not r["r_release_other"]["changed"] and not r["r_release_other"]["released"]
    assert r["r_release_other"]["holder"] == "chk-h"
    assert r["r_renew"]["changed"] and r["r_renew"]["is_leader"]
    assert not r["r_renew"]["acquired"]
    assert r["r_release"]["changed"] and r["r_release"]["released"]
    assert r["c_free"]["changed"] and r["c_free"]["is_leader"], r["c_free"]
    assert r["c_free"]["holder"] == "", "check mode reports the Lease as it is"
    writes = [(x.identity, x.verb) for x in _writes(sim, "chk")]
    assert writes == [(ua("chk-h"), "create"), (ua("chk-h"), "update"),
                      (ua("chk-h"), "update")], f"only the three real writes: {writes}"
    assert not [x for x in sim.audit.entries() if x.dry_run], "no dry-run requests either"
    spec = _spec(sim, "chk")
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1


# ---------------------------------------------------------------- bad input

def test_bad_input_gives_a_clear_message_and_writes_nothing(
        ansible: Ansible, sim: KubeSim) -> None:
    """Wrong types, non-positive durations, broken timing rules, a bad name, a missing
    namespace, an empty identity, an unreachable server and a Forbidden answer: each fails
    with one clear `msg`, no traceback, and nothing is written."""
    sim.faults.add({"identity": ua("bad-forbidden"), "action": "error", "code": 403})
    e = ansible.elect
    cases: dict[str, tuple[dict[str, Any], list[str]]] = {
        "wrong_type": (e("wrong_type", "bad-1", lease_duration="abc"),
                       ["lease_duration", "int"]),
        "negative_lease": (e("negative_lease", "bad-2", lease_duration=-3),
                           ["lease_duration", "greater than 0"]),
        "negative_retry": (e("negative_retry", "bad-3", retry_period=-0.5),
                           ["retry_period", "greater than 0"]),
        "lease_le_renew": (e("lease_le_renew", "bad-4", lease_duration=10, renew_deadline=10),
                           ["lease_duration (10) must be greater than renew_deadline (10)"]),
        "renew_le_jitter": (e("renew_le_jitter", "bad-5", lease_duration=10,
                              renew_deadline=2.4, retry_period=2),
                            ["renew_deadline (2.4)", "1.2", "retry_period (2)"]),
        "bad_name": (e("bad_name", "bad-6", "Not_A_Lease"),
                     ["Not_A_Lease", "RFC 1123 subdomain"]),
        "no_namespace": (e("no_namespace", "bad-7", namespace=None),
                         ["namespace is required outside a cluster"]),
        "empty_identity": (e("empty_identity", ""), ["identity must not be empty"]),
        "unreachable": (e("unreachable", "bad-8", host="http://127.0.0.1:1"),
                        ["leases", "127.0.0.1:1", "unreachable"]),
        "forbidden": (e("forbidden", "bad-forbidden"),
                      ["forbidden", "grant verb 'get' on resource 'leases'"]),
    }
    r = ansible.run([task for task, _ in cases.values()])
    for key, (_, words) in cases.items():
        res = r[key]
        assert res.get("failed") is True, (key, res)
        msg = res.get("msg", "")
        for w in words:
            assert w in msg, f"{key}: {w!r} not in msg {msg!r}"
        assert "Traceback" not in msg and "MODULE FAILURE" not in msg, (key, msg)
        # ansible-core 2.19 puts an `exception` placeholder in every failed result; a module
        # that crashed would show "MODULE FAILURE" and its stderr instead
        assert res.get("exception", "(traceback unavailable)") == "(traceback unavailable)"
        assert "module_stderr" not in res and "module_stdout" not in res, (key, res)
    assert not [x for x in sim.audit.entries(writes_only=True)], "bad input wrote something"
    forbidden = sim.audit.entries(identity=ua("bad-forbidden"))
    assert [(x.verb, x.code) for x in forbidden] == [("get", 403)], forbidden


# ---------------------------------------------------------------- documentation

def test_ansible_doc_renders() -> None:
    proc = subprocess.run([str(BIN / "ansible-doc"), "election.kubernetes.k8s_lease_elect"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "PAGER"}
                          | {"PAGER": "cat", "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for word in ("k8s_lease_elect", "lease_duration", "renew_deadline", "retry_period",
                 "state_dir", "kubeconfig", "EXAMPLES", "RETURN VALUES", "is_leader"):
        assert word in out, f"{word!r} missing from ansible-doc output"
    assert "ERROR" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------- the example playbook

def test_guarded_job_playbook_runs_the_work_on_one_host(
        ansible: Ansible, sim: KubeSim, tmp_path: Path) -> None:
    """playbooks/lease_guarded_job.yml run by two "hosts" at once (two identities, their own
    state dirs): only the lease holder does both steps of the work; the lease is released
    at the end."""
    book = ROOT / "playbooks" / "lease_guarded_job.yml"
    # Each step takes about work_seconds + 1 s (< renew_deadline); the other host's polls
    # (at most retry_period apart) see the holder's re-check before its release.
    common = {"lease_name": "guarded", "lease_duration": 6, "renew_deadline": 4,
              "retry_period": 0.5, "work_seconds": 1}
    runs = {h: ansible.start([], playbook=book, extra_vars=common | {
        "lease_identity": h, "lease_state_dir": str(tmp_path / f"state-{h}")})
        for h in ("host-a", "host-b")}
    for h, run in runs.items():
        run.proc.wait(90)
        log = run.log.read_text()
        assert run.proc.returncode == 0, f"{h}:\n{log[-4000:]}"
    core = client.CoreV1Api(make_api_client({"host": sim.url}, user_agent="test-reader"))
    data = core.read_namespaced_config_map("guarded-report", NS).data
    assert len(data) == 1, f"exactly one host may have worked: {data}"
    (worker, steps), = data.items()
    assert worker in runs and steps == "step 1, step 2", data
    logs = {h: r.log.read_text() for h, r in runs.items()}
    assert f"{worker} does the work" in logs[worker]
    other = next(h for h in runs if h != worker)
    assert f"{other} skips it" in logs[other], logs[other][-3000:]
    spec = _spec(sim, "guarded")
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1, spec
    holders = {x.identity for x in _writes(sim, "guarded")}
    assert holders == {ua(worker)}, f"only the worker may write the Lease: {holders}"
