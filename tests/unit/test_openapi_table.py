"""OpenAPI documents (kubesim.openapi) and server-side Tables (kubesim.table)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from kubesim import openapi, table
from kubesim.registry import Registry, ResourceType

NOW = dt.datetime(2025, 3, 10, 12, 0, 0, tzinfo=dt.UTC)
KUBECTL_GET_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                      "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")

WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "properties": {
            "size": {"type": "integer"},
            "color": {"type": "string", "nullable": True},
            "port": {"x-kubernetes-int-or-string": True,
                     "anyOf": [{"type": "integer"}, {"type": "string"}]},
        }},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def widget_type(**kw: Any) -> ResourceType:
    base: dict[str, Any] = dict(custom=True, crd_name="widgets.example.com", has_status=True,
                                has_generation=True, schema=WIDGET_SCHEMA)
    base.update(kw)
    return ResourceType("example.com", "v1", "Widget", "widgets", True, **base)


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add(widget_type())
    reg.add(ResourceType("example.com", "v1", "Gadget", "gadgets", False, custom=True,
                         crd_name="gadgets.example.com"))
    return reg


def ago(**kw: float) -> str:
    return (NOW - dt.timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ================================================================== OpenAPI v3


def kubectl_supports_field_validation(doc: dict, gvk: dict[str, str]) -> bool:
    """cli-runtime supportsQueryParamV3: the first PATCH operation carrying the GVK decides."""
    for item in doc["paths"].values():
        op = item.get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p.get("name") == "fieldValidation" for p in op.get("parameters", []))
    return False


def kubectl_v3_patch_schema(doc: dict, gvk: dict[str, str]) -> dict | None:
    """kubectl apply's buildStrategicMergePatchFromOpenAPIV3 schema lookup."""
    for schema in doc["components"]["schemas"].values():
        if gvk in schema.get("x-kubernetes-group-version-kind", []):
            return schema
    return None


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for v in node.values():
            out += refs(v)
        return out
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_v3_discovery_lists_every_group_version(registry: Registry) -> None:
    disco = openapi.openapi_v3_discovery(registry)
    assert set(disco["paths"]) == {
        "api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1", "apis/apiextensions.k8s.io/v1",
        "apis/rbac.authorization.k8s.io/v1", "apis/example.com/v1"}
    for key, entry in disco["paths"].items():
        url = entry["serverRelativeURL"]
        path, _, query = url.partition("?")
        assert path == f"/openapi/v3/{key}"
        group, version = openapi.parse_v3_path(path)
        doc = openapi.openapi_v3_group_version(registry, group, version)
        assert query == f"hash={openapi.document_hash(doc)}"
        assert len(openapi.document_hash(doc)) == 128


def test_v3_hash_changes_when_a_crd_changes_the_document(registry: Registry) -> None:
    before = openapi.openapi_v3_discovery(registry)["paths"]
    registry.add(ResourceType("example.com", "v1", "Gizmo", "gizmos", True, custom=True,
                              crd_name="gizmos.example.com"))
    after = openapi.openapi_v3_discovery(registry)["paths"]
    assert before["apis/example.com/v1"] != after["apis/example.com/v1"]
    assert before["api/v1"] == after["api/v1"]
    registry.remove_crd("gizmos.example.com")
    registry.remove_crd("widgets.example.com")
    registry.remove_crd("gadgets.example.com")
    assert "apis/example.com/v1" not in openapi.openapi_v3_discovery(registry)["paths"]
    assert openapi.openapi_v3_group_version(registry, "example.com", "v1") is None


def test_v3_unknown_group_version_is_none(registry: Registry) -> None:
    assert openapi.openapi_v3_group_version(registry, "nope.io", "v1") is None
    assert openapi.openapi_v3_group_version(registry, "", "v2") is None


