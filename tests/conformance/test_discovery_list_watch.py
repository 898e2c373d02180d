"""Checklist items 13-24 of the emulator spec (§7): discovery, CRDs, lists, selectors, paging
and watch, each driven through real clients (typed `kubernetes.client`, `DynamicClient`,
`kubernetes.watch.Watch`, raw `ApiClient.call_api`/urllib3 for wire-level checks) and kubectl.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from helpers import until as eventually
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, ResourceNotFoundError

from kubesim import KubeSim

GROUP = "example.com"
PLURAL = "widgets"
CRD_NAME = f"{PLURAL}.{GROUP}"
KUBECTL = "/usr/bin/kubectl"


# ------------------------------------------------------------------ helpers
def widget_crd(name: str = CRD_NAME, scope: str = "Namespaced") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget",
                      "shortNames": ["wdg"]},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer"},
                            "color": {"type": "string"},
                            "replicas": {"type": "integer"}}},
                        "status": {"type": "object", "properties": {
                            "phase": {"type": "string"},
                            "replicas": {"type": "integer"}}},
                    }}},
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.replicas",
                              "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Color", "type": "string", "jsonPath": ".spec.color"}],
            }],
        },
    }


def widget(name: str, size: int = 1, color: str = "red",
           labels: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if labels:
        md["labels"] = labels
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": md,
            "spec": {"size": size, "color": color, "replicas": 1}}


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if labels is not None:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data or {"k": "v"}}


def raw(api_client: client.ApiClient, method: str, path: str,
        query: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request through the client's own call_api; returns (status, decoded JSON or text)."""
    m, url, headers, _, _ = api_client.param_serialize(
        method, path, query_params=list((query or {}).items()) or None,
        header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
    resp = api_client.call_api(m, url, header_params=headers)
    data = resp.read().decode()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data


def new_dyn(api_client: client.ApiClient, tmp_path: Path, tag: str = "dyn") -> DynamicClient:
    # A private discovery cache: the default one lives in $TMPDIR keyed by host:port, and a
    # reused port would hand a fresh emulator a stale cache.
    return DynamicClient(api_client, cache_file=str(tmp_path / f"discovery-{tag}.json"))


def create_crd(api_client: client.ApiClient, body: dict[str, Any] | None = None
               ) -> client.V1CustomResourceDefinition:
    ext = client.ApiextensionsV1Api(api_client)
    crd = ext.create_custom_resource_definition(body=body or widget_crd())

    def established() -> client.V1CustomResourceDefinition | None:
        got = ext.read_custom_resource_definition(crd.metadata.name)
        conds = {c.type: c.status for c in (got.status.conditions or [])}
        ok = conds.get("Established") == "True" and conds.get("NamesAccepted") == "True"
        return got if ok else None
    return eventually(established)


def expect_api_error(fn: Callable[[], Any], code: int) -> dict[str, Any]:
    with pytest.raises(ApiException) as ei:
        fn()
    assert ei.value.status == code, ei.value.body
    body = json.loads(ei.value.body)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == code
    return body


def names(items: Any) -> list[str]:
    return [i.metadata.name for i in items]


def rv_int(obj: Any) -> int:
    md = obj["metadata"] if isinstance(obj, dict) else obj.metadata
    return int(md["resourceVersion"] if isinstance(md, dict) else md.resource_version)


def kubectl(kubeconfig: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(kubeconfig.parent))
    cache = kubeconfig.parent / "kubectl-cache"
    return subprocess.run([KUBECTL, f"--cache-dir={cache}", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def table_rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


# ------------------------------------------------------------------ item 13
def test_item13_discovery_lists_status_and_scale_and_dynamic_status_patch(
        sim: KubeSim, api_client: client.ApiClient, tmp_path: Path) -> None:
    """Item 13: discovery lists `plural/status` and `plural/scale`; DynamicClient
    `resource.status.patch(full object with RV, merge-patch)` works as k8s_status uses it."""
    code, apps = raw(api_client, "GET", "/apis/apps/v1")
    assert code == 200
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["deployments/status"]["kind"] == "Deployment"
    assert sorted(by_name["deployments/status"]["verbs"]) == ["get", "patch", "update"]
    scale = by_name["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")

    create_crd(api_client)
    code, gv = raw(api_client, "GET", f"/apis/{GROUP}/v1")
    assert code == 200
    by_name = {r["name"]: r for r in gv["resources"]}
    assert by_name[f"{PLURAL}/status"]["kind"] == "Widget"
    assert by_name[f"{PLURAL}/scale"]["kind"] == "Scale"
    assert by_name[f"{PLURAL}/scale"]["group"] == "autoscaling"

    dyn = new_dyn(api_client, tmp_path)
    res = dyn.resources.get(api_version=f"{GROUP}/v1", kind="Widget")
    assert set(res.subresources) == {"status", "scale"}
    created = res.create(body=widget("w1", size=3), namespace="default")
    assert created.metadata.generation == 1
    assert res.scale.get(name="w1", namespace="default").spec.replicas == 1

    # k8s_status: read, set .status on the full object (RV included), merge-patch /status
    current = res.get(name="w1", namespace="default").to_dict()
    body = dict(current, status={"phase": "Ready", "replicas": 1})
    body["spec"] = dict(current["spec"], size=99)  # spec rides along and must be ignored
    body["metadata"] = dict(current["metadata"], labels={"sneaked": "in"})  # so does metadata
    patched = res.status.patch(body=body, content_type="application/merge-patch+json")
    assert patched.status.phase == "Ready"
    assert patched.spec.size == 3
    assert not (patched.metadata.labels or {})
    assert patched.metadata.generation == 1
    assert rv_int(patched.to_dict()) > rv_int(current)

    # the same full object again carries the now-stale RV: optimistic concurrency applies
    stale = dict(current, status={"phase": "Failed"})
    with pytest.raises(ConflictError) as ei:
        res.status.patch(body=stale, content_type="application/merge-patch+json")
    assert ei.value.status == 409
    assert "the object has been modified" in json.loads(ei.value.body)["message"]
    assert res.get(name="w1", namespace="default").status.phase == "Ready"


# ------------------------------------------------------------------ item 14
def test_item14_discovery_documents_are_well_formed(
        sim: KubeSim, api_client: client.ApiClient, tmp_path: Path) -> None:
    """Item 14: /apis preferredVersion equals one versions[] entry; /api/v1 groupVersion is
    "v1"; every resource has a bool `namespaced` and non-empty verbs; DynamicClient resolves."""
    code, version = raw(api_client, "GET", "/version")
    assert code == 200 and version["major"] == "1" and version["gitVersion"].startswith("v1.")

    code, api = raw(api_client, "GET", "/api")
    assert code == 200 and api["kind"] == "APIVersions" and api["versions"] == ["v1"]

    code, groups = raw(api_client, "GET", "/apis")
    assert code == 200 and groups["kind"] == "APIGroupList"
    group_names = {g["name"] for g in groups["groups"]}
    assert {"apps", "coordination.k8s.io", "apiextensions.k8s.io"} <= group_names
    documents = []
    for g in groups["groups"]:
        assert g["preferredVersion"] in g["versions"], g  # DynamicClient compares dicts
        for v in g["versions"]:
            assert v["groupVersion"] == f"{g['name']}/{v['version']}"
            code, doc = raw(api_client, "GET", f"/apis/{v['groupVersion']}")
            assert code == 200, v
            assert doc["groupVersion"] == v["groupVersion"]
            documents.append(doc)

    code, core_doc = raw(api_client, "GET", "/api/v1")
    assert code == 200 and core_doc["kind"] == "APIResourceList"
    assert core_doc["groupVersion"] == "v1"  # not "/v1": kubectl depends on it
    documents.append(core_doc)
    for doc in documents:
        assert doc["resources"], doc["groupVersion"]
        for r in doc["resources"]:
            assert isinstance(r["namespaced"], bool), r
            assert isinstance(r["verbs"], list) and r["verbs"], r
            assert r["kind"], r
    core_by_name = {r["name"]: r for r in core_doc["resources"]}
    assert core_by_name["configmaps"]["namespaced"] is True
    assert core_by_name["namespaces"]["namespaced"] is False
    assert "cm" in core_by_name["configmaps"].get("shortNames", [])

    dyn = new_dyn(api_client, tmp_path)
    for api_version, kind, namespaced in [
            ("v1", "ConfigMap", True), ("v1", "Namespace", False),
            ("apps/v1", "Deployment", True), ("coordination.k8s.io/v1", "Lease", True),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition", False)]:
        res = dyn.resources.get(api_version=api_version, kind=kind)
        assert (res.kind, res.group_version, res.namespaced) == (kind, api_version, namespaced)
    assert dyn.resources.get(kind="Lease").group == "coordination.k8s.io"
    assert dyn.version["kubernetes"]["gitVersion"] == version["gitVersion"]


# ------------------------------------------------------------------ item 15
def test_item15_crd_lifecycle_established_resolves_then_cascades(
        sim: KubeSim, api_client: client.ApiClient, tmp_path: Path) -> None:
    """Item 15: a new CRD is Established/NamesAccepted and its kind resolves through
    DynamicClient; deleting it deletes its CRs and then removes its discovery entry."""
    dyn = new_dyn(api_client, tmp_path)
    with pytest.raises(ResourceNotFoundError):
        dyn.resources.get(api_version=f"{GROUP}/v1", kind="Widget")

    crd = create_crd(api_client)
    assert crd.status.accepted_names.kind == "Widget"
    assert crd.status.accepted_names.list_kind == "WidgetList"
    assert crd.status.stored_versions == ["v1"]

    # DynamicClient caches discovery: a user re-reads it, as kubernetes.core does on a miss
    dyn.resources.invalidate_cache()
    res = dyn.resources.get(api_version=f"{GROUP}/v1", kind="Widget")
    assert res.namespaced is True and res.name == PLURAL
    for n in ("w-a", "w-b"):
        res.create(body=widget(n), namespace="default")

    custom = client.CustomObjectsApi(api_client)
    events: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def watch_widgets() -> None:
        w = watch.Watch()
        for ev in w.stream(custom.list_namespaced_custom_object, GROUP, "v1", "default",
                           PLURAL, timeout_seconds=15):
            events.put((ev["type"], ev["object"]["metadata"]["name"]))
        events.put(None)  # the stream ended

    t = threading.Thread(target=watch_widgets, daemon=True)
    t.start()
    assert {events.get(timeout=5), events.get(timeout=5)} == {("ADDED", "w-a"),
                                                               ("ADDED", "w-b")}

    crd_res = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                                kind="CustomResourceDefinition")
    t0 = time.monotonic()
    deleting = crd_res.delete(name=CRD_NAME)
    assert deleting.kind == "CustomResourceDefinition"
    assert deleting.metadata.deletionTimestamp
    assert "customresourcecleanup.apiextensions.k8s.io" in deleting.metadata.finalizers
    conds = {c["type"]: c["status"] for c in deleting.to_dict()["status"]["conditions"]}
    assert conds.get("Terminating") == "True"

    # the CRs go first (DELETED on the CR watch), then the resource itself: the stream ends
    got = [events.get(timeout=5), events.get(timeout=5)]
    assert sorted(got) == [("DELETED", "w-a"), ("DELETED", "w-b")]
    assert events.get(timeout=5) is None
    assert time.monotonic() - t0 < 5  # ended by the server, long before timeoutSeconds
    t.join(timeout=2)

    ext = client.ApiextensionsV1Api(api_client)

    def crd_gone() -> dict[str, Any] | None:
        try:
            ext.read_custom_resource_definition(CRD_NAME)
        except ApiException as e:
            if e.status == 404:
                return json.loads(e.body)
            raise
        return None
    gone = eventually(crd_gone)
    assert gone["message"] == \
        f'customresourcedefinitions.apiextensions.k8s.io "{CRD_NAME}" not found'
    code, _ = raw(api_client, "GET", f"/apis/{GROUP}/v1")
    assert code == 404
    code, groups = raw(api_client, "GET", "/apis")
    assert GROUP not in {g["name"] for g in groups["groups"]}
    expect_api_error(lambda: custom.list_namespaced_custom_object(
        GROUP, "v1", "default", PLURAL), 404)
    dyn.resources.invalidate_cache()
    with pytest.raises(ResourceNotFoundError):
        dyn.resources.get(api_version=f"{GROUP}/v1", kind="Widget")


def test_item15_crd_name_must_be_plural_dot_group(
        sim: KubeSim, api_client: client.ApiClient) -> None:
    """Item 15: a CRD whose metadata.name is not `<plural>.<group>` is rejected with 422."""
    ext = client.ApiextensionsV1Api(api_client)
    body = expect_api_error(lambda: ext.create_custom_resource_definition(
        body=widget_crd(name=f"widget.{GROUP}")), 422)
    assert body["reason"] == "Invalid"
    assert body["message"].startswith(
        'CustomResourceDefinition.apiextensions.k8s.io "widget.example.com" is invalid: ')
    assert 'metadata.name: Invalid value: "widget.example.com": must be ' \
        'spec.names.plural+"."+spec.group' in body["message"]
    assert body["details"]["kind"] == "CustomResourceDefinition"
    assert body["details"]["group"] == "apiextensions.k8s.io"
    assert any(c["field"] == "metadata.name" and c["reason"] == "FieldValueInvalid"
               for c in body["details"]["causes"])
    assert ext.list_custom_resource_definition().items == []


# ------------------------------------------------------------------ item 16
def test_item16_lists_carry_kind_rv_and_sorted_items(
        sim: KubeSim, api_client: client.ApiClient, core: client.CoreV1Api,
        tmp_path: Path) -> None:
    """Item 16: a list is `<Kind>List` with apiVersion, metadata.resourceVersion and items
    sorted by namespace/name (built-in items without kind, CR items with it); DynamicClient
    get() on a collection works."""
    for ns in ("zeta", "alpha"):
        core.create_namespace({"metadata": {"name": ns}})
    for ns, name in [("zeta", "b"), ("alpha", "c"), ("zeta", "a"), ("alpha", "a")]:
        core.create_namespaced_config_map(ns, cm(name))

    code, doc = raw(api_client, "GET", "/api/v1/configmaps")
    assert code == 200
    assert (doc["kind"], doc["apiVersion"]) == ("ConfigMapList", "v1")
    assert int(doc["metadata"]["resourceVersion"]) >= max(
        rv_int(i) for i in doc["items"])
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in doc["items"]] == [
        ("alpha", "a"), ("alpha", "c"), ("zeta", "a"), ("zeta", "b")]
    assert all("kind" not in i and "apiVersion" not in i for i in doc["items"])
    assert "continue" not in doc["metadata"]

    typed = core.list_namespaced_config_map("zeta")
    assert names(typed.items) == ["a", "b"] and typed.metadata.resource_version

    dyn = new_dyn(api_client, tmp_path)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    one_ns = cms.get(namespace="alpha")
    assert one_ns.kind == "ConfigMapList" and one_ns.apiVersion == "v1"
    assert names(one_ns.items) == ["a", "c"]
    assert [(i.metadata.namespace, i.metadata.name) for i in cms.get().items] == [
        ("alpha", "a"), ("alpha", "c"), ("zeta", "a"), ("zeta", "b")]
    nss = dyn.resources.get(api_version="v1", kind="Namespace").get()
    assert nss.kind == "NamespaceList"
    assert names(nss.items) == sorted(names(nss.items))

    create_crd(api_client)
    res = new_dyn(api_client, tmp_path, "crd").resources.get(api_version=f"{GROUP}/v1",
                                                             kind="Widget")
    for n in ("w2", "w1"):
        res.create(body=widget(n), namespace="zeta")
    code, doc = raw(api_client, "GET", f"/apis/{GROUP}/v1/namespaces/zeta/{PLURAL}")
    assert code == 200
    assert (doc["kind"], doc["apiVersion"]) == ("WidgetList", f"{GROUP}/v1")
    assert [i["metadata"]["name"] for i in doc["items"]] == ["w1", "w2"]
    assert all(i["kind"] == "Widget" and i["apiVersion"] == f"{GROUP}/v1" for i in doc["items"])
    assert res.get(namespace="zeta").kind == "WidgetList"


# ------------------------------------------------------------------ item 17
@pytest.fixture
def labelled(core: client.CoreV1Api) -> client.CoreV1Api:
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_config_map("default", cm("a", {"env": "prod", "tier": "web"}))
    core.create_namespaced_config_map("default", cm("b", {"env": "dev", "tier": "db"}))
    core.create_namespaced_config_map("default", cm("c", {"env": "test"}))
    core.create_namespaced_config_map("default", cm("d", {"release": "x"}))
    core.create_namespaced_config_map("other", cm("a", {"env": "prod"}))
    return core


@pytest.mark.parametrize(("selector", "expected"), [
    ("env=prod", ["a"]),
    ("env==prod", ["a"]),
    ("env!=prod", ["b", "c", "d"]),  # objects without the key match !=
    ("env in (prod,dev)", ["a", "b"]),
    ("env in ( prod , dev )", ["a", "b"]),
    ("env notin (prod,dev)", ["c", "d"]),  # ... and notin
    ("tier", ["a", "b"]),
    ("!tier", ["c", "d"]),
    ("env!=dev,tier", ["a"]),
    ("env in (prod,test),tier notin (db),!release", ["a", "c"]),
    ("env=prod,env=dev", []),
    ("", ["a", "b", "c", "d"]),
])
def test_item17_label_selector_operators(labelled: client.CoreV1Api, selector: str,
                                         expected: list[str]) -> None:
    """Item 17: every labelSelector operator filters as kube-apiserver does."""
    got = labelled.list_namespaced_config_map("default", label_selector=selector)
    assert names(got.items) == expected


@pytest.mark.parametrize(("selector", "message"), [
    ("env in prod", "unable to parse requirement: found 'prod' expected: '('"),
    ("env in (prod", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("env=(x", "unable to parse requirement: found '(', expected: identifier"),
    ("==prod", "found '==', expected: !, identifier, or 'end of string'"),
    ("env=prod,", "found '', expected: identifier after ','"),
    ("!env=prod", "found '=', expected: ',' or 'end of string'"),
    ("env notin", "unable to parse requirement: found '' expected: '('"),
    ("Env_=x", 'unable to parse requirement: <nil>: Invalid value: "Env_": name part must'),
    ("env=-bad-", 'unable to parse requirement: values[0][env]: Invalid value: "-bad-": '),
])
def test_item17_label_selector_bad_syntax_is_400(labelled: client.CoreV1Api, selector: str,
                                                 message: str) -> None:
    """Item 17: a labelSelector that does not parse → 400 BadRequest with the message of
    apimachinery's labels.Parse (pkg/labels/selector.go)."""
    body = expect_api_error(lambda: labelled.list_namespaced_config_map(
        "default", label_selector=selector), 400)
    assert body["reason"] == "BadRequest"
    assert body["message"].startswith(message)


def test_item17_field_selectors(labelled: client.CoreV1Api) -> None:
    """Item 17: metadata.name and metadata.namespace field selectors (= == !=, combined with
    labels); an unsupported field → 400 `field label not supported: <field>`."""
    core = labelled
    assert names(core.list_namespaced_config_map(
        "default", field_selector="metadata.name=b").items) == ["b"]
    assert names(core.list_namespaced_config_map(
        "default", field_selector="metadata.name==b").items) == ["b"]
    assert names(core.list_namespaced_config_map(
        "default", field_selector="metadata.name!=b").items) == ["a", "c", "d"]
    every = core.list_config_map_for_all_namespaces(field_selector="metadata.name=a")
    assert [(i.metadata.namespace, i.metadata.name) for i in every.items] == [
        ("default", "a"), ("other", "a")]
    other = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=other")
    assert [(i.metadata.namespace, i.metadata.name) for i in other.items] == [("other", "a")]
    both = core.list_config_map_for_all_namespaces(
        field_selector="metadata.namespace!=other,metadata.name!=d", label_selector="env")
    assert [(i.metadata.namespace, i.metadata.name) for i in both.items] == [
        ("default", "a"), ("default", "b"), ("default", "c")]
    assert names(core.list_namespace(field_selector="metadata.name=other").items) == ["other"]

    body = expect_api_error(lambda: core.list_namespaced_config_map(
        "default", field_selector="data.k=v"), 400)
    assert body["reason"] == "BadRequest"
    assert body["message"] == "field label not supported: data.k"
    # Namespace has its own field label conversion (metadata.name, status.phase) and does
    # not accept metadata.namespace (k8s pkg/apis/core/v1/conversion.go).
    body = expect_api_error(lambda: core.list_namespace(
        field_selector="metadata.namespace=default"), 400)
    assert body["message"] == "field label not supported: metadata.namespace"
    assert names(core.list_namespace(field_selector="status.phase=Active").items) == [
        "default", "kube-node-lease", "kube-public", "kube-system", "other"]


# ------------------------------------------------------------------ item 18
def test_item18_paging_keeps_one_list_rv(sim: KubeSim, core: client.CoreV1Api) -> None:
    """Item 18: limit/continue pages come from one snapshot (the first page's RV): objects
    created, changed or deleted between pages do not show; the last page has no continue."""
    for i in range(5):
        core.create_namespaced_config_map("default", cm(f"p{i}", gen="old"))
    first = core.list_namespaced_config_map("default", limit=2)
    list_rv = first.metadata.resource_version
    assert names(first.items) == ["p0", "p1"]
    assert first.metadata._continue
    assert first.metadata.remaining_item_count == 3

    # writes between pages
    core.create_namespaced_config_map("default", cm("p1a"))
    core.create_namespaced_config_map("default", cm("p9"))
    core.patch_namespaced_config_map("p2", "default", {"data": {"gen": "new"}})
    core.delete_namespaced_config_map("p3", "default")

    second = core.list_namespaced_config_map("default", limit=2,
                                             _continue=first.metadata._continue)
    assert second.metadata.resource_version == list_rv
    assert names(second.items) == ["p2", "p3"]
    assert second.items[0].data["gen"] == "old"  # p2 as it was at the list RV
    assert second.metadata._continue

    third = core.list_namespaced_config_map("default", limit=2,
                                            _continue=second.metadata._continue)
    assert third.metadata.resource_version == list_rv
    assert names(third.items) == ["p4"]
    assert not third.metadata._continue  # empty on the last page
    assert third.metadata.remaining_item_count is None

    fresh = core.list_namespaced_config_map("default")
    assert names(fresh.items) == ["p0", "p1", "p1a", "p2", "p4", "p9"]
    assert int(fresh.metadata.resource_version) > int(list_rv)


def test_item18_expired_continue_token_is_410(sim: KubeSim, core: client.CoreV1Api) -> None:
    """Item 18: a continue token whose snapshot was compacted away → 410 Expired. As the
    etcd3 store does (handleCompactedErrorForPaging), the Status carries a fresh
    `metadata.continue` that resumes after the same key at the latest resourceVersion."""
    for i in range(3):
        core.create_namespaced_config_map("default", cm(f"p{i}"))
    first = core.list_namespaced_config_map("default", limit=1)
    token = first.metadata._continue
    core.create_namespaced_config_map("default", cm("p1b"))
    sim.store.compact()  # test hook: etcd compaction past the list RV

    body = expect_api_error(lambda: core.list_namespaced_config_map(
        "default", limit=1, _continue=token), 410)
    assert body["reason"] == "Expired"
    assert body["message"].startswith(
        "The provided continue parameter is too old to display a consistent list result. "
        "You can start a new list without the continue parameter, or use the continue token "
        "in this response to retrieve the remainder of the results.")
    resumed = core.list_namespaced_config_map("default", limit=10,
                                              _continue=body["metadata"]["continue"])
    assert names(resumed.items) == ["p1", "p1b", "p2"]  # inconsistent: p1b is newer
    assert int(resumed.metadata.resource_version) > int(first.metadata.resource_version)
    assert not resumed.metadata._continue
    # a new list without the token works
    assert names(core.list_namespaced_config_map("default").items) == [
        "p0", "p1", "p1b", "p2"]


def test_item18_continue_with_resource_version(core: client.CoreV1Api) -> None:
    """Item 18: `continue` with resourceVersion "0" is tolerated; any other RV → 400; a
    malformed token → 400 `invalid continue token: ...`."""
    for i in range(3):
        core.create_namespaced_config_map("default", cm(f"p{i}"))
    first = core.list_namespaced_config_map("default", limit=2)
    token = first.metadata._continue
    page = core.list_namespaced_config_map("default", limit=2, _continue=token,
                                           resource_version="0")
    assert names(page.items) == ["p2"]
    body = expect_api_error(lambda: core.list_namespaced_config_map(
        "default", limit=2, _continue=token,
        resource_version=first.metadata.resource_version), 400)
    assert body["reason"] == "BadRequest"
    assert body["message"] == "specifying resource version is not allowed when using continue"
    body = expect_api_error(lambda: core.list_namespaced_config_map(
        "default", limit=2, _continue="not-a-token"), 400)
    assert body["message"].startswith("invalid continue token: continue key is not valid: ")


# ------------------------------------------------------------------ item 19
def test_item19_watch_without_rv_added_modified_deleted(core: client.CoreV1Api) -> None:
    """Item 19: a watch without RV sends a synthetic ADDED for the current state, then live
    MODIFIED and DELETED, each carrying a new, increasing resourceVersion."""
    created = core.create_namespaced_config_map("default", cm("w"))
    w = watch.Watch()
    seen: list[tuple[str, str, int]] = []
    stream = w.stream(core.list_namespaced_config_map, "default", timeout_seconds=10)
    for ev in stream:
        obj = ev["object"]
        seen.append((ev["type"], obj.metadata.name, int(obj.metadata.resource_version)))
        if len(seen) == 1:
            core.patch_namespaced_config_map("w", "default", {"data": {"k": "v2"}})
        elif len(seen) == 2:
            assert obj.data == {"k": "v2"}
            core.delete_namespaced_config_map("w", "default")
        else:
            w.stop()
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "w"), ("MODIFIED", "w"),
                                             ("DELETED", "w")]
    rvs = [rv for _, _, rv in seen]
    assert rvs[0] == int(created.metadata.resource_version)
    assert rvs[0] < rvs[1] < rvs[2]
    assert w.resource_version == str(rvs[2])


# ------------------------------------------------------------------ item 20
def test_item20_watch_from_list_rv_replays_e2e_sequence(core: client.CoreV1Api) -> None:
    """Item 20: upstream kubernetes-client/python e2e `test_watch_configmaps`: list RV →
    create b → patch b → deletecollection; a watch from the RV with timeoutSeconds=5 yields
    exactly ADDED, MODIFIED, DELETED, DELETED and then ends."""
    core.create_namespaced_config_map("default", cm("configmap-a", key="a", config="dummy"))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    body_b = cm("configmap-b", key="b", config="dummy")
    core.create_namespaced_config_map("default", body_b)
    body_b["data"]["config"] = "{}"
    core.patch_namespaced_config_map("configmap-b", "default", body_b)
    core.delete_collection_namespaced_config_map("default")

    w = watch.Watch()
    seen = []
    t0 = time.monotonic()
    for ev in w.stream(core.list_namespaced_config_map, namespace="default",
                       resource_version=rv, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
    elapsed = time.monotonic() - t0
    assert [t for t, _ in seen] == ["ADDED", "MODIFIED", "DELETED", "DELETED"]
    assert seen[:2] == [("ADDED", "configmap-b"), ("MODIFIED", "configmap-b")]
    assert {n for _, n in seen[2:]} == {"configmap-a", "configmap-b"}
    assert 4.5 < elapsed < 7


# ------------------------------------------------------------------ item 21
def test_item21_timeout_seconds_ends_the_stream(sim: KubeSim, core: client.CoreV1Api) -> None:
    """Item 21: timeoutSeconds=2 makes the server end the stream cleanly after about 2 s,
    with no client-side timeout involved."""
    core.create_namespaced_config_map("default", cm("x"))
    t0 = time.monotonic()
    events = [ev["type"] for ev in watch.Watch().stream(
        core.list_namespaced_config_map, "default", timeout_seconds=2)]
    elapsed = time.monotonic() - t0
    assert events == ["ADDED"]
    assert 1.8 < elapsed < 3.5

    # on the wire: a 200 chunked stream that the server terminates itself
    http = urllib3.PoolManager()
    t0 = time.monotonic()
    resp = http.request("GET", f"{sim.url}/api/v1/namespaces/default/configmaps",
                        fields={"watch": "true", "timeoutSeconds": "2"},
                        preload_content=False, timeout=urllib3.Timeout(connect=5, read=10))
    lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    elapsed = time.monotonic() - t0
    assert resp.status == 200
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert resp.headers["Content-Type"].startswith("application/json")
    assert [ln["type"] for ln in lines] == ["ADDED"]
    assert 1.8 < elapsed < 3.5
    resp.release_conn()


# ------------------------------------------------------------------ item 22
def test_item22_watch_from_compacted_rv_is_410(sim: KubeSim, core: client.CoreV1Api) -> None:
    """Item 22: a watch from a compacted RV gets one ERROR event (Status 410 Expired) and
    EOF; `Watch.stream(timeout_seconds=...)` raises ApiException(410) without retrying."""
    old_rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", cm("a"))
    core.create_namespaced_config_map("default", cm("b"))
    sim.store.compact()

    http = urllib3.PoolManager()
    resp = http.request("GET", f"{sim.url}/api/v1/namespaces/default/configmaps",
                        fields={"watch": "1", "resourceVersion": old_rv},
                        preload_content=False, timeout=urllib3.Timeout(connect=5, read=5))
    t0 = time.monotonic()
    lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert time.monotonic() - t0 < 2  # EOF right away, not at a timeout
    assert resp.status == 200
    assert len(lines) == 1
    assert lines[0]["type"] == "ERROR"
    status = lines[0]["object"]
    assert (status["kind"], status["apiVersion"], status["status"]) == ("Status", "v1",
                                                                        "Failure")
    assert (status["code"], status["reason"]) == (410, "Expired")
    assert status["message"].startswith(f"too old resource version: {old_rv} (")
    resp.release_conn()

    def watches_since(seq: int) -> list[Any]:
        # the server audits a watch when its stream ends, just after the client saw it
        return [e for e in sim.audit.entries(since=seq) if e.verb == "watch"]

    since = sim.audit.entries()[-1].seq
    with pytest.raises(ApiException) as ei:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=old_rv, timeout_seconds=5):
            pass
    assert ei.value.status == 410
    assert "Expired: too old resource version" in ei.value.reason
    eventually(lambda: watches_since(since))
    assert len(watches_since(since)) == 1  # timeout_seconds disables the client's retry

    # without timeout_seconds the client retries once from the same RV, then raises
    since = sim.audit.entries()[-1].seq
    with pytest.raises(ApiException) as ei:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=old_rv):
            pass
    assert ei.value.status == 410
    eventually(lambda: len(watches_since(since)) == 2)
    assert all(e.code == 200 for e in watches_since(since))


