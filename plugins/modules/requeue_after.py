#!/usr/bin/python
# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Ansible module: ask election-operator to reconcile the current resource again later."""

from __future__ import annotations

DOCUMENTATION = r"""
module: requeue_after
short_description: Ask the operator to run this reconcile again after a period
version_added: 0.1.0
author: election.kubernetes developers
description:
  - Inside a reconcile run by C(election-operator), the custom resource being reconciled is
    reconciled again O(time) after this run ends, instead of after the reconcile period.
    This is the interface of C(operator_sdk.util.requeue_after).
  - The first successful C(requeue_after) task of a run counts; a failed one is ignored.
  - Outside an operator it only checks O(time) and returns it; it never changes anything.
options:
  time:
    description:
      - How long to wait, as a Go duration such as C(30s), C(1m30s) or C(500ms).
    type: str
    required: true
    aliases: [period]
notes:
  - Supports check mode; the period counts in check mode too.
"""

EXAMPLES = r"""
- name: Come back in 5 seconds
  election.kubernetes.requeue_after:
    time: 5s
"""

RETURN = r"""
period:
  description: The period, as given (the runtime reads this).
  returned: success
  type: str
  sample: 5s
seconds:
  description: The period in seconds.
  returned: success
  type: float
  sample: 5.0
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.election.kubernetes.plugins.module_utils import options  # noqa: E402
from ansible_collections.election.kubernetes.plugins.module_utils.duration import (  # noqa: E402
    parse_duration,
)


def main() -> None:
    module = AnsibleModule(
        # options.string: a list or a mapping is refused instead of converted to its text
        argument_spec={"time": {"type": options.string, "required": True,
                                "aliases": ["period"]}},
        supports_check_mode=True)
    period = module.params["time"]
    try:
        seconds = parse_duration(period)
    except ValueError as e:
        module.fail_json(msg=f"time: {e}")
    if seconds < 0:
        module.fail_json(msg=f"time: {period!r} is negative; expected 0 or more")
    module.exit_json(changed=False, period=period, seconds=seconds)


if __name__ == "__main__":
    main()
