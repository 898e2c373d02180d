# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Record each task's start and end (CLOCK_MONOTONIC) to a JSON file, for the benchmarks.

Enable with ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins
ANSIBLE_CALLBACKS_ENABLED=bench_task_times and BENCH_TASK_TIMES=<output file>.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_task_times
type: aggregate
short_description: write task start/end times (CLOCK_MONOTONIC) to $BENCH_TASK_TIMES
description:
  - For bench/module_time.py. Not part of the collection.
requirements:
  - enable in configuration
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._tasks: list[dict] = []
        self._open: dict[str, dict] = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        rec = {"name": task.get_name(), "action": task.action, "start": time.monotonic()}
        self._open[task._uuid] = rec
        self._tasks.append(rec)

    def _end(self, result, status: str) -> None:
        rec = self._open.get(result._task._uuid)
        if rec is None:
            return
        rec["end"] = time.monotonic()
        rec["status"] = status
        res = result._result
        rec["result"] = {k: res[k] for k in ("changed", "is_leader", "acquired", "reason",
                                             "attempts", "msg") if k in res}
        if "resources" in res:
            rec["result"]["resources"] = len(res["resources"])

    def v2_runner_on_ok(self, result):
        self._end(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._end(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._end(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("BENCH_TASK_TIMES")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(self._tasks, f, indent=1)
