"""Acceptance tests of issue 3 for the in-process election engine (LeaseElector, LeaseCampaign).

Every candidate is a real `kubernetes` ApiClient on kubesim, told apart by its User-Agent
(`make_api_client(..., user_agent=<identity>)`), so the kubesim audit log says who sent what.
Durations are short (lease 3 s, renew deadline 2 s, retry period 0.5 s) to keep the suite fast.
Timing bounds: "no earlier than" bounds are strict; "no later than" bounds get SLACK seconds for
request latency on a loaded machine, and every assertion message names its bound.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers import until as _until
from kubernetes import client, config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from ansible_collections.election.kubernetes.plugins.module_utils.kube import make_api_client
from ansible_collections.election.kubernetes.plugins.module_utils.lease import (
    JITTER_FACTOR,
    Attempt,
    ElectionConfig,
    KubeLeaseAPI,
    LeaseCampaign,
    LeaseElector,
    parse_time,
)
from kubesim import KubeSim

T = TypeVar("T")
NS = "default"
LEASE, RENEW, RETRY = 3, 2.0, 0.5
SLACK = 1.0  # added to "no later than" bounds: request latency on a loaded 2-core machine
MICRO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


# ---------------------------------------------------------------- helpers

@dataclass
class Candidate:
    """One in-process candidate: elector, API, optional campaign, and what it reported."""

    ident: str
    api: KubeLeaseAPI
    el: LeaseElector
    campaign: LeaseCampaign | None = None
    started: list[float] = field(default_factory=list)  # monotonic, on_started_leading
    stopped: list[tuple[float, str]] = field(default_factory=list)  # on_stopped_leading
    new_leaders: list[str] = field(default_factory=list)  # on_new_leader reports
    changes: list[tuple[float, str]] = field(default_factory=list)  # (observed_time, holder)
    gets: list[float] = field(default_factory=list)  # monotonic start of each GET
    written: list[dict[str, Any]] = field(default_factory=list)  # replace() responses

    def campaign_start(self, release_on_cancel: bool = True) -> LeaseCampaign:
        self.campaign = LeaseCampaign(
            self.el, self.api,
            on_started_leading=lambda: self.started.append(time.monotonic()),
            on_stopped_leading=lambda why: self.stopped.append((time.monotonic(), why)),
            release_on_cancel=release_on_cancel)
        return self.campaign.start()

    @property
    def leading(self) -> bool:
        return self.campaign is not None and self.campaign.leading.is_set()


@pytest.fixture
def make_candidate(sim: KubeSim, tmp_path: Path) -> Iterator[Callable[..., Candidate]]:
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
    made: list[Candidate] = []

    def make(ident: str, name: str, lease: int = LEASE, renew: float = RENEW,
             retry: float = RETRY) -> Candidate:
        api = KubeLeaseAPI(make_api_client({"kubeconfig": str(kubeconfig)}, user_agent=ident))
        cand = Candidate(ident, api, None)  # type: ignore[arg-type]
        cand.el = LeaseElector(ElectionConfig(name, NS, ident, lease, renew, retry), api,
                               on_new_leader=cand.new_leaders.append)
        # spies: when the record changed (by this candidate's own clock), GET starts, writes
        observe = cand.el.observe

        def spy_observe(lease_obj: dict[str, Any] | None, now: float | None = None) -> bool:
            changed = observe(lease_obj, now)
            if changed:
                cand.changes.append((cand.el.observed_time, cand.el.holder))
            return changed

        get, replace = api.get, api.replace

        def spy_get(*a: Any, **kw: Any) -> Any:
            cand.gets.append(time.monotonic())
            return get(*a, **kw)

        def spy_replace(*a: Any, **kw: Any) -> Any:
            out = replace(*a, **kw)
            cand.written.append(out)
            return out

        cand.el.observe = spy_observe  # type: ignore[method-assign]
        api.get, api.replace = spy_get, spy_replace  # type: ignore[method-assign]
        made.append(cand)
        return cand

    yield make
    sim.faults.clear()
    for c in made:
        if c.campaign is not None:
            c.campaign.stop(timeout=5)
    for c in made:
        c.api.api_client.close()


def _read(sim: KubeSim, name: str) -> dict[str, Any]:
    api = make_api_client({"host": sim.url}, user_agent="test-reader")
    try:
        return KubeLeaseAPI(api).get(NS, name, 5) or {}
    finally:
        api.close()


def _writes(sim: KubeSim, name: str, identity: str | None = None, ok: bool | None = None
            ) -> list[Any]:
    """Writes to Lease `name` in the audit log (ok: only successful / only failed ones)."""
    out = [e for e in sim.audit.entries(writes_only=True, identity=identity)
           if e.resource == "leases" and e.name == name]
    if ok is not None:
        out = [e for e in out if (200 <= e.code < 300) == ok]
    return out


# ---------------------------------------------------------------- exactly one leader

def test_three_electors_started_together_exactly_one_leads_others_name_it(
        sim: KubeSim, make_candidate: Callable[..., Candidate]) -> None:
    """Three one-shot attempts released by a barrier on an absent Lease: one creates it, the
    two losers get AlreadyExists, report "not leader" and name the winner as holder."""
    cands = [make_candidate(f"once-{x}", "trio-once") for x in "abc"]
    barrier = threading.Barrier(3)
    results: dict[str, Attempt] = {}

    def go(c: Candidate) -> None:
        barrier.wait()
        results[c.ident] = c.el.try_acquire_or_renew()

    threads = [threading.Thread(target=go, args=(c,)) for c in cands]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    leaders = [i for i, a in results.items() if a.leader]
    assert len(leaders) == 1, f"exactly one leader expected, got {results}"
    leader = leaders[0]
    for c in cands:
        assert c.el.holder == leader, f"{c.ident} reports holder {c.el.holder!r}, not {leader}"
        assert c.el.is_leader == (c.ident == leader)
        assert c.new_leaders == [leader], f"{c.ident} reported leaders {c.new_leaders}"
    ok = _writes(sim, "trio-once", ok=True)
    assert [(e.identity, e.verb) for e in ok] == [(leader, "create")]
    assert _read(sim, "trio-once")["spec"]["holderIdentity"] == leader


def test_three_campaigns_started_together_exactly_one_leads(
        sim: KubeSim, make_candidate: Callable[..., Candidate]) -> None:
    """Three LeaseCampaigns started at once: one leads and keeps leading over several retry
    periods; the other two follow it and report it as holder."""
    cands = [make_candidate(f"trio-{x}", "trio") for x in "abc"]
    barrier = threading.Barrier(3)

    def go(c: Candidate) -> None:
        barrier.wait()
        c.campaign_start()

    threads = [threading.Thread(target=go, args=(c,)) for c in cands]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    first = _until(lambda: [c for c in cands if c.leading], 3, "a leader")[0]
    end = time.monotonic() + 4 * RETRY
    while time.monotonic() < end:  # several renewals: never a second leader
        now_leading = [c.ident for c in cands if c.leading]
        assert now_leading == [first.ident], f"leaders at one instant: {now_leading}"
        time.sleep(0.02)
    for c in cands:
        assert c.el.holder == first.ident, f"{c.ident} reports holder {c.el.holder!r}"
        assert c.new_leaders[-1:] == [first.ident]
        assert c.started == ([c.started[0]] if c is first else [])
    holders = {e.identity for e in _writes(sim, "trio", ok=True)}
    assert holders == {first.ident}, f"only the leader may have written: {holders}"
    assert _read(sim, "trio")["spec"]["holderIdentity"] == first.ident


def test_a_watching_follower_reports_a_new_leader_it_only_saw_on_its_watch(
        sim: KubeSim, make_candidate: Callable[..., Candidate]) -> None:
    """Three campaigns; the leader crashes (no release). One follower takes over; the other
    makes no request while the new holder renews, so it learns of the new leader only from
    its watch — and must still report it (on_new_leader), as the runtime logs it."""
    cands = [make_candidate(f"seen-{x}", "seen") for x in "abc"]
    cands[0].campaign_start(release_on_cancel=False)
    _until(lambda: cands[0].leading, 3, "seen-a to lead")
    for c in cands[1:]:
        c.campaign_start()
    _until(lambda: all(c.new_leaders[-1:] == ["seen-a"] for c in cands[1:]), 3,
           "followers to report seen-a")
    cands[0].campaign.stop(timeout=5)  # type: ignore[union-attr]
    new = _until(lambda: [c for c in cands[1:] if c.leading], LEASE + 3, "a new leader")[0]
    other = next(c for c in cands[1:] if c is not new)
    _until(lambda: other.new_leaders[-1:] == [new.ident], 2 * RETRY + 1,
           f"{other.ident} to report the new leader {new.ident}")
    assert other.new_leaders.count(new.ident) == 1, other.new_leaders


# ---------------------------------------------------------------- optimistic concurrency

def test_two_writers_at_the_same_resource_version_exactly_one_wins(
        sim: KubeSim, make_candidate: Callable[..., Candidate]) -> None:
    """Two candidates both read the same free Lease (a barrier after their GET), then both PUT
    at that resourceVersion: the audit log has one 200 and one 409; the loser is not leader
    and names the winner."""
    seed = make_candidate("occ-seed", "occ")
    assert seed.el.try_acquire_or_renew().leader
    assert seed.el.release().wrote  # now free: holder "", anyone may take it at once
    a, b = make_candidate("occ-a", "occ"), make_candidate("occ-b", "occ")
    barrier = threading.Barrier(2)
    read_rvs: list[str] = []
    for c in (a, b):
        plain_get = c.api.get

        def get_then_wait(*args: Any, _get: Callable[..., Any] = plain_get, **kw: Any) -> Any:
            lease = _get(*args, **kw)
            if len(read_rvs) < 2:  # the first read of each: wait until both have read
                read_rvs.append(lease["metadata"]["resourceVersion"])
                barrier.wait(5)
            return lease

        c.api.get = get_then_wait  # type: ignore[method-assign]
    results: dict[str, Attempt] = {}
    threads = [threading.Thread(target=lambda c=c: results.__setitem__(
        c.ident, c.el.try_acquire_or_renew())) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(set(read_rvs[:2])) == 1, f"both must have read one version: {read_rvs}"
    winners = [i for i, r in results.items() if r.leader]
    assert len(winners) == 1, f"exactly one winner expected: {results}"
    loser = "occ-b" if winners == ["occ-a"] else "occ-a"
    puts = [e for e in _writes(sim, "occ") if e.identity in ("occ-a", "occ-b")]
    codes = sorted((e.identity, e.code) for e in puts if e.verb == "update")
    assert codes == sorted([(winners[0], 200), (loser, 409)]), codes
    assert "first" in results[loser].reason, results[loser]
    assert {c.ident: c.el.holder for c in (a, b)} == {"occ-a": winners[0], "occ-b": winners[0]}
    spec = _read(sim, "occ")["spec"]
    assert spec["holderIdentity"] == winners[0]
    assert spec["leaseTransitions"] == 1  # seed's term was 0; one new term, not two


# ---------------------------------------------------------------- crash failover

def test_crash_failover_waits_one_lease_by_the_followers_clock(
        sim: KubeSim, make_candidate: Callable[..., Candidate]) -> None:
    """The leader stops renewing without releasing (a crash). The follower takes over no
    earlier than lease_duration after it last saw the record change, and no later than
    lease_duration + 2.2 x retry_period (+ latency)."""
    a, b = make_candidate("crash-a", "crash"), make_candidate("crash-b", "crash")
    a.campaign_start(release_on_cancel=False)
    _until(lambda: a.leading, 3, "crash-a to lead")
    b.campaign_start()
    time.sleep(1.0)  # b follows through a few renewals
    assert not b.leading and b.el.holder == "crash-a"
    transitions = _read(sim, "crash")["spec"]["leaseTransitions"]
    a.campaign.stop(timeout=5)  # type: ignore[union-attr]
    stopped_at = time.monotonic()
    _until(lambda: b.leading, LEASE + JITTER_FACTOR * RETRY + RETRY + 3, "crash-b to take over")
    took = b.started[0]
    last_seen = max(t for t, holder in b.changes if holder == "crash-a")
    decided = max(g for g in b.gets if g <= took)  # the GET of the winning attempt
    assert decided - last_seen >= LEASE, (
        f"took over {decided - last_seen:.3f} s after last seeing a change; must be no "
        f"earlier than lease_duration={LEASE} s")
    upper = LEASE + (1 + JITTER_FACTOR) * RETRY + SLACK
    assert took - last_seen <= upper, (
        f"took over {took - last_seen:.3f} s after last seeing a change; must be no later "
        f"than lease_duration + 2.2 x retry_period + {SLACK} s slack = {upper} s")
    a_writes = _writes(sim, "crash", "crash-a", ok=True)
    assert all(e.monotonic <= stopped_at for e in a_writes), "a stopped leader kept writing"
    assert not [e for e in _writes(sim, "crash", "crash-a") if e.monotonic > stopped_at]
    spec = _read(sim, "crash")["spec"]
    assert spec["holderIdentity"] == "crash-b"
    assert spec["leaseTransitions"] == transitions + 1
    assert parse_time(spec["acquireTime"]) > parse_time(
        a.written[-1]["spec"]["renewTime"]), "a new term starts with a new acquireTime"


# ---------------------------------------------------------------- release

def test_release_hands_over_to_a_watching_follower_within_half_a_second(
        sim: KubeSim, make_candidate: Callable[..., Candidate]) -> None:
    """Stopping a campaign with release_on_cancel writes holder "", leaseDurationSeconds 1,
    transitions unchanged; a watching follower acquires within 0.5 s of that write."""
    a, b = make_candidate("rel-a", "rel"), make_candidate("rel-b", "rel")
    a.campaign_start(release_on_cancel=True)
    _until(lambda: a.leading, 3, "rel-a to lead")
    b.campaign_start()
    time.sleep(1.0)
    held = _read(sim, "rel")["spec"]
    assert held["holderIdentity"] == "rel-a"
    a.campaign.stop(timeout=5)  # type: ignore[union-attr]
    _until(lambda: b.leading, 3, "rel-b to acquire after the release")
    released = a.written[-1]["spec"]
    assert released["holderIdentity"] == ""
    assert released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == held["leaseTransitions"], "transitions must be kept"
    assert a.stopped and a.stopped[0][0] <= time.monotonic()
    release_write = _writes(sim, "rel", "rel-a", ok=True)[-1]
    b_write = _writes(sim, "rel", "rel-b", ok=True)[0]
    gap = b_write.monotonic - release_write.monotonic
    assert 0 <= gap <= 0.5, f"rel-b acquired {gap:.3f} s after the release; must be <= 0.5 s"
    spec = _read(sim, "rel")["spec"]
    assert spec["holderIdentity"] == "rel-b"
    assert spec["leaseTransitions"] == held["leaseTransitions"] + 1
    assert spec["leaseDurationSeconds"] == LEASE


# ---------------------------------------------------------------- step-down

@pytest.mark.parametrize("action", ["refuse", "blackhole"])
def test_step_down_when_the_api_is_unreachable(
        sim: KubeSim, make_candidate: Callable[..., Candidate], action: str) -> None:
    """With every request of the leader refused (or held unanswered), its campaign reports
    the loss (on_stopped_leading) within renew_deadline + retry_period of its last successful
    renew, and does not lead anymore."""
    a = make_candidate("down-a", "down")
    a.campaign_start(release_on_cancel=False)
    _until(lambda: a.leading, 3, "down-a to lead")
    time.sleep(1.0)
    sim.faults.add({"identity": "down-a", "action": action})
    _until(lambda: a.stopped, RENEW + RETRY + 3, "on_stopped_leading")
    stopped_at, why = a.stopped[0]
    assert not a.leading
    last_ok = _writes(sim, "down", "down-a", ok=True)[-1].monotonic
    bound = RENEW + RETRY + SLACK
    assert stopped_at - last_ok <= bound, (
        f"loss reported {stopped_at - last_ok:.3f} s after the last successful renew; must be "
        f"no later than renew_deadline + retry_period + {SLACK} s slack = {bound} s")
    assert stopped_at - last_ok >= RENEW - RETRY, (
        f"loss reported {stopped_at - last_ok:.3f} s after the last renew, before the renew "
        f"deadline could have run out")
    assert "renew" in why, why


# ---------------------------------------------------------------- API load and jitter

def test_api_load_leader_one_write_per_retry_followers_quiet_and_jittered(
        sim: KubeSim, make_candidate: Callable[..., Candidate]) -> None:
    """Steady state, from the audit log: the leader makes at most one write per retry period;
    a watching follower makes at most one request per lease duration besides its watch. After
    the leader dies, the followers' takeover attempts are spread out (jitter), not fired in
    the same 10 ms. (Retry period 1 s here: a wider jitter window, 1.2 s, for the spread.)"""
    retry = 1.0
    leader = make_candidate("load-l", "load", retry=retry)
    leader.campaign_start(release_on_cancel=False)
    _until(lambda: leader.leading, 3, "load-l to lead")
    followers = [make_candidate(f"load-f{i}", "load", retry=retry) for i in range(4)]
    for f in followers:
        f.campaign_start()
    _until(lambda: all(f.el.holder == "load-l" for f in followers), 3, "followers to follow")
    time.sleep(0.5)
    seq0 = sim.audit.entries()[-1].seq
    t0 = time.monotonic()
    time.sleep(LEASE)
    window = time.monotonic() - t0
    seq1 = sim.audit.entries()[-1].seq
    steady = [e for e in sim.audit.entries(since=seq0) if e.seq <= seq1]
    lw = [e for e in steady if e.identity == "load-l" and e.write]
    max_writes = int(window / retry) + 1
    assert len(lw) <= max_writes, (
        f"leader wrote {len(lw)} times in {window:.2f} s; at most one per retry period "
        f"({retry} s) allowed: {max_writes}")
    assert len(lw) >= int(window / retry) - 2, f"leader renewed only {len(lw)} times"
    assert not [e for e in steady if e.identity == "load-l" and e.verb == "get"], \
        "steady renewals use the fast path (a PUT at the cached version, no GET)"
    for f in followers:
        reqs = [e for e in steady if e.identity == f.ident and e.verb != "watch"]
        allowed = int(window // LEASE) + 1
        assert len(reqs) <= allowed, (
            f"{f.ident} made {len(reqs)} requests besides its watch in {window:.2f} s; at most "
            f"one per lease duration ({LEASE} s) allowed: {allowed}")

    # The leader dies. So that every follower's first takeover attempt shows in the log
    # (the first winner would otherwise silence the rest through their watch), their
    # takeover writes fail for a while; then one of them wins.
    fault = sim.faults.add({"identity": "load-f*", "action": "error", "code": 500,
                            "verbs": ["update"]})
    leader.campaign.stop(timeout=5)  # type: ignore[union-attr]
    last_write = _writes(sim, "load", "load-l", ok=True)[-1]
    _until(lambda: all(sim.audit.entries(since=last_write.seq, identity=f.ident)
                       for f in followers), LEASE + 2 * retry + 3, "every follower to try")
    sim.faults.remove(fault.id)
    _until(lambda: any(f.leading for f in followers), 3 * retry + 3, "a new leader")
    time.sleep(0.3)
    firsts = []
    for f in followers:
        after = [e for e in sim.audit.entries(since=last_write.seq, identity=f.ident)
                 if e.verb != "watch"]
        assert after, f"{f.ident} never tried to take over"
        firsts.append(after[0].monotonic)
        assert after[0].monotonic - last_write.monotonic >= LEASE - 0.05, (
            f"{f.ident} tried {after[0].monotonic - last_write.monotonic:.3f} s after the last "
            f"renewal; no earlier than lease_duration={LEASE} s (audit times are end of "
            f"request, 50 ms tolerance)")
    firsts.sort()
    crowd = max(sum(1 for t in firsts if s <= t < s + 0.010) for s in firsts)
    assert crowd <= 2, (
        f"{crowd} of {len(firsts)} followers fired within 10 ms (attempts at "
        f"{[round(t - firsts[0], 4) for t in firsts]} s): attempts must be jittered")
    assert firsts[-1] - firsts[0] >= 0.010, "followers fired in lockstep"
    assert sum(f.leading for f in followers) == 1


# ---------------------------------------------------------------- kubernetes.leaderelection

class _Stopped(Exception):
    """Raised from their lock to end the package's otherwise endless election loop."""


