#!/usr/bin/python
# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Ansible module: leader election with a coordination.k8s.io/v1 Lease."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_lease_elect
short_description: Leader election with a coordination.k8s.io/v1 Lease
version_added: 0.1.0
author: election.kubernetes developers
description:
  - Become, stay, or stop being the holder of a C(coordination.k8s.io/v1) Lease, with the
    semantics of client-go's leader election, so that a play (for example the same play run
    from cron on several hosts) does its work on one host only.
  - A Lease held by another candidate is taken over only after it has stayed unchanged for
    its whole C(leaseDurationSeconds) as observed on this host's monotonic clock; the
    holder's C(renewTime) is not trusted unless O(clock_skew_margin) is set. Wall-clock
    offsets between hosts therefore do not matter.
  - Each call is a separate process, so the observation (record, resourceVersion, boot id
    and monotonic time) is kept in a small file under O(state_dir) and the next call on the
    same host continues it. Without an earlier observation, and with another holder whose
    lease looks valid, the call observes the Lease itself for up to one lease duration; it
    returns as soon as the holder renews, and takes over only if it never does.
  - Every write is a PUT carrying the resourceVersion that was read, so of two candidates
    that race exactly one wins; the loser reports O(is_leader=false), not an error.
  - The holder must renew (call this module again with O(state=leader)) more often than
    O(lease_duration), or others will take over. Keep the guarded work shorter than the
    lease, or re-check leadership between steps; a lease gives no fencing.
extends_documentation_fragment:
  - election.kubernetes.auth
options:
  name:
    description: Name of the Lease (a lowercase RFC 1123 subdomain).
    type: str
    required: true
  namespace:
    description:
      - Namespace of the Lease. Defaults to the namespace of the service account when run
        inside a Pod; required elsewhere.
    type: str
  identity:
    description:
      - This candidate's identity, written as C(holderIdentity). Defaults to the
        E(POD_NAME) environment variable, then the host name.
    type: str
  lease_duration:
    description:
      - Seconds a lease lasts without renewal (C(leaseDurationSeconds)); whole seconds.
      - Must be greater than O(renew_deadline).
    type: int
    default: 15
  renew_deadline:
    description:
      - Seconds within which a holder must renew before it considers its leadership lost.
      - Must be greater than 1.2 x O(retry_period).
    type: float
    default: 10
  retry_period:
    description:
      - Seconds between attempts. With O(wait=true) attempts are jittered between 0.5 and
        1 x this, so a released Lease is taken within one retry period; while observing an
        unknown holder they are spaced 1 to 2.2 x this, as in client-go.
    type: float
    default: 2
  state:
    description:
      - V(leader) acquires the Lease or renews it.
      - V(released) gives it up if this identity holds it (holder empty,
        C(leaseDurationSeconds) 1, transitions kept), so a waiting candidate takes over at
        once.
    type: str
    choices: [leader, released]
    default: leader
  wait:
    description: Keep campaigning until this candidate leads or O(timeout) passes.
    type: bool
    default: false
  timeout:
    description:
      - Upper bound in seconds on the whole call (campaign and observation); 0 means none.
      - When it passes without leadership the result has O(is_leader=false) and a message;
        the task does not fail.
    type: float
    default: 300
  clock_skew_margin:
    description:
      - Opt-in, faster takeover of dead holders on a cold start. When set, a Lease whose
        C(renewTime) is older than C(leaseDurationSeconds) plus this margin (by this host's
        wall clock) is taken over without observing it first.
      - Safe only if the clocks of all candidates differ by less than the margin.
    type: float
  state_dir:
    description: Directory for the observation files (one small JSON file per Lease).
    type: path
    default: ~/.cache/election.kubernetes
attributes:
  check_mode:
    support: full
    description: Nothing is written; the result says what would happen.
requirements:
  - kubernetes >= 24.2.0
"""

EXAMPLES = r"""
- name: Become leader (one attempt)
  election.kubernetes.k8s_lease_elect:
    name: nightly-report
    namespace: batch
  register: lease

- name: Only the leader does the work
  ansible.builtin.command: /usr/local/bin/make-report
  when: lease.is_leader

- name: Wait up to two minutes to lead
  election.kubernetes.k8s_lease_elect:
    name: nightly-report
    namespace: batch
    wait: true
    timeout: 120

- name: Hand over at once when done
  election.kubernetes.k8s_lease_elect:
    name: nightly-report
    namespace: batch
    state: released
