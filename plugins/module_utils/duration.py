# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Go durations (`time.ParseDuration`), as watches.yaml, CR annotations, the runtime's flags
and the requeue_after module take them."""

from __future__ import annotations

_DURATION_UNITS_NS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
    "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
}
DURATION_HELP = ('a Go duration: numbers with units ns, us, ms, s, m, h, such as "30s", '
                  '"1h2m3s", "1.5h", "500ms", or "0"')
_MAX_DURATION_NS = (1 << 63) - 1


def _fraction_ns(digits: str, unit_ns: int) -> int:
    """The nanoseconds of `.digits` of a unit, computed as Go does (digits past int64 precision
    are dropped, then a float64 product truncated), so that results match to the nanosecond."""
    value, scale = 0, 1.0
    for c in digits:
        if value > _MAX_DURATION_NS // 10 or value * 10 + int(c) > 1 << 63:
            break
        value, scale = value * 10 + int(c), scale * 10
    return int(float(value) * (float(unit_ns) / scale))


def parse_duration(text: str) -> float:
    """Parse a Go duration (`time.ParseDuration`: "1h2m3s", "500ms", "1.5h", "-2s", "0") into
    seconds. Raises ValueError, naming the problem and the accepted form."""
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: expected {DURATION_HELP}")
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}: expected {DURATION_HELP}")
    total_ns = 0
    pos = 0
    while pos < len(s):
        start = pos
        while pos < len(s) and s[pos].isascii() and s[pos].isdigit():
            pos += 1
        whole = s[start:pos]
        fraction = ""
        if pos < len(s) and s[pos] == ".":
            pos += 1
            fstart = pos
            while pos < len(s) and s[pos].isascii() and s[pos].isdigit():
                pos += 1
            fraction = s[fstart:pos]
        if not whole and not fraction:
            raise ValueError(f"invalid duration {text!r}: expected {DURATION_HELP}")
        ustart = pos
        while pos < len(s) and s[pos] != "." and not (s[pos].isascii() and s[pos].isdigit()):
            pos += 1
        unit = s[ustart:pos]
        if not unit:
            raise ValueError(f"invalid duration {text!r}: missing unit; expected {DURATION_HELP}")
        if unit not in _DURATION_UNITS_NS:
            raise ValueError(
                f"invalid duration {text!r}: unknown unit {unit!r}; expected {DURATION_HELP}")
        unit_ns = _DURATION_UNITS_NS[unit]
        part = int(whole or "0") * unit_ns
        if fraction:
            part += _fraction_ns(fraction, unit_ns)
        total_ns += part
        if total_ns > _MAX_DURATION_NS + (1 if negative else 0):
            raise ValueError(f"invalid duration {text!r}: out of range (at most about 2562047h)")
    return (-total_ns if negative else total_ns) / 1e9


# --------------------------------------------------------------------------- environment

# `${NAME}`, `$NAME`, or `$` + one special character, like Go's os.Expand.