@pytest.mark.parametrize("path, expected", [
    ("/openapi/v3/api/v1", ("", "v1")),
    ("/openapi/v3/apis/apps/v1", ("apps", "v1")),
    ("/openapi/v3/apis/example.com/v1/", ("example.com", "v1")),
    ("/openapi/v3", None),
    ("/openapi/v3/apis/apps", None),
    ("/openapi/v2", None),
])
def test_parse_v3_path(path: str, expected: tuple[str, str] | None) -> None:
    assert openapi.parse_v3_path(path) == expected


def test_every_kind_advertises_server_side_field_validation(registry: Registry) -> None:
    for rt in registry.all():
        doc = openapi.openapi_v3_group_version(registry, rt.group, rt.version)
        gvk = {"group": rt.group, "kind": rt.kind, "version": rt.version}
        assert kubectl_supports_field_validation(doc, gvk), rt.kind
        patch_ops = [item["patch"] for item in doc["paths"].values()
                     if item.get("patch", {}).get("x-kubernetes-group-version-kind") == gvk]
        assert patch_ops
        for op in patch_ops:   # every PATCH op of the kind, so path order cannot matter
            names = {p["name"] for p in op["parameters"]}
            assert {"dryRun", "fieldManager", "fieldValidation", "force"} <= names


def test_write_operations_declare_write_parameters(registry: Registry) -> None:
    doc = openapi.openapi_v3_group_version(registry, "", "v1")
    item = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]
    assert {p["name"] for p in item["parameters"]} == {"name", "namespace", "pretty"}
    for method in ("put", "patch"):
        params = {p["name"]: p for p in item[method]["parameters"]}
        assert params["fieldValidation"]["in"] == "query"
        assert params["fieldValidation"]["schema"]["type"] == "string"
        assert "dryRun" in params and "fieldManager" in params
    coll = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"]
    assert {p["name"] for p in coll["post"]["parameters"]} == {
        "dryRun", "fieldManager", "fieldValidation"}
    assert {"labelSelector", "fieldSelector", "limit", "continue", "watch"} <= {
        p["name"] for p in coll["get"]["parameters"]}
    assert coll["delete"]["x-kubernetes-action"] == "deletecollection"
    assert item["get"]["x-kubernetes-action"] == "get"
    assert item["get"]["operationId"] == "readCoreV1NamespacedConfigMap"
    assert "/api/v1/configmaps" in doc["paths"]                       # all-namespaces list
    ns = doc["paths"]["/api/v1/namespaces/{name}"]
    assert ns["patch"]["operationId"] == "patchCoreV1Namespace"
    assert "/api/v1/namespaces" in doc["paths"]
    assert "delete" not in doc["paths"]["/api/v1/namespaces"]      # no deletecollection verb


def test_subresource_paths(registry: Registry) -> None:
    doc = openapi.openapi_v3_group_version(registry, "apps", "v1")
    status = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "kind": "Scale", "version": "v1"}
    assert openapi.SCALE in doc["components"]["schemas"]
    assert scale["put"]["operationId"] == "replaceAppsV1NamespacedDeploymentScale"


def test_patch_content_types(registry: Registry) -> None:
    core = openapi.openapi_v3_group_version(registry, "", "v1")
    cm = core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert set(cm["requestBody"]["content"]) == {
        "application/apply-patch+yaml", "application/json-patch+json",
        "application/merge-patch+json", "application/strategic-merge-patch+json"}
    cr = openapi.openapi_v3_group_version(registry, "example.com", "v1")
    w = cr["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in w["requestBody"]["content"]
    assert "application/merge-patch+json" in w["requestBody"]["content"]


def test_builtin_schemas_leave_patch_metadata_to_kubectl(registry: Registry) -> None:
    doc = openapi.openapi_v3_group_version(registry, "apps", "v1")
    gvk = {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert kubectl_v3_patch_schema(doc, gvk) is None     # -> kubectl's compiled-in types
    schema = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata"}
    assert doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentList"][
        "x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "DeploymentList",
                                                "version": "v1"}]


