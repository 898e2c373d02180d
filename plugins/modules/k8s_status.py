#!/usr/bin/python
# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Ansible module: set the status of a Kubernetes object through its status subresource."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_status
short_description: Set the status of a Kubernetes object, for operators written in Ansible
version_added: 0.1.0
author: election.kubernetes developers
description:
  - Sets keys and conditions in the C(status) of a Kubernetes object (usually the custom
    resource an Ansible-based operator reconciles) through its C(status) subresource. It
    has the interface and the merge rules of C(operator_sdk.util.k8s_status), so a role
    written for that module works unchanged with this one.
  - By default the given O(status) is merged into the current one. Keys not given are kept;
    objects merge key by key; a key set to C(null) is removed; a list is written as given.
    Conditions merge by C(type) (see O(conditions)).
  - With O(replace=true) the whole status is replaced with exactly O(status) (and
    O(conditions)).
  - The task changes nothing, and reports C(changed=false), when the current status
    already holds everything given (lists count as held when they contain every given
    item, unless O(replace_lists=true)).
  - Every write carries the C(resourceVersion) that was read, so it never overwrites a
    status another client wrote in between. When that happens (HTTP 409 Conflict) the
    object is read again, the status merged again and the write tried again, up to 5
    attempts in all.
  - A condition written without C(lastTransitionTime) keeps its current one while its
    C(status) is unchanged, and gets the current time when its C(status) changes or it is
    new. (C(operator_sdk.util.k8s_status) never sets it.)
extends_documentation_fragment:
  - election.kubernetes.auth
options:
  api_version:
    description: API version of the object's kind, for example C(cache.example.com/v1alpha1).
    type: str
    default: v1
    aliases: [api, version]
  kind:
    description:
      - Kind of the object. Also matched against the resource's plural name, singular name
        and short names, in that order.
      - The resource must have the C(status) subresource.
    type: str
    required: true
  name:
    description: Name of the object.
    type: str
    required: true
  namespace:
    description: Namespace of the object; required for namespaced kinds.
    type: str
  status:
    description:
      - 'Keys to set in the object''s status, as C(key: value) pairs.'
      - One of O(status) and O(conditions) is required.
      - Conditions may be given here as C(status.conditions) instead of in O(conditions),
        but not in both places. Written here, they are not checked beyond having a C(type),
        so fields the O(conditions) option does not take (such as C(observedGeneration))
        are possible.
    type: dict
  conditions:
    description:
      - Conditions to set in C(status.conditions), checked against the Kubernetes API
        conventions. A boolean C(status) is turned into C("True") or C("False").
      - Unless O(replace=true), each is merged with the current conditions by C(type). A
        condition of a type not present is appended. One of a type present replaces it
        only when one of its keys other than C(lastTransitionTime) differs; otherwise the
        current condition, with its times, is kept.
      - One of O(status) and O(conditions) is required.
    type: list
    elements: dict
    suboptions:
      type:
        description: Type of the condition; identifies it. Each type may appear once.
        type: str
        required: true
      status:
        description: Status of the condition.
        type: str
        choices: ["True", "False", "Unknown"]
        required: true
      reason:
        description: Why the condition has this status, as one CamelCase word (letters only).
        type: str
      message:
        description: A human-readable explanation.
        type: str
      lastHeartbeatTime:
        description: An RFC 3339 date-time, for example C(2024-01-02T03:04:05Z).
        type: str
      lastTransitionTime:
        description:
          - An RFC 3339 date-time. When omitted it is kept while the condition's status is
            unchanged and set to the current time when the status changes.
        type: str
  replace:
    description:
      - Replace the whole status with exactly O(status) and O(conditions) (an HTTP PUT of
        the status subresource) instead of merging them into it.
    type: bool
    default: false
    aliases: [force]
  replace_lists:
    description:
      - How lists other than C(conditions) count when deciding whether the status already
        holds what is given. With V(false) a current list that contains every given item
        (in any order, maybe with more) counts as held, and the task changes nothing; with
        V(true) it must be equal, so a shorter list is written.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description:
      - Nothing is stored. A write is sent with the server-side C(dryRun=All), so C(result)
        and C(changed) are what the real write would give, and the server validates it.
  diff_mode:
    support: full
    description: Shows the status before and after.