class _TheirLock(LeaseLock):
    """The package's LeaseLock; `stop` ends its endless loop."""

    def __init__(self, name: str, namespace: str, identity: str) -> None:
        super().__init__(name, namespace, identity)
        self.stop = threading.Event()

    def get(self, name: str, namespace: str) -> Any:
        if self.stop.is_set():
            raise _Stopped()
        return super().get(name, namespace)


def _their_lock(sim: KubeSim, tmp_path: Path, name: str, ident: str) -> _TheirLock:
    """A LeaseLock on the global default client pointed at kubesim (token `ident`); the
    global default configuration is restored at once (the lock keeps its own client)."""
    saved = client.Configuration._default
    path = sim.write_kubeconfig(tmp_path / f"kubeconfig-{ident}", token=ident)
    try:
        config.load_kube_config(config_file=str(path))
        return _TheirLock(name, NS, ident)
    finally:
        client.Configuration.set_default(saved)


def test_their_lease_lock_reads_our_record(
        sim: KubeSim, make_candidate: Callable[..., Candidate], tmp_path: Path) -> None:
    """A Lease written by our elector is read by kubernetes.leaderelection's LeaseLock.get
    with the right holder, duration and times."""
    ours = make_candidate("compat-ours", "compat-read")
    assert ours.el.try_acquire_or_renew().leader
    assert ours.el.try_acquire_or_renew().leader  # a renewal: acquireTime != renewTime
    spec = _read(sim, "compat-read")["spec"]
    assert spec["acquireTime"] != spec["renewTime"]
    lock = _their_lock(sim, tmp_path, "compat-read", "compat-theirs")
    ok, record = lock.get("compat-read", NS)
    assert ok, record
    assert record.holder_identity == "compat-ours"
    assert record.lease_duration == str(LEASE)

    def local(stamp: str) -> str:  # their record keeps naive local time, as str(datetime)
        return str(parse_time(stamp).astimezone().replace(tzinfo=None))

    assert record.acquire_time == local(spec["acquireTime"])
    assert record.renew_time == local(spec["renewTime"])
    assert lock.api_instance.api_client.configuration.host == sim.url


