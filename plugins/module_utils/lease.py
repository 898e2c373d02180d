# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Leader election with a `coordination.k8s.io/v1` Lease: the rules, once.

This is client-go's `tools/leaderelection` state machine, used by the module
`k8s_lease_elect` (one attempt or a bounded campaign per task) and, in-process, by the
election-operator runtime (`LeaseCampaign`: renew loop, watch-driven followers).

Guarantees, and what they rest on:

- Exclusivity of a *write*: every write is a PUT (or create) carrying the resourceVersion
  last read, so of two candidates that saw the same record exactly one wins; the other
  gets 409 and reports "not leader".
- Expiry is judged from *local monotonic time*: a follower notes when it last saw the
  record change (`observed_time`) and considers the lease expired only when
  `observed_time + record.leaseDurationSeconds` has passed on its own monotonic clock.
  Another machine's `renewTime` is never trusted, so wall-clock offsets between hosts do
  not matter. Clock *rate* differences do: the scheme is safe while a follower's clock
  runs no faster than leaseDuration/renewDeadline times the leader's (1.5x at 15/10/2).
- A leader that cannot renew gives up at `last successful renew + renew_deadline`; every
  request's timeout is capped so that this deadline holds even when a request hangs.
- Not guaranteed by the lease alone: that a paused or partitioned old leader has stopped
  acting (no fencing). The runtime adds fencing on top (it kills in-flight work at the
  local deadline); a playbook guarded by the module must keep its work shorter than the
  lease or re-check leadership.

Module calls are separate processes, so they persist the observation (record,
resourceVersion, host boot id and CLOCK_MONOTONIC stamp) in a small state file: the next
call on the same host continues client-go's skew-immune expiry. With no usable
observation a call observes the lease itself before taking it over.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ansible_collections.election.kubernetes.plugins.module_utils.kube import (
    ApiFailure,
    LostRace,
    Target,
    raw_call,
)

JITTER_FACTOR = 1.2
DEFAULT_LEASE_DURATION = 15
DEFAULT_RENEW_DEADLINE = 10
DEFAULT_RETRY_PERIOD = 2
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


class ConfigError(ValueError):
    """An invalid election configuration; the message names the rule that failed."""


# ---------------------------------------------------------------- configuration

@dataclass(frozen=True)
class ElectionConfig:
    name: str
    namespace: str
    identity: str
    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD
    # Opt-in: trust the record's renewTime when it is older than leaseDuration + margin.
    clock_skew_margin: float | None = None

    def validate(self) -> ElectionConfig:
        """Raise ConfigError naming the first rule broken (client-go's rules)."""
        for field_name in ("lease_duration", "renew_deadline", "retry_period"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{field_name} must be a number of seconds, got "
                                  f"{value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{field_name} must be a finite number of seconds, got "
                                  f"{value}")
            if value <= 0:
                raise ConfigError(f"{field_name} must be greater than 0, got {value}")
        if float(self.lease_duration) != int(self.lease_duration):
            raise ConfigError(f"lease_duration must be a whole number of seconds (the Lease "
                              f"stores leaseDurationSeconds as an integer), got "
                              f"{self.lease_duration}")
        if self.lease_duration <= self.renew_deadline:
            raise ConfigError(f"lease_duration ({_num(self.lease_duration)}) must be greater "
                              f"than renew_deadline ({_num(self.renew_deadline)})")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ConfigError(f"renew_deadline ({_num(self.renew_deadline)}) must be greater "
                              f"than {JITTER_FACTOR} x retry_period "
                              f"({_num(self.retry_period)}) = "
                              f"{_num(round(JITTER_FACTOR * self.retry_period, 6))}")
        if not isinstance(self.identity, str) or not self.identity.strip():
            raise ConfigError("identity must not be empty")
        if not isinstance(self.name, str) or len(self.name) > 253 or \
                not DNS1123_SUBDOMAIN.match(self.name):
            raise ConfigError(f"name {self.name!r} is not a valid Lease name: a lowercase "
                              f"RFC 1123 subdomain (lower case letters, digits, '-' and '.', "
                              f"starting and ending with a letter or digit, at most 253 "
                              f"characters)")
        if not isinstance(self.namespace, str) or len(self.namespace) > 63 or \
                not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", self.namespace):
            raise ConfigError(f"namespace {self.namespace!r} is not a valid namespace name: "
                              f"a lowercase RFC 1123 label of at most 63 characters")
        if self.clock_skew_margin is not None and (
                isinstance(self.clock_skew_margin, bool)
                or not isinstance(self.clock_skew_margin, (int, float))
                or not math.isfinite(self.clock_skew_margin)
                or self.clock_skew_margin < 0):
            raise ConfigError(f"clock_skew_margin must be a number of seconds >= 0, got "
                              f"{self.clock_skew_margin!r}")
        return self

    @property
    def request_timeout(self) -> float:
        """Per-request timeout: client-go's max(1 s, renewDeadline / 2)."""
        return max(1.0, self.renew_deadline / 2)


