"""The Lease election rules (plugins/module_utils/lease.py, kube.py), deterministically.

Everything runs against an in-memory `LeaseAPI` with real optimistic-concurrency
semantics (resourceVersion, 409 on a stale PUT or a second create, None on 404) and
injected clocks: a monotonic fake advanced by hand, a wall clock with a settable offset,
a `sleep` that only advances the fake clock, and a scripted `rng`. No network, no real
sleeping.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import urllib3
from kubernetes import client as kclient
from kubernetes.client.rest import ApiException

from ansible_collections.election.kubernetes.plugins.module_utils import kube, lease

NS = "election"
NAME = "lock"
SERVER = "https://10.0.0.1:6443"
MICRO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
BASE_WALL = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


# ---------------------------------------------------------------- fakes


class Clock:
    """A monotonic clock that only moves when told to.

    It starts small so that stamps saved by ObservationStore (which refuses stamps later
    than the real time.monotonic()) stay in the past of the real clock."""

    def __init__(self, t: float = 10.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Wall:
    """One host's wall clock: the shared fake monotonic time plus this host's offset."""

    def __init__(self, clock: Clock, offset: timedelta = timedelta(0),
                 tz: timezone = UTC) -> None:
        self.clock, self.offset, self.tz = clock, offset, tz

    def __call__(self) -> datetime:
        return (BASE_WALL + self.offset + timedelta(seconds=self.clock.t)).astimezone(self.tz)


class FakeLeaseAPI:
    """Leases in a dict, with the API server's concurrency rules."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 100
        self.calls: list[str] = []
        self.writes = 0
        self.fail: set[str] = set()  # verbs that raise ApiFailure ("get", "create", ...)
        self.conflicts = 0  # the next N replaces get 409 (an in-flight write of ours)
        self.after_get: Callable[[], None] | None = None  # runs once, after a get's read
        self.max_calls = 10_000  # a hot loop fails the test instead of hanging it

    # -- helpers for tests
    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def put(self, holder: str, duration: int = 15, renew: datetime | None = None,
            transitions: int = 0, name: str = NAME) -> dict[str, Any]:
        """Write a record as some other host would (no call counted)."""
        stamp = lease.format_micro(renew or BASE_WALL)
        obj = self.objects.get((NS, name)) or {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": NS, "uid": "uid-1"}}
        obj = copy.deepcopy(obj)
        obj["spec"] = {"holderIdentity": holder, "leaseDurationSeconds": duration,
                       "acquireTime": stamp, "renewTime": stamp,
                       "leaseTransitions": transitions}
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[(NS, name)] = obj
        return obj

    def touch(self, name: str = NAME) -> None:
        """Someone else changes the metadata only (a label): new resourceVersion."""
        obj = self.objects[(NS, name)]
        obj["metadata"].setdefault("labels", {})["touched"] = "yes"
        obj["metadata"]["resourceVersion"] = self._next_rv()

    def spec(self, name: str = NAME) -> dict[str, Any]:
        return self.objects[(NS, name)]["spec"]

    # -- LeaseAPI
    def _call(self, verb: str) -> None:
        self.calls.append(verb)
        if len(self.calls) > self.max_calls:
            raise AssertionError(f"hot loop: more than {self.max_calls} API calls")
        if verb in self.fail:
            raise lease.ApiFailure(f"cannot {verb} leases.coordination.k8s.io \"{NAME}\": "
                                   f"the Kubernetes API at {SERVER} is unreachable "
                                   f"(connection refused)")

    def get(self, namespace: str, name: str, timeout: float) -> dict[str, Any] | None:
        assert timeout > 0
        self._call("get")
        obj = self.objects.get((namespace, name))
        result = copy.deepcopy(obj) if obj is not None else None
        hook, self.after_get = self.after_get, None
        if hook is not None:
            hook()  # another client acts between our read and our write
        return result

    def create(self, namespace: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert timeout > 0
        self._call("create")
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise lease.LostRace("leases.coordination.k8s.io already exists")
        assert "resourceVersion" not in body["metadata"]
        obj = copy.deepcopy(body)
        obj["metadata"].update(resourceVersion=self._next_rv(), uid="uid-1")
        self.objects[key] = obj
        self.writes += 1
        return copy.deepcopy(obj)

    def replace(self, namespace: str, name: str, body: dict[str, Any], timeout: float
                ) -> dict[str, Any]:
        assert timeout > 0
        self._call("replace")
        assert body["metadata"]["name"] == name
        if self.conflicts > 0:
            self.conflicts -= 1
            self.objects[(namespace, name)]["metadata"]["resourceVersion"] = self._next_rv()
            raise lease.LostRace("the object has been modified")
        current = self.objects.get((namespace, name))
        if current is None:
            raise lease.ApiFailure("not found", 404)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise lease.LostRace("the object has been modified; please apply your changes "
                                 "to the latest version and try again")
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[(namespace, name)] = obj
        self.writes += 1
        return copy.deepcopy(obj)


def cfg(identity: str, lease_duration: float = 15, renew_deadline: float = 10,
        retry_period: float = 2, **kw: Any) -> lease.ElectionConfig:
    return lease.ElectionConfig(NAME, NS, identity, lease_duration, renew_deadline,
                                retry_period, **kw)


def elector(identity: str, api: FakeLeaseAPI, clock: Clock, wall: Wall | None = None,
            **kw: Any) -> lease.LeaseElector:
    config = kw.pop("config", None) or cfg(identity)
    return lease.LeaseElector(config, api, clock=clock, wall=wall or Wall(clock), **kw)


def cycle_rng(*values: float) -> Callable[[], float]:
    it = itertools.cycle(values)
    return lambda: next(it)


class Sleeper:
    """`sleep=` for elect_once: advances the fake clock and records every sleep; `hook`
    runs after each sleep (another host acting meanwhile)."""

    def __init__(self, clock: Clock, hook: Callable[[], None] | None = None) -> None:
        self.clock, self.hook, self.sleeps = clock, hook, []

    def __call__(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        if self.hook is not None:
            self.hook()


@pytest.fixture
def api() -> FakeLeaseAPI:
    return FakeLeaseAPI()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def boot(tmp_path, monkeypatch) -> Any:
    """A boot id file of our own (the store refuses observations from another boot)."""
    path = tmp_path / "boot_id"
    path.write_text("boot-1\n")
    monkeypatch.setattr(lease, "BOOT_ID_FILE", str(path))
    return path


# ---------------------------------------------------------------- validation


def test_defaults_15_10_2_are_accepted():
    config = lease.ElectionConfig(NAME, "default", "host-a", 15, 10, 2)
    assert config.validate() is config
    assert config.request_timeout == 5  # client-go: max(1 s, renewDeadline / 2)
    assert cfg("a", 15, 10, 2, clock_skew_margin=0).validate()
    assert cfg("a", 2, 1.5, 1).validate()  # the bounds are strict, not the values
    assert lease.ElectionConfig("a.b-c.d", "kube-system", "x", 15, 10, 2).validate()


@pytest.mark.parametrize("kwargs, message", [
    ({"lease_duration": 10, "renew_deadline": 10},
     "lease_duration (10) must be greater than renew_deadline (10)"),
    ({"lease_duration": 8, "renew_deadline": 10},
     "lease_duration (8) must be greater than renew_deadline (10)"),
    ({"renew_deadline": 2.4, "retry_period": 2},
     "renew_deadline (2.4) must be greater than 1.2 x retry_period (2) = 2.4"),
    ({"renew_deadline": 3, "retry_period": 3},
     "renew_deadline (3) must be greater than 1.2 x retry_period (3)"),
    ({"lease_duration": 0}, "lease_duration must be greater than 0, got 0"),
    ({"renew_deadline": -1}, "renew_deadline must be greater than 0, got -1"),
    ({"retry_period": 0}, "retry_period must be greater than 0, got 0"),
    ({"retry_period": -0.5}, "retry_period must be greater than 0"),
    ({"lease_duration": 15.5}, "lease_duration must be a whole number of seconds"),
    ({"lease_duration": "15"}, "lease_duration must be a number of seconds, got '15'"),
    ({"renew_deadline": True}, "renew_deadline must be a number of seconds, got True"),
    ({"retry_period": None}, "retry_period must be a number of seconds, got None"),
    ({"identity": ""}, "identity must not be empty"),
    ({"identity": "   "}, "identity must not be empty"),
    ({"name": "Lock"}, "name 'Lock' is not a valid Lease name"),
    ({"name": "lock_a"}, "name 'lock_a' is not a valid Lease name"),
    ({"name": "-lock"}, "is not a valid Lease name"),
    ({"name": "lock."}, "is not a valid Lease name"),
    ({"name": ""}, "is not a valid Lease name"),
    ({"name": "a" * 254}, "is not a valid Lease name"),
    ({"namespace": "Election"}, "namespace 'Election' is not a valid namespace name"),
    ({"namespace": "a.b"}, "is not a valid namespace name"),
    ({"namespace": "a" * 64}, "is not a valid namespace name"),
    ({"namespace": ""}, "is not a valid namespace name"),
    ({"clock_skew_margin": -1}, "clock_skew_margin must be a number of seconds >= 0, got -1"),
    ({"clock_skew_margin": "5"}, "clock_skew_margin must be a number of seconds >= 0"),
])
def test_invalid_config_names_the_rule(kwargs, message):
    values = {"name": NAME, "namespace": NS, "identity": "a", "lease_duration": 15,
              "renew_deadline": 10, "retry_period": 2}
    values.update(kwargs)
    with pytest.raises(lease.ConfigError) as err:
        lease.ElectionConfig(**values).validate()
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)  # a typed exception, not sys.exit


@pytest.mark.parametrize("kwargs", [
    {"lease_duration": math.inf}, {"lease_duration": math.nan},
    {"renew_deadline": math.nan}, {"retry_period": math.nan},
    {"renew_deadline": math.inf}, {"clock_skew_margin": math.nan},
])
def test_non_finite_values_are_rejected_with_a_config_error(kwargs):
    values = {"lease_duration": 15, "renew_deadline": 10, "retry_period": 2}
    values.update(kwargs)
    with pytest.raises(lease.ConfigError, match="finite|number of seconds"):
        lease.ElectionConfig(NAME, NS, "a", **values).validate()


def test_validation_reports_one_rule_in_a_fixed_order():
    # everything is wrong: the positivity rule comes first and is the only message
    bad = lease.ElectionConfig("Bad_Name", "Bad NS", "", -1, 0, 0, clock_skew_margin=-3)
    with pytest.raises(lease.ConfigError) as err:
        bad.validate()
    assert str(err.value) == "lease_duration must be greater than 0, got -1"
    # then the duration rules, in client-go's order
    with pytest.raises(lease.ConfigError) as err:
        lease.ElectionConfig("Bad_Name", "Bad NS", "", 10, 10, 9).validate()
    assert str(err.value) == "lease_duration (10) must be greater than renew_deadline (10)"
    with pytest.raises(lease.ConfigError) as err:
        lease.ElectionConfig("Bad_Name", "Bad NS", "", 15, 10, 9).validate()
    assert str(err.value).startswith("renew_deadline (10) must be greater than 1.2 x")
    # then identity, name, namespace, margin
    with pytest.raises(lease.ConfigError, match="^identity must not be empty$"):
        lease.ElectionConfig("Bad_Name", "Bad NS", "", 15, 10, 2, -3).validate()
    with pytest.raises(lease.ConfigError, match="^name 'Bad_Name'"):
        lease.ElectionConfig("Bad_Name", "Bad NS", "a", 15, 10, 2, -3).validate()
    with pytest.raises(lease.ConfigError, match="^namespace 'Bad NS'"):
        lease.ElectionConfig(NAME, "Bad NS", "a", 15, 10, 2, -3).validate()
    with pytest.raises(lease.ConfigError, match="^clock_skew_margin"):
        lease.ElectionConfig(NAME, NS, "a", 15, 10, 2, -3).validate()


def test_elector_and_elect_once_refuse_an_invalid_config(api, clock):
    with pytest.raises(lease.ConfigError, match="renew_deadline"):
        lease.LeaseElector(cfg("a", 15, 2, 2), api, clock=clock)
    with pytest.raises(lease.ConfigError, match="identity"):
        lease.elect_once(cfg(""), api, SERVER, clock=clock, sleep=Sleeper(clock))
    assert api.calls == []


# ---------------------------------------------------------------- acquiring a new lease


def test_first_candidate_creates_a_go_compatible_record(api, clock):
    # the host's wall clock is in +02:00: the record must still be UTC with a Z
    wall = Wall(clock, tz=timezone(timedelta(hours=2)))
    a = elector("a", api, clock, wall)
    att = a.try_acquire_or_renew()
    assert (att.leader, att.wrote, att.acquired) == (True, True, True)
    assert att.reason == "created the lease"
    assert api.calls == ["get", "create"]
    obj = api.objects[(NS, NAME)]
    assert obj["apiVersion"] == "coordination.k8s.io/v1" and obj["kind"] == "Lease"
    assert obj["metadata"]["name"] == NAME and obj["metadata"]["namespace"] == NS
    spec = obj["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15 and type(spec["leaseDurationSeconds"]) is int
    assert spec["leaseTransitions"] == 0 and type(spec["leaseTransitions"]) is int
    assert MICRO.match(spec["acquireTime"]) and MICRO.match(spec["renewTime"])
    assert spec["acquireTime"] == spec["renewTime"] == "2026-03-01T12:00:10.000000Z"
    assert a.is_leader and a.holder == "a"
    assert a.remaining() == 15


def test_microtime_keeps_microseconds_and_parses_back():
    t = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert lease.format_micro(t) == "2026-03-01T17:00:00.123456Z"
    assert lease.parse_time("2026-03-01T17:00:00.123456Z") == t
    assert lease.parse_time("2026-03-01T17:00:00Z") == t.replace(microsecond=0)
    # nanoseconds (another client's RFC3339Nano) are cut to microseconds
    assert lease.parse_time("2026-03-01T17:00:00.123456789Z") == t
    assert lease.parse_time("2026-03-01T12:00:00.123456-05:00") == t
    assert lease.parse_time("") is None and lease.parse_time("yesterday") is None


def test_record_round_trips_through_the_lease_spec():
    spec = {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 3,
            "acquireTime": "2026-03-01T12:00:00.000000Z",
            "renewTime": "2026-03-01T12:00:08.500000Z"}
    record = lease.LeaseRecord.from_lease({"spec": spec})
    assert record == lease.LeaseRecord("a", 15, spec["acquireTime"], spec["renewTime"], 3)
    assert record.to_spec() == spec
    # an empty Lease (created by kubectl, say) is a free one
    assert lease.LeaseRecord.from_lease({"metadata": {}}) == lease.LeaseRecord()
    assert lease.LeaseRecord.from_lease(None).holder == ""


def test_second_candidate_is_refused_while_the_lease_is_valid_and_told_the_holder(api, clock):
    a, b = elector("a", api, clock), elector("b", api, clock)
    a.try_acquire_or_renew()
    clock.advance(3)
    writes = api.writes
    att = b.try_acquire_or_renew()
    assert (att.leader, att.wrote, att.acquired, att.error) == (False, False, False, "")
    assert att.reason == "held by a; expires in 15.0 s by this host's observation"
    assert b.holder == "a" and not b.is_leader
    assert b.remaining() == 15  # B's own observation started now, not at A's renewTime
    assert api.writes == writes
    assert api.spec()["holderIdentity"] == "a"


# ---------------------------------------------------------------- expiry by local observation


def test_takeover_waits_for_the_records_duration_not_the_followers_config(api, clock):
    a = elector("a", api, clock)  # writes leaseDurationSeconds 15
    b = elector("b", api, clock, config=cfg("b", 40, 30, 2))  # would wait 40 by itself
    a.try_acquire_or_renew()
    first = clock()
    assert not b.try_acquire_or_renew().leader
    clock.t = first + 14.999
    att = b.try_acquire_or_renew()
    assert not att.leader and "expires in 0.0 s" in att.reason
    clock.t = first + 15
    att = b.try_acquire_or_renew()
    assert att.leader and att.acquired and att.wrote
    assert att.reason == "took over from a, whose lease expired"
    spec = api.spec()
    assert spec["holderIdentity"] == "b"
    assert spec["leaseDurationSeconds"] == 40  # the new holder writes its own duration
    assert spec["leaseTransitions"] == 1


def test_a_longer_record_duration_makes_the_follower_wait_longer(api, clock):
    api.put("a", duration=60)
    b = elector("b", api, clock)  # own config: 15
    first = clock()
    b.try_acquire_or_renew()
    clock.t = first + 59.9
    assert not b.try_acquire_or_renew().leader
    clock.t = first + 60
    assert b.try_acquire_or_renew().leader


def test_a_renewal_by_the_leader_resets_the_followers_observation(api, clock):
    a, b = elector("a", api, clock), elector("b", api, clock)
    a.try_acquire_or_renew()  # t=10
    b.try_acquire_or_renew()  # B first sees the record at 10
    clock.t = 20
    assert a.try_acquire_or_renew().reason == "renewed"
    clock.t = 26  # 16 s after B's first observation, but the record changed
    att = b.try_acquire_or_renew()
    assert not att.leader and b.observed_time == 26 and b.remaining() == 15
    clock.t = 40.9
    assert not b.try_acquire_or_renew().leader
    clock.t = 41
    assert b.try_acquire_or_renew().leader


def test_a_metadata_only_change_does_not_reset_the_observation(api, clock):
    a, b = elector("a", api, clock), elector("b", api, clock)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    clock.advance(10)
    api.touch()  # a label, not the record: A is not proven alive by it
    assert not b.try_acquire_or_renew().leader
    assert b.observed_time == 10
    clock.advance(5)
    assert b.try_acquire_or_renew().leader


@pytest.mark.parametrize("leader_offset, follower_offset", [
    (-3 * HOUR, timedelta(0)),  # the record's renewTime looks hours old
    (-3 * HOUR, HOUR),
    (timedelta(0), HOUR),  # the follower's clock is an hour ahead
    (timedelta(0), -HOUR),  # ... or an hour behind
    (HOUR, -HOUR),  # renewTime looks two hours in the future
])
def test_wall_clock_offsets_neither_advance_nor_delay_a_takeover(api, clock, leader_offset,
                                                                 follower_offset):
    a = elector("a", api, clock, Wall(clock, leader_offset))
    b_wall = Wall(clock, follower_offset)
    b = elector("b", api, clock, b_wall)
    a.try_acquire_or_renew()
    clock.advance(1)
    first = clock()
    for step in (0, 5, 10, 14.99):
        clock.t = first + step
        assert not b.try_acquire_or_renew().leader, f"took over after {step} s"
    b_wall.offset += 2 * HOUR  # even a step of the follower's wall clock changes nothing
    clock.t = first + 14.999
    assert not b.try_acquire_or_renew().leader
    clock.t = first + 15
    att = b.try_acquire_or_renew()
    assert att.leader and att.acquired
    # the new record carries the follower's own wall time
    assert api.spec()["renewTime"] == lease.format_micro(b_wall())


# ---------------------------------------------------------------- clock_skew_margin (opt-in)


def test_skew_margin_takes_over_a_stale_record_without_waiting(api, clock):
    wall = Wall(clock)
    api.put("dead", duration=15, renew=wall() - timedelta(seconds=15 + 5 + 0.5))
    b = elector("b", api, clock, wall, config=cfg("b", clock_skew_margin=5))
    att = b.try_acquire_or_renew()
    assert att.leader and att.acquired
    assert att.reason == "took over from dead, whose lease expired"
    assert api.spec()["leaseTransitions"] == 1


def test_skew_margin_still_waits_for_a_record_within_duration_plus_margin(api, clock):
    wall = Wall(clock)
    api.put("alive", duration=15, renew=wall() - timedelta(seconds=15 + 5 - 0.5))
    b = elector("b", api, clock, wall, config=cfg("b", clock_skew_margin=5))
    assert not b.try_acquire_or_renew().leader
    clock.advance(0.4)  # renewTime now 19.9 s old: still inside duration + margin
    assert not b.try_acquire_or_renew().leader
    clock.advance(0.2)  # 20.1 s old
    assert b.try_acquire_or_renew().leader


def test_without_skew_margin_an_old_renew_time_is_never_trusted(api, clock):
    wall = Wall(clock)
    api.put("dead", duration=15, renew=wall() - timedelta(hours=5))
    b = elector("b", api, clock, wall)
    first = clock()
    for step in (0, 7, 14.9):
        clock.t = first + step
        assert not b.try_acquire_or_renew().leader
    clock.t = first + 15
    assert b.try_acquire_or_renew().leader


# ---------------------------------------------------------------- record bookkeeping


def test_transitions_count_holder_changes_and_acquire_time_is_kept_during_a_term(api, clock):
    a, b = elector("a", api, clock), elector("b", api, clock)
    a.try_acquire_or_renew()
    acquired = api.spec()["acquireTime"]
    renews = [api.spec()["renewTime"]]
    for _ in range(4):
        clock.advance(2)
        assert a.try_acquire_or_renew().reason == "renewed"
        assert api.spec()["acquireTime"] == acquired
        assert api.spec()["leaseTransitions"] == 0
        renews.append(api.spec()["renewTime"])
    assert renews == sorted(renews) and len(set(renews)) == len(renews)
    # B takes over after A stopped renewing: +1, new acquireTime
    b.try_acquire_or_renew()
    clock.advance(15)
    assert b.try_acquire_or_renew().acquired
    assert api.spec()["leaseTransitions"] == 1
    assert api.spec()["acquireTime"] == api.spec()["renewTime"] != acquired
    b_acquired = api.spec()["acquireTime"]
    clock.advance(2)
    assert b.try_acquire_or_renew().reason == "renewed"
    assert api.spec()["leaseTransitions"] == 1 and api.spec()["acquireTime"] == b_acquired
    # B releases: unchanged; A takes the free lease: +1
    assert b.release().wrote
    assert api.spec()["leaseTransitions"] == 1
    att = a.try_acquire_or_renew()
    assert att.acquired and att.reason == "acquired a free lease"
    assert api.spec()["leaseTransitions"] == 2


def test_leader_renews_with_a_single_put_while_its_lease_is_valid(api, clock):
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    for _ in range(3):
        api.calls.clear()
        clock.advance(2)
        att = a.try_acquire_or_renew()
        assert att.leader and att.wrote and att.reason == "renewed"
        assert api.calls == ["replace"]  # no GET


def test_fast_path_conflict_falls_back_to_get_and_put(api, clock):
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    acquired = api.spec()["acquireTime"]
    api.touch()  # someone labels the Lease: A's cached resourceVersion is stale
    api.calls.clear()
    clock.advance(2)
    att = a.try_acquire_or_renew()
    assert att.leader and att.wrote and not att.acquired
    assert att.reason == "renewed (slow path)"
    assert api.calls == ["replace", "get", "replace"]
    obj = api.objects[(NS, NAME)]
    assert obj["metadata"]["labels"] == {"touched": "yes"}  # their change is kept
    assert obj["spec"]["acquireTime"] == acquired and obj["spec"]["leaseTransitions"] == 0
    # and the next renewal is a single PUT again
    api.calls.clear()
    clock.advance(2)
    a.try_acquire_or_renew()
    assert api.calls == ["replace"]


def test_a_leader_past_its_own_lease_reads_before_writing(api, clock):
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    api.calls.clear()
    clock.advance(15)  # not renewed for a whole lease: somebody may have taken it
    a.try_acquire_or_renew()
    assert api.calls[0] == "get"


def test_a_restarted_process_with_the_same_identity_waits_out_its_predecessors_term(
        api, clock):
    """The runtime (LeaseCampaign: inherit_own_record=False): a process restarted in its Pod
    keeps the Pod's name, but it must not continue its predecessor's term at once -- writes
    the predecessor sent may still be on their way to the API server. It waits for the
    record to stay unchanged for a whole lease by its own clock, then starts a new term."""
    before = elector("pod-a", api, clock)  # the process that was SIGKILLed
    assert before.try_acquire_or_renew().acquired
    acquired = api.spec()["acquireTime"]
    clock.advance(1)
    after = elector("pod-a", api, clock)
    after.inherit_own_record = False
    att = after.try_acquire_or_renew()
    assert not att.leader and not att.wrote and not after.is_leader
    assert att.reason == ("held by an earlier process of pod-a; expires in 15.0 s by this "
                          "host's observation")
    assert api.calls[-1] == "get"  # no fast path: it never held the lease itself
    clock.advance(10)
    before.try_acquire_or_renew()  # still alive after all (renews): the wait starts over
    clock.advance(10)
    assert not after.try_acquire_or_renew().leader
    clock.advance(15)  # unchanged for a whole lease
    att = after.try_acquire_or_renew()
    assert att.leader and att.acquired and att.wrote
    assert att.reason == ("took over from an earlier process of this identity, whose lease "
                          "expired")
    assert api.spec()["leaseTransitions"] == 1 and api.spec()["acquireTime"] != acquired
    clock.advance(2)
    assert after.try_acquire_or_renew().reason == "renewed"  # its own term now


def test_the_module_continues_a_record_of_its_identity_at_once(api, clock):
    """The module (default inherit_own_record=True): every task is a new process of the same
    holder, continuing its term."""
    elector("job", api, clock).try_acquire_or_renew()
    clock.advance(1)
    att = elector("job", api, clock).try_acquire_or_renew()
    assert att.leader and not att.acquired and att.reason == "renewed (slow path)"


def test_a_campaign_never_inherits_a_record_and_forgets_its_term_when_it_ends(api):
    el = lease.LeaseElector(cfg("pod-a", 3, 2, 0.5), api)  # real clocks: the campaign waits
    started = threading.Event()
    campaign = lease.LeaseCampaign(el, api, started.set, lambda why: None,
                                   release_on_cancel=False)
    assert el.inherit_own_record is False
    campaign.start()
    assert started.wait(5) and el.held and el.is_leader
    campaign.stop(timeout=5)
    # not released, so the record still names pod-a; but it is no longer this term's
    assert api.spec()["holderIdentity"] == "pod-a"
    assert not el.held and not el.is_leader


def test_a_leader_that_finds_another_holder_is_not_leader(api, clock):
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    clock.advance(20)
    api.put("b", transitions=1)  # B took over while A was paused
    att = a.try_acquire_or_renew()
    assert not att.leader and not a.is_leader and a.holder == "b"
    assert api.spec()["holderIdentity"] == "b"


# ---------------------------------------------------------------- optimistic concurrency


def test_two_candidates_writing_the_same_version_exactly_one_wins(api, clock):
    api.put("", duration=1, transitions=4)  # released: both may take it at once
    a, b = elector("a", api, clock), elector("b", api, clock)
    results: dict[str, lease.Attempt] = {}
    # B reads, writes and wins between A's read and A's write
    api.after_get = lambda: results.setdefault("b", b.try_acquire_or_renew())
    results["a"] = a.try_acquire_or_renew()
    assert results["b"].leader and results["b"].acquired
    assert not results["a"].leader and not results["a"].wrote
    assert results["a"].reason == "another candidate wrote the lease first"
    assert not results["a"].error  # losing a race is not an error
    # A read, B read and wrote, A's write got 409 (then A may read once to learn the winner)
    assert api.calls[:4] == ["get", "get", "replace", "replace"]
    assert api.writes == 1
    assert not a.is_leader and a.holder == "b"  # A reports the winner
    assert api.spec()["holderIdentity"] == "b" and api.spec()["leaseTransitions"] == 5
    # A's next attempt sees B and waits
    att = a.try_acquire_or_renew()
    assert not att.leader and att.reason.startswith("held by b")


def test_two_candidates_taking_over_an_expired_lease_exactly_one_wins(api, clock):
    api.put("dead", transitions=2)
    a, b = elector("a", api, clock), elector("b", api, clock)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    clock.advance(15)
    outcome: list[bool] = []
    api.after_get = lambda: outcome.append(a.try_acquire_or_renew().leader)
    outcome.append(b.try_acquire_or_renew().leader)
    assert sorted(outcome) == [False, True]
    assert api.spec()["leaseTransitions"] == 3


def test_two_candidates_creating_the_lease_exactly_one_wins(api, clock):
    a, b = elector("a", api, clock), elector("b", api, clock)
    results = {}
    api.after_get = lambda: results.setdefault("b", b.try_acquire_or_renew())
    results["a"] = a.try_acquire_or_renew()
    assert results["b"].leader and results["b"].reason == "created the lease"
    assert not results["a"].leader and not results["a"].error
    assert results["a"].reason == "another candidate created the lease first"
    assert api.writes == 1 and api.spec()["holderIdentity"] == "b"


# ---------------------------------------------------------------- release


def test_an_empty_holder_is_acquirable_at_once(api, clock):
    api.put("", duration=1, transitions=7)
    b = elector("b", api, clock)
    att = b.try_acquire_or_renew()
    assert att.leader and att.acquired and att.reason == "acquired a free lease"
    assert api.spec()["leaseTransitions"] == 8
    assert api.spec()["leaseDurationSeconds"] == 15


def test_release_writes_an_empty_holder_with_duration_one(api, clock):
    api.put("old", transitions=3)
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    clock.advance(15)
    a.try_acquire_or_renew()  # takes over: transitions 4
    clock.advance(1)
    att = a.release()
    assert att.wrote and not att.leader and att.reason == "released"
    spec = api.spec()
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 4
    assert spec["renewTime"] == spec["acquireTime"] == lease.format_micro(a.wall())
    assert not a.is_leader and a.holder == "" and a.remaining() == 0
    # a waiting follower takes it on its next attempt
    b = elector("b", api, clock)
    assert b.try_acquire_or_renew().reason == "acquired a free lease"


def test_release_retries_on_conflict_until_it_succeeds(api, clock):
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    api.calls.clear()
    api.conflicts = 2  # e.g. our own in-flight renewals landed first
    att = a.release()
    assert att.wrote and att.reason == "released"
    assert api.calls == ["get", "replace"] * 3
    assert api.spec()["holderIdentity"] == ""


def test_release_does_nothing_when_someone_else_holds_the_lease(api, clock):
    a, b = elector("a", api, clock), elector("b", api, clock)
    a.try_acquire_or_renew()
    writes = api.writes
    att = b.release()
    assert not att.wrote and att.reason == "not the holder (a holds it)"
    assert api.writes == writes and api.spec()["holderIdentity"] == "a"
    assert elector("c", FakeLeaseAPI(), clock).release().reason == "the lease does not exist"


def test_release_backs_off_and_gives_up_at_its_deadline_when_the_api_fails(api, clock):
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock.advance(s)

    a = elector("a", api, clock, sleep=sleep)
    a.try_acquire_or_renew()
    for verb in ("replace", "get"):
        api.fail = {verb}
        api.calls.clear()
        sleeps.clear()
        start = clock()
        att = a.release()
        assert not att.wrote and att.error and "unreachable" in att.error
        assert att.reason == ("could not release the lease" if verb == "replace"
                              else "could not read the lease")
        assert clock() - start == pytest.approx(10)  # renew_deadline
        assert sleeps and all(0 < s <= 2 for s in sleeps)  # backs off, no hot loop
        assert len(api.calls) <= 2 * 6
    assert api.spec()["holderIdentity"] == "a"


# ---------------------------------------------------------------- health check


def test_check_is_healthy_for_followers_and_fails_for_a_wedged_leader(api, clock):
    a, b = elector("a", api, clock), elector("b", api, clock)
    assert a.check(5) is None  # nothing observed yet
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    clock.advance(100)
    assert b.check(5) is None  # followers are never unhealthy
    a2 = elector("a", api, Clock())
    a2.try_acquire_or_renew()
    clock2 = a2.clock
    clock2.advance(20)  # lease_duration + tolerance, exactly: still fine
    assert a2.check(5) is None
    clock2.advance(0.5)
    message = a2.check(5)
    assert message is not None
    assert message.startswith("failed election to renew leadership on lease lock")
    assert "20.5 s" in message
    assert a2.check(30) is None  # a larger tolerance
    assert a2.try_acquire_or_renew().leader  # renewing makes it healthy again
    assert a2.check(5) is None


# ---------------------------------------------------------------- on_new_leader


def test_on_new_leader_fires_once_per_observed_holder_change(api, clock):
    seen_a: list[str] = []
    seen_b: list[str] = []
    a = elector("a", api, clock, on_new_leader=seen_a.append)
    b = elector("b", api, clock, on_new_leader=seen_b.append)
    a.try_acquire_or_renew()
    assert seen_a == ["a"]  # the first observation counts
    for _ in range(3):
        clock.advance(2)
        a.try_acquire_or_renew()
        b.try_acquire_or_renew()
    assert seen_a == ["a"] and seen_b == ["a"]  # never twice for the same holder
    a.release()
    assert seen_a == ["a", ""]  # the release is a change too
    a.release()  # nothing to do, same holder ""
    assert seen_a == ["a", ""]
    b.try_acquire_or_renew()
    assert seen_b == ["a", "b"]
    a.try_acquire_or_renew()
    a.try_acquire_or_renew()
    assert seen_a == ["a", "", "b"]


def test_on_new_leader_reports_an_empty_holder_seen_by_a_follower(api, clock):
    api.put("a")
    seen: list[str] = []
    c = elector("c", api, clock, on_new_leader=seen.append, dry_run=True)
    c.try_acquire_or_renew()
    api.put("", duration=1, transitions=0)
    c.try_acquire_or_renew()  # dry run: sees the free lease, does not take it
    c.try_acquire_or_renew()
    assert seen == ["a", ""]
    assert api.spec()["holderIdentity"] == ""


# ---------------------------------------------------------------- ObservationStore


def test_store_round_trip(tmp_path, boot):
    store = lease.ObservationStore(str(tmp_path / "state"))
    obs = lease.Observation(raw='{"holderIdentity": "a"}', resource_version="42",
                            monotonic=12.5, boot_id="boot-1")
    store.save(SERVER, NS, NAME, obs)
    assert store.load(SERVER, NS, NAME) == obs
    # one file per server/namespace/name
    assert store.load("https://other:6443", NS, NAME) is None
    assert store.load(SERVER, "other", NAME) is None
    assert store.load(SERVER, NS, "other") is None
    obs2 = lease.Observation('{"holderIdentity": "b"}', "43", 13.0, "boot-1")
    store.save(SERVER, NS, NAME, obs2)  # overwritten in place
    assert store.load(SERVER, NS, NAME) == obs2
    assert [p.name for p in (tmp_path / "state").iterdir() if p.name.startswith(".")] == []


def test_store_rejects_an_observation_from_another_boot(tmp_path, boot):
    store = lease.ObservationStore(str(tmp_path))
    store.save(SERVER, NS, NAME, lease.Observation("{}", "1", 1.0, lease.boot_id()))
    assert store.load(SERVER, NS, NAME) is not None
    boot.write_text("boot-2\n")  # the host rebooted: CLOCK_MONOTONIC restarted
    assert store.load(SERVER, NS, NAME) is None
    boot.unlink()  # no boot id at all: never trust a stamp
    store.save(SERVER, NS, NAME, lease.Observation("{}", "1", 1.0, ""))
    assert store.load(SERVER, NS, NAME) is None


def test_store_rejects_a_stamp_in_the_future_and_garbage(tmp_path, boot):
    store = lease.ObservationStore(str(tmp_path))
    store.save(SERVER, NS, NAME, lease.Observation("{}", "1", time.monotonic() + 3600,
                                                   "boot-1"))
    assert store.load(SERVER, NS, NAME) is None
    path = store._path(SERVER, NS, NAME)
    with open(path, "w") as f:
        f.write("{not json")
    assert store.load(SERVER, NS, NAME) is None
    with open(path, "w") as f:
        json.dump({"raw": "{}", "rv": "1"}, f)
    assert store.load(SERVER, NS, NAME) is None


def test_elector_observation_restores_into_a_new_elector(api, clock, boot):
    a, b = elector("a", api, clock), elector("b", api, clock)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    obs = b.observation()
    assert obs is not None and obs.monotonic == 10 and obs.boot_id == "boot-1"
    assert obs.resource_version == api.objects[(NS, NAME)]["metadata"]["resourceVersion"]
    clock.advance(15)
    b2 = elector("b", api, clock)
    b2.restore(obs)
    assert b2.holder == "a" and b2.remaining() == 0
    assert b2.try_acquire_or_renew().acquired  # expiry judged from the restored stamp


# ---------------------------------------------------------------- elect_once


def once(api: FakeLeaseAPI, clock: Clock, identity: str = "b", **kw: Any) -> dict[str, Any]:
    config = kw.pop("config", None) or cfg(identity)
    kw.setdefault("sleep", Sleeper(clock))
    kw.setdefault("rng", lambda: 0.0)
    return lease.elect_once(config, api, SERVER, clock=clock, **kw)


def test_elect_once_creates_the_lease_and_saves_its_observation(api, clock, tmp_path, boot):
    store = lease.ObservationStore(str(tmp_path))
    r = once(api, clock, "a", store=store)
    assert r["changed"] and r["is_leader"] and r["acquired"]
    assert r["holder"] == "a" and r["identity"] == "a" and r["transitions"] == 0
    assert r["attempts"] == 1 and r["waited"] == 0 and r["remaining"] == 15
    assert r["msg"] == "created the lease"
    assert r["lease"]["holder_identity"] == "a" and r["lease"]["lease_duration_seconds"] == 15
    assert r["lease"]["resource_version"] == "101"
    obs = store.load(SERVER, NS, NAME)
    assert obs is not None and obs.monotonic == clock() and obs.resource_version == "101"
    # a renewal in the next call keeps the term
    clock.advance(5)
    r = once(api, clock, "a", store=store)
    assert r["is_leader"] and r["changed"] and not r["acquired"]
    assert r["transitions"] == 0 and r["attempts"] == 1


def test_elect_once_continues_a_restored_observation_across_calls(api, clock, tmp_path, boot):
    store = lease.ObservationStore(str(tmp_path))
    once(api, clock, "a")
    clock.advance(1)
    first = clock()
    # first call of B: no observation yet, it observes for its timeout and saves it
    r = once(api, clock, store=store, timeout=1)
    assert not r["is_leader"] and r["holder"] == "a" and r["waited"] == 1
    assert store.load(SERVER, NS, NAME).monotonic == first
    # later calls judge expiry from that stamp and return at once
    clock.t = first + 10
    r = once(api, clock, store=store)
    assert not r["is_leader"] and r["attempts"] == 1 and r["waited"] == 0
    assert r["remaining"] == 5 and r["observed_for"] == 10 and not r["changed"]
    clock.t = first + 15
    r = once(api, clock, store=store)
    assert r["is_leader"] and r["acquired"] and r["changed"] and r["attempts"] == 1
    assert r["transitions"] == 1 and r["msg"] == "took over from a, whose lease expired"


def test_elect_once_restored_observation_is_reset_by_a_renewal(api, clock, tmp_path, boot):
    store = lease.ObservationStore(str(tmp_path))
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    once(api, clock, store=store, timeout=0.5)
    first = store.load(SERVER, NS, NAME).monotonic
    clock.t = first + 8
    a.try_acquire_or_renew()  # A is alive
    clock.t = first + 16  # past the old expiry, but the record changed since
    r = once(api, clock, store=store)
    assert not r["is_leader"] and r["attempts"] == 1 and r["remaining"] == 15
    clock.t = first + 31
    assert once(api, clock, store=store)["is_leader"]


def test_elect_once_without_observation_returns_when_the_holder_renews(api, clock):
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    start = clock()

    def leader_renews() -> None:
        if clock() - start >= 5 and api.spec()["renewTime"] == a.cached["spec"]["renewTime"] \
                and a.observed_time == start:
            a.try_acquire_or_renew()

    sleeper = Sleeper(clock, leader_renews)
    r = once(api, clock, sleep=sleeper, rng=cycle_rng(0.5))
    assert not r["is_leader"] and r["holder"] == "a" and not r["changed"]
    assert r["attempts"] >= 2
    assert 5 <= r["waited"] < 5 + 2 * 2.2  # right after the renewal, not a whole lease
    assert api.spec()["holderIdentity"] == "a" and api.writes == 2
    assert all(2 <= s < 4.4 for s in sleeper.sleeps)


def test_elect_once_without_observation_takes_over_a_dead_holder(api, clock):
    api.put("a", duration=15)
    writes = api.writes
    sleeper = Sleeper(clock)
    r = once(api, clock, sleep=sleeper, rng=cycle_rng(0.0, 0.9, 0.3))
    assert r["is_leader"] and r["acquired"] and r["changed"]
    assert r["msg"] == "took over from a, whose lease expired"
    assert 15 <= r["waited"] < 15 + 2.2 * 2
    assert all(2 <= s < 4.4 for s in sleeper.sleeps)
    assert api.writes == writes + 1 and api.spec()["holderIdentity"] == "b"


def test_elect_once_wait_campaigns_with_jittered_sleeps(api, clock):
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    renewals = {"left": 3}

    def leader_renews_three_times_then_dies() -> None:
        if renewals["left"] and clock() - a.observed_time >= 4:
            renewals["left"] -= 1
            assert a.try_acquire_or_renew().leader

    sleeper = Sleeper(clock, leader_renews_three_times_then_dies)
    r = once(api, clock, wait=True, sleep=sleeper, rng=cycle_rng(0.0, 0.999999, 0.5, 0.25))
    assert r["is_leader"] and r["acquired"]
    assert len(sleeper.sleeps) >= 5
    # never more than one retry period apart (a release is taken within one), jittered
    assert all(1 <= s <= 2 for s in sleeper.sleeps), sleeper.sleeps
    assert len(set(sleeper.sleeps)) > 1  # jittered, not a fixed period
    assert r["attempts"] == len(sleeper.sleeps) + 1
    # the takeover came a lease duration after the last renewal B saw, not before
    assert renewals["left"] == 0
    assert r["waited"] >= 15


def test_elect_once_timeout_bounds_the_call(api, clock):
    once(api, clock, "a")
    sleeper = Sleeper(clock)
    r = once(api, clock, wait=True, timeout=5, sleep=sleeper)
    assert r["is_leader"] is False and not r["changed"]
    assert r["waited"] == 5 and sum(sleeper.sleeps) == 5
    assert r["msg"].startswith("not the leader after waiting 5 s: held by a")
    # without wait, the in-call observation is bounded too
    r = once(api, clock, timeout=3, sleep=Sleeper(clock))
    assert r["is_leader"] is False and r["waited"] <= 3
    assert r["msg"].startswith("held by a")


def test_elect_once_check_mode_writes_nothing(api, clock, tmp_path, boot):
    store = lease.ObservationStore(str(tmp_path / "state"))
    r = once(api, clock, "a", check_mode=True, store=store)
    assert r["changed"] and r["is_leader"]
    assert r["msg"] == "would create the lease (check mode)"
    assert api.writes == 0 and api.calls == ["get"]
    assert not (tmp_path / "state").exists()  # no observation saved either
    # a free lease would be acquired
    api.put("", duration=1)
    writes = api.writes
    r = once(api, clock, "a", check_mode=True)
    assert r["changed"] and r["is_leader"]
    assert r["msg"] == "would have acquired a free lease (check mode)"
    # a lease held by someone else and valid: not leader, nothing would change
    api.put("c")
    r = once(api, clock, "a", check_mode=True, timeout=1)
    assert not r["changed"] and not r["is_leader"] and r["holder"] == "c"
    # our own lease would be renewed; releasing it would release it
    api.put("a")
    r = once(api, clock, "a", check_mode=True)
    assert r["changed"] and r["is_leader"] and "would" in r["msg"]
    r = once(api, clock, "a", check_mode=True, state="released")
    assert r["changed"] and r["released"] and not r["is_leader"]
    assert api.writes == writes
    assert api.spec()["holderIdentity"] == "a"


def test_elect_once_released(api, clock):
    once(api, clock, "a")
    r = once(api, clock, "b", state="released")
    assert not r["changed"] and not r["released"] and not r["is_leader"]
    assert r["holder"] == "a"
    r = once(api, clock, "a", state="released")
    assert r["changed"] and r["released"] and not r["is_leader"]
    assert r["holder"] == "" and r["transitions"] == 0
    assert api.spec()["holderIdentity"] == "" and api.spec()["leaseDurationSeconds"] == 1
    # the next candidate takes it in one attempt, no waiting
    r = once(api, clock, "b")
    assert r["is_leader"] and r["attempts"] == 1 and r["waited"] == 0
    assert r["transitions"] == 1


def test_elect_once_raises_when_the_api_never_answered(api, clock):
    api.fail = {"get"}
    with pytest.raises(lease.ApiFailure, match="unreachable"):
        once(api, clock)
    with pytest.raises(lease.ApiFailure, match="unreachable"):
        once(api, clock, wait=True, timeout=6)
    api.fail = {"create"}
    with pytest.raises(lease.ApiFailure, match="unreachable"):
        once(api, clock)
    api.fail = set()
    once(api, clock, "a")
    api.fail = {"get"}
    start = clock()
    with pytest.raises(lease.ApiFailure, match="unreachable"):
        once(api, clock, "a", state="released")
    assert clock() - start == pytest.approx(10)  # retried for renew_deadline, fake sleeps


def test_elect_once_after_a_successful_read_an_outage_is_not_an_exception(api, clock):
    once(api, clock, "a")

    def outage() -> None:
        api.fail = {"get", "replace", "create"}

    r = once(api, clock, wait=True, timeout=6, sleep=Sleeper(clock, outage))
    assert r["is_leader"] is False and r["holder"] == "a"
    assert r["msg"].startswith("not the leader after waiting 6 s")


def test_elect_once_losing_the_race_at_the_write_is_not_leadership(api, clock):
    """The holder's own call reads "a holds it", then loses the PUT to a takeover."""
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    b = elector("b", api, clock)
    b.try_acquire_or_renew()
    clock.advance(15)  # A paused: its lease expired for B
    api.after_get = lambda: b.try_acquire_or_renew()
    r = once(api, clock, "a")
    assert api.spec()["holderIdentity"] == "b"
    assert r["is_leader"] is False and not r["changed"]
    assert r["msg"] == "another candidate wrote the lease first"


def test_elect_once_lost_race_is_not_leadership_even_if_the_winner_is_unknown(api, clock):
    a = elector("a", api, clock)
    a.try_acquire_or_renew()
    b = elector("b", api, clock)
    b.try_acquire_or_renew()
    clock.advance(15)

    def takeover_then_reads_fail() -> None:
        assert b.try_acquire_or_renew().leader
        api.fail = {"get"}

    api.after_get = takeover_then_reads_fail
    r = once(api, clock, "a")
    assert api.spec()["holderIdentity"] == "b"
    assert r["is_leader"] is False and not r["changed"] and not r["acquired"]


# ---------------------------------------------------------------- jitter


def test_jittered_spans_retry_to_2_2_retry():
    assert lease.jittered(2, rng=lambda: 0.0) == 2
    assert lease.jittered(2, rng=lambda: 0.5) == pytest.approx(3.2)
    assert lease.jittered(2, rng=lambda: 0.999999) < 4.4
    samples = [lease.jittered(2) for _ in range(200)]
    assert all(2 <= s < 4.4 for s in samples)


# ---------------------------------------------------------------- kube: auth options


def test_resolve_auth_reads_k8s_auth_environment():
    env = {"K8S_AUTH_HOST": "https://h:6443", "K8S_AUTH_API_KEY": "tok",
           "K8S_AUTH_KUBECONFIG": "/kc", "K8S_AUTH_CONTEXT": "ctx",
           "K8S_AUTH_VERIFY_SSL": "no", "K8S_AUTH_SSL_CA_CERT": "/ca.crt",
           "K8S_AUTH_CERT_FILE": "/c.crt", "K8S_AUTH_KEY_FILE": "/c.key",
           "K8S_AUTH_PROXY": "http://proxy:3128", "K8S_AUTH_NO_PROXY": "localhost",
           "K8S_AUTH_IMPERSONATE_USER": "alice",
           "K8S_AUTH_IMPERSONATE_GROUPS": "devs,ops"}
    auth = kube.resolve_auth({}, env)
    assert auth == {"kubeconfig": "/kc", "context": "ctx", "host": "https://h:6443",
                    "api_key": "tok", "username": None, "password": None,
                    "validate_certs": False, "ca_cert": "/ca.crt", "client_cert": "/c.crt",
                    "client_key": "/c.key", "proxy": "http://proxy:3128",
                    "no_proxy": "localhost", "impersonate_user": "alice",
                    "impersonate_groups": ["devs", "ops"]}


@pytest.mark.parametrize("raw, expected", [
    ("0", False), ("false", False), ("False", False), ("NO", False), ("off", False),
    ("1", True), ("true", True), ("yes", True), ("On", True),
])
def test_resolve_auth_parses_booleans(raw, expected):
    assert kube.resolve_auth({}, {"K8S_AUTH_VALIDATE_CERTS": raw})["validate_certs"] is expected
    assert kube.resolve_auth({}, {"K8S_AUTH_VERIFY_SSL": raw})["validate_certs"] is expected


def test_resolve_auth_option_name_beats_alias_and_params_beat_environment():
    env = {"K8S_AUTH_VALIDATE_CERTS": "true", "K8S_AUTH_VERIFY_SSL": "false",
           "K8S_AUTH_CA_CERT": "/canonical", "K8S_AUTH_SSL_CA_CERT": "/alias",
           "K8S_AUTH_HOST": "https://env:6443", "K8S_AUTH_IMPERSONATE_GROUPS": "x"}
    auth = kube.resolve_auth({}, env)
    assert auth["validate_certs"] is True and auth["ca_cert"] == "/canonical"
    params = {"host": "https://param:6443", "validate_certs": False,
              "impersonate_groups": ["a"], "unrelated": 1}
    auth = kube.resolve_auth(params, env)
    assert auth["host"] == "https://param:6443"
    assert auth["validate_certs"] is False  # an explicit false is not "unset"
    assert auth["impersonate_groups"] == ["a"]
    assert "unrelated" not in auth


def test_resolve_auth_list_parsing_drops_blanks_and_spaces():
    auth = kube.resolve_auth({}, {"K8S_AUTH_IMPERSONATE_GROUPS": "devs, ops,,system:masters "})
    assert auth["impersonate_groups"] == ["devs", "ops", "system:masters"]


def test_resolve_auth_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_HOST", "https://from-env:6443")
    assert kube.resolve_auth({})["host"] == "https://from-env:6443"
    assert kube.resolve_auth({}, {})["host"] is None


# ---------------------------------------------------------------- kube: error messages

LEASE_TARGET = kube.Target("update", "leases", "coordination.k8s.io", NAME, NS)
FORBIDDEN = ('leases.coordination.k8s.io "lock" is forbidden: User '
             '"system:serviceaccount:election:runner" cannot update resource "leases" in '
             'API group "coordination.k8s.io" in the namespace "election"')


def forbidden() -> ApiException:
    e = ApiException(status=403, reason="Forbidden")
    e.body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Failure", "message": FORBIDDEN, "reason": "Forbidden",
                         "details": {"name": NAME, "group": "coordination.k8s.io",
                                     "kind": "leases"}, "code": 403})
    return e


def test_describe_error_403_names_the_verb_and_resource_to_grant():
    msg = kube.describe_error(forbidden(), LEASE_TARGET)
    assert msg.startswith('cannot update leases.coordination.k8s.io "lock" in namespace '
                          'election: forbidden')
    assert "grant verb 'update' on resource 'leases'" in msg
    assert "apiGroup coordination.k8s.io" in msg and "in namespace election" in msg
    assert msg.endswith("Server said: " + FORBIDDEN)
    # bytes bodies (as urllib3 gives them) read the same
    e = forbidden()
    e.body = e.body.encode()
    assert kube.describe_error(e, LEASE_TARGET) == msg


def test_describe_error_other_statuses():
    e = ApiException(status=401, reason="Unauthorized")
    e.body = json.dumps({"kind": "Status", "message": "Unauthorized", "code": 401})
    msg = kube.describe_error(e, LEASE_TARGET)
    assert "401 Unauthorized" in msg and "credentials" in msg
    e = ApiException(status=500, reason="Internal Server Error")
    e.body = "etcdserver: request timed out"
    msg = kube.describe_error(e, LEASE_TARGET)
    assert msg.startswith('cannot update leases.coordination.k8s.io "lock"')
    assert "500 Internal Server Error" in msg and "etcdserver: request timed out" in msg


def test_describe_error_connection_failures_name_the_host():
    refused = urllib3.exceptions.MaxRetryError(
        None, "/apis/coordination.k8s.io/v1/namespaces/election/leases/lock",
        reason=urllib3.exceptions.NewConnectionError(
            None, "Failed to establish a new connection: [Errno 111] Connection refused"))
    msg = kube.describe_error(refused, LEASE_TARGET, SERVER)
    assert SERVER in msg and "unreachable" in msg and "connection refused" in msg
    assert msg.startswith('cannot update leases.coordination.k8s.io "lock" in namespace '
                          'election')
    timed_out = urllib3.exceptions.ReadTimeoutError(None, "/apis", "Read timed out.")
    msg = kube.describe_error(timed_out, LEASE_TARGET, SERVER)
    assert "unreachable" in msg and "request timed out" in msg and SERVER in msg


class _StubCoord:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            assert kwargs["_preload_content"] is False and kwargs["_request_timeout"] == 5
            raise self.exc
        return call


def kube_api(exc: BaseException) -> lease.KubeLeaseAPI:
    conf = kclient.Configuration()
    conf.host = SERVER
    api = lease.KubeLeaseAPI(kclient.ApiClient(conf))
    api.coord = _StubCoord(exc)
    return api


def test_kube_lease_api_maps_statuses_to_the_election_outcomes():
    body = {"metadata": {"name": NAME}}
    with pytest.raises(lease.LostRace):
        kube_api(ApiException(status=409, reason="Conflict")).replace(NS, NAME, body, 5)
    with pytest.raises(lease.LostRace):
        kube_api(ApiException(status=409, reason="AlreadyExists")).create(NS, body, 5)
    assert kube_api(ApiException(status=404, reason="Not Found")).get(NS, NAME, 5) is None
    with pytest.raises(lease.ApiFailure) as err:
        kube_api(ApiException(status=404, reason="Not Found")).replace(NS, NAME, body, 5)
    assert err.value.status == 404
    with pytest.raises(lease.ApiFailure) as err:
        kube_api(forbidden()).replace(NS, NAME, body, 5)
    assert err.value.status == 403
    assert "grant verb 'update' on resource 'leases'" in str(err.value)
    with pytest.raises(lease.ApiFailure) as err:
        kube_api(ApiException(status=403, reason="Forbidden")).get(NS, NAME, 5)
    assert "grant verb 'get' on resource 'leases'" in str(err.value)
    refused = urllib3.exceptions.MaxRetryError(
        None, "/", reason=urllib3.exceptions.NewConnectionError(None, "Connection refused"))
    with pytest.raises(lease.ApiFailure) as err:
        kube_api(refused).create(NS, body, 5)
    assert err.value.status is None
    assert f"the Kubernetes API at {SERVER} is unreachable (connection refused)" in str(
        err.value)
    assert "cannot create leases.coordination.k8s.io" in str(err.value)