# ------------------------------------------------------------------ item 23
def test_item23_bookmarks_carry_only_rv_and_advance_resource_version(
        core: client.CoreV1Api) -> None:
    """Item 23: with allowWatchBookmarks, BOOKMARK events carry only kind, apiVersion and
    metadata.resourceVersion, and Watch.resource_version follows them."""
    core.create_namespace({"metadata": {"name": "elsewhere"}})
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version
    w = watch.Watch()
    bookmarks: list[dict[str, Any]] = []
    tracked: list[str] = []
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=start_rv,
                       allow_watch_bookmarks=True, timeout_seconds=8):
        assert ev["type"] == "BOOKMARK", ev["type"]  # nothing changes in "default"
        bookmarks.append(ev["raw_object"])
        tracked.append(w.resource_version)
        if len(bookmarks) == 2:
            w.stop()
            break
        # writes elsewhere move the global RV; the next bookmark must reflect them
        core.create_namespaced_config_map("elsewhere", cm(f"x{len(bookmarks)}"))
    assert len(bookmarks) == 2
    for bm in bookmarks:
        assert set(bm) == {"kind", "apiVersion", "metadata"}
        assert (bm["kind"], bm["apiVersion"]) == ("ConfigMap", "v1")
        assert set(bm["metadata"]) == {"resourceVersion"}
    rvs = [int(bm["metadata"]["resourceVersion"]) for bm in bookmarks]
    assert int(start_rv) <= rvs[0] < rvs[1]
    assert tracked == [str(rv) for rv in rvs]