def _num(v: float) -> str:
    return str(int(v)) if float(v) == int(v) else str(v)


# ---------------------------------------------------------------- records and times

def format_micro(t: datetime) -> str:
    """MicroTime as the API server writes it: UTC, six fractional digits, `Z`."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$", text)
    if m and m.group(2) and len(m.group(2)) > 7:
        text = m.group(1) + m.group(2)[:7] + m.group(3)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LeaseRecord:
    holder: str = ""
    lease_duration: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: dict[str, Any] | None) -> LeaseRecord:
        spec = (lease or {}).get("spec") or {}
        return cls(holder=spec.get("holderIdentity") or "",
                   lease_duration=int(spec.get("leaseDurationSeconds") or 0),
                   acquire_time=spec.get("acquireTime"),
                   renew_time=spec.get("renewTime"),
                   transitions=int(spec.get("leaseTransitions") or 0))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"holderIdentity": self.holder,
                                "leaseDurationSeconds": self.lease_duration,
                                "leaseTransitions": self.transitions}
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec

    def raw(self) -> str:
        """The bytes whose change a follower watches for (client-go's observedRawRecord)."""
        return json.dumps(self.to_spec(), sort_keys=True)

    def as_dict(self) -> dict[str, Any]:
        return {"holder_identity": self.holder,
                "lease_duration_seconds": self.lease_duration,
                "acquire_time": self.acquire_time, "renew_time": self.renew_time,
                "lease_transitions": self.transitions}


# ---------------------------------------------------------------- API access

class LeaseAPI(Protocol):
    """What the elector needs from the cluster (injectable for tests)."""

    def get(self, namespace: str, name: str, timeout: float) -> dict[str, Any] | None: ...

    def create(self, namespace: str, body: dict[str, Any], timeout: float
               ) -> dict[str, Any]: ...

    def replace(self, namespace: str, name: str, body: dict[str, Any], timeout: float
                ) -> dict[str, Any]: ...


class KubeLeaseAPI:
    """LeaseAPI over the `kubernetes` client, with raw JSON bodies (MicroTime kept exact)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.coord = client.CoordinationV1Api(api_client)

    def _call(self, fn: Callable[..., Any], target: Target, timeout: float, *args: Any
              ) -> Any:
        return raw_call(self.api_client, fn, target, timeout, *args,
                        missing_ok=target.verb == "get")

    def get(self, namespace: str, name: str, timeout: float) -> dict[str, Any] | None:
        return self._call(self.coord.read_namespaced_lease,
                          Target("get", "leases", "coordination.k8s.io", name, namespace),
                          timeout, name, namespace)

    def create(self, namespace: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self._call(self.coord.create_namespaced_lease,
                          Target("create", "leases", "coordination.k8s.io",
                                 body["metadata"]["name"], namespace),
                          timeout, namespace, body)

    def replace(self, namespace: str, name: str, body: dict[str, Any], timeout: float
                ) -> dict[str, Any]:
        return self._call(self.coord.replace_namespaced_lease,
                          Target("update", "leases", "coordination.k8s.io", name, namespace),
                          timeout, name, namespace, body)

    def watch(self, namespace: str, name: str, resource_version: str, timeout_seconds: int
              ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events of this one Lease (raw dicts), from `resource_version`."""
        from kubernetes import watch

        w = watch.Watch()
        for ev in w.stream(self.coord.list_namespaced_lease, namespace,
                           field_selector=f"metadata.name={name}",
                           resource_version=resource_version,
                           timeout_seconds=timeout_seconds, deserialize=False,
                           _request_timeout=timeout_seconds + 5):
            obj = ev.get("raw_object") or ev.get("object")
            if isinstance(obj, str):
                obj = json.loads(obj)
            yield ev["type"], obj


# ---------------------------------------------------------------- observation persistence

def boot_id() -> str:
    try:
        with open(BOOT_ID_FILE, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass
class Observation:
    """When (host monotonic clock) this host first saw the current record."""

    raw: str
    resource_version: str
    monotonic: float
    boot_id: str


class ObservationStore:
    """A small JSON file per Lease, shared by module calls on one host."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def problem(self) -> str | None:
        """Why observations cannot be kept here, or None: the directory (or, while it does not
        exist, its nearest existing parent, where it will be created) must be a directory
        this process can write."""
        probe = os.path.abspath(self.directory)
        while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        if not os.path.isdir(probe):
            return f"{probe} is not a directory"
        if not os.access(probe, os.W_OK | os.X_OK):
            return f"{probe} is not writable"
        return None

    def _path(self, server: str, namespace: str, name: str) -> str:
        digest = hashlib.sha256(f"{server}|{namespace}|{name}".encode()).hexdigest()[:24]
        return os.path.join(self.directory, f"lease-{namespace}-{name}-{digest}.json")

    def load(self, server: str, namespace: str, name: str) -> Observation | None:
        try:
            with open(self._path(server, namespace, name), encoding="utf-8") as f:
                data = json.load(f)
            obs = Observation(raw=str(data["raw"]), resource_version=str(data["rv"]),
                              monotonic=float(data["monotonic"]), boot_id=str(data["boot_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # Usable only from the same boot (CLOCK_MONOTONIC restarts at boot) and not from
        # the future.
        if not obs.boot_id or obs.boot_id != boot_id() or obs.monotonic > time.monotonic():
            return None
        return obs

    def save(self, server: str, namespace: str, name: str, obs: Observation) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = self._path(server, namespace, name)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".lease-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"raw": obs.raw, "rv": obs.resource_version,
                       "monotonic": obs.monotonic, "boot_id": obs.boot_id}, f)
        os.replace(tmp, path)


# ---------------------------------------------------------------- the elector

@dataclass
class Attempt:
    """The outcome of one try_acquire_or_renew: what happened and why."""

    leader: bool
    wrote: bool = False
    reason: str = ""
    error: str = ""
    acquired: bool = False  # a new term began with this attempt
    lost_race: bool = False  # another writer changed the Lease between our read and write


@dataclass
class LeaseElector:
    config: ElectionConfig
    api: LeaseAPI
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    on_new_leader: Callable[[str], None] | None = None
    dry_run: bool = False
    sleep: Callable[[float], None] = time.sleep  # release's back-off (injectable for tests)

    observed_record: LeaseRecord | None = None
    observed_raw: str = ""
    observed_time: float = 0.0
    cached: dict[str, Any] | None = None  # the Lease object a PUT is based on
    reported_leader: str | None = None
    last_error: str = ""
    # Whether a record that names this identity, but that this elector did not write, is
    # its own. True for the module: each task is a new process continuing the same holder's
    # term. LeaseCampaign sets it False: a process restarted in its Pod keeps its name, and
    # must not take over its predecessor's term at once (writes the predecessor sent may
    # still be on their way to the API server); it waits for that term to expire, as any
    # other candidate would.
    inherit_own_record: bool = True
    held: bool = False  # this elector wrote the current record as its holder

    def __post_init__(self) -> None:
        self.config.validate()
        self._lock = threading.RLock()

    # -- observation
    @property
    def holder(self) -> str:
        return self.observed_record.holder if self.observed_record else ""

    @property
    def is_leader(self) -> bool:
        return bool(self.observed_record) and self.owns(self.observed_record)

    def owns(self, record: LeaseRecord) -> bool:
        """Whether `record` names this elector as holder (see inherit_own_record)."""
        return record.holder == self.config.identity and (self.inherit_own_record
                                                          or self.held)

    @property
    def resource_version(self) -> str:
        return ((self.cached or {}).get("metadata") or {}).get("resourceVersion", "")

    def lease_valid(self, now: float) -> bool:
        if self.observed_record is None:
            return False
        return self.observed_time + self.observed_record.lease_duration > now

    def remaining(self, now: float | None = None) -> float:
        """Seconds the observed holder's lease still has, by this host's observation."""
        if self.observed_record is None or not self.observed_record.holder:
            return 0.0
        now = self.clock() if now is None else now
        return max(0.0, self.observed_time + self.observed_record.lease_duration - now)

    def restore(self, obs: Observation) -> None:
        """Continue an observation made earlier on this host (see ObservationStore)."""
        with self._lock:
            self.observed_raw = obs.raw
            try:
                spec = json.loads(obs.raw)
            except ValueError:
                return
            self.observed_record = LeaseRecord.from_lease({"spec": spec})
            self.observed_time = obs.monotonic

    def observation(self) -> Observation | None:
        if self.observed_record is None:
            return None
        return Observation(self.observed_raw, self.resource_version, self.observed_time,
                           boot_id())

    def observe(self, lease: dict[str, Any] | None, now: float | None = None) -> bool:
        """Take in a Lease read from the API or a watch; True when the record changed."""
        with self._lock:
            now = self.clock() if now is None else now
            if lease is None:
                changed = self.observed_record is not None
                self.observed_record, self.observed_raw, self.cached = None, "", None
                return changed
            record = LeaseRecord.from_lease(lease)
            raw = record.raw()
            old_rv = self.resource_version
            new_rv = (lease.get("metadata") or {}).get("resourceVersion", "")
            if old_rv and new_rv and _rv_older(new_rv, old_rv):
                return False  # a stale copy (an old watch event): keep the newer one
            self.cached = lease
            if raw != self.observed_raw:
                self.observed_record, self.observed_raw, self.observed_time = record, raw, now
                return True
            return False

    def _set_observed(self, lease: dict[str, Any], now: float) -> None:
        self.cached = lease
        record = LeaseRecord.from_lease(lease)
        self.observed_record, self.observed_raw, self.observed_time = record, record.raw(), now

    def _report(self) -> None:
        holder = self.holder
        if holder != self.reported_leader:
            self.reported_leader = holder
            if self.on_new_leader is not None:
                self.on_new_leader(holder)

    def _expired_by_renew_time(self, record: LeaseRecord) -> bool:
        """Opt-in: the record's own renewTime says the lease ended (trusts its clock)."""
        margin = self.config.clock_skew_margin
        if margin is None or not record.holder:
            return False
        renewed = parse_time(record.renew_time)
        if renewed is None:
            return False
        age = (self.wall() - renewed).total_seconds()
        return age > record.lease_duration + margin

    # -- client-go's tryAcquireOrRenew
    def try_acquire_or_renew(self, timeout: float | None = None) -> Attempt:
        with self._lock:
            try:
                return self._try(timeout if timeout is not None
                                 else self.config.request_timeout)
            finally:
                self._report()

    def _desired(self, now_wall: datetime) -> LeaseRecord:
        stamp = format_micro(now_wall)
        return LeaseRecord(holder=self.config.identity,
                           lease_duration=int(self.config.lease_duration),
                           acquire_time=stamp, renew_time=stamp)

    def _body(self, base: dict[str, Any] | None, record: LeaseRecord) -> dict[str, Any]:
        body: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": {"name": self.config.name,
                                             "namespace": self.config.namespace}}
        if base is not None:
            md = base.get("metadata") or {}
            body["metadata"] = {k: v for k, v in md.items() if k != "managedFields"}
            spec = dict(base.get("spec") or {})
            spec.update(record.to_spec())
            body["spec"] = spec
        else:
            body["spec"] = record.to_spec()
        return body

    def _try(self, timeout: float) -> Attempt:
        cfg = self.config
        now = self.clock()
        desired = self._desired(self.wall())
        # `timeout` bounds the whole attempt, not each request: a renewal whose fast-path
        # PUT hung must not spend another full timeout on the GET (the renew deadline
        # would be overrun by up to one request timeout).
        # (Never 0: the client reads a zero timeout as "no timeout".)
        end = now + timeout

        def budget() -> float:
            return max(0.05, end - self.clock())
        # 1. fast path: renew our own, still valid lease with a PUT at the cached version
        if self.is_leader and self.lease_valid(now) and self.cached is not None:
            record = LeaseRecord(desired.holder, desired.lease_duration,
                                 self.observed_record.acquire_time, desired.renew_time,
                                 self.observed_record.transitions)
            if self.dry_run:
                return Attempt(True, False, "would renew the lease (check mode)")
            try:
                lease = self.api.replace(cfg.namespace, cfg.name,
                                         self._body(self.cached, record), timeout)
                self._set_observed(lease, now)
                self.held = True
                return Attempt(True, True, "renewed")
            except (LostRace, ApiFailure) as e:
                self.last_error = str(e)  # fall through to the slow path
                if end - self.clock() < 0.05:
                    return Attempt(False, False, "could not renew the lease", str(e))
        # 2. read the lock
        try:
            lease = self.api.get(cfg.namespace, cfg.name, budget())
        except ApiFailure as e:
            self.last_error = str(e)
            return Attempt(False, False, "could not read the lease", str(e))
        if lease is None:
            if self.dry_run:
                return Attempt(True, False, "would create the lease (check mode)",
                               acquired=True)
            try:
                created = self.api.create(cfg.namespace, self._body(None, desired),
                                          budget())
            except LostRace:
                self._learn_winner(budget())
                return Attempt(False, False, "another candidate created the lease first",
                               lost_race=True)
            except ApiFailure as e:
                self.last_error = str(e)
                return Attempt(False, False, "could not create the lease", str(e))
            self._set_observed(created, now)
            self.held = True
            return Attempt(True, True, "created the lease", acquired=True)
        # 3. note when the record last changed, on our own clock
        self.observe(lease, now)
        record = self.observed_record or LeaseRecord()
        # 4. held by someone else and not expired by our observation (an earlier process with
        # our identity is someone else unless inherit_own_record)
        mine = self.owns(record)
        if record.holder and not mine and self.lease_valid(now) \
                and not self._expired_by_renew_time(record):
            left = self.remaining(now)
            who = record.holder if record.holder != cfg.identity else \
                f"an earlier process of {record.holder}"
            return Attempt(False, False, f"held by {who}; expires in {left:.1f} s "
                                         f"by this host's observation")
        # 5. keep acquireTime and transitions while ours; a new term otherwise
        if mine:
            new = LeaseRecord(desired.holder, desired.lease_duration,
                              record.acquire_time or desired.acquire_time,
                              desired.renew_time, record.transitions)
            why = "renewed (slow path)"
        else:
            new = LeaseRecord(desired.holder, desired.lease_duration, desired.acquire_time,
                              desired.renew_time, record.transitions + 1)
            why = "acquired a free lease" if not record.holder else \
                f"took over from {record.holder}, whose lease expired" \
                if record.holder != cfg.identity else \
                "took over from an earlier process of this identity, whose lease expired"
        if self.dry_run:
            return Attempt(True, False, f"would have {why} (check mode)", acquired=not mine)
        # 6. write at the version we read: a 409 means someone else won
        try:
            written = self.api.replace(cfg.namespace, cfg.name, self._body(lease, new),
                                       budget())
        except LostRace:
            self._learn_winner(budget())
            return Attempt(False, False, "another candidate wrote the lease first",
                           lost_race=True)
        except ApiFailure as e:
            self.last_error = str(e)
            return Attempt(False, False, "could not write the lease", str(e))
        self._set_observed(written, now)
        self.held = True
        return Attempt(True, True, why, acquired=not mine)

    def _learn_winner(self, timeout: float) -> None:
        """After a lost race, read the Lease once so that the holder we report is the
        winner (not the record we based our write on, or nothing at all)."""
        try:
            self.observe(self.api.get(self.config.namespace, self.config.name, timeout))
        except ApiFailure as e:
            self.last_error = str(e)

    # -- release
    def release(self, timeout: float | None = None, deadline: float | None = None
                ) -> Attempt:
        """Give the lease up: holder "", leaseDurationSeconds 1, transitions kept.

        Retries on 409 (an in-flight renew of ours) until `deadline` (default: now +
        renew_deadline). Nothing to do when another candidate holds it.
        """
        cfg = self.config
        timeout = cfg.request_timeout if timeout is None else timeout
        end = self.clock() + cfg.renew_deadline if deadline is None else deadline
        with self._lock:
            try:
                while True:
                    try:
                        lease = self.api.get(cfg.namespace, cfg.name, timeout)
                    except ApiFailure as e:
                        if self.clock() >= end:
                            return Attempt(False, False, "could not read the lease", str(e))
                        self.sleep(min(cfg.retry_period, max(0.0, end - self.clock())))
                        continue
                    if lease is None:
                        self.observe(None)
                        return Attempt(False, False, "the lease does not exist")
                    self.observe(lease)
                    record = LeaseRecord.from_lease(lease)
                    if not self.owns(record):
                        who = record.holder or "nobody"
                        if record.holder == cfg.identity:
                            who = "an earlier process of this identity"
                        return Attempt(False, False, f"not the holder ({who} holds it)")
                    if self.dry_run:
                        return Attempt(False, False, "would release the lease (check mode)")
                    stamp = format_micro(self.wall())
                    released = LeaseRecord("", 1, stamp, stamp, record.transitions)
                    try:
                        written = self.api.replace(cfg.namespace, cfg.name,
                                                   self._body(lease, released), timeout)
                    except (LostRace, ApiFailure) as e:
                        if self.clock() >= end:
                            return Attempt(False, False, "could not release the lease",
                                           str(e))
                        if isinstance(e, ApiFailure):  # back off; a 409 retries at once
                            self.sleep(min(cfg.retry_period, max(0.0, end - self.clock())))
                        continue
                    self._set_observed(written, self.clock())
                    self.held = False
                    return Attempt(False, True, "released")
            finally:
                self._report()

    # -- health
    def check(self, max_tolerable_expired: float) -> str | None:
        """client-go's Check: an error when we lead but have not renewed for longer than
        lease_duration + max_tolerable_expired; None otherwise (followers are healthy)."""
        if not self.is_leader:
            return None
        overdue = self.clock() - self.observed_time
        if overdue > self.config.lease_duration + max_tolerable_expired:
            return (f"failed election to renew leadership on lease {self.config.name}: last "
                    f"renewed {overdue:.1f} s ago")
        return None


