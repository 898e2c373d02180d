"""Shared by the lease benchmarks: the machine line, statistics, and writing one section of
a Markdown file (several benchmarks record into one file, each into its own marked section).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

LOAD_AT_START = os.getloadavg()[0]


def command_line(script: str) -> str:
    return f".venv/bin/python bench/{script} " + " ".join(sys.argv[1:])


def machine(extra: str = "") -> str:
    import kubernetes

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, kubernetes {kubernetes.__version__}{extra}, "
            f"{time.strftime('%Y-%m-%d')}; load average (1 min) {LOAD_AT_START:.2f} at the "
            f"start, {os.getloadavg()[0]:.2f} at the end (other work on the machine shows "
            f"there)")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary(values: list[float]) -> tuple[float, float, float]:
    """(min, median, max)."""
    return min(values), statistics.median(values), max(values)


def write_section(path: str | Path, key: str, title: str, body: list[str]) -> None:
    """Replace (or append) the section `key` of the Markdown file `path`, keeping the rest
    of the file as it is. A new file gets `title` as its heading."""
    begin, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = "\n".join([begin, *body, end])
    p = Path(path)
    text = p.read_text() if p.exists() else f"# {title}\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    p.write_text(text)