# ------------------------------------------------------------------ item 24
def test_item24_selector_watch_sees_objects_leave_and_enter(core: client.CoreV1Api) -> None:
    """Item 24: on a label-selector watch, a label change taking an object out of the
    selector emits DELETED, and one bringing an object into it emits ADDED."""
    core.create_namespaced_config_map("default", cm("in", {"app": "x"}))
    core.create_namespaced_config_map("default", cm("out", {"app": "y"}))
    w = watch.Watch()
    seen: list[tuple[str, str, str]] = []
    steps = [
        lambda: core.patch_namespaced_config_map("out", "default", {"data": {"k": "2"}}),
        lambda: core.patch_namespaced_config_map("in", "default",
                                                 {"metadata": {"labels": {"app": "y"}}}),
        lambda: core.patch_namespaced_config_map("out", "default",
                                                 {"metadata": {"labels": {"app": "x"}}}),
        lambda: core.patch_namespaced_config_map("out", "default", {"data": {"k": "3"}}),
    ]
    # step 0 is invisible to the watch; steps 1..3 each produce one event
    for ev in w.stream(core.list_namespaced_config_map, "default", label_selector="app=x",
                       timeout_seconds=10):
        obj = ev["object"]
        seen.append((ev["type"], obj.metadata.name, obj.metadata.labels["app"]))
        if len(seen) == 1:
            steps[0]()
            steps[1]()
        elif len(seen) in (2, 3):
            steps[len(seen)]()
        else:
            w.stop()
    assert seen == [
        ("ADDED", "in", "x"),       # synthetic initial state
        ("DELETED", "in", "y"),     # left the selector: carries its new state
        ("ADDED", "out", "x"),      # entered the selector
        ("MODIFIED", "out", "x"),
    ]