def test_custom_resource_schema(registry: Registry) -> None:
    doc = openapi.openapi_v3_group_version(registry, "example.com", "v1")
    schema = doc["components"]["schemas"]["com.example.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "example.com", "kind": "Widget", "version": "v1"}]
    assert schema["properties"]["spec"] == WIDGET_SCHEMA["properties"]["spec"]
    assert schema["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/" + openapi.OBJECT_META}]
    assert schema["properties"]["apiVersion"]["type"] == "string"
    assert "metadata" not in WIDGET_SCHEMA["properties"]           # the CRD's copy untouched
    gadget = doc["components"]["schemas"]["com.example.v1.Gadget"]
    assert gadget["x-kubernetes-preserve-unknown-fields"] is True
    assert kubectl_v3_patch_schema(doc, {"group": "example.com", "kind": "Gadget",
                                         "version": "v1"}) is gadget
    assert "/apis/example.com/v1/gadgets/{name}" in doc["paths"]     # cluster-scoped
    assert "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/status" in doc["paths"]


def test_v3_documents_are_self_contained(registry: Registry) -> None:
    for group, version in [("", "v1"), ("apps", "v1"), ("coordination.k8s.io", "v1"),
                           ("apiextensions.k8s.io", "v1"), ("rbac.authorization.k8s.io", "v1"),
                           ("example.com", "v1")]:
        doc = openapi.openapi_v3_group_version(registry, group, version)
        assert doc["openapi"] == "3.0.0"
        json.dumps(doc)
        for ref in refs(doc):
            assert ref.startswith("#/components/schemas/")
            assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref


def test_serve_openapi_v3(registry: Registry) -> None:
    code, headers, body = openapi.serve_openapi_v3(registry, "/openapi/v3", None)
    assert (code, body) == (200, openapi.openapi_v3_discovery(registry))
    url = body["paths"]["apis/apps/v1"]["serverRelativeURL"]
    path, _, query = url.partition("?")
    digest = query.removeprefix("hash=")
    code, headers, doc = openapi.serve_openapi_v3(registry, path, digest)
    assert code == 200 and doc["paths"]
    assert headers["Etag"] == f'"{digest}"'
    assert headers["Cache-Control"] == "public, immutable"
    code, headers, doc = openapi.serve_openapi_v3(registry, path, "STALE")
    assert (code, doc) == (301, None)
    assert headers["Location"] == f"{path}?hash={digest}"
    code, headers, doc = openapi.serve_openapi_v3(registry, path, None)
    assert code == 200 and "Cache-Control" not in headers and headers["Etag"] == f'"{digest}"'
    assert openapi.serve_openapi_v3(registry, "/openapi/v3/apis/nope/v1", None)[0] == 404


# ================================================================== OpenAPI v2


def test_v2_document(registry: Registry) -> None:
    doc = openapi.openapi_v2(registry)
    json.dumps(doc)
    assert doc["swagger"] == "2.0"
    for ref in refs(doc):
        assert ref.startswith("#/definitions/")
        assert ref.removeprefix("#/definitions/") in doc["definitions"], ref
    # cli-runtime QueryParamVerifier (v2): PATCH op with the GVK and an inline fieldValidation.
    for rt in registry.all():
        gvk = {"group": rt.group, "kind": rt.kind, "version": rt.version}
        ops = [item["patch"] for item in doc["paths"].values()
               if item.get("patch", {}).get("x-kubernetes-group-version-kind") == gvk]
        assert ops, rt.kind
        assert any(p["name"] == "fieldValidation" and p["in"] == "query"
                   for p in ops[0]["parameters"])
        assert ops[0]["parameters"][0]["in"] == "body"
        assert ("application/strategic-merge-patch+json" in ops[0]["consumes"]) == (
            not rt.custom)
    post = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["post"]
    assert post["parameters"][0] == {"name": "body", "in": "body", "required": True, "schema": {
        "$ref": "#/definitions/io.k8s.api.core.v1.ConfigMap"}}
    assert post["responses"]["201"]["schema"] == {
        "$ref": "#/definitions/io.k8s.api.core.v1.ConfigMap"}


