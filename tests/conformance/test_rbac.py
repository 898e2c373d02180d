"""RBAC in kubesim, through real clients: bearer tokens, the RBAC authorizer, the 403 bodies,
the review APIs behind `kubectl auth`, impersonation, and OwnerReferencesPermissionEnforcement.

The expected messages are kube-apiserver's: responsewriters.forbiddenMessage wrapped by
apierrors.NewForbidden, the RBAC authorizer's "RBAC: ..." reasons, and the gc admission
plugin's "cannot set blockOwnerDeletion ..." wording.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kubesim import KubeSim

KUBECTL = shutil.which("kubectl") or "kubectl"
NS = "team"
OTHER_NS = "other"
SA = "worker"
SA_USER = f"system:serviceaccount:{NS}:{SA}"
RBAC = "rbac.authorization.k8s.io"


@pytest.fixture
def rsim() -> Iterator[KubeSim]:
    """kubesim over TLS (kubectl sends bearer tokens only over TLS), with two namespaces."""
    with KubeSim(tls=True) as s:
        admin = _client(s, None)
        core = client.CoreV1Api(admin)
        for ns in (NS, OTHER_NS):
            core.create_namespace({"metadata": {"name": ns}})
        core.create_namespaced_service_account(NS, {"metadata": {"name": SA}})
        admin.close()
        yield s


_clients: list[client.ApiClient] = []


def _client(sim: KubeSim, token: str | None) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config_from_dict(sim.kubeconfig(token), client_configuration=cfg)
    c = client.ApiClient(cfg)
    _clients.append(c)
    return c


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


@pytest.fixture
def admin(rsim: KubeSim) -> client.ApiClient:
    return _client(rsim, None)


@pytest.fixture
def sa_token(rsim: KubeSim) -> str:
    return rsim.serviceaccount_token(NS, SA)


@pytest.fixture
def sa(rsim: KubeSim, sa_token: str) -> client.ApiClient:
    return _client(rsim, sa_token)


def role(admin: client.ApiClient, name: str, rules: list[dict[str, Any]],
         ns: str = NS) -> None:
    client.RbacAuthorizationV1Api(admin).create_namespaced_role(
        ns, {"metadata": {"name": name}, "rules": rules})


def cluster_role(admin: client.ApiClient, name: str, rules: list[dict[str, Any]]) -> None:
    client.RbacAuthorizationV1Api(admin).create_cluster_role(
        {"metadata": {"name": name}, "rules": rules})


def bind(admin: client.ApiClient, name: str, kind: str, role_name: str,
         subjects: list[dict[str, Any]] | None = None, ns: str | None = NS) -> None:
    """A RoleBinding in `ns` (a ClusterRoleBinding if ns is None) of Role/ClusterRole
    `role_name`, by default to the test's ServiceAccount."""
    body = {"metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role_name},
            "subjects": subjects or [{"kind": "ServiceAccount", "name": SA, "namespace": NS}]}
    api = client.RbacAuthorizationV1Api(admin)
    if ns is None:
        api.create_cluster_role_binding(body)
    else:
        api.create_namespaced_role_binding(ns, body)


