"""The chaos suite's schedule: which fault, on whom, from when to when; and the size changes.

Everything here follows from the seed alone (`random.Random(seed)`), so the same seed gives
the same schedule, printed before the run. Targets are roles resolved when the fault starts:
`leader` (the replica whose process holds the Lease at that moment, by the API server's
record), `follower` (one of the others, chosen with the fault's own `pick` number) or `all`
(every replica's identity at the API server). Which replica a role names depends on the run;
the report shows it.

Durations are derived from the lease settings, so that each fault does what its name says:
a SIGSTOP lasts longer than the lease duration, an API outage longer than the renew deadline,
added latency is above the election's request timeout (and within the margin the lease
leaves, see `latency_range`), a partition outlasts the lease.

Faults overlap only as the schedule says: at most `MAX_OVERLAP` of them (clock faults
aside, which last several lease durations) are active at once, at most one of them targets
`all`, and at most one clock fault is active. A fault that would break a rule starts when
the rule allows it instead. The first faults of a schedule are one of each kind (in a seeded
order), so that even a short run exercises every kind.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("sigkill", "sigterm", "sigstop", "outage", "burst", "latency", "partition", "clock")
# Relative frequencies after the first round of one of each.
WEIGHTS = {"sigkill": 3.0, "sigterm": 2.0, "sigstop": 3.0, "outage": 1.5, "burst": 2.5,
           "latency": 2.0, "partition": 3.0, "clock": 1.0}
INSTANT = ("sigkill", "sigterm")
MAX_OVERLAP = 2
BURST_CODES = (500, 429, 503)


@dataclass(frozen=True)
class Lease:
    """The election's settings (seconds), as passed to every replica."""

    duration: float = 4.0
    renew_deadline: float = 3.0
    retry_period: float = 1.0

    @property
    def request_timeout(self) -> float:
        """The election's per-request timeout: client-go's max(1 s, renewDeadline / 2)
        (plugins/module_utils/lease.py, ElectionConfig.request_timeout)."""
        return max(1.0, self.renew_deadline / 2)


@dataclass(frozen=True)
class Fault:
    index: int  # 1-based, in start order
    kind: str  # one of KINDS
    target: str  # leader | follower | all
    start: float  # seconds after the fault phase began
    end: float  # = start for sigkill and sigterm
    action: str = ""  # outage: error | refuse; partition: blackhole | refuse; burst: error
    code: int = 0  # HTTP status of outage (error) and burst
    latency: float = 0.0  # latency: seconds added to each request
    clock: str = ""  # clock: the FAKETIME value, e.g. "+5400" or "-90 x1.5"
    pick: float = 0.0  # chooses the follower (and a replica when nobody leads)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def what(self) -> str:
        """The fault in words (without its target and times)."""
        if self.kind == "sigkill":
            return "SIGKILL of the whole process tree"
        if self.kind == "sigterm":
            return "SIGTERM (drain, release, exit)"
        if self.kind == "sigstop":
            return f"SIGSTOP of the whole tree for {self.duration:.1f} s, then SIGCONT"
        if self.kind == "outage":
            how = "503" if self.action == "error" else "connections refused"
            return f"API outage for every replica ({how}) for {self.duration:.1f} s"
        if self.kind == "burst":
            return f"{self.code} to every request for {self.duration:.1f} s"
        if self.kind == "latency":
            return f"+{self.latency:.1f} s on every request for {self.duration:.1f} s"
        if self.kind == "partition":
            how = "held unanswered" if self.action == "blackhole" else "refused"
            return f"network partition (requests {how}) for {self.duration:.1f} s"
        if self.kind == "clock":
            return f"restarted under faketime {self.clock!r} for {self.duration:.1f} s"
        raise ValueError(f"unknown fault kind {self.kind!r}")

    def as_dict(self) -> dict[str, Any]:
        return dict(asdict(self), what=self.what())


@dataclass(frozen=True)
class SizeChange:
    t: float  # seconds after the fault phase began
    cr: int  # index of the Memcached
    size: int


@dataclass(frozen=True)
class Schedule:
    seed: int
    faults: tuple[Fault, ...]
    initial_sizes: tuple[int, ...]
    changes: tuple[SizeChange, ...]

    @property
    def length(self) -> float:
        """When the last fault ends (seconds after the fault phase began)."""
        return max((f.end for f in self.faults), default=0.0)

    def final_sizes(self) -> list[int]:
        sizes = list(self.initial_sizes)
        for c in self.changes:
            sizes[c.cr] = c.size
        return sizes


def _duration(kind: str, rng: random.Random, lease: Lease) -> float:
    if kind in INSTANT:
        return 0.0
    if kind == "sigstop":  # longer than the lease: another replica takes over meanwhile
        return lease.duration + rng.uniform(1.0, 3.0)
    if kind == "outage":  # longer than the renew deadline: the leader must give up
        return lease.renew_deadline + rng.uniform(1.0, 3.0)
    if kind == "partition":  # outlasts the lease: the others take over
        return lease.duration + rng.uniform(1.0, 4.0)
    if kind == "burst":
        return rng.uniform(1.0, 3.0)
    if kind == "latency":
        return rng.uniform(2.0, 5.0)
    if kind == "clock":  # long enough for other faults to make it the leader meanwhile
        return lease.duration * rng.uniform(5.0, 10.0)
    raise ValueError(kind)


