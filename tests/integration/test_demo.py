"""`make demo` end to end: scripts/demo.py against kubesim, as a user runs it.

The demo writes a JSON summary (`--json`) with what it saw and every process of the replicas
it noticed (pid and start time); the assertions read that, the PNG, and the process table.
`--pause 1` shortens the demo's idle watching between steps, nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from matplotlib import image

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"
NAMES = {"replica-a", "replica-b", "replica-c"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def demo_command(tmp_path: Path) -> list[str]:
    return [sys.executable, str(DEMO), "--out", str(tmp_path / "timeline.png"),
            "--json", str(tmp_path / "summary.json"), "--workdir", str(tmp_path / "replicas"),
            "--pause", "1", "--color", "never"]


def demo_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)  # kubesim, not a cluster of the machine
    return env


def still_alive(report: dict[str, Any]) -> list[int]:
    """The processes the demo started (as it recorded them) that are alive now."""
    left = []
    for proc in report["processes"]["started"]:
        try:
            p = psutil.Process(proc["pid"])
            if p.create_time() == proc["create_time"] and p.status() != psutil.STATUS_ZOMBIE:
                left.append(proc["pid"])
        except psutil.NoSuchProcess:
            continue
    return left


@pytest.mark.slow
def test_demo_hands_over_scales_and_leaves_nothing(tmp_path: Path) -> None:
    done = subprocess.run(demo_command(tmp_path), cwd=ROOT, env=demo_env(), text=True,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    report = json.loads((tmp_path / "summary.json").read_text())
    s = report["summary"]

    assert s["killed"] in NAMES and s["new_leader"] in NAMES - {s["killed"]}, s
    assert [t["replica"] for t in s["leaders"][:2]] == [s["killed"], s["new_leader"]]
    assert s["leaders"][0]["end"] == "killed"
    # SIGKILL gives no release: the others wait for the lease (4 s) to expire after they last
    # saw it renewed, retrying every second.
    assert 0 < s["handover_seconds"] < 4 + 2 * 1 + 2, s["handover_seconds"]
    assert s["reconciles"][s["new_leader"]] >= 2, "after the takeover, and after the scaling"
    assert s["final"]["successful"] == "True"
    assert len(s["final"]["nodes"]) == 5 and len(set(s["final"]["nodes"])) == 5
    assert sorted(s["final"]["nodes"]) == sorted(p["name"] for p in s["final"]["pods"])
    assert s["final"]["deployment"]["replicas"] == 5
    assert s["writes"]["by_replicas"] > 0 and s["writes"]["by_non_leaders"] == 0, s["writes"]

    png = tmp_path / "timeline.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    height, width = image.imread(png).shape[:2]  # decodes the whole image
    assert width > 600 and height > 200

    assert len(report["processes"]["started"]) > 3, "the replicas and some of their runs"
    assert report["processes"]["alive"] == [] and still_alive(report) == []
    assert "Summary" in done.stdout and f"handover: {s['killed']} SIGKILLed" in done.stdout
    assert "are all gone (psutil)" in done.stdout


def test_demo_interrupted_stops_everything(tmp_path: Path) -> None:
    """Ctrl-C while the first reconcile runs: exit 1, and nothing the demo started is left
    (also with a second Ctrl-C during the clean-up)."""
    proc = subprocess.Popen(demo_command(tmp_path), cwd=ROOT, env=demo_env(), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "reconcile start" in line:
                proc.send_signal(signal.SIGINT)
                proc.send_signal(signal.SIGINT)
                break
        seen.append(proc.stdout.read())
        assert proc.wait(60) == 1, "".join(seen)[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen)
    assert "interrupted: stopping everything" in output, output[-4000:]
    report = json.loads((tmp_path / "summary.json").read_text())
    assert not report["ok"] and report["summary"] is None
    assert len(report["processes"]["started"]) >= 3
    assert report["processes"]["alive"] == [] and still_alive(report) == []