notes:
  - An Ansible-based operator with C(manageStatus) enabled writes its own C(Running),
    C(Successful) and C(Failure) conditions; conditions of other types set with this module
    are kept by it.
requirements:
  - kubernetes >= 24.2.0
"""

EXAMPLES = r"""
- name: Set custom status keys
  election.kubernetes.k8s_status:
    api_version: cache.example.com/v1alpha1
    kind: Memcached
    name: "{{ ansible_operator_meta.name }}"
    namespace: "{{ ansible_operator_meta.namespace }}"
    status:
      nodes: "{{ pods | map(attribute='metadata.name') | sort }}"
    replace_lists: true

- name: Set a condition (merged by type with the current ones)
  election.kubernetes.k8s_status:
    api_version: cache.example.com/v1alpha1
    kind: Memcached
    name: memcached-sample
    namespace: default
    conditions:
      - type: Available
        status: false
        reason: PingFailed
        message: The service did not answer a ping

- name: Replace the whole status
  election.kubernetes.k8s_status:
    api_version: cache.example.com/v1alpha1
    kind: Memcached
    name: memcached-sample
    namespace: default
    status:
      phase: Pending
    replace: true
"""

RETURN = r"""
result:
  description:
    - The object after the write (in check mode, as the server would store it), or as read
      when nothing had to change.
  returned: success
  type: dict
  contains:
    apiVersion:
      description: API version of the object.
      type: str
    kind:
      description: Kind of the object.
      type: str
    metadata:
      description: The object's metadata (name, namespace, resourceVersion, ...).
      type: dict
    spec:
      description: The object's spec, when it has one.
      type: dict
    status:
      description: The object's status.
      type: dict
  sample:
    apiVersion: cache.example.com/v1alpha1
    kind: Memcached
    metadata:
      name: memcached-sample
      namespace: default
      resourceVersion: "4711"
    spec:
      size: 3
    status:
      nodes: [memcached-sample-6d4f-abcde]
      conditions:
        - type: Available
          status: "True"
          reason: Ready
          lastTransitionTime: "2026-01-02T03:04:05Z"
