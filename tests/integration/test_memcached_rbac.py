"""deploy/role.yaml is exactly what the memcached operator needs, proven on kubesim with RBAC.

The replicas authenticate as the ServiceAccount `memcached-operator` (kubesim tokens bound to
`system:serviceaccount:<ns>:memcached-operator`), which only deploy/role_binding.yaml binds,
to deploy/role.yaml. kubesim authorizes each request like the real RBAC authorizer, with the
OwnerReferencesPermissionEnforcement admission check.

- With the whole Role, two replicas run the molecule scenario (reconcile, scale, SIGKILL of
  the leader and handover, change, delete and garbage collection) and not one request of
  theirs is refused; every verb of every rule was used.
- With any one rule removed (one namespace per rule, all at once), the operator fails and
  says which permission is missing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import until
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_memcached_role import COLLECTIONS, DEPLOY, Memcached, successful

from election_operator.local import Replica
from kubesim import KubeSim
from kubesim.rbac import Attributes, User, rule_allows

SA = "memcached-operator"
ROLE = yaml.safe_load((DEPLOY / "role.yaml").read_text())


def lease_args(namespace: str) -> tuple[str, ...]:
    return ("--leader-elect", "--leader-election-id", "memcached-operator",
            "--leader-election-namespace", namespace, "--leader-elect-lease-duration", "4s",
            "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "1s")


def install(m: Memcached, namespace: str, role: dict[str, Any]) -> None:
    """The operator's ServiceAccount, `role` and deploy/role_binding.yaml in `namespace`."""
    core = client.CoreV1Api(m.api)
    rbac = client.RbacAuthorizationV1Api(m.api)
    if namespace != "default":
        core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(
        namespace, yaml.safe_load((DEPLOY / "service_account.yaml").read_text()))
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(
        namespace, yaml.safe_load((DEPLOY / "role_binding.yaml").read_text()))


def replica(sim: KubeSim, tmp_path: Path, name: str, namespace: str) -> Replica:
    sim.serviceaccount_token(namespace, SA, token=f"token-{name}")
    return Replica(name, tmp_path, DEPLOY / "watches.yaml", lease_args(namespace), sim=sim,
                   env={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS, "WATCH_NAMESPACE": namespace})


def cr(m: Memcached, namespace: str, name: str, size: int) -> None:
    m.crs.create(namespace=namespace, body={
        "apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
        "metadata": {"name": name, "namespace": namespace}, "spec": {"size": size}})


@pytest.fixture
def cache(sim_workloads: KubeSim, tmp_path: Path) -> Iterator[Memcached]:
    m = Memcached(sim_workloads, tmp_path)
    yield m
    m.close()


def attributes(entry: Any, user: User) -> Attributes:
    return Attributes(user=user, verb=entry.verb, namespace=entry.namespace,
                      api_group=entry.group, resource=entry.resource,
                      subresource=entry.subresource, name=entry.name,
                      resource_request=True, path=entry.path)


