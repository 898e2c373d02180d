"""The split-brain detector of the chaos suite: what the API server saw, judged.

Every time here is on one clock, the API server's (kubesim's `time.monotonic()`, in
seconds). The replica *processes* are the actors: a replica restarted after a fault is a new
process with its own bearer token, so the audit log tells it from its predecessor even when
both use the same identity (Pod name) in the Lease.

Definitions (docs/chaos.md repeats them):

- **Lease history**: every successful write of the Lease, in commit order, with the process
  that wrote it, the holder it left and its leaseDurationSeconds.
- **Holding the lease at t**: the latest Lease write committed at or before t was made by
  this very process, names its identity as holder, and was committed no more than
  leaseDurationSeconds before t. (A follower takes over only after it saw the record
  unchanged for leaseDurationSeconds, so before that nobody else can hold it; after that,
  anyone may.)
- **Fencing violation**: a successful (2xx), non-dry-run write (create, update, patch,
  delete, deletecollection) of anything but the Lease, by a replica process, at a moment
  (when the API server answered it) at which that process did not hold the lease.
- **Term**: from the Lease write by which a process took the lease (the previous write was
  another process's) to its last write (renewal or release); it ends at the next write by
  another process, at its release, or when its last write is leaseDurationSeconds old.
- **Overlap**: an instant at which reconciles of two different processes run (from the
  "reconcile start" to the "reconcile end" line of its log, or to the moment the process
  was killed or exited), neither process stopped by SIGSTOP. A process thawed after its
  lease ended is killing its reconciles: the remainder of a reconcile it was running when
  frozen, after the SIGCONT, is a *stale tail*, not an overlap, if it ends within
  `stale_bound` seconds (its writes meanwhile are refused by its fencing proxy, which the
  fencing check proves); what runs longer counts as an overlap from there on.
- **No-leader period**: from the last Lease write of one term (a renewal, or the release)
  to the first write of the next term. Too long when what remains of it after the last
  moment at which no replica could have taken the lease (an API outage for all, every
  replica dead, stopped or cut off) exceeds `bound`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Interval = tuple[float, float]


@dataclass(frozen=True)
class LeaseWrite:
    t: float  # commit time
    writer: str  # the process (e.g. "replica-a.3"); "" when not a replica's
    holder: str  # holderIdentity after the write; "" once released
    duration: float  # leaseDurationSeconds after the write
    rv: int = 0


@dataclass(frozen=True)
class Write:
    t: float  # when the API server answered it
    writer: str
    verb: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    seq: int = 0

    def describe(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {res} {self.namespace}/{self.name} (audit seq {self.seq})"


@dataclass
class Term:
    process: str
    identity: str
    start: float  # the acquiring write
    last: float  # its last write (renewal or release)
    end: float = 0.0  # next write by another process, its release, or last + duration
    how: str = ""  # "taken over by X", "released", "expired", "open"
    writes: int = 1


@dataclass(frozen=True)
class Violation:
    write: Write
    reason: str


@dataclass(frozen=True)
class Overlap:
    a: str
    b: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class StaleTail:
    process: str
    thawed: float
    length: float  # seconds from the SIGCONT to the end of the reconcile
    over_bound: bool


@dataclass(frozen=True)
class Gap:
    start: float
    end: float
    before: str  # the process whose term ended
    after: str  # the process whose term began
    counted: float  # the part after the last moment nobody could take over
    over_bound: bool

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass
class Judgement:
    violations: list[Violation] = field(default_factory=list)
    writes_checked: int = 0
    oldest_lease_at_write: float = 0.0  # the largest (t - latest renewal) of a good write
    overlaps: list[Overlap] = field(default_factory=list)
    stale_tails: list[StaleTail] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)


# --------------------------------------------------------------------------- the lease

class LeaseHistory:
    """The Lease writes in commit order, and what they say about any moment."""

    def __init__(self, writes: Iterable[LeaseWrite], identity: Callable[[str], str]) -> None:
        self.writes = sorted(writes, key=lambda w: (w.t, w.rv))
        self.times = [w.t for w in self.writes]
        self.identity = identity  # process -> the identity it writes into the Lease

    def latest(self, t: float) -> LeaseWrite | None:
        """The latest Lease write committed at or before t."""
        i = bisect.bisect_right(self.times, t) - 1
        return self.writes[i] if i >= 0 else None

    def holds(self, process: str, t: float) -> bool:
        w = self.latest(t)
        return w is not None and self._held_by(w, process) and t - w.t <= w.duration

    def holder(self, t: float) -> str:
        """The process holding the lease at t, or ""."""
        w = self.latest(t)
        if w is None or not w.holder or not w.writer or t - w.t > w.duration:
            return ""
        return w.writer if self._held_by(w, w.writer) else ""

    def _held_by(self, w: LeaseWrite, process: str) -> bool:
        return w.writer == process and bool(w.holder) and w.holder == self.identity(process)

    def why_not(self, process: str, t: float) -> str:
        """Why `process` did not hold the lease at t (for a violation's report)."""
        w = self.latest(t)
        if w is None:
            return "nobody had written the Lease yet"
        if w.writer == process and not w.holder:
            return f"it had released the Lease {t - w.t:.3f} s earlier"
        if w.writer == process and self._held_by(w, process):
            return (f"its lease had expired {t - w.t - w.duration:.3f} s earlier (last "
                    f"renewed {t - w.t:.3f} s earlier, leaseDurationSeconds {w.duration:g})")
        if w.writer == process:
            return f"its last Lease write named {w.holder!r}, not its identity"
        if not w.holder:
            return f"{w.writer or 'someone'} had released the Lease {t - w.t:.3f} s earlier"
        same = " (a later process of the same Pod)" \
            if w.writer and self.identity(w.writer) == self.identity(process) else ""
        since = self._term_start(self._index(w))
        return (f"the Lease was held by {w.writer or w.holder}{same}, whose term began "
                f"{t - since:.3f} s earlier")

    def _index(self, w: LeaseWrite) -> int:
        return bisect.bisect_right(self.times, w.t) - 1

    def _term_start(self, i: int) -> float:
        """When the term of the write at index i began (its writer's first write in a row)."""
        while i > 0 and self.writes[i - 1].writer == self.writes[i].writer:
            i -= 1
        return self.writes[i].t

    def terms(self) -> list[Term]:
        terms: list[Term] = []
        current: Term | None = None
        for w in self.writes:
            if current is not None and w.writer != current.process:
                current.end = min(w.t, current.last + self._duration_at(current.last))
                late = w.t > current.last + self._duration_at(current.last)
                current.how = "expired" if late else f"taken over by {w.writer or '?'}"
                current = None
            if not w.holder:  # a release ends its writer's term
                if current is not None:
                    current.last = current.end = w.t
                    current.how = "released"
                    current.writes += 1
                    current = None
                continue
            if not w.writer or w.holder != self.identity(w.writer):
                continue  # a write that names someone else: no term of a replica
            if current is None:
                current = Term(w.writer, w.holder, w.t, w.t)
                terms.append(current)
            else:
                current.last = w.t
                current.writes += 1
        if current is not None:
            current.end = current.last + self._duration_at(current.last)
            current.how = "open"
        return terms

    def _duration_at(self, t: float) -> float:
        w = self.latest(t)
        return w.duration if w is not None else 0.0


# --------------------------------------------------------------------------- the checks

def fencing(writes: Iterable[Write], lease: LeaseHistory, j: Judgement) -> None:
    """(a) Every write by a replica process made while it held the lease."""
    for w in sorted(writes, key=lambda w: w.t):
        j.writes_checked += 1
        if lease.holds(w.writer, w.t):
            latest = lease.latest(w.t)
            assert latest is not None
            j.oldest_lease_at_write = max(j.oldest_lease_at_write, w.t - latest.t)
        else:
            j.violations.append(Violation(w, lease.why_not(w.writer, w.t)))


def subtract(spans: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """`spans` without the parts inside `holes`."""
    holes = sorted(holes)
    out = []
    for a, b in spans:
        pieces = [(a, b)]
        for h0, h1 in holes:
            nxt = []
            for p0, p1 in pieces:
                if h1 <= p0 or h0 >= p1:
                    nxt.append((p0, p1))
                    continue
                if p0 < h0:
                    nxt.append((p0, h0))
                if h1 < p1:
                    nxt.append((h1, p1))
            pieces = nxt
        out.extend(p for p in pieces if p[1] > p[0])
    return out


def union(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two unions of intervals (each sorted, disjoint)."""
    out, i, k = [], 0, 0
    while i < len(a) and k < len(b):
        lo, hi = max(a[i][0], b[k][0]), min(a[i][1], b[k][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[k][1]:
            i += 1
        else:
            k += 1
    return out


def overlaps(spans: Mapping[str, Sequence[Interval]], frozen: Mapping[str, Sequence[Interval]],
             lease: LeaseHistory, stale_bound: float, j: Judgement) -> None:
    """(b) Instants at which reconciles of two processes ran (see the module doc)."""
    active: dict[str, list[Interval]] = {}
    for proc, its in spans.items():
        holes = list(frozen.get(proc, ()))
        for f0, f1 in frozen.get(proc, ()):
            if lease.holds(proc, f1):
                continue  # still the leader when thawed: whatever it runs is its own
            for a, b in its:
                if a < f0 < b and b > f1:  # running when frozen, still after the SIGCONT
                    length = b - f1
                    over = length > stale_bound
                    j.stale_tails.append(StaleTail(proc, f1, length, over))
                    holes.append((f1, min(b, f1 + stale_bound)))
        active[proc] = union(subtract(its, holes))
    procs = sorted(active)
    for x, p in enumerate(procs):
        for q in procs[x + 1:]:
            for a, b in intersect(active[p], active[q]):
                j.overlaps.append(Overlap(p, q, a, b))
    j.overlaps.sort(key=lambda o: o.start)


def leaderless(terms: Sequence[Term], excused: Iterable[Interval], bound: float,
               j: Judgement) -> None:
    """(c) The periods between terms; too long when the part after the last moment at
    which nobody could have taken the lease exceeds `bound`."""
    excused = union(excused)
    for prev, nxt in zip(terms, terms[1:], strict=False):
        start, end = prev.last, nxt.start
        counted_from = start
        for a, b in excused:
            if a < end and b > start:
                counted_from = max(counted_from, min(b, end))
        counted = end - counted_from
        j.gaps.append(Gap(start, end, prev.process, nxt.process, counted, counted > bound))


def judge(lease_writes: Iterable[LeaseWrite], writes: Iterable[Write],
          identity: Callable[[str], str], spans: Mapping[str, Sequence[Interval]],
          frozen: Mapping[str, Sequence[Interval]], excused: Iterable[Interval],
          bound: float, stale_bound: float) -> Judgement:
    """All three checks of what happened (convergence and lost objects are checked on the
    cluster's final state, by the driver)."""
    lease = LeaseHistory(lease_writes, identity)
    j = Judgement()
    j.terms = lease.terms()
    fencing(writes, lease, j)
    overlaps(spans, frozen, lease, stale_bound, j)
    leaderless(j.terms, excused, bound, j)
    return j


def handover(terms: Sequence[Term], after: float, other_than: str) -> Term | None:
    """The first term that began after `after` by another process than `other_than`."""
    return next((t for t in terms if t.start > after and t.process != other_than), None)