def latency_range(lease: Lease) -> tuple[float, float]:
    """Added latency: above the election's request timeout (so that the leader's renewals
    time out and it must give up), and at most leaseDuration - retryPeriod - 1 s. Above
    that, no lease can fence: a write delayed at the API server for longer than the lease
    outlives its writer's renewal (also delayed) lands after a takeover; the 1 s allows for
    a renewal sent late on a loaded machine. See docs/chaos.md."""
    low = lease.request_timeout + 0.1
    high = lease.duration - lease.retry_period - 1.0
    return low, max(low, high)


def _target(kind: str, rng: random.Random) -> str:
    if kind == "outage":
        return "all"
    x = rng.random()
    if kind in ("burst", "latency"):
        return "leader" if x < 0.4 else "follower" if x < 0.7 else "all"
    return "leader" if x < 0.6 else "follower"


def _clock(rng: random.Random) -> str:
    """A wall-clock offset of a minute to three hours either way, or a clock that runs
    1.5-3x fast (from a small offset)."""
    if rng.random() < 0.6:
        sign = rng.choice("+-")
        return f"{sign}{rng.randint(60, 3 * 3600)}"
    return f"+{rng.randint(0, 600)} x{rng.choice((1.5, 2, 3))}"


def _details(kind: str, rng: random.Random, lease: Lease) -> dict[str, Any]:
    if kind == "outage":
        action = rng.choice(("error", "refuse"))
        return {"action": action, "code": 503 if action == "error" else 0}
    if kind == "burst":
        return {"action": "error", "code": rng.choice(BURST_CODES)}
    if kind == "latency":
        return {"latency": round(rng.uniform(*latency_range(lease)), 2)}
    if kind == "partition":
        return {"action": rng.choice(("blackhole", "refuse"))}
    if kind == "clock":
        return {"clock": _clock(rng)}
    return {}


def _allowed(kind: str, target: str, start: float, placed: list[Fault]) -> float | None:
    """None if a fault (kind, target) from `start` keeps the overlap rules with the faults
    placed so far (they all start at or before `start`, so those it overlaps are active at
    `start`; an instant fault counts as active at its instant); else the earliest later
    start worth trying."""
    active = [f for f in placed if f.start <= start < f.end]
    if kind == "clock":
        clocks = [f for f in active if f.kind == "clock"]
        return min(f.end for f in clocks) if clocks else None
    others = [f for f in active if f.kind != "clock"]
    blocking = others if len(others) + 1 > MAX_OVERLAP else []
    if target == "all":
        blocking += [f for f in others if f.target == "all"]
    if not blocking:
        return None
    return min(f.end for f in blocking)


def make_schedule(seed: int, faults: int, crs: int, lease: Lease = Lease(),
                  gap: tuple[float, float] = (1.5, 4.0), max_size: int = 4,
                  change_gap: tuple[float, float] = (2.0, 6.0)) -> Schedule:
    """`faults` faults, starts `gap` seconds apart (uniform), after the overlap rules; and
    size changes of the `crs` Memcacheds every `change_gap` seconds until the last fault
    ends (sizes 0..max_size, each different from the size before)."""
    if faults < 1:
        raise ValueError(f"faults must be 1 or more, got {faults}")
    if crs < 1:
        raise ValueError(f"crs must be 1 or more, got {crs}")
    if not 0 < gap[0] <= gap[1]:
        raise ValueError(f"gap must be two numbers 0 < low <= high, got {gap}")
    rng = random.Random(seed)
    first = list(KINDS)
    rng.shuffle(first)
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    placed: list[Fault] = []
    t = 0.0
    for i in range(faults):
        kind = first[i] if i < len(first) else rng.choices(kinds, weights)[0]
        target = _target(kind, rng)
        length = _duration(kind, rng, lease)
        details = _details(kind, rng, lease)
        pick = rng.random()
        t += rng.uniform(*gap)
        while (later := _allowed(kind, target, t, placed)) is not None:
            t = later
        placed.append(Fault(i + 1, kind, target, round(t, 2), round(t + length, 2),
                            pick=round(pick, 4), **details))
    sizes = random.Random(seed + 1)
    initial = tuple(sizes.randint(1, min(3, max_size)) for _ in range(crs))
    current = list(initial)
    changes = []
    end = max(f.end for f in placed)
    t = sizes.uniform(*change_gap)
    while t < end:
        cr = sizes.randrange(crs)
        size = sizes.choice([s for s in range(max_size + 1) if s != current[cr]])
        current[cr] = size
        changes.append(SizeChange(round(t, 2), cr, size))
        t += sizes.uniform(*change_gap)
    return Schedule(seed, tuple(placed), initial, tuple(changes))