def forbidden(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call, expect a 403, return its Status body."""
    with pytest.raises(ApiException) as info:
        call(*args, **kwargs)
    assert info.value.status == 403, info.value.body
    return json.loads(info.value.body)


def status(message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Forbidden", "details": details, "code": 403}


def lease(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"holderIdentity": "x"}}


def kubectl(sim: KubeSim, tmp_path: Path, token: str | None, *args: str,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    kc = sim.write_kubeconfig(tmp_path / f"kc-{token or 'admin'}", token=token, namespace=NS)
    env = dict(os.environ, KUBECONFIG=str(kc), HOME=str(tmp_path))
    proc = subprocess.run([KUBECTL, f"--cache-dir={tmp_path / 'kubectl-cache'}", *args],
                          env=env, capture_output=True, text=True, timeout=30)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def hook(sim: KubeSim, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cadata=(sim.ca_data or b"").decode())
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{sim.url}/kubesim/v1/{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def raw(sim: KubeSim, token: str | None, method: str, path: str,
        headers: dict[str, str] | None = None) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cadata=(sim.ca_data or b"").decode())
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(sim.url + path, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body.startswith(b"{") else body.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ------------------------------------------------------------------------- defaults

def test_no_token_or_unknown_token_is_the_admin(rsim: KubeSim, admin: client.ApiClient) -> None:
    stranger = _client(rsim, "nobody-registered-this")
    for i, c in enumerate((admin, stranger)):
        coord = client.CoordinationV1Api(c)
        coord.create_namespaced_lease(NS, lease(f"l{i}"))
        client.CoreV1Api(c).list_namespace()
        review = client.AuthenticationV1Api(c).create_self_subject_review({})
        assert review.status.user_info.username == "kubernetes-admin"
        assert review.status.user_info.groups == ["system:masters", "system:authenticated"]
    # the bootstrap policy is there as ordinary objects, as on a real cluster
    names = {r.metadata.name for r in
             client.RbacAuthorizationV1Api(admin).list_cluster_role_binding().items}
    assert {"cluster-admin", "system:discovery", "system:basic-user",
            "system:public-info-viewer"} <= names
    # over plain HTTP too, which is what every other test uses
    with KubeSim() as plain:
        c = _client(plain, "any-token")
        assert client.CoreV1Api(c).list_namespace().items
        assert plain.url.startswith("http://")


# ------------------------------------------------------------------------- 403 bodies

def test_denied_requests_get_the_real_403_bodies(rsim: KubeSim, sa: client.ApiClient,
                                                 sa_token: str) -> None:
    who = f'User "{SA_USER}"'
    coord, core, apps = (client.CoordinationV1Api(sa), client.CoreV1Api(sa),
                         client.AppsV1Api(sa))
    # a named object in a namespace
    assert forbidden(coord.read_namespaced_lease, "x", NS) == status(
        f'leases.coordination.k8s.io "x" is forbidden: {who} cannot get resource "leases" in '
        f'API group "coordination.k8s.io" in the namespace "{NS}"',
        {"name": "x", "group": "coordination.k8s.io", "kind": "leases"})
    # a collection: no name
    assert forbidden(coord.list_namespaced_lease, NS) == status(
        f'leases.coordination.k8s.io is forbidden: {who} cannot list resource "leases" in '
        f'API group "coordination.k8s.io" in the namespace "{NS}"',
        {"group": "coordination.k8s.io", "kind": "leases"})
    # the core group, and a create (the POST names no object)
    assert forbidden(core.create_namespaced_config_map, NS, {"metadata": {"name": "c"}}) == \
        status(f'configmaps is forbidden: {who} cannot create resource "configmaps" in API '
               f'group "" in the namespace "{NS}"', {"kind": "configmaps"})
    # cluster scope
    assert forbidden(core.list_namespace) == status(
        f'namespaces is forbidden: {who} cannot list resource "namespaces" in API group "" '
        f'at the cluster scope', {"kind": "namespaces"})
    # all namespaces is the cluster scope too
    assert forbidden(coord.list_lease_for_all_namespaces)["message"].endswith(
        'cannot list resource "leases" in API group "coordination.k8s.io" at the cluster scope')
    # a subresource
    assert forbidden(apps.patch_namespaced_deployment_status, "d", NS,
                     {"status": {}}) == status(
        f'deployments.apps "d" is forbidden: {who} cannot patch resource "deployments/status" '
        f'in API group "apps" in the namespace "{NS}"',
        {"name": "d", "group": "apps", "kind": "deployments"})
    # deletecollection
    assert forbidden(core.delete_collection_namespaced_config_map, NS)["message"] == \
        f'configmaps is forbidden: {who} cannot deletecollection resource "configmaps" in API ' \
        f'group "" in the namespace "{NS}"'
    # a non-resource URL
    assert raw(rsim, sa_token, "GET", "/metrics") == (403, status(
        f'forbidden: {who} cannot get path "/metrics"', {}))
    # authorization comes before routing: an unknown resource is a 403, not a 404
    code, body = raw(rsim, sa_token, "GET", f"/apis/example.com/v1/namespaces/{NS}/gadgets")
    assert (code, body["message"]) == (403, f'gadgets.example.com is forbidden: {who} cannot '
                                       f'list resource "gadgets" in API group "example.com" in '
                                       f'the namespace "{NS}"')
    # every denial is in the audit log with the caller's identity
    denied = [(e.verb, e.resource, e.subresource, e.name, e.code)
              for e in rsim.audit.entries(identity=f"token:{sa_token}")]
    assert denied == [("get", "leases", "", "x", 403), ("list", "leases", "", "", 403),
                      ("create", "configmaps", "", "", 403), ("list", "namespaces", "", "", 403),
                      ("list", "leases", "", "", 403), ("patch", "deployments", "status", "d",
                                                        403),
                      ("deletecollection", "configmaps", "", "", 403),
                      ("list", "gadgets", "", "", 403)]


def test_discovery_and_self_reviews_are_open_to_every_authenticated_user(
        rsim: KubeSim, sa: client.ApiClient, sa_token: str) -> None:
    for path in ("/api", "/api/v1", "/apis", "/apis/apps/v1", "/version", "/healthz",
                 "/openapi/v3"):
        code, _ = raw(rsim, sa_token, "GET", path)
        assert code == 200, path
    review = client.AuthorizationV1Api(sa).create_self_subject_access_review(
        {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": NS}}})
    assert review.status.allowed is False
    who = client.AuthenticationV1Api(sa).create_self_subject_review({})
    assert who.status.user_info.username == SA_USER
    assert who.status.user_info.groups == ["system:serviceaccounts",
                                           f"system:serviceaccounts:{NS}",
                                           "system:authenticated"]


# ------------------------------------------------------------------------- rule matching

def test_resource_names_apply_to_get_and_to_list_and_watch_by_field_selector(
        rsim: KubeSim, admin: client.ApiClient, sa: client.ApiClient) -> None:
    role(admin, "lock", [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["mine"], "verbs": ["get", "update", "list", "watch"]}])
    bind(admin, "lock", "Role", "lock")
    coord = client.CoordinationV1Api(sa)
    coord.create_namespaced_lease(NS, lease("mine"))
    client.CoordinationV1Api(admin).create_namespaced_lease(NS, lease("theirs"))
    got = coord.read_namespaced_lease("mine", NS)
    got.spec.holder_identity = "me"
    coord.replace_namespaced_lease("mine", NS, got)
    assert forbidden(coord.read_namespaced_lease, "theirs", NS)["details"]["name"] == "theirs"
    assert forbidden(coord.patch_namespaced_lease, "mine", NS, {})["message"].endswith(
        'cannot patch resource "leases" in API group "coordination.k8s.io" in the namespace '
        f'"{NS}"')
    # a list names no object, so a rule with resourceNames does not cover it ...
    forbidden(coord.list_namespaced_lease, NS)
    # ... unless a metadata.name field selector names it (RequestInfo takes the name from it)
    assert [x.metadata.name for x in coord.list_namespaced_lease(
        NS, field_selector="metadata.name=mine").items] == ["mine"]
    assert forbidden(coord.list_namespaced_lease, NS,
                     field_selector="metadata.name=theirs")["details"] == {
        "name": "theirs", "group": "coordination.k8s.io", "kind": "leases"}
    forbidden(coord.list_namespaced_lease, NS, field_selector="metadata.name!=theirs")
    # watch: allowed by name, refused before any event is streamed otherwise
    w = watch.Watch()
    events = [e["object"].metadata.name for e in w.stream(
        coord.list_namespaced_lease, NS, field_selector="metadata.name=mine",
        timeout_seconds=1)]
    assert events == ["mine"]
    with pytest.raises(ApiException) as info:
        next(iter(watch.Watch().stream(coord.list_namespaced_lease, NS, timeout_seconds=1)))
    assert info.value.status == 403
    assert json.loads(info.value.body)["message"].endswith(
        f'cannot watch resource "leases" in API group "coordination.k8s.io" in the namespace '
        f'"{NS}"')


def test_create_by_update_needs_create(rsim: KubeSim, admin: client.ApiClient,
                                       sa: client.ApiClient) -> None:
    """A PUT that creates (Lease allows it) is also authorized as a create of that name."""
    role(admin, "renew", [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                           "verbs": ["update"]}])
    bind(admin, "renew", "Role", "renew")
    coord = client.CoordinationV1Api(sa)
    assert forbidden(coord.replace_namespaced_lease, "new", NS, lease("new")) == status(
        'leases.coordination.k8s.io "new" is forbidden: ',
        {"name": "new", "group": "coordination.k8s.io", "kind": "leases"})
    role(admin, "create-one", [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                "resourceNames": ["new"], "verbs": ["create"]}])
    bind(admin, "create-one", "Role", "create-one")
    assert coord.replace_namespaced_lease("new", NS, lease("new")).metadata.name == "new"
    # the POST of the same names no object, so the resourceNames rule does not cover it
    forbidden(coord.create_namespaced_lease, NS, lease("new2"))


def test_subresources_and_wildcards(rsim: KubeSim, admin: client.ApiClient,
                                    sa: client.ApiClient) -> None:
    deployment = {"metadata": {"name": "d"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}},
                     "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    client.AppsV1Api(admin).create_namespaced_deployment(NS, deployment)
    role(admin, "status-only", [{"apiGroups": ["apps"], "resources": ["deployments/status"],
                                 "verbs": ["get", "patch"]},
                                {"apiGroups": ["*"], "resources": ["*/scale"],
                                 "verbs": ["get"]},
                                {"apiGroups": [""], "resources": ["*"], "verbs": ["list"]},
                                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                 "verbs": ["*"]}])
    bind(admin, "status-only", "Role", "status-only")
    apps = client.AppsV1Api(sa)
    apps.patch_namespaced_deployment_status("d", NS, {"status": {"observedGeneration": 1}})
    assert apps.read_namespaced_deployment_status("d", NS).metadata.name == "d"
    # the subresource rule does not cover the object itself
    assert forbidden(apps.read_namespaced_deployment, "d", NS)["message"].endswith(
        f'cannot get resource "deployments" in API group "apps" in the namespace "{NS}"')
    # */scale: any resource's scale subresource, in any group
    assert apps.read_namespaced_deployment_scale("d", NS).spec.replicas == 1
    assert forbidden(apps.patch_namespaced_deployment_scale, "d", NS,
                     {"spec": {"replicas": 2}})["message"].endswith(
        'cannot patch resource "deployments/scale" in API group "apps" in the namespace '
        f'"{NS}"')
    # resources "*" in the core group only
    core = client.CoreV1Api(sa)
    core.list_namespaced_config_map(NS)
    core.list_namespaced_pod(NS)
    forbidden(apps.list_namespaced_deployment, NS)
    # verbs "*"
    coord = client.CoordinationV1Api(sa)
    coord.create_namespaced_lease(NS, lease("l"))
    coord.delete_namespaced_lease("l", NS)


def test_role_and_cluster_role_through_role_binding_and_cluster_role_binding(
        rsim: KubeSim, admin: client.ApiClient, sa: client.ApiClient) -> None:
    cluster_role(admin, "cm-reader", [{"apiGroups": [""], "resources": ["configmaps"],
                                       "verbs": ["get", "list"]}])
    core = client.CoreV1Api(sa)
    # a RoleBinding to a ClusterRole grants it in the binding's namespace only
    bind(admin, "read-other", "ClusterRole", "cm-reader", ns=OTHER_NS)
    core.list_namespaced_config_map(OTHER_NS)
    forbidden(core.list_namespaced_config_map, NS)
    forbidden(core.list_config_map_for_all_namespaces)
    # a Role is found in the binding's namespace
    role(admin, "pod-reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    bind(admin, "pods", "Role", "pod-reader")
    core.list_namespaced_pod(NS)
    forbidden(core.list_namespaced_pod, OTHER_NS)
    # a ClusterRoleBinding grants everywhere, and at the cluster scope
    bind(admin, "read-all", "ClusterRole", "cm-reader", ns=None)
    core.list_namespaced_config_map(NS)
    core.list_config_map_for_all_namespaces()
    # a binding to a role that does not exist: the denial names it
    bind(admin, "dangling", "Role", "missing")
    assert forbidden(core.list_namespaced_secret, NS)["message"] == (
        f'secrets is forbidden: User "{SA_USER}" cannot list resource "secrets" in API group '
        f'"" in the namespace "{NS}": RBAC: role.rbac.authorization.k8s.io "missing" not found')


def test_user_group_and_serviceaccount_subjects(rsim: KubeSim, admin: client.ApiClient) -> None:
    alice = _client(rsim, "alice-token")
    bob = _client(rsim, "bob-token")
    assert rsim.add_token("alice-token", "alice", ["devs"]).groups == (
        "devs", "system:authenticated")
    rsim.add_token("bob-token", "bob")
    cluster_role(admin, "cm-list", [{"apiGroups": [""], "resources": ["configmaps"],
                                     "verbs": ["list"]}])
    cluster_role(admin, "pod-list", [{"apiGroups": [""], "resources": ["pods"],
                                      "verbs": ["list"]}])
    cluster_role(admin, "svc-list", [{"apiGroups": [""], "resources": ["services"],
                                      "verbs": ["list"]}])
    bind(admin, "devs", "ClusterRole", "cm-list", [{"kind": "Group", "name": "devs",
                                                    "apiGroup": RBAC}])
    bind(admin, "bob", "ClusterRole", "pod-list", [{"kind": "User", "name": "bob",
                                                    "apiGroup": RBAC}])
    # a ServiceAccount subject without a namespace is in the RoleBinding's namespace
    bind(admin, "sa-local", "ClusterRole", "svc-list", [{"kind": "ServiceAccount",
                                                         "name": SA}])
    bind(admin, "all-sas", "ClusterRole", "pod-list",
         [{"kind": "Group", "name": f"system:serviceaccounts:{OTHER_NS}", "apiGroup": RBAC}])
    client.CoreV1Api(alice).list_namespaced_config_map(NS)
    forbidden(client.CoreV1Api(alice).list_namespaced_pod, NS)
    client.CoreV1Api(bob).list_namespaced_pod(NS)
    assert forbidden(client.CoreV1Api(bob).list_namespaced_config_map, NS)["message"] \
        .startswith('configmaps is forbidden: User "bob" cannot list')
    worker = _client(rsim, rsim.serviceaccount_token(NS, SA))
    client.CoreV1Api(worker).list_namespaced_service(NS)
    forbidden(client.CoreV1Api(worker).list_namespaced_pod, NS)
    # another namespace's ServiceAccount of the same name is another user
    stranger = _client(rsim, rsim.serviceaccount_token(OTHER_NS, SA))
    forbidden(client.CoreV1Api(stranger).list_namespaced_service, NS)
    client.CoreV1Api(stranger).list_namespaced_pod(NS)  # by its namespace's SA group


def test_access_reviews_give_the_rbac_reason(rsim: KubeSim, admin: client.ApiClient,
                                             sa: client.ApiClient) -> None:
    role(admin, "r", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
    bind(admin, "rb", "Role", "r")
    authz = client.AuthorizationV1Api(sa)
    review = authz.create_self_subject_access_review({"spec": {"resourceAttributes": {
        "verb": "get", "resource": "configmaps", "namespace": NS}}})
    assert review.status.allowed is True
    assert review.status.reason == (f'RBAC: allowed by RoleBinding "rb/{NS}" of Role "r" to '
                                    f'ServiceAccount "{SA}/{NS}"')
    assert authz.create_self_subject_access_review({"spec": {"nonResourceAttributes": {
        "verb": "get", "path": "/version"}}}).status.allowed is True
    rules = authz.create_self_subject_rules_review({"spec": {"namespace": NS}}).status
    assert {"verbs": ["get"], "api_groups": [""], "resources": ["configmaps"]} in [
        {k: v for k, v in r.to_dict().items() if v is not None} for r in rules.resource_rules]
    assert rules.incomplete is False
    # a SubjectAccessReview asks about someone else; the SA may not ask it
    forbidden(authz.create_subject_access_review, {"spec": {
        "user": "bob", "resourceAttributes": {"verb": "get", "resource": "pods"}}})
    sar = client.AuthorizationV1Api(admin).create_subject_access_review({"spec": {
        "user": SA_USER, "groups": ["system:authenticated"],
        "resourceAttributes": {"verb": "get", "resource": "configmaps", "namespace": NS}}})
    assert sar.status.allowed is True
    with pytest.raises(ApiException) as info:
        authz.create_self_subject_access_review({"spec": {}})
    body = json.loads(info.value.body)
    assert (info.value.status, body["message"]) == (
        422, 'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: '
             'spec.resourceAttributes: Invalid value: "null": exactly one of '
             'nonResourceAttributes or resourceAttributes must be specified')


def test_impersonation_is_checked_with_the_impersonate_verb(
        rsim: KubeSim, admin: client.ApiClient, sa: client.ApiClient, sa_token: str) -> None:
    role(admin, "r", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}])
    bind(admin, "rb", "Role", "r")
    admin.set_default_header("Impersonate-User", SA_USER)
    core = client.CoreV1Api(admin)
    core.list_namespaced_config_map(NS)
    assert forbidden(core.list_namespaced_pod, NS)["message"].startswith(
        f'pods is forbidden: User "{SA_USER}" cannot list')
    # the ServiceAccount itself may not impersonate
    code, body = raw(rsim, sa_token, "GET", f"/api/v1/namespaces/{NS}/pods",
                     {"Impersonate-User": "alice"})
    assert (code, body["message"]) == (403, f'users "alice" is forbidden: User "{SA_USER}" '
                                       f'cannot impersonate resource "users" in API group "" '
                                       f'at the cluster scope')


def test_rbac_objects_are_defaulted_and_validated(rsim: KubeSim,
                                                  admin: client.ApiClient) -> None:
    api = client.RbacAuthorizationV1Api(admin)
    role(admin, "r", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    api.create_namespaced_role_binding(NS, {
        "metadata": {"name": "rb"}, "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": SA}]})
    rb = api.read_namespaced_role_binding("rb", NS)
    assert rb.role_ref.api_group == RBAC
    assert [s.api_group for s in rb.subjects] == [RBAC, None]

    def invalid(call: Any, *args: Any) -> str:
        with pytest.raises(ApiException) as info:
            call(*args)
        assert info.value.status == 422, info.value.body
        return json.loads(info.value.body)["message"]

    assert invalid(api.patch_namespaced_role_binding, "rb", NS,
                   {"roleRef": {"kind": "ClusterRole", "name": "view"}}) == (
        'RoleBinding.rbac.authorization.k8s.io "rb" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"view"}: '
        'cannot change roleRef')
    assert invalid(api.create_cluster_role_binding, {
        "metadata": {"name": "crb"}, "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": SA}]}) == (
        'ClusterRoleBinding.rbac.authorization.k8s.io "crb" is invalid: [roleRef.kind: '
        'Unsupported value: "Role": supported values: "ClusterRole", subjects[0].namespace: '
        'Required value]')
    assert invalid(api.create_namespaced_role, NS, {"metadata": {"name": "bad"}, "rules": [
        {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
        {"resources": ["pods"], "verbs": []}]}) == (
        'Role.rbac.authorization.k8s.io "bad" is invalid: [rules[0].nonResourceURLs: Invalid '
        'value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs, '
        'rules[1].verbs: Required value: verbs must contain at least one value, '
        'rules[1].apiGroups: Required value: resource rules must supply at least one api '
        'group]')


# ------------------------------------------------------------------------- tokens

def test_token_hooks_token_request_and_401s(rsim: KubeSim, admin: client.ApiClient) -> None:
    code, body = hook(rsim, "POST", "tokens", {"token": "carol-t", "user": "carol",
                                               "groups": ["qa"]})
    assert (code, body) == (201, {"token": "carol-t", "user": "carol",
                                  "groups": ["qa", "system:authenticated"]})
    carol = _client(rsim, "carol-t")
    assert forbidden(client.CoreV1Api(carol).list_namespaced_pod, NS)["message"].startswith(
        'pods is forbidden: User "carol" cannot list')
    code, body = hook(rsim, "POST", f"serviceaccounts/{NS}/{SA}/token")
    assert code == 201 and body["user"] == SA_USER
    assert raw(rsim, body["token"], "GET", "/api")[0] == 200
    # a chosen token: several processes as one ServiceAccount, told apart in the audit log
    assert hook(rsim, "POST", f"serviceaccounts/{NS}/{SA}/token", {"token": "replica-1"}) == (
        201, {"token": "replica-1", "user": SA_USER, "groups": [
            "system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]})
    assert rsim.serviceaccount_token(NS, SA, token="replica-2") == "replica-2"
    for token in ("replica-1", "replica-2"):
        assert raw(rsim, token, "GET", f"/api/v1/namespaces/{NS}/pods")[0] == 403
    assert [e.identity for e in rsim.audit.entries() if e.resource == "pods"][-2:] == [
        "token:replica-1", "token:replica-2"]
    # bad input names the field
    code, body = hook(rsim, "POST", "tokens", {"token": "x", "user": "", "groups": []})
    assert (code, body["message"]) == (400, "invalid token: user must be a non-empty string, "
                                       "got ''")
    code, body = hook(rsim, "POST", "tokens", {"token": "x", "user": "u", "groupz": []})
    assert code == 400 and "groupz" in body["message"]
    # revoked and expired tokens are refused, not taken for the admin
    assert hook(rsim, "DELETE", "tokens/carol-t") == (200, {"revoked": "carol-t"})
    assert raw(rsim, "carol-t", "GET", "/api") == (401, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    assert hook(rsim, "POST", "tokens", {"token": "brief", "user": "u", "expiresIn": 0.2})[0] \
        == 201
    time.sleep(0.3)
    assert raw(rsim, "brief", "GET", "/api")[0] == 401
    # TokenRequest: a token bound to the ServiceAccount, refused once it is deleted
    core = client.CoreV1Api(admin)
    tr = core.create_namespaced_service_account_token(SA, NS, {"spec": {}})
    assert tr.spec.expiration_seconds == 3600 and tr.status.token
    assert raw(rsim, tr.status.token, "GET", "/api")[0] == 200
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service_account_token(SA, NS, {"spec": {"expirationSeconds": 60}})
    assert json.loads(info.value.body)["message"] == (
        f'TokenRequest.authentication.k8s.io "{SA}" is invalid: spec.expirationSeconds: '
        f'Invalid value: 60: may not specify a duration less than 10 minutes')
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service_account_token("ghost", NS, {"spec": {}})
    assert info.value.status == 404
    core.delete_namespaced_service_account(SA, NS)
    assert raw(rsim, tr.status.token, "GET", "/api")[0] == 401


def test_token_cli(rsim: KubeSim) -> None:
    def cli(*args: str) -> Any:
        proc = subprocess.run([sys.executable, "-m", "kubesim", "token", *args,
                               "--url", rsim.url], capture_output=True, text=True, timeout=30,
                              cwd=Path(__file__).resolve().parents[2])
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert cli("add", "--token", "dave-t", "--user", "dave", "--group", "ops") == {
        "token": "dave-t", "user": "dave", "groups": ["ops", "system:authenticated"]}
    sa = cli("serviceaccount", "--namespace", NS, "--name", SA)
    assert sa["user"] == SA_USER
    assert hook(rsim, "GET", "tokens")[1]["tokens"] == [
        {"token": "dave-t", "user": "dave", "groups": ["ops", "system:authenticated"],
         "revoked": False},
        {"token": sa["token"], "user": SA_USER, "groups": sa["groups"], "revoked": False}]
    code, body = raw(rsim, "dave-t", "GET", f"/api/v1/namespaces/{NS}/pods")
    assert (code, body["message"]) == (403, f'pods is forbidden: User "dave" cannot list '
                                       f'resource "pods" in API group "" in the namespace '
                                       f'"{NS}"')


# ------------------------------------------------------------------------- kubectl

def test_kubectl_with_a_token(rsim: KubeSim, admin: client.ApiClient, sa_token: str,
                              tmp_path: Path) -> None:
    role(admin, "lock", [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["mine"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["update"]}])
    bind(admin, "lock", "Role", "lock")
    proc = kubectl(rsim, tmp_path, sa_token, "get", "lease", "theirs")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f'Error from server (Forbidden): leases.coordination.k8s.io "theirs" is forbidden: '
        f'User "{SA_USER}" cannot get resource "leases" in API group "coordination.k8s.io" in '
        f'the namespace "{NS}"')
    proc = kubectl(rsim, tmp_path, sa_token, "get", "lease", "mine")
    assert proc.stderr.strip() == 'Error from server (NotFound): leases.coordination.k8s.io ' \
        '"mine" not found'
    for args, answer in ((["get", "lease/mine"], "yes"), (["get", "lease/theirs"], "no"),
                         (["list", "leases"], "no"),
                         (["update", "deployments", "--subresource=status"], "yes"),
                         (["update", "deployments"], "no"),
                         (["create", "selfsubjectaccessreviews"], "yes")):
        proc = kubectl(rsim, tmp_path, sa_token, "auth", "can-i", *args)
        assert (proc.stdout.strip(), proc.returncode) == (answer, 0 if answer == "yes" else 1), \
            (args, proc.stderr)
    listing = kubectl(rsim, tmp_path, sa_token, "auth", "can-i", "--list", check=True).stdout
    lines = [" ".join(line.split()) for line in listing.splitlines()]
    assert "leases.coordination.k8s.io [] [mine] [get]" in lines
    assert "deployments.apps/status [] [] [update]" in lines
    assert "[/api/*] [] [get]" in lines
    whoami = kubectl(rsim, tmp_path, sa_token, "auth", "whoami", check=True).stdout
    assert f"Username    {SA_USER}" in whoami
    # kubectl create token: a TokenRequest, and the token works
    token = kubectl(rsim, tmp_path, None, "create", "token", SA, check=True).stdout.strip()
    proc = kubectl(rsim, tmp_path, token, "auth", "can-i", "get", "lease/mine")
    assert proc.stdout.strip() == "yes"


# ------------------------------------------------------------------------- admission

MEMCACHED_CRD = {
    "metadata": {"name": "memcacheds.cache.example.com"},
    "spec": {"group": "cache.example.com", "scope": "Namespaced",
             "names": {"plural": "memcacheds", "singular": "memcached", "kind": "Memcached",
                       "listKind": "MemcachedList"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {
                               "type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                           "subresources": {"status": {}}}]}}


def test_block_owner_deletion_needs_update_on_the_owners_finalizers(
        rsim: KubeSim, admin: client.ApiClient, sa: client.ApiClient) -> None:
    client.ApiextensionsV1Api(admin).create_custom_resource_definition(MEMCACHED_CRD)
    owner = client.CustomObjectsApi(admin).create_namespaced_custom_object(
        "cache.example.com", "v1alpha1", NS, "memcacheds",
        {"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
         "metadata": {"name": "m"}, "spec": {"size": 1}})
    role(admin, "deployer", [{"apiGroups": ["apps"], "resources": ["deployments"],
                              "verbs": ["create", "get", "patch", "update"]}])
    bind(admin, "deployer", "Role", "deployer")

    def deployment(name: str, block: bool) -> dict[str, Any]:
        return {"metadata": {"name": name, "ownerReferences": [{
                    "apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
                    "name": "m", "uid": owner["metadata"]["uid"], "controller": True,
                    "blockOwnerDeletion": block}]},
                "spec": {"selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "c", "image": "i"}]}}}}

    apps = client.AppsV1Api(sa)
    apps.create_namespaced_deployment(NS, deployment("plain", block=False))
    assert forbidden(apps.create_namespaced_deployment, NS, deployment("d", block=True)) == \
        status('deployments.apps "d" is forbidden: cannot set blockOwnerDeletion if an '
               "ownerReference refers to a resource you can't set finalizers on: , <nil>",
               {"name": "d", "group": "apps", "kind": "deployments"})
    # what the memcached role's Role grants for it
    role(admin, "finalizers", [{"apiGroups": ["cache.example.com"],
                                "resources": ["memcacheds/finalizers"], "verbs": ["update"]}])
    bind(admin, "finalizers", "Role", "finalizers")
    apps.create_namespaced_deployment(NS, deployment("d", block=True))
    # re-sending the same ownerReferences changes nothing and needs nothing more
    apps.patch_namespaced_deployment("d", NS, deployment("d", block=True))
    # changing them on an existing object needs delete on it
    plain = apps.read_namespaced_deployment("plain", NS)
    plain.metadata.owner_references = None
    assert forbidden(apps.replace_namespaced_deployment, "plain", NS, plain)["message"] == (
        'deployments.apps "plain" is forbidden: cannot set an ownerRef on a resource you '
        "can't delete: , <nil>")
    # the admin is not subject to it
    client.AppsV1Api(admin).create_namespaced_deployment(NS, deployment("e", block=True))