def test_ours_and_theirs_competing_never_both_lead(
        sim: KubeSim, make_candidate: Callable[..., Candidate], tmp_path: Path) -> None:
    """Our LeaseCampaign and a kubernetes.leaderelection candidate compete for one Lease with
    the same lease duration. Leadership moves both ways (an injected outage makes the holder
    step down); sampled every 10 ms, the two never lead at once, and in the audit log each
    takeover comes a full lease duration after the previous holder's last renewal."""
    name = "compat-race"
    theirs_leading = threading.Event()
    theirs_terms: list[str] = []
    locks: list[_TheirLock] = []

    def start_theirs() -> threading.Thread:
        lock = _their_lock(sim, tmp_path, name, "compat-theirs")
        locks.append(lock)
        # their leader stops acting by last renew + retry + renew_deadline = 2.5 s < lease 3 s
        cfg = electionconfig.Config(
            lock, lease_duration=LEASE, renew_deadline=1.5, retry_period=1,
            onstarted_leading=lambda: (theirs_leading.set(), theirs_terms.append("start")),
            onstopped_leading=lambda: (theirs_leading.clear(), theirs_terms.append("stop")))
        election = leaderelection.LeaderElection(cfg)

        def run() -> None:
            with contextlib.suppress(_Stopped):
                election.run()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    both: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            if theirs_leading.is_set() and ours.leading:
                both.append(time.monotonic())
            time.sleep(0.01)

    ours = make_candidate("compat-ours", name)
    sampler = threading.Thread(target=sample, daemon=True)
    try:
        start_theirs()
        _until(theirs_leading.is_set, 3, "their candidate to lead")
        ours.campaign_start(release_on_cancel=False)
        sampler.start()
        time.sleep(1.2)
        assert not ours.leading and ours.el.holder == "compat-theirs"
        # their outage (500s, which their lock handles): they step down, we take over
        fault = sim.faults.add({"identity": "token:compat-theirs", "action": "error",
                                "code": 500})
        _until(lambda: ours.leading, LEASE + 4, "our candidate to take over")
        assert theirs_terms == ["start", "stop"]
        sim.faults.remove(fault.id)
        locks[0].stop.set()
        # a fresh run of theirs follows us; then our outage hands the lease back to them
        start_theirs()
        time.sleep(1.2)
        assert ours.leading and not theirs_leading.is_set()
        sim.faults.add({"identity": "compat-ours", "action": "refuse"})
        _until(theirs_leading.is_set, LEASE + 5, "their candidate to take over again")
        time.sleep(0.3)
    finally:
        sampling.set()
        sim.faults.clear()
        for lock in locks:
            lock.stop.set()
    assert not both, f"both candidates led at {len(both)} sampled instants"
    assert ours.stopped, "our campaign must have reported its loss"
    terms: list[tuple[str, float, float]] = []  # (identity, first write, last write)
    for e in _writes(sim, name, ok=True):
        if terms and terms[-1][0] == e.identity:
            terms[-1] = (e.identity, terms[-1][1], e.monotonic)
        else:
            terms.append((e.identity, e.monotonic, e.monotonic))
    assert [t[0] for t in terms] == ["token:compat-theirs", "compat-ours",
                                     "token:compat-theirs"], terms
    for prev, nxt in zip(terms, terms[1:], strict=False):
        gap = nxt[1] - prev[2]
        assert gap >= LEASE - 0.05, (
            f"{nxt[0]} took over {gap:.3f} s after {prev[0]}'s last renewal; their holder "
            f"intervals overlap unless it is no earlier than lease_duration={LEASE} s (audit "
            f"times are end of request, 50 ms tolerance)")
