"""Test hooks: fault injection per client identity, and the audit log of requests.

A client's identity is its bearer token when it sends one (`token:<value>`), else its
User-Agent. Rules match an identity (exact, or `*` for every client), optionally a verb and
a resource, and act: add latency, answer an error status, refuse (close the connection
without an answer), or blackhole (hold the connection without answering).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

ACTIONS = ("latency", "error", "refuse", "blackhole")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
ERROR_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests",
    500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "Timeout",
}


@dataclass
class Fault:
    identity: str  # "token:abc", a User-Agent, a User-Agent prefix ending in "*", or "*"
    action: str
    seconds: float = 0.0  # latency / blackhole duration (0 = until removed, for blackhole)
    code: int = 500
    retry_after: int = 1
    verbs: list[str] = field(default_factory=list)  # empty = all
    resources: list[str] = field(default_factory=list)  # plural names; empty = all
    remaining: int = -1  # how many requests it still applies to; -1 = unlimited
    id: int = 0

    def validate(self) -> None:
        """Refuse a malformed rule up front, naming the field (a bad type would otherwise
        surface later as a 500 on every request the rule is matched against)."""
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        if not isinstance(self.identity, str) or not self.identity:
            raise ValueError("identity is required (a token as 'token:<t>', a User-Agent, or "
                             "'*')")
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)):
            raise ValueError(f"seconds must be a number, got {self.seconds!r}")
        for name in ("code", "retry_after", "remaining"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.action == "error" and not 400 <= self.code <= 599:
            raise ValueError(f"code must be an HTTP error status 400-599, got {self.code!r}")
        if self.seconds < 0:
            raise ValueError(f"seconds must be 0 or more, got {self.seconds!r}")
        if self.retry_after < 0:
            raise ValueError(f"retry_after must be 0 or more, got {self.retry_after!r}")
        if self.remaining < -1:
            raise ValueError(f"remaining must be -1 (unlimited) or a count, got "
                             f"{self.remaining!r}")
        for name in ("verbs", "resources"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a list of strings, got {value!r}")
        unknown = [v for v in self.verbs if v not in VERBS]
        if unknown:
            raise ValueError(f"verbs: unknown verb(s) {', '.join(unknown)}; use "
                             f"{', '.join(VERBS)}")

    def matches(self, identity: str, verb: str, resource: str) -> bool:
        if self.remaining == 0:
            return False
        if self.identity != "*":
            if self.identity.endswith("*"):
                if not identity.startswith(self.identity[:-1]):
                    return False
            elif self.identity != identity:
                return False
        if self.verbs and verb not in self.verbs:
            return False
        if self.resources and resource not in self.resources:
            return False
        return True


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._ids = itertools.count(1)
        self.released = threading.Event()  # set when rules are removed (ends blackholes)

    def add(self, fault: Fault | dict[str, Any]) -> Fault:
        if isinstance(fault, dict):
            unknown = set(fault) - {f for f in Fault.__dataclass_fields__}
            if unknown:
                raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
            for required in ("identity", "action"):
                if required not in fault:
                    raise ValueError(f"{required} is required")
            fault = Fault(**fault)
        elif not isinstance(fault, Fault):
            raise ValueError(f"a fault must be a JSON object, got {type(fault).__name__}")
        fault.validate()
        with self._lock:
            fault.id = next(self._ids)
            self._rules.append(fault)
        return fault

    def remove(self, fault_id: int | None = None) -> None:
        with self._lock:
            if fault_id is None:
                self._rules.clear()
            else:
                self._rules = [f for f in self._rules if f.id != fault_id]
        self.released.set()
        self.released = threading.Event()

    clear = remove

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._rules]

    def active(self, fault_id: int) -> bool:
        with self._lock:
            return any(f.id == fault_id for f in self._rules)

    def pick(self, identity: str, verb: str, resource: str) -> list[Fault]:
        """The matching rules (latency first, then at most one terminal action)."""
        with self._lock:
            hits = [f for f in self._rules if f.matches(identity, verb, resource)]
            for f in hits:
                if f.remaining > 0:
                    f.remaining -= 1
            return hits


@dataclass
class AuditEntry:
    seq: int
    time: float  # wall clock, seconds since the epoch
    monotonic: float
    identity: str
    user_agent: str
    verb: str  # get list watch create update patch delete deletecollection
    group: str
    resource: str
    namespace: str
    name: str
    subresource: str
    code: int
    resource_version: str  # of the object after a successful write
    dry_run: bool
    path: str

    @property
    def write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection") and \
            not self.dry_run


class Audit:
    """Every API request, in order; bounded so long runs do not grow without end."""

    def __init__(self, maxlen: int = 500_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[AuditEntry] = deque(maxlen=maxlen)
        self._seq = itertools.count(1)

    def record(self, **kw: Any) -> AuditEntry:
        with self._lock:
            e = AuditEntry(seq=next(self._seq), time=time.time(), monotonic=time.monotonic(),
                           **kw)
            self._entries.append(e)
            return e

    def entries(self, since: int = 0, writes_only: bool = False,
                identity: str | None = None) -> list[AuditEntry]:
        with self._lock:
            out = [e for e in self._entries if e.seq > since]
        if writes_only:
            out = [e for e in out if e.write]
        if identity is not None:
            out = [e for e in out if e.identity == identity]
        return out

    def as_dicts(self, **kw: Any) -> list[dict[str, Any]]:
        return [dict(asdict(e), write=e.write) for e in self.entries(**kw)]
