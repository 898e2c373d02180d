#!/usr/bin/python
# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Ansible module: leader for life with a ConfigMap lock owned by the leader Pod."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_leader_become
short_description: Leader for life, with a ConfigMap lock owned by the leader Pod
version_added: 0.1.0
author: election.kubernetes developers
description:
  - Makes the Pod this runs in the leader for as long as it exists, as the Operator SDK's
    C(leader.Become) does. The first candidate to create the lock ConfigMap, with exactly
    one ownerReference to its own Pod, is the leader. When that Pod is deleted, the garbage
    collector deletes the lock and the next candidate creates it. There is no renewal and no
    lease, so there is never a second leader while the ownerReference holds.
  - Whether this Pod already owns the lock is decided by its UID, not its name, so a
    recreated Pod with the same name waits for the old lock to be collected.
  - A leader Pod that is Failed or Succeeded (Evicted, Preempting, ...) and not being
    deleted is deleted so that the lock is freed. A leader Pod on a NotReady node is
    deleted together with the lock when O(node_not_ready=delete), after
    O(node_not_ready_grace); this trades away the single-leader guarantee, because the old
    Pod may still be running on a partitioned node.
  - While waiting, the lock ConfigMap and the leader Pod are watched, so the call tries again
    as soon as the lock is deleted. Every retry, errors included, otherwise backs off 1, 2,
    4, 8, 16, 16... seconds (capped by O(max_backoff), each +0-20 % jitter).
  - Outside a cluster (no O(namespace) and no service account namespace file) the election
    is skipped and reported as skipped, as in the Operator SDK documentation, unless
    O(outside_cluster=fail).
extends_documentation_fragment:
  - election.kubernetes.auth
