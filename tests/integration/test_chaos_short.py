"""The chaos suite, short: `make chaos` runs 200 faults (bench/chaos.py, docs/chaos.md); this is
the same run with 24 faults, one of each kind first, and a fixed seed.

Three election-operator replicas, bound only to deploy/role.yaml, reconcile five Memcacheds on
kubesim while their sizes change and the faults hit them (SIGKILL, SIGTERM, SIGSTOP past the
lease, API outage, 500/429/503 bursts, latency above the request timeout, a partition of one
replica, a replica restarted under faketime). From the audit log and the Lease's history: no
write by a replica outside its lease, no two replicas reconciling at once, no no-leader period
over the bound, every Memcached converged after the faults, nothing lost, no 401/403.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _chaos_schedule as plan  # noqa: E402
import chaos  # noqa: E402

SEED = 7


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_short_chaos_run_finds_no_violation(tmp_path: Path) -> None:
    lines: list[str] = []
    settings = chaos.Settings(faults=24, seed=SEED, workdir=tmp_path / "chaos",
                              command=f"tests/integration/test_chaos_short.py (24 faults, "
                                      f"seed {SEED})")
    outcome = chaos.run(settings, lines.append)
    report = "\n".join(lines)
    fg = outcome.figures
    assert outcome.ok, report
    assert all(n == 0 for n in fg["verdicts"].values()), report
    # the run did what it says: every kind of fault, handovers, writes to judge
    assert set(fg["kinds"]) == set(plan.KINDS), report
    assert fg["handovers"] >= 3 and fg["terms"] >= 4, report
    assert fg["writes_checked"] >= 10 and fg["lease_writes"] > 50, report
    assert fg["reconcile_results"].get("succeeded", 0) >= 3, report
    assert fg["restarts"] >= 3, report


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_detector_finds_a_split_brain(tmp_path: Path) -> None:
    """A fourth replica without leader election ("rogue") joins the run: the same detector
    must find its writes outside any lease and its reconciles next to the leader's."""
    lines: list[str] = []
    settings = chaos.Settings(faults=3, seed=SEED, crs=2, rogue=True,
                              workdir=tmp_path / "chaos")
    outcome = chaos.run(settings, lines.append)
    report = "\n".join(lines)
    fg = outcome.figures
    assert not outcome.ok, report
    assert fg["verdicts"]["fencing violations"] > 0, report
    assert all(v.startswith("rogue.") for v in fg["violations"]), report
    assert fg["verdicts"]["overlaps"] > 0, report
    assert all("rogue." in o for o in fg["overlap_list"]), report
    assert "verdict: FAIL" in report