def test_the_role_allows_every_request_and_each_verb_is_used(cache: Memcached,
                                                             tmp_path: Path) -> None:
    sim = cache.sim
    install(cache, "default", ROLE)
    a, b = (replica(sim, tmp_path, n, "default") for n in ("op-a", "op-b"))
    replicas = {a.identity: a, b.identity: b}
    coord = client.CoordinationV1Api(cache.api)
    try:
        cr(cache, "default", "memcached-sample", 3)
        until(lambda: successful(cache, "memcached-sample", 3), 60, "size 3 reconciled")
        cache.patch_spec("memcached-sample", {"size": 4})
        until(lambda: successful(cache, "memcached-sample", 4), 60, "size 4 reconciled")
        holder = coord.read_namespaced_lease("memcached-operator", "default").spec
        leader = next(r for r in replicas.values() if r.name == holder.holder_identity)
        other = b if leader is a else a
        leader.kill()
        until(lambda: coord.read_namespaced_lease(
            "memcached-operator", "default").spec.holder_identity == other.name, 30,
            "the other replica holding the Lease")
        cache.patch_spec("memcached-sample", {"size": 2})
        until(lambda: successful(cache, "memcached-sample", 2), 60, "size 2 reconciled")
        cache.crs.delete(namespace="default", name="memcached-sample")
        until(lambda: cache.deployment("memcached-sample") is None, 30,
              "the Deployment garbage-collected")
    finally:
        for r in replicas.values():
            r.close()  # ends their watches, so the audit log has them too

    entries = [e for ident in replicas for e in sim.audit.entries(identity=ident)]
    refused = [(e.verb, e.resource, e.subresource, e.name, e.code) for e in entries
               if e.code in (401, 403)]
    assert refused == [], refused
    assert len(entries) > 20
    # Every verb of every rule allowed at least one of the requests the replicas made
    # (memcacheds/finalizers: by the admission check of the Deployment's ownerReference,
    # which the Deployment's creation passed).
    user = User(name=f"system:serviceaccount:default:{SA}", groups=())
    unused = []
    for i, rule in enumerate(ROLE["rules"]):
        for verb in rule["verbs"]:
            one = {**rule, "verbs": [verb]}
            if rule["resources"] == ["memcacheds/finalizers"]:
                used = any(e.verb == "create" and e.resource == "deployments" and e.code == 201
                           for e in entries)
            else:
                used = any(rule_allows(attributes(e, user), one) for e in entries
                           if e.code < 400)
            if not used:
                unused.append((i, rule["resources"], verb))
    assert unused == [], f"rules of deploy/role.yaml no request needed: {unused}"


def expected_report(rule: dict[str, Any]) -> list[str]:
    """What the operator's log or the custom resource's Failure condition says when `rule`
    is missing: the API server's refusal, naming a verb and the resource."""
    if rule["resources"] == ["memcacheds/finalizers"]:
        # The admission check's message (the real one) names the finalizers, not the verb.
        return ["cannot set blockOwnerDeletion if an ownerReference refers to a resource "
                "you can't set finalizers on"]
    group = rule["apiGroups"][0]
    return [f'cannot {verb} resource "{rule["resources"][0]}" in API group "{group}"'
            for verb in rule["verbs"]]


def report_of(m: Memcached, r: Replica, namespace: str) -> str:
    """The replica's log and the custom resource's condition messages, quotes unescaped."""
    text = r.text()
    try:
        obj = m.crs.get(namespace=namespace, name="sample").to_dict()
        for c in (obj.get("status") or {}).get("conditions") or []:
            text += "\n" + str(c.get("message", ""))
    except ApiException:
        pass
    return text.replace('\\"', '"')


def test_removing_any_rule_makes_the_operator_name_the_missing_permission(
        cache: Memcached, tmp_path: Path) -> None:
    sim = cache.sim
    cases = []
    for i, rule in enumerate(ROLE["rules"]):
        namespace = f"without-rule-{i}"
        role = copy.deepcopy(ROLE)
        del role["rules"][i]
        install(cache, namespace, role)
        cr(cache, namespace, "sample", 1)
        cases.append((i, rule, namespace, replica(sim, tmp_path, f"op-{i}", namespace)))
    try:
        def unreported() -> list[tuple[int, dict[str, Any], str, Replica]]:
            return [c for c in cases
                    if not any(w in report_of(cache, c[3], c[2]) for w in expected_report(c[1]))]

        deadline = time.monotonic() + 90
        while unreported() and time.monotonic() < deadline:
            time.sleep(0.5)
        missing = unreported()
        assert missing == [], "\n\n".join(
            f"without rule {i} ({rule['resources']} {rule['verbs']}) the operator did not "
            f"name it; its log:\n{r.text()[-2500:]}" for i, rule, _, r in missing)
        for i, rule, _, r in cases:
            denied = [e for e in sim.audit.entries(identity=r.identity) if e.code == 403]
            if rule["resources"] != ["memcacheds/finalizers"]:
                assert denied, f"rule {i} {rule['resources']}: no request was refused"
    finally:
        for *_, r in cases:
            r.close()