options:
  lock_name:
    description: Name of the lock ConfigMap (a lowercase RFC 1123 subdomain).
    type: str
    required: true
  namespace:
    description:
      - Namespace of the lock and of this Pod. Defaults to the namespace of the service
        account when run inside a Pod.
    type: str
  pod_name:
    description:
      - Name of the Pod this runs in. Defaults to the E(POD_NAME) environment variable,
        which the Pod should set from the downward API (C(fieldRef metadata.name)).
    type: str
  wait:
    description:
      - Wait until this Pod is the leader. With V(false) the call makes one pass and
        reports who leads.
    type: bool
    default: true
  timeout:
    description:
      - Upper bound in seconds on the wait; 0 waits for as long as it takes (as
        operator-lib does). When it passes, the result has O(is_leader=false) and a
        message; the task does not fail.
    type: float
    default: 0
  max_backoff:
    description: Longest pause between attempts, in seconds (at least 1).
    type: float
    default: 16
  node_not_ready:
    description:
      - What to do when the leader Pod's node is NotReady.
      - V(delete) deletes the leader Pod and then the lock (operator-lib's behaviour), once
        the node has been seen NotReady for O(node_not_ready_grace) seconds.
      - V(wait) leaves them alone and waits for the Pod to go.
    type: str
    choices: [delete, wait]
    default: delete
  node_not_ready_grace:
    description: Seconds the leader's node must be seen NotReady before V(delete) acts.
    type: float
    default: 0
  outside_cluster:
    description:
      - V(proceed) skips the election outside a cluster and reports O(skipped=true) with
        O(is_leader=true), so that the play carries on as the only instance.
      - V(fail) fails the task instead.
    type: str
    choices: [proceed, fail]
    default: proceed
attributes:
  check_mode:
    support: full
    description: Nothing is written; the result says what would happen.
notes:
  - RBAC needed in the namespace - configmaps get, create, delete, list, watch; pods get,
    delete, list, watch. Cluster-wide - nodes get (without it a NotReady node is not
    detected, and the result says so).
requirements:
  - kubernetes >= 24.2.0
"""

EXAMPLES = r"""
- name: Become the leader before reconciling (blocks until this Pod leads)
  election.kubernetes.k8s_leader_become:
    lock_name: memcached-operator-lock

- name: Find out without waiting
  election.kubernetes.k8s_leader_become:
    lock_name: memcached-operator-lock
    wait: false
  register: leader

- name: Wait at most five minutes, and never take over from a NotReady node
  election.kubernetes.k8s_leader_become:
    lock_name: memcached-operator-lock
    timeout: 300
    node_not_ready: wait
"""

RETURN = r"""
is_leader:
  description: Whether this Pod holds the lock (also true when the election was skipped).
  returned: always
  type: bool
acquired:
  description: Whether this call created the lock.
  returned: always
  type: bool
holder:
  description: The Pod that holds the lock.
  returned: always
  type: dict
  sample: {name: memcached-operator-7d9c-abcde, uid: 0b6c5a44-58a4-4cd8-9d63-1c4b2b51f0a1}
lock:
  description: The lock ConfigMap.
  returned: always
  type: dict
  sample: {name: memcached-operator-lock, namespace: operators, uid: 5d1e...}
skipped:
  description: Whether the election was skipped (outside a cluster).
  returned: always
  type: bool
skip_reason:
  description: Why the election was skipped.
  returned: when skipped
  type: str
attempts:
  description: How many passes the call made.
  returned: always
  type: int
waited:
  description: Seconds the call took.
  returned: always
  type: float
decisions:
  description: One line per decision, saying what was seen and what happened next.
  returned: always
  type: list
  elements: str
msg:
  description: The last decision.
  returned: always
  type: str
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.election.kubernetes.plugins.module_utils import options  # noqa: E402
from ansible_collections.election.kubernetes.plugins.module_utils.kube import (  # noqa: E402
    AUTH_ARG_SPEC,
    SA_DIR,
    KubeConfigError,
    in_cluster_namespace,
    make_api_client,
)
from ansible_collections.election.kubernetes.plugins.module_utils.leader_for_life import (  # noqa: E402,E501
    DEFAULT_MAX_BACKOFF,
    NODE_NOT_READY_CHOICES,
    KubeLifeAPI,
    LifeConfig,
    LifeError,
    become,
)


def argument_spec() -> dict:
    spec = dict(
        # options.string/seconds: Ansible's str and float, but a list, a mapping or a boolean
        # is refused instead of converted (see module_utils/options.py)
        lock_name=dict(type=options.string, required=True),
        namespace=dict(type=options.string),
        pod_name=dict(type=options.string),
        wait=dict(type="bool", default=True),
        timeout=dict(type=options.seconds, default=0),
        max_backoff=dict(type=options.seconds, default=DEFAULT_MAX_BACKOFF),
        node_not_ready=dict(type="str", choices=list(NODE_NOT_READY_CHOICES),
                            default="delete"),
        node_not_ready_grace=dict(type=options.seconds, default=0),
        outside_cluster=dict(type="str", choices=["proceed", "fail"], default="proceed"),
    )
    spec.update(AUTH_ARG_SPEC)
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    namespace = p["namespace"] or in_cluster_namespace()
    if not namespace:
        reason = (f"not running in a cluster: no namespace option and no service account "
                  f"namespace file at {SA_DIR}/namespace")
        if p["outside_cluster"] == "fail":
            module.fail_json(msg=f"leader election impossible: {reason}")
        module.exit_json(changed=False, is_leader=True, acquired=False, skipped=True,
                         skip_reason=reason, holder={}, lock={"name": p["lock_name"]},
                         attempts=0, waited=0.0, decisions=[f"Skipping leader election; "
                                                            f"{reason}."],
                         msg=f"Skipping leader election; {reason}.")
    if p["timeout"] < 0:
        module.fail_json(msg=f"timeout must be 0 (no limit) or more seconds, got "
                             f"{p['timeout']:g}")
    pod_name = p["pod_name"] if p["pod_name"] is not None else os.environ.get("POD_NAME", "")
    try:
        config = LifeConfig(lock_name=p["lock_name"], namespace=namespace, pod_name=pod_name,
                            max_backoff=p["max_backoff"], node_not_ready=p["node_not_ready"],
                            node_not_ready_grace=p["node_not_ready_grace"]).validate()
    except LifeError as e:
        module.fail_json(msg=str(e))
    try:
        api_client = make_api_client(p, user_agent=f"election.kubernetes/k8s_leader_become "
                                                   f"({pod_name})")
    except KubeConfigError as e:
        module.fail_json(msg=str(e))
    api = KubeLifeAPI(api_client, timeout=config.request_timeout)
    try:
        res = become(config, api, wait=p["wait"], timeout=p["timeout"],
                     check_mode=module.check_mode)
    except LifeError as e:
        module.fail_json(msg=str(e))
    finally:
        api.close()
    module.exit_json(
        changed=res.wrote or res.would_write, is_leader=res.is_leader,
        acquired=res.acquired, skipped=False,
        holder={"name": res.holder_name, "uid": res.holder_uid},
        lock={"name": config.lock_name, "namespace": namespace, "uid": res.lock_uid},
        attempts=res.attempts, waited=res.waited, decisions=res.decisions, msg=res.message)


if __name__ == "__main__":
    main()