# ------------------------------------------------------------------ kubectl
def test_kubectl_get_namespaces(kubeconfig: Path) -> None:
    """kubectl (server-side Table printing): `kubectl get ns` lists the system namespaces."""
    out = kubectl(kubeconfig, "get", "ns")
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert rows[0] == ["NAME", "STATUS", "AGE"]
    assert {r[0]: r[1] for r in rows[1:]} == {
        "default": "Active", "kube-node-lease": "Active", "kube-public": "Active",
        "kube-system": "Active"}
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])


def test_kubectl_apply_crd_then_cr_shows_printer_columns(kubeconfig: Path) -> None:
    """kubectl apply -f of a CRD and then of a CR of it; `kubectl get <plural>` prints the
    CRD's additionalPrinterColumns."""
    crd_file = kubeconfig.parent / "crd.yaml"
    crd_file.write_text(yaml.safe_dump(widget_crd()))
    out = kubectl(kubeconfig, "apply", "-f", str(crd_file))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME} " \
                                 "created"
    out = kubectl(kubeconfig, "wait", "--for=condition=Established", f"crd/{CRD_NAME}",
                  "--timeout=10s")
    assert out.returncode == 0, out.stderr

    cr_file = kubeconfig.parent / "cr.yaml"
    cr_file.write_text(yaml.safe_dump_all([widget("big", size=7, color="blue"),
                                           widget("small", size=2, color="green")]))
    out = kubectl(kubeconfig, "apply", "-f", str(cr_file))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [f"widget.{GROUP}/big created",
                                          f"widget.{GROUP}/small created"]

    out = kubectl(kubeconfig, "get", PLURAL)
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    # Only the CRD's columns after NAME: kube-apiserver adds the default Age column only
    # when a version declares no additionalPrinterColumns (serveDefaultColumnsIfEmpty).
    assert rows[0] == ["NAME", "SIZE", "COLOR"]
    assert [r[:3] for r in rows[1:]] == [["big", "7", "blue"], ["small", "2", "green"]]

    out = kubectl(kubeconfig, "get", "wdg", "small", "-o", "json")  # by short name
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["spec"] == {"size": 2, "color": "green", "replicas": 1}

    # a second apply of the same file is a no-op
    out = kubectl(kubeconfig, "apply", "-f", str(cr_file))
    assert out.returncode == 0, out.stderr
    assert f"widget.{GROUP}/big unchanged" in out.stdout