def _rv_older(a: str, b: str) -> bool:
    try:
        return int(a) < int(b)
    except ValueError:
        return False


def jittered(period: float, factor: float = JITTER_FACTOR, rng: Callable[[], float] =
             random.random) -> float:
    """client-go's wait.Jitter: period * [1, 1 + factor)."""
    return period * (1 + factor * rng())


def poll_interval(period: float, rng: Callable[[], float] = random.random) -> float:
    """A module's spacing between attempts while it waits: period x (0.5, 1]. Jittered so
    that waiting hosts do not poll in lockstep, and never longer than one period."""
    return period * (1 - 0.5 * rng())


# ---------------------------------------------------------------- in-process campaign

class LeaseCampaign:
    """Lead while possible, in background threads (the runtime's use of the elector).

    - Followers watch the Lease instead of polling: every renewal the leader writes
      refreshes their observation, so they make no request until the lease would expire
      by their own clock (then one GET, at a jittered moment so followers never fire in
      lockstep), and a release (holder "") or deletion makes them try at once.
    - The leader renews every retry_period; each request's timeout is capped by the
      renew deadline, so loss is reported by last successful renew + renew_deadline even
      when requests hang. Another holder seen on the watch is a loss at once.
    - `stop()` ends the campaign; with release_on_cancel the lease is released after the
      guarded work stopped (on_stopped_leading returned), so a follower takes over at once.
    - A term is this process's own: a record naming our identity that this campaign did not
      write (a process restarted in its Pod keeps the Pod's name) is waited out like another
      holder's, and so is our own record after a term ended. Taking it over at once, as
      client-go does for an identity it finds in the record, would let writes the earlier
      process sent, still on their way to the API server, land in the new term.
    """

    def __init__(self, elector: LeaseElector, api: Any,
                 on_started_leading: Callable[[], None],
                 on_stopped_leading: Callable[[str], None],
                 release_on_cancel: bool = True, recampaign: bool = False,
                 rng: Callable[[], float] = random.random,
                 watch_timeout: int = 300,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.elector = elector
        elector.inherit_own_record = False
        # Told why an attempt to take the lease failed (e.g. a 403 naming the missing
        # permission): when the reason changes, and every 30 s while it stays the same.
        self.on_error = on_error
        self._reported: tuple[str, float] = ("", 0.0)
        self.api = api
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.release_on_cancel = release_on_cancel
        self.recampaign = recampaign
        self.rng = rng
        self.watch_timeout = watch_timeout
        self.leading = threading.Event()
        self.last_renew = 0.0  # monotonic time the current term was last renewed
        self.lost_reason = ""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control
    def start(self) -> LeaseCampaign:
        for target, name in ((self._run, "lease-campaign"), (self._watch, "lease-watch")):
            if name == "lease-watch" and not hasattr(self.api, "watch"):
                continue
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        self._threads[0].join(timeout)

    @property
    def deadline(self) -> float:
        """Monotonic time at which the current term ends unless renewed."""
        return self.last_renew + self.elector.config.renew_deadline

    def _sleep(self, seconds: float) -> bool:
        """Wait up to `seconds` or until woken; True when woken (or stopping)."""
        woke = self._wake.wait(max(0.0, seconds))
        self._wake.clear()
        return woke or self._stop.is_set()

    # -- the campaign
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._acquire():
                break
            self._lead()
            if not self.recampaign:
                break

    def _follower_delay(self) -> float:
        el, cfg = self.elector, self.elector.config
        record = el.observed_record
        if el.last_error:
            return jittered(cfg.retry_period, rng=self.rng)
        if record is None or not record.holder:
            return 0.1 * self.rng()  # free: try now, a little apart from other followers
        expiry = el.observed_time + record.lease_duration - el.clock()
        return max(0.0, expiry) + cfg.retry_period * JITTER_FACTOR * self.rng()

    def _report_error(self) -> None:
        error, now = self.elector.last_error, self.elector.clock()
        if not error or self.on_error is None:
            self._reported = ("", 0.0)
            return
        if error != self._reported[0] or now - self._reported[1] >= 30.0:
            self._reported = (error, now)
            self.on_error(error)

    def _acquire(self) -> bool:
        el = self.elector
        while not self._stop.is_set():
            el.last_error = ""
            attempt = el.try_acquire_or_renew()
            if attempt.leader:
                return True
            self._report_error()
            wait_until = el.clock() + self._follower_delay()
            while not self._stop.is_set():
                if not self._sleep(wait_until - el.clock()):
                    break  # time to try
                # woken by a watch event: recompute from the new observation
                wait_until = el.clock() + self._follower_delay()
        return False

    def _lead(self) -> None:
        el, cfg = self.elector, self.elector.config
        self.last_renew = el.observed_time
        self.lost_reason = ""
        self.leading.set()
        try:
            self.on_started_leading()
        except Exception as e:  # a failing callback must not leave us leading
            self.lost_reason = f"on_started_leading failed: {e}"
        next_try = el.clock() + cfg.retry_period
        while not self._stop.is_set() and not self.lost_reason:
            self._sleep(next_try - el.clock())
            if self._stop.is_set():
                break
            if el.observed_record is not None and not el.is_leader:
                self.lost_reason = f"another holder observed: {el.holder or 'nobody'}"
                break
            now = el.clock()
            if now < next_try:
                continue
            left = self.deadline - now
            if left <= 0:
                self.lost_reason = (f"could not renew within renew_deadline "
                                    f"({_num(cfg.renew_deadline)} s): {el.last_error}")
                break
            next_try = now + cfg.retry_period
            attempt = el.try_acquire_or_renew(timeout=min(cfg.request_timeout, left))
            if attempt.leader:
                self.last_renew = el.observed_time
            elif el.observed_record is not None and el.holder != cfg.identity:
                self.lost_reason = f"another holder observed: {el.holder or 'nobody'}"
        self.leading.clear()
        reason = self.lost_reason or "stopped"
        try:
            self.on_stopped_leading(reason)
        finally:
            # Release only while the term is still ours by our own clock: a replica that was
            # frozen past its deadline must not write at all, not even a release.
            if self._stop.is_set() and self.release_on_cancel and not self.lost_reason \
                    and el.clock() < self.deadline:
                el.release()
            el.held = False  # the term is over: our record is now like anyone else's

    # -- the watch that keeps followers' observation fresh
    def _watch(self) -> None:
        el, cfg = self.elector, self.elector.config
        rv = ""
        while not self._stop.is_set():
            try:
                for etype, obj in self.api.watch(cfg.namespace, cfg.name, rv,
                                                 self.watch_timeout):
                    if self._stop.is_set():
                        return
                    if etype == "ERROR":
                        rv = ""
                        break
                    if etype == "BOOKMARK":
                        continue
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    changed = el.observe(None if etype == "DELETED" else obj)
                    if changed:
                        # A follower learns of a new holder here, not from an attempt of
                        # its own (it makes none while the holder renews): report it.
                        with el._lock:
                            el._report()
                        self._wake.set()
            except Exception as e:  # 410, connection errors: start over from now
                el.last_error = el.last_error or f"watch: {e}"
                rv = ""
                self._stop.wait(jittered(cfg.retry_period, rng=self.rng))


# ---------------------------------------------------------------- one-shot (module) election

def elect_once(config: ElectionConfig, api: LeaseAPI, server: str,
               store: ObservationStore | None = None, state: str = "leader",
               wait: bool = False, timeout: float = 0, check_mode: bool = False,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep,
               rng: Callable[[], float] = random.random) -> dict[str, Any]:
    """One module call: become or stay leader (or release), and say what happened.

    - A usable observation saved by an earlier call on this host is continued, so expiry
      keeps being judged on this host's monotonic clock across calls.
    - Without one, when another holder's lease looks valid, the call observes the Lease
      itself: it stops as soon as the record changes (the holder is alive) and takes over
      only if it stayed unchanged for the record's whole leaseDurationSeconds.
    - `wait` campaigns until leader, attempts spaced retry_period x (0.5, 1]: jittered,
      but never more than one retry period apart, so that a released Lease is taken
      within one retry period (client-go's [1, 2.2) could take 2.2).
    - `timeout` (seconds, 0 = none) bounds the whole call.
    Raises ApiFailure when the API could not be used at all.
    """
    el = LeaseElector(config, api, clock=clock, dry_run=check_mode, sleep=sleep)
    restored = False
    if store is not None:
        obs = store.load(server, config.namespace, config.name)
        if obs is not None:
            el.restore(obs)
            restored = True
    start = clock()
    end = start + timeout if timeout and timeout > 0 else float("inf")
    attempts: list[Attempt] = []

    def attempt() -> Attempt:
        att = el.try_acquire_or_renew(timeout=min(config.request_timeout,
                                                  max(0.1, end - clock())))
        attempts.append(att)
        return att

    if state == "released":
        att = el.release()
        attempts.append(att)
        if att.error:
            raise ApiFailure(att.error)
    else:
        att = attempt()
        first_seen = el.observed_time
        if not att.leader and wait:
            while not att.leader and clock() < end:
                sleep(min(poll_interval(config.retry_period, rng), max(0.0, end - clock())))
                att = attempt()
        elif not att.leader and not att.error and not att.lost_race and not restored and \
                el.holder and el.holder != config.identity:
            # No earlier observation on this host: watch the record for one lease term.
            # (A lost race needs none: the holder has just written, it is alive.)
            record = el.observed_record or LeaseRecord()
            limit = min(end, first_seen + record.lease_duration
                        + config.retry_period * (1 + JITTER_FACTOR))
            while not att.leader and clock() < limit and el.observed_time == first_seen:
                sleep(min(jittered(config.retry_period, rng=rng), max(0.0, limit - clock())))
                att = attempt()
        if not att.leader and att.error and not any(a.leader or not a.error
                                                    for a in attempts):
            raise ApiFailure(att.error)
    if store is not None and not check_mode:
        obs = el.observation()
        if obs is not None:
            store.save(server, config.namespace, config.name, obs)
    record = el.observed_record or LeaseRecord()
    now = clock()
    final = attempts[-1]
    result: dict[str, Any] = {
        "changed": any(a.wrote for a in attempts) or (check_mode and any(
            a.reason.startswith("would") for a in attempts)),
        "is_leader": (el.is_leader and final.leader) if not check_mode else (
            final.leader and state != "released"),
        "holder": record.holder,
        "identity": config.identity,
        "acquired": any(a.acquired for a in attempts) and final.leader,
        "transitions": record.transitions,
        "lease": dict(record.as_dict(), name=config.name, namespace=config.namespace,
                      resource_version=el.resource_version),
        "remaining": round(el.remaining(now), 3),
        "observed_for": round(now - el.observed_time, 3) if el.observed_record else 0.0,
        "attempts": len(attempts),
        "waited": round(now - start, 3),
        "reason": final.reason,
    }
    if state == "released":
        result["released"] = final.wrote or final.reason.startswith("would release")
        result["is_leader"] = False if (final.wrote or check_mode and result["released"]) \
            else el.is_leader
    elif not final.leader and wait and clock() >= end:
        result["msg"] = (f"not the leader after waiting {timeout:g} s: "
                         f"{final.reason or final.error}")
    else:
        result["msg"] = final.reason
    return result