def test_v2_custom_schema_is_swagger_compatible(registry: Registry) -> None:
    spec = openapi.openapi_v2(registry)["definitions"]["com.example.v1.Widget"]["properties"][
        "spec"]
    assert "nullable" not in spec["properties"]["color"]
    port = spec["properties"]["port"]
    assert "anyOf" not in port and "type" not in port and "x-kubernetes-int-or-string" not in port


def test_serve_openapi_v2(registry: Registry) -> None:
    assert openapi.serve_openapi_v2(registry, openapi.V2_PROTOBUF) == (406, {}, None)
    code, headers, body = openapi.serve_openapi_v2(registry, "application/json")
    assert code == 200 and body["swagger"] == "2.0" and headers["Etag"]
    assert openapi.serve_openapi_v2(registry, None)[0] == 200
    assert openapi.serve_openapi_v2(registry, f"{openapi.V2_PROTOBUF}, */*")[0] == 200


# ================================================================== Table: negotiation, ages


@pytest.mark.parametrize("accept, expected", [
    (KUBECTL_GET_ACCEPT, "meta.k8s.io/v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
     "meta.k8s.io/v1beta1"),
    ("application/json; as=Table; g=meta.k8s.io; v=v1", "meta.k8s.io/v1"),
    ("application/json", None),
    ("application/json, */*", None),
    ("", None),
    (None, None),
    ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", None),
    ("application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io,application/json", None),
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json", None),
])
def test_table_negotiation(accept: str | None, expected: str | None) -> None:
    assert table.table_version(accept) == expected
    assert table.wants_table(accept) is (expected is not None)


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"),
    (192, "3m12s"), (599, "9m59s"), (600, "10m"), (179 * 60 + 59, "179m"),
    (3 * 3600, "3h"), (3 * 3600 + 5 * 60, "3h5m"), (8 * 3600 + 59, "8h"), (47 * 3600, "47h"),
    (48 * 3600, "2d"), (2 * 86400 + 3 * 3600, "2d3h"), (8 * 86400 + 7200, "8d"),
    (400 * 86400, "400d"), (2 * 365 * 86400, "2y"), ((2 * 365 + 10) * 86400, "2y10d"),
    (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert table.human_duration(seconds) == text


def test_check_include_object() -> None:
    assert table.check_include_object(None) == "Metadata"
    assert table.check_include_object("") == "Metadata"
    assert table.check_include_object("Object") == "Object"
    with pytest.raises(table.TableError) as e:
        table.check_include_object("All")
    assert str(e.value) == ('Unable to convert to Table as requested: includeObject: '
                            'Unsupported value: "All": supported values: "Metadata", "None", '
                            '"Object"')


# ================================================================== Table: built-in printers


def rt(registry: Registry, group: str, kind: str) -> ResourceType:
    (found,) = registry.by_kind(group, kind)
    return found


def names(t: dict) -> list[str]:
    return [c["name"] for c in t["columnDefinitions"]]


def test_configmap_table_shape(registry: Registry) -> None:
    cms = [{"metadata": {"name": "a", "namespace": "default", "resourceVersion": "5",
                         "creationTimestamp": ago(seconds=192), "labels": {"x": "y"}},
            "data": {"k": "v", "k2": "v"}, "binaryData": {"b": "AA=="}},
           {"metadata": {"name": "b", "namespace": "default", "resourceVersion": "6",
                         "creationTimestamp": ago(days=2, hours=3)}}]
    t = table.to_table(rt(registry, "", "ConfigMap"), cms,
                       {"resourceVersion": "9", "continue": "tok", "remainingItemCount": 3}, NOW)
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "9", "continue": "tok", "remainingItemCount": 3}
    assert names(t) == ["Name", "Data", "Age"]
    assert t["columnDefinitions"][0] == {
        "name": "Name", "type": "string", "format": "name",
        "description": t["columnDefinitions"][0]["description"], "priority": 0}
    assert [r["cells"] for r in t["rows"]] == [["a", 3, "3m12s"], ["b", 0, "2d3h"]]
    assert t["rows"][0]["object"] == {"kind": "PartialObjectMetadata",
                                      "apiVersion": "meta.k8s.io/v1",
                                      "metadata": cms[0]["metadata"]}
    json.dumps(t)