"""

RETURN = r"""
is_leader:
  description: Whether this identity holds the Lease after the call.
  returned: always
  type: bool
holder:
  description: The holder identity in the Lease ("" when free).
  returned: always
  type: str
  sample: host-a
identity:
  description: This candidate's identity.
  returned: always
  type: str
acquired:
  description: Whether this call began a new term for this identity (created the Lease,
    took over an expired one, or took a free one).
  returned: always
  type: bool
transitions:
  description: C(leaseTransitions) of the Lease.
  returned: always
  type: int
lease:
  description: The Lease spec as last read or written.
  returned: always
  type: dict
  sample:
    name: nightly-report
    namespace: batch
    holder_identity: host-a
    lease_duration_seconds: 15
    acquire_time: "2026-01-02T03:04:05.123456Z"
    renew_time: "2026-01-02T03:04:07.123456Z"
    lease_transitions: 3
    resource_version: "4711"
remaining:
  description: Seconds the holder's lease still has, by this host's observation (0 when
    free or expired).
  returned: always
  type: float
observed_for:
  description: Seconds the current record has been seen unchanged by this host.
  returned: always
  type: float
attempts:
  description: How many acquire/renew attempts the call made.
  returned: always
  type: int
waited:
  description: Seconds the call took.
  returned: always
  type: float
released:
  description: Whether the call released the Lease.
  returned: when O(state=released)
  type: bool
msg:
  description: What happened, in words.
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
    default_identity,
    in_cluster_namespace,
    make_api_client,
)
from ansible_collections.election.kubernetes.plugins.module_utils.lease import (  # noqa: E402
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    ApiFailure,
    ConfigError,
    ElectionConfig,
    KubeLeaseAPI,
    ObservationStore,
    elect_once,
)


def argument_spec() -> dict:
    spec = dict(
        # options.string/seconds/path: Ansible's str, float and path, but a list, a mapping
        # or a boolean is refused instead of converted (see module_utils/options.py)
        name=dict(type=options.string, required=True),
        namespace=dict(type=options.string),
        identity=dict(type=options.string),
        lease_duration=dict(type="int", default=DEFAULT_LEASE_DURATION),
        renew_deadline=dict(type=options.seconds, default=DEFAULT_RENEW_DEADLINE),
        retry_period=dict(type=options.seconds, default=DEFAULT_RETRY_PERIOD),
        state=dict(type="str", choices=["leader", "released"], default="leader"),
        wait=dict(type="bool", default=False),
        timeout=dict(type=options.seconds, default=300),
        clock_skew_margin=dict(type=options.seconds),
        state_dir=dict(type=options.path, default="~/.cache/election.kubernetes"),
    )
    spec.update(AUTH_ARG_SPEC)
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    namespace = p["namespace"] or in_cluster_namespace()
    if not namespace:
        module.fail_json(msg=f"namespace is required outside a cluster (there is no service "
                             f"account namespace file at {SA_DIR}/namespace): set the "
                             f"namespace option")
    identity = p["identity"] if p["identity"] is not None else default_identity()
    if p["timeout"] < 0:
        module.fail_json(msg=f"timeout must be 0 (no limit) or more seconds, got "
                             f"{p['timeout']:g}")
    try:
        config = ElectionConfig(name=p["name"], namespace=namespace, identity=identity,
                                lease_duration=p["lease_duration"],
                                renew_deadline=p["renew_deadline"],
                                retry_period=p["retry_period"],
                                clock_skew_margin=p["clock_skew_margin"]).validate()
    except ConfigError as e:
        module.fail_json(msg=str(e))
    store = ObservationStore(os.path.expanduser(p["state_dir"]))
    problem = store.problem()
    if problem:
        module.fail_json(msg=f"state_dir {p['state_dir']}: {problem}; expected a directory this "
                             f"user can write (it is created when missing)")
    try:
        api_client = make_api_client(p, user_agent=f"election.kubernetes/k8s_lease_elect "
                                                   f"({identity})")
    except KubeConfigError as e:
        module.fail_json(msg=str(e))
    try:
        result = elect_once(config, KubeLeaseAPI(api_client), api_client.configuration.host,
                            store=store, state=p["state"], wait=p["wait"],
                            timeout=p["timeout"], check_mode=module.check_mode)
    except ApiFailure as e:
        module.fail_json(msg=str(e), identity=identity)
    except OSError as e:
        module.fail_json(msg=f"cannot use state_dir {p['state_dir']}: {e}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