def test_kubectl_get_watch_shows_created_object(kubeconfig: Path,
                                                core: client.CoreV1Api) -> None:
    """kubectl get cm -w prints the current objects, then objects created afterwards."""
    core.create_namespaced_config_map("default", cm("before"))
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(kubeconfig.parent))
    proc = subprocess.Popen(
        [KUBECTL, f"--cache-dir={kubeconfig.parent / 'kubectl-cache'}", "get", "cm", "-w"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def wait_for_line(prefix: str) -> list[str]:
        got: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            got.append(line)
            if line.split() and line.split()[0] == prefix:
                return got
        raise AssertionError(f"kubectl never printed {prefix!r}; got {got!r}")

    try:
        head = wait_for_line("before")
        assert head[0].split() == ["NAME", "DATA", "AGE"]
        core.create_namespaced_config_map("default", cm("after", x="1", y="2"))
        row = wait_for_line("after")[-1].split()
        assert row[:2] == ["after", "2"]
        assert proc.poll() is None  # still watching
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_kubectl_api_resources_lists_our_types(kubeconfig: Path,
                                               api_client: client.ApiClient) -> None:
    """kubectl api-resources lists built-in types and a CRD's type with its short name."""
    create_crd(api_client)
    out = kubectl(kubeconfig, "api-resources")
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert rows[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name = {r[0]: r[1:] for r in rows[1:]}
    assert by_name["configmaps"] == ["cm", "v1", "true", "ConfigMap"]
    assert by_name["namespaces"] == ["ns", "v1", "false", "Namespace"]
    assert by_name["leases"] == ["coordination.k8s.io/v1", "true", "Lease"]
    assert by_name["deployments"][-3:] == ["apps/v1", "true", "Deployment"]
    assert by_name[PLURAL] == ["wdg", f"{GROUP}/v1", "true", "Widget"]
    assert not any("/" in r[0] for r in rows[1:])  # subresources are not listed