def test_table_include_object_and_version(registry: Registry) -> None:
    cm = {"metadata": {"name": "a", "creationTimestamp": ago(seconds=1)}, "data": {}}
    cm_rt = rt(registry, "", "ConfigMap")
    full = table.to_table(cm_rt, [cm], {}, NOW, include_object="Object")
    assert full["rows"][0]["object"] == {"apiVersion": "v1", "kind": "ConfigMap", **cm}
    assert table.to_table(cm_rt, [cm], {}, NOW, include_object="None")["rows"][0][
        "object"] is None
    beta = table.to_table(cm_rt, [cm], {}, NOW, api_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    empty = table.to_table(cm_rt, [], {"resourceVersion": "3"}, NOW)
    assert empty["rows"] == [] and empty["metadata"] == {"resourceVersion": "3"}


def test_namespace_secret_lease_tables(registry: Registry) -> None:
    ns = {"metadata": {"name": "default", "creationTimestamp": ago(hours=30)},
          "status": {"phase": "Active"}}
    t = table.to_table(rt(registry, "", "Namespace"), [ns], {}, NOW)
    assert names(t) == ["Name", "Status", "Age"]
    assert t["rows"][0]["cells"] == ["default", "Active", "30h"]
    sec = {"metadata": {"name": "s", "creationTimestamp": ago(seconds=9)},
           "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    t = table.to_table(rt(registry, "", "Secret"), [sec], {}, NOW)
    assert names(t) == ["Name", "Type", "Data", "Age"]
    assert t["rows"][0]["cells"] == ["s", "kubernetes.io/tls", 2, "9s"]
    lease = {"metadata": {"name": "leader", "creationTimestamp": ago(minutes=15)},
             "spec": {"holderIdentity": "pod-1", "leaseDurationSeconds": 15}}
    t = table.to_table(rt(registry, "coordination.k8s.io", "Lease"), [lease], {}, NOW)
    assert names(t) == ["Name", "Holder", "Age"]
    assert t["rows"][0]["cells"] == ["leader", "pod-1", "15m"]
    unheld = {"metadata": {"name": "free"}, "spec": {}}
    assert table.to_table(rt(registry, "coordination.k8s.io", "Lease"), [unheld], {}, NOW)[
        "rows"][0]["cells"] == ["free", "", "<unknown>"]


def test_pod_table(registry: Registry) -> None:
    pods = [
        {"metadata": {"name": "p1", "creationTimestamp": ago(minutes=5)},
         "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
         "status": {"phase": "Running", "podIP": "10.0.0.7", "containerStatuses": [
             {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
             {"name": "b", "ready": False, "restartCount": 2,
              "state": {"waiting": {"reason": "CrashLoopBackOff"}},
              "lastState": {"terminated": {"finishedAt": ago(seconds=30)}}}]}},
        {"metadata": {"name": "p2", "creationTimestamp": ago(seconds=3)},
         "spec": {"containers": [{"name": "a"}]}},
        {"metadata": {"name": "p3", "creationTimestamp": ago(seconds=3),
                      "deletionTimestamp": ago(seconds=1)},
         "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}},
    ]
    t = table.to_table(rt(registry, "", "Pod"), pods, {}, NOW)
    assert names(t) == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                        "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in t["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert t["rows"][0]["cells"] == ["p1", "1/2", "CrashLoopBackOff", "2 (30s ago)", "5m",
                                     "10.0.0.7", "node-1", "<none>", "<none>"]
    assert t["rows"][1]["cells"][:5] == ["p2", "0/1", "Pending", "0", "3s"]
    assert t["rows"][2]["cells"][2] == "Terminating"


def test_deployment_and_replicaset_tables(registry: Registry) -> None:
    dep = {"metadata": {"name": "web", "creationTimestamp": ago(hours=3, minutes=5)},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [
                        {"name": "nginx", "image": "nginx:1.27"},
                        {"name": "side", "image": "busybox"}]}}},
           "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                      "availableReplicas": 2}}
    t = table.to_table(rt(registry, "apps", "Deployment"), [dep], {}, NOW)
    assert names(t) == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers",
                        "Images", "Selector"]
    assert t["rows"][0]["cells"] == ["web", "2/3", 3, 2, "3h5m", "nginx,side",
                                     "nginx:1.27,busybox", "app=web"]
    fresh = {"metadata": {"name": "new"}, "spec": {"replicas": 2}}
    assert table.to_table(rt(registry, "apps", "Deployment"), [fresh], {}, NOW)["rows"][0][
        "cells"][:4] == ["new", "0/2", 0, 0]
    rs = {"metadata": {"name": "web-abc"}, "spec": {"replicas": 3, "selector": {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
        "status": {"replicas": 3, "readyReplicas": 1}}
    t = table.to_table(rt(registry, "apps", "ReplicaSet"), [rs], {}, NOW)
    assert names(t)[:5] == ["Name", "Desired", "Current", "Ready", "Age"]
    assert t["rows"][0]["cells"] == ["web-abc", 3, 3, 1, "<unknown>", "", "",
                                     "app=web,tier in (a,b)"]


def test_service_and_binding_tables(registry: Registry) -> None:
    svc = {"metadata": {"name": "api", "creationTimestamp": ago(seconds=50)},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "api"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 53, "protocol": "UDP"}]}}
    t = table.to_table(rt(registry, "", "Service"), [svc], {}, NOW)
    assert names(t) == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                        "Selector"]
    assert t["rows"][0]["cells"] == ["api", "NodePort", "10.96.0.10", "<none>",
                                     "80:30080/TCP,53/UDP", "50s", "app=api"]
    rb = {"metadata": {"name": "rb"}, "roleRef": {"kind": "Role", "name": "reader"},
          "subjects": [{"kind": "User", "name": "alice"},
                       {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}
    t = table.to_table(rt(registry, "rbac.authorization.k8s.io", "RoleBinding"), [rb], {}, NOW)
    assert t["rows"][0]["cells"] == ["rb", "Role/reader", "<unknown>", "alice", "", "ns/sa"]


def test_default_table_convertor(registry: Registry) -> None:
    crd = {"metadata": {"name": "widgets.example.com",
                        "creationTimestamp": "2025-03-01T08:30:00Z"}}
    t = table.to_table(rt(registry, "apiextensions.k8s.io", "CustomResourceDefinition"),
                       [crd], {}, NOW)
    assert names(t) == ["Name", "Created At"]
    assert t["columnDefinitions"][1]["type"] == "date"
    assert t["rows"][0]["cells"] == ["widgets.example.com", "2025-03-01T08:30:00Z"]
    role = {"metadata": {"name": "r", "creationTimestamp": "2025-03-01T10:30:00+02:00"}}
    t = table.to_table(rt(registry, "rbac.authorization.k8s.io", "Role"), [role], {}, NOW)
    assert t["rows"][0]["cells"] == ["r", "2025-03-01T08:30:00Z"]


# ================================================================== Table: custom resources


PRINTER_COLUMNS = [
    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
    {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1,
     "description": "the color"},
    {"name": "Ready", "type": "string",
     "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Labels", "type": "string", "jsonPath": ".metadata.labels"},
    {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
    {"name": "On", "type": "boolean", "jsonPath": ".spec.on"},
    {"name": "Owner", "type": "string", "jsonPath": ".metadata.annotations.example\\.com/owner"},
    {"name": "First", "type": "string", "jsonPath": ".spec.items[0].name"},
    {"name": "Started", "type": "date", "jsonPath": ".status.startedAt"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def test_custom_resource_printer_columns() -> None:
    widget_rt = widget_type(printer_columns=PRINTER_COLUMNS)
    obj = {"apiVersion": "example.com/v1", "kind": "Widget",
           "metadata": {"name": "w1", "namespace": "default", "creationTimestamp": ago(days=3),
                        "labels": {"b": "2", "a": "1"},
                        "annotations": {"example.com/owner": "alice"}},
           "spec": {"size": 3, "color": "red", "ratio": 2, "on": True,
                    "items": [{"name": "first"}, {"name": "second"}]},
           "status": {"conditions": [{"type": "Synced", "status": "False"},
                                     {"type": "Ready", "status": "True"}],
                      "startedAt": ago(seconds=90)}}
    t = table.to_table(widget_rt, [obj], {"resourceVersion": "11"}, NOW)
    assert names(t) == ["Name", "Size", "Color", "Ready", "Labels", "Ratio", "On", "Owner",
                        "First", "Started", "Age"]
    color = t["columnDefinitions"][2]
    assert (color["priority"], color["description"]) == (1, "the color")
    assert t["columnDefinitions"][1]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.size")
    assert t["rows"][0]["cells"] == ["w1", 3, "red", "True", '{"a":"1","b":"2"}', 2.0, True,
                                     "alice", "first", "90s", "3d"]
    assert t["rows"][0]["object"]["metadata"]["name"] == "w1"

    bare = {"metadata": {"name": "w2"}, "spec": {"size": "big", "on": "yes"},
            "status": {"startedAt": "not a time"}}
    cells = table.to_table(widget_rt, [bare], {}, NOW)["rows"][0]["cells"]
    assert cells == ["w2", None, None, None, None, None, None, None, None, "<invalid>", None]


def test_custom_resource_default_age_column() -> None:
    gadget = ResourceType("example.com", "v1", "Gadget", "gadgets", False, custom=True)
    t = table.to_table(gadget, [{"metadata": {"name": "g", "creationTimestamp": ago(hours=2)}}],
                       {}, NOW)
    assert names(t) == ["Name", "Age"]
    assert t["columnDefinitions"][1]["type"] == "date"
    assert t["rows"][0]["cells"] == ["g", "120m"]


@pytest.mark.parametrize("path, expected", [
    (".spec.a", [1]),
    ("{.spec.a}", [1]),
    ("$.spec.a", [1]),
    (".spec['b-c']", ["x"]),
    ('.spec["b-c"]', ["x"]),
    (".spec.list[1]", [20]),
    (".spec.list[-1]", [30]),
    (".spec.list[*]", [10, 20, 30]),
    (".spec.objs[*].n", ["p", "q"]),
    (".spec.objs[?(@.n=='q')].v", [2]),
    (".spec.objs[?(@.n!='q')].v", [1]),
    (".spec.objs[?(@.v==2)].n", ["q"]),
    (".spec.objs[?(@.flag)].n", ["p"]),
    ("..v", [1, 2]),
    (".spec.missing", []),
    (".spec.list[7]", []),
])
def test_jsonpath(path: str, expected: list[Any]) -> None:
    obj = {"spec": {"a": 1, "b-c": "x", "list": [10, 20, 30],
                    "objs": [{"n": "p", "v": 1, "flag": True}, {"n": "q", "v": 2}]}}
    assert table.compile_jsonpath(path)(obj) == expected


def test_jsonpath_syntax_error() -> None:
    with pytest.raises(ValueError):
        table.compile_jsonpath(".spec[")


# ================================================================== Table: watch events


def test_table_event_object(registry: Registry) -> None:
    cm_rt = rt(registry, "", "ConfigMap")
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "a", "namespace": "default", "resourceVersion": "17",
                       "creationTimestamp": ago(seconds=4)}, "data": {"x": "1"}}
    first = table.table_event_object(cm_rt, cm, NOW)
    assert first["kind"] == "Table"
    assert first["metadata"] == {"resourceVersion": "17"}
    assert names(first) == ["Name", "Data", "Age"]
    assert first["rows"] == [{"cells": ["a", 1, "4s"], "object": {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": cm["metadata"]}}]
    later = table.table_event_object(cm_rt, cm, NOW, headers=False)
    assert later["columnDefinitions"] is None
    assert '"columnDefinitions": null' in json.dumps(later)
    assert later["rows"] == first["rows"]
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
              "reason": "Expired", "message": "too old resource version: 1 (5)"}
    assert table.table_event_object(cm_rt, status, NOW) is status