"""

import re  # noqa: E402
import tempfile  # noqa: E402
from typing import Any, cast  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.election.kubernetes.plugins.module_utils import options  # noqa: E402
from ansible_collections.election.kubernetes.plugins.module_utils.kube import (  # noqa: E402
    AUTH_ARG_SPEC,
    ApiFailure,
    KubeConfigError,
    LostRace,
    Target,
    describe_error,
    make_api_client,
    raw_call,
)
from ansible_collections.election.kubernetes.plugins.module_utils.status import (  # noqa: E402
    StatusArgError,
    merge_status_conditions,
    now_time,
    object_contains,
    replace_status_conditions,
    validate_status_args,
)

USER_AGENT = "election.kubernetes/k8s_status"
ATTEMPTS = 5  # writes tried when others keep changing the object (409 Conflict)
REQUEST_TIMEOUT = 30.0  # seconds, per API request
MERGE_PATCH = "application/merge-patch+json"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
KIND = re.compile(r"[A-Za-z][-A-Za-z0-9]*")


class TaskError(Exception):
    """The task cannot be done as asked; the message says why."""


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = dict(
        # options.string: Ansible's str, but a list or a mapping is refused instead of
        # converted to its text (see module_utils/options.py)
        api_version=dict(type=options.string, default="v1", aliases=["api", "version"]),
        kind=dict(type=options.string, required=True),
        name=dict(type=options.string, required=True),
        namespace=dict(type=options.string),
        status=dict(type="dict"),
        # the items are checked by status.validate_status_args, whose messages name the
        # field (conditions[1].reason) the same way for the module and the runtime
        conditions=dict(type="list", elements="dict"),
        replace=dict(type="bool", default=False, aliases=["force"]),
        replace_lists=dict(type="bool", default=False),
    )
    spec.update(AUTH_ARG_SPEC)
    return spec


def check_target(api_version: str, kind: str, name: str, namespace: str | None) -> None:
    """Refuse, before any request, an object reference the API server could never serve (an
    empty or malformed name would otherwise address the collection or another object)."""
    group, slash, version = api_version.rpartition("/")
    if not (len(version) <= 63 and DNS_LABEL.fullmatch(version)) or (slash and not (
            len(group) <= 253 and DNS_SUBDOMAIN.fullmatch(group))):
        raise TaskError(f"api_version {api_version!r} is not an API version: expected "
                        f"GROUP/VERSION such as cache.example.com/v1alpha1, or VERSION alone "
                        f"(v1) for the core group")
    if not KIND.fullmatch(kind):
        raise TaskError(f"kind {kind!r} is not a kind: expected a kind such as Memcached (or "
                        f"the resource's plural, singular or short name)")
    if not name or name in (".", "..") or "/" in name or "%" in name:
        raise TaskError(f"name {name!r} is not a valid object name: it must not be empty, '.' "
                        f"or '..', and must not contain '/' or '%'")
    if namespace and not (len(namespace) <= 63 and DNS_LABEL.fullmatch(namespace)):
        raise TaskError(f"namespace {namespace!r} is not a valid namespace name: a lowercase "
                        f"RFC 1123 label of at most 63 characters (lower case letters, digits "
                        f"and '-', starting and ending with a letter or digit)")


# ---------------------------------------------------------------- discovery

def find_resource(api_client: Any, cache_dir: str, api_version: str, kind: str) -> Any:
    """The API resource for `kind` in `api_version` (matched as kind, plural name, singular
    name, then short name), with a fresh discovery cache."""
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

    target = Target("get", "the API discovery documents")
    try:
        dyn = DynamicClient(api_client, cache_file=f"{cache_dir}/discovery.json")
        for field, value in (("kind", kind), ("name", kind), ("singular_name", kind),
                             ("short_names", [kind])):
            try:
                return dyn.resources.get(api_version=api_version, **{field: value})
            except (ResourceNotFoundError, ResourceNotUniqueError):
                continue
    except ApiException as e:
        raise ApiFailure(describe_error(e, target), e.status) from None
    except (ResourceNotFoundError, ResourceNotUniqueError):
        pass
    except Exception as e:  # urllib3 connection errors, timeouts
        raise ApiFailure(describe_error(e, target, api_client.configuration.host)) from None
    raise TaskError(f"the API has no kind {kind} in api_version {api_version} (looked up by "
                    f"kind, plural name, singular name and short names): check kind and "
                    f"api_version, and that the CustomResourceDefinition is installed")


# ---------------------------------------------------------------- status writes

class StatusWriter:
    """Reads the object and writes its status with a resourceVersion precondition."""

    def __init__(self, api_client: Any, resource: Any, name: str, namespace: str | None,
                 check_mode: bool) -> None:
        self.api = api_client
        self.resource = resource
        self.name = name
        self.namespace = namespace if resource.namespaced else None
        self.check_mode = check_mode
        self.path = resource.path(name=name, namespace=self.namespace)

    def target(self, verb: str) -> Target:
        return Target(verb, self.resource.name, self.resource.group or "", self.name,
                      self.namespace or "")

    def _request(self, verb: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
        # raw JSON through the DynamicClient's request (the resource's own client): 409
        # raises LostRace, other failures ApiFailure with a message naming the object
        out = raw_call(self.api, self.resource.client.request, self.target(verb),
                       REQUEST_TIMEOUT, method, path, serialize=False, **kw)
        return cast(dict[str, Any], out)

    def read(self) -> dict[str, Any]:
        return self._request("get", "GET", self.path)

    def write(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"body": body}
        if method == "PATCH":
            kw["content_type"] = MERGE_PATCH
        if self.check_mode:
            kw["query_params"] = [("dryRun", "All")]
        verb = "patch" if method == "PATCH" else "update"
        return self._request(verb, method, self.path + "/status", **kw)


def _status_of(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def set_status(writer: StatusWriter, desired: dict[str, Any], replace: bool,
               replace_lists: bool) -> dict[str, Any]:
    """Read, merge (or replace), and write when something changes; on a 409 read again and
    redo. Returns changed, result, before/after status and the keys the server dropped."""
    for _ in range(ATTEMPTS):
        obj = writer.read()
        old = _status_of(obj)
        now = now_time()
        if replace:
            new = replace_status_conditions(old, desired, now)
            if new == old:
                return {"changed": False, "result": obj, "before": old, "after": old}
            body = dict(obj)
            body["status"] = new
            method = "PUT"
        else:
            if not desired:
                return {"changed": False, "result": obj, "before": old, "after": old}
            new = merge_status_conditions(old, desired, now)
            if object_contains(old, new, replace_lists):
                return {"changed": False, "result": obj, "before": old, "after": old}
            body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                    "status": new}
            method = "PATCH"
        try:
            result = writer.write(method, body)
        except LostRace:
            continue  # another client wrote in between: read its status and merge again
        stored = _status_of(result)
        if replace:
            dropped = sorted(k for k in set(new) | set(stored) if new.get(k) != stored.get(k))
        else:
            dropped = sorted(k for k, v in new.items()
                             if not object_contains(stored, {k: v}, replace_lists))
        return {"changed": stored != old, "result": result, "before": old, "after": stored,
                "dropped": dropped}
    what = writer.target("update").describe()
    raise TaskError(f"cannot write the status of {what}: it was changed by another client "
                    f"during each of {ATTEMPTS} attempts (409 Conflict every time)")


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[("status", "conditions")])
    p = module.params
    try:
        desired = validate_status_args(p["status"], p["conditions"])
    except StatusArgError as e:
        module.fail_json(msg=str(e))
    try:
        check_target(p["api_version"], p["kind"], p["name"], p["namespace"])
    except TaskError as e:
        module.fail_json(msg=str(e))
    try:
        api_client = make_api_client(p, user_agent=USER_AGENT)
    except KubeConfigError as e:
        module.fail_json(msg=str(e))
    try:
        with tempfile.TemporaryDirectory(prefix="k8s_status-") as cache_dir:
            resource = find_resource(api_client, cache_dir, p["api_version"], p["kind"])
            if "status" not in (resource.subresources or {}):
                raise TaskError(f"{resource.kind} ({resource.group_version}, resource "
                                f"{resource.name}) has no status subresource, so its status "
                                f"cannot be set (for a custom resource, enable "
                                f"subresources.status in its CustomResourceDefinition)")
            if resource.namespaced and not p["namespace"]:
                raise TaskError(f"namespace is required: {resource.kind} "
                                f"({resource.group_version}) is namespaced")
            writer = StatusWriter(api_client, resource, p["name"], p["namespace"],
                                  module.check_mode)
            out = set_status(writer, desired, p["replace"], p["replace_lists"])
    except (TaskError, ApiFailure) as e:
        module.fail_json(msg=str(e))
    finally:
        api_client.close()
    if out.get("dropped"):
        module.warn(f"the server did not store status key(s) {', '.join(out['dropped'])} as "
                    f"given; the CustomResourceDefinition's status schema may prune or "
                    f"default them")
    extra: dict[str, Any] = {}
    if module._diff:
        extra["diff"] = {"before": {"status": out["before"]}, "after": {"status": out["after"]}}
    module.exit_json(changed=out["changed"], result=out["result"], **extra)


if __name__ == "__main__":
    main()
