"""Conformance: CRUD, optimistic concurrency, patch types, SSA, generation, /status
(emulator.md §7 items 1-12) and bad client input (the issue's acceptance line).

Every check goes through a real client: the typed `kubernetes` 37 API, DynamicClient,
`kubernetes.watch.Watch`, kubectl, or raw HTTP with the exact headers a client sends.

Wire differences between the supported client versions (emulator.md §3):
  * kubernetes 37 POST/PUT: no Content-Type header, User-Agent OpenAPI-Generator/37.0.2/python
  * kubernetes 31 POST/PUT: Content-Type: application/json, User-Agent .../31.0.0/python
Both are replayed with `ApiClient.call_api`, which sends exactly the headers it is given.

Map of tests to checklist items:
  1  test_item01_*   2  test_item02_*   3  test_item03_*   4  test_item04_*
  5  test_item05_*   6  test_item06_*   7  test_item07_*   8  test_item08_*
  9  test_item09_*  10  test_item10_*  11  test_item11_*  12  test_item12_*
  acceptance line ("bad input gets the real server's code and a Status body, never a 500,
  never a crash"): test_bad_input_*
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError

from kubesim import KubeSim

NS = "default"
CM_PATH = f"/api/v1/namespaces/{NS}/configmaps"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
GROUP = "crud.example.com"
WIDGET_PATH = f"/apis/{GROUP}/v1/namespaces/{NS}/widgets"

V37_HEADERS = {"Accept": "application/json", "User-Agent": "OpenAPI-Generator/37.0.2/python"}
V31_HEADERS = {"Accept": "application/json", "Content-Type": "application/json",
               "User-Agent": "OpenAPI-Generator/31.0.0/python"}
WIRE = {"v31": V31_HEADERS, "v37": V37_HEADERS}

CONFLICT_MSG = ('Operation cannot be fulfilled on {res} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                  "listKind": "WidgetList"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}},
            "subresources": {"status": {}},
        }],
    },
}


# ---------------------------------------------------------------------------------- helpers

def _status(e: ApiException | DynamicApiError) -> dict[str, Any]:
    """The metav1.Status body of a failed call, checked for its common shape."""
    body = json.loads(e.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1", body
    assert body["status"] == "Failure", body
    assert body["code"] == e.status, body
    return body


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS}, "data": dict(data)}


def _lease(name: str, holder: str = "a", duration: int = 15) -> dict[str, Any]:
    # No acquire/renew times: v37 serialises a whole-second datetime without a fraction,
    # which a strict server rejects (emulator.md §2.13); that is not what these tests probe.
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration}}


def _widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": NS}, "spec": dict(spec)}


def _deployment(name: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": containers}}}}


def _call(api_client: client.ApiClient, method: str, path: str, headers: dict[str, str],
          body: Any = None) -> tuple[int, dict[str, Any]]:
    """One request with exactly these headers, through the client's own REST layer."""
    resp = api_client.call_api(method, api_client.configuration.host + path,
                               header_params=dict(headers), body=body)
    resp.read()
    return resp.status, json.loads(resp.data or b"null")


def _raw(sim: KubeSim, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """A hand-written HTTP/1.1 request: for bodies no client library would produce."""
    conn = http.client.HTTPConnection(sim.host, sim.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def _status_body(code: int, ctype: str, data: bytes, expected: int) -> dict[str, Any]:
    assert code == expected, (code, data[:300])
    assert ctype.startswith("application/json"), ctype
    body = json.loads(data)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1", body
    assert body["status"] == "Failure" and body["code"] == expected, body
    return body


def _still_serving(sim: KubeSim) -> None:
    """The emulator answers a normal request after the bad one (it did not crash)."""
    code, _, data = _raw(sim, "GET", f"/api/v1/namespaces/{NS}")
    assert code == 200, data[:200]
    assert json.loads(data)["metadata"]["name"] == NS
    assert not [e for e in sim.audit.entries() if e.code >= 500], \
        [(e.verb, e.resource, e.code) for e in sim.audit.entries() if e.code >= 500]


@pytest.fixture
def widgets(dyn: DynamicClient) -> Any:
    """A namespaced CRD `Widget` with a status subresource; returns its dynamic resource."""
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                             kind="CustomResourceDefinition")
    crds.create(body=WIDGET_CRD)
    return dyn.resources.get(api_version=f"{GROUP}/v1", kind="Widget")


@pytest.fixture
def custom(api_client: client.ApiClient, widgets: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def leases(api_client: client.ApiClient) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


# ---------------------------------------------------------------------------------- item 1

def test_item01_create_returns_201_with_server_fields(core: client.CoreV1Api) -> None:
    """Item 1: POST → 201 with uid (UUID4), creationTimestamp (RFC 3339, `Z`) and a fresh RV."""
    before = core.list_namespaced_config_map(NS).metadata.resource_version
    name = _unique("created")
    obj, code, _ = core.create_namespaced_config_map_with_http_info(NS, _cm(name, k="v"))
    assert code == 201
    assert UUID_RE.match(obj.metadata.uid)
    assert obj.metadata.resource_version != before
    assert int(obj.metadata.resource_version) > int(before)  # one etcd-like counter
    raw = json.loads(core.read_namespaced_config_map(name, NS, _preload_content=False).data)
    assert TIME_RE.match(raw["metadata"]["creationTimestamp"]), raw["metadata"]
    assert raw["metadata"]["uid"] == obj.metadata.uid
    # The next write gets a newer RV again.
    obj2 = core.create_namespaced_config_map(NS, _cm(_unique("created")))
    assert int(obj2.metadata.resource_version) > int(obj.metadata.resource_version)


@pytest.mark.parametrize("wire", ["v31", "v37"])
def test_item01_create_on_the_wire_of_each_client_version(
        api_client: client.ApiClient, wire: str) -> None:
    """Item 1 on both wires: v31 sends Content-Type application/json, v37 sends none."""
    name = _unique(wire)
    code, body = _call(api_client, "POST", CM_PATH, WIRE[wire], _cm(name, k="v"))
    assert code == 201, body
    assert body["kind"] == "ConfigMap" and body["apiVersion"] == "v1"
    assert body["data"] == {"k": "v"}
    assert UUID_RE.match(body["metadata"]["uid"])
    assert TIME_RE.match(body["metadata"]["creationTimestamp"])
    code, body = _call(api_client, "POST", CM_PATH, WIRE[wire], _cm(name, k="v"))
    assert code == 409 and body["reason"] == "AlreadyExists", body


def test_item01_duplicate_create_is_409_already_exists(
        core: client.CoreV1Api, leases: client.CoordinationV1Api, dyn: DynamicClient) -> None:
    """Item 1: a duplicate POST → 409 AlreadyExists; details{name, kind=<plural>[, group]}."""
    name = _unique("dup")
    core.create_namespaced_config_map(NS, _cm(name))
    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map(NS, _cm(name))
    st = _status(ei.value)
    assert ei.value.status == 409 and st["reason"] == "AlreadyExists"
    assert st["message"] == f'configmaps "{name}" already exists'
    assert st["details"] == {"name": name, "kind": "configmaps"}

    leases.create_namespaced_lease(NS, _lease(name))
    with pytest.raises(ApiException) as ei:
        leases.create_namespaced_lease(NS, _lease(name))
    st = _status(ei.value)
    assert st["reason"] == "AlreadyExists"
    assert st["message"] == f'leases.coordination.k8s.io "{name}" already exists'
    assert st["details"] == {"name": name, "group": "coordination.k8s.io", "kind": "leases"}

    # DynamicClient maps the 409 to its ConflictError with the same Status body.
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(DynamicApiError) as de:
        cms.create(body=_cm(name), namespace=NS)
    assert type(de.value).__name__ == "ConflictError"
    assert _status(de.value)["reason"] == "AlreadyExists"


def test_item01_create_custom_object_returns_dict(custom: client.CustomObjectsApi) -> None:
    """Item 1: v37 create_namespaced_custom_object returns the created object (it maps
    only 201; a 200 would make it return None)."""
    name = _unique("w")
    out = custom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets",
                                                 _widget(name, size=1))
    assert isinstance(out, dict)
    assert out["kind"] == "Widget" and out["apiVersion"] == f"{GROUP}/v1"
    assert out["metadata"]["name"] == name and UUID_RE.match(out["metadata"]["uid"])
    assert TIME_RE.match(out["metadata"]["creationTimestamp"])
    assert out["metadata"]["generation"] == 1 and out["spec"] == {"size": 1}
    with pytest.raises(ApiException) as ei:
        custom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget(name))
    st = _status(ei.value)
    assert st["reason"] == "AlreadyExists"
    assert st["message"] == f'widgets.{GROUP} "{name}" already exists'
    assert st["details"] == {"name": name, "group": GROUP, "kind": "widgets"}


# ---------------------------------------------------------------------------------- item 2

def test_item02_get_missing_is_404_with_exact_message(
        core: client.CoreV1Api, leases: client.CoordinationV1Api,
        custom: client.CustomObjectsApi, dyn: DynamicClient) -> None:
    """Item 2: GET on a missing object → 404 NotFound, `<resource>[.<group>] "x" not found`."""
    with pytest.raises(ApiException) as ei:
        core.read_namespaced_config_map("x", NS)
    st = _status(ei.value)
    assert ei.value.status == 404 and st["reason"] == "NotFound"
    assert st["message"] == 'configmaps "x" not found'
    assert st["details"] == {"name": "x", "kind": "configmaps"}

    with pytest.raises(ApiException) as ei:
        leases.read_namespaced_lease("x", NS)
    st = _status(ei.value)
    assert st["message"] == 'leases.coordination.k8s.io "x" not found'
    assert st["details"] == {"name": "x", "group": "coordination.k8s.io", "kind": "leases"}

    with pytest.raises(ApiException) as ei:
        custom.get_namespaced_custom_object(GROUP, "v1", NS, "widgets", "x")
    assert _status(ei.value)["message"] == f'widgets.{GROUP} "x" not found'

    with pytest.raises(DynamicApiError) as de:
        dyn.resources.get(api_version="v1", kind="ConfigMap").get(name="x", namespace=NS)
    assert type(de.value).__name__ == "NotFoundError"
    assert _status(de.value)["message"] == 'configmaps "x" not found'


# ---------------------------------------------------------------------------------- item 3

def test_item03_put_with_current_rv_succeeds_with_new_rv(
        core: client.CoreV1Api, leases: client.CoordinationV1Api) -> None:
    """Item 3: PUT carrying the current RV → 200 and a new RV."""
    name = _unique("put")
    core.create_namespaced_config_map(NS, _cm(name, k="1"))
    cm = core.read_namespaced_config_map(name, NS)
    cm.data = {"k": "2"}
    out, code, _ = core.replace_namespaced_config_map_with_http_info(name, NS, cm)
    assert code == 200
    assert out.data == {"k": "2"}
    assert int(out.metadata.resource_version) > int(cm.metadata.resource_version)

    leases.create_namespaced_lease(NS, _lease(name))
    lease = leases.read_namespaced_lease(name, NS)
    lease.spec.holder_identity = "b"
    out, code, _ = leases.replace_namespaced_lease_with_http_info(name, NS, lease)
    assert code == 200 and out.spec.holder_identity == "b"
    assert out.metadata.resource_version != lease.metadata.resource_version


@pytest.mark.parametrize("wire", ["v31", "v37"])
def test_item03_put_with_stale_rv_conflicts(
        api_client: client.ApiClient, core: client.CoreV1Api, wire: str) -> None:
    """Item 3: PUT carrying a stale RV → 409 Conflict with the exact upstream message,
    for both client wires."""
    name = _unique("stale")
    created = core.create_namespaced_config_map(NS, _cm(name, k="1"))
    stale_rv = created.metadata.resource_version
    core.patch_namespaced_config_map(name, NS, {"data": {"k": "2"}})
    body = _cm(name, k="3")
    body["metadata"]["resourceVersion"] = stale_rv
    code, st = _call(api_client, "PUT", f"{CM_PATH}/{name}", WIRE[wire], body)
    assert code == 409, st
    assert st["reason"] == "Conflict"
    assert st["message"] == CONFLICT_MSG.format(res="configmaps", name=name)
    assert st["details"] == {"name": name, "kind": "configmaps"}
    assert core.read_namespaced_config_map(name, NS).data == {"k": "2"}


def test_item03_typed_put_with_stale_rv_conflicts_on_lease_and_cr(
        leases: client.CoordinationV1Api, custom: client.CustomObjectsApi) -> None:
    """Item 3 through the typed APIs: Lease (group-qualified message) and a custom resource."""
    name = _unique("stale")
    old = leases.create_namespaced_lease(NS, _lease(name))
    leases.patch_namespaced_lease(name, NS, {"spec": {"holderIdentity": "b"}})
    old.spec.holder_identity = "c"
    with pytest.raises(ApiException) as ei:
        leases.replace_namespaced_lease(name, NS, old)
    st = _status(ei.value)
    assert ei.value.status == 409 and st["reason"] == "Conflict"
    assert st["message"] == CONFLICT_MSG.format(res="leases.coordination.k8s.io", name=name)
    assert st["details"] == {"name": name, "group": "coordination.k8s.io", "kind": "leases"}

    w = custom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget(name, size=1))
    custom.patch_namespaced_custom_object(GROUP, "v1", NS, "widgets", name, {"spec": {"size": 2}})
    w["spec"]["size"] = 3
    with pytest.raises(ApiException) as ei:
        custom.replace_namespaced_custom_object(GROUP, "v1", NS, "widgets", name, w)
    st = _status(ei.value)
    assert st["message"] == CONFLICT_MSG.format(res=f"widgets.{GROUP}", name=name)


# ---------------------------------------------------------------------------------- item 4

def test_item04_put_without_rv(
        core: client.CoreV1Api, leases: client.CoordinationV1Api,
        custom: client.CustomObjectsApi) -> None:
    """Item 4: PUT without an RV is unconditional for ConfigMap and CRs; a Lease
    (AllowUnconditionalUpdate=false) → 422 `metadata.resourceVersion ... must be specified`."""
    name = _unique("norv")
    core.create_namespaced_config_map(NS, _cm(name, k="1"))
    out, code, _ = core.replace_namespaced_config_map_with_http_info(name, NS, _cm(name, k="2"))
    assert code == 200 and out.data == {"k": "2"}

    custom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget(name, size=1))
    out = custom.replace_namespaced_custom_object(GROUP, "v1", NS, "widgets", name,
                                                  _widget(name, size=2))
    assert out["spec"] == {"size": 2}

    leases.create_namespaced_lease(NS, _lease(name))
    with pytest.raises(ApiException) as ei:
        leases.replace_namespaced_lease(name, NS, _lease(name, holder="b"))
    st = _status(ei.value)
    assert ei.value.status == 422 and st["reason"] == "Invalid"
    assert st["message"] == (f'Lease.coordination.k8s.io "{name}" is invalid: '
                             "metadata.resourceVersion: Invalid value: 0x0: must be specified "
                             "for an update")
    assert st["details"]["kind"] == "Lease" and st["details"]["group"] == "coordination.k8s.io"
    assert st["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
        "message": "Invalid value: 0x0: must be specified for an update"}]
    assert leases.read_namespaced_lease(name, NS).spec.holder_identity == "a"


@pytest.mark.parametrize("wire", ["v31", "v37"])
def test_item04_put_on_absent_object(api_client: client.ApiClient, wire: str) -> None:
    """Item 4: PUT on an absent Lease creates it (AllowCreateOnUpdate) → 201; on an absent
    ConfigMap → 404 NotFound."""
    name = _unique(f"absent-{wire}")
    code, body = _call(api_client, "PUT", f"{LEASE_PATH}/{name}", WIRE[wire], _lease(name))
    assert code == 201, body
    assert body["kind"] == "Lease" and body["spec"]["holderIdentity"] == "a"
    assert UUID_RE.match(body["metadata"]["uid"])

    code, st = _call(api_client, "PUT", f"{CM_PATH}/{name}", WIRE[wire], _cm(name))
    assert code == 404, st
    assert st["reason"] == "NotFound" and st["message"] == f'configmaps "{name}" not found'


def test_item04_typed_replace_on_absent_lease_creates(leases: client.CoordinationV1Api) -> None:
    """Item 4 through the typed API: replace_namespaced_lease on an absent Lease → 201."""
    name = _unique("absent")
    out, code, _ = leases.replace_namespaced_lease_with_http_info(name, NS, _lease(name))
    assert code == 201
    assert out.metadata.uid and out.spec.lease_duration_seconds == 15


# ---------------------------------------------------------------------------------- item 5

def test_item05_patch_embedding_stale_rv_conflicts(core: client.CoreV1Api) -> None:
    """Item 5: merge, strategic-merge and json patches that carry a stale
    metadata.resourceVersion → 409 Conflict; the object is untouched."""
    name = _unique("prv")
    stale = core.create_namespaced_config_map(NS, _cm(name, k="1")).metadata.resource_version
    current = core.patch_namespaced_config_map(name, NS, {"data": {"k": "2"}})
    patches: list[tuple[str | None, Any]] = [
        ("application/merge-patch+json",
         {"metadata": {"resourceVersion": stale}, "data": {"k": "merge"}}),
        (None,  # v37 typed patch with an object body → strategic merge patch
         {"metadata": {"resourceVersion": stale}, "data": {"k": "smp"}}),
        (None,  # a list body → json patch
         [{"op": "replace", "path": "/metadata/resourceVersion", "value": stale},
          {"op": "replace", "path": "/data/k", "value": "json"}]),
    ]
    for ctype, body in patches:
        kwargs = {"_content_type": ctype} if ctype else {}
        with pytest.raises(ApiException) as ei:
            core.patch_namespaced_config_map(name, NS, body, **kwargs)
        st = _status(ei.value)
        assert ei.value.status == 409 and st["reason"] == "Conflict", (ctype, body, st)
        assert st["message"] == CONFLICT_MSG.format(res="configmaps", name=name)
    after = core.read_namespaced_config_map(name, NS)
    assert after.data == {"k": "2"}
    assert after.metadata.resource_version == current.metadata.resource_version


def test_item05_patch_with_current_or_no_rv_succeeds(
        core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    """Item 5: the same three patch types without an RV (or with the current one) → 200."""
    name = _unique("prv")
    core.create_namespaced_config_map(NS, _cm(name, k="0"))
    out = core.patch_namespaced_config_map(name, NS, {"data": {"k": "merge"}},
                                           _content_type="application/merge-patch+json")
    assert out.data == {"k": "merge"}
    out = core.patch_namespaced_config_map(name, NS, {"data": {"k": "smp"}})
    assert out.data == {"k": "smp"}
    out = core.patch_namespaced_config_map(
        name, NS, [{"op": "replace", "path": "/data/k", "value": "json"}])
    assert out.data == {"k": "json"}
    current = out.metadata.resource_version
    out = core.patch_namespaced_config_map(
        name, NS, {"metadata": {"resourceVersion": current}, "data": {"k": "guarded"}},
        _content_type="application/merge-patch+json")
    assert out.data == {"k": "guarded"} and out.metadata.resource_version != current

    # CRs (merge patch is what CustomObjectsApi sends): stale → 409, none → 200.
    w = custom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget(name, size=1))
    custom.patch_namespaced_custom_object(GROUP, "v1", NS, "widgets", name, {"spec": {"size": 2}})
    with pytest.raises(ApiException) as ei:
        custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, "widgets", name,
            {"metadata": {"resourceVersion": w["metadata"]["resourceVersion"]},
             "spec": {"size": 3}})
    assert ei.value.status == 409 and _status(ei.value)["reason"] == "Conflict"
    assert custom.get_namespaced_custom_object(
        GROUP, "v1", NS, "widgets", name)["spec"] == {"size": 2}


# ---------------------------------------------------------------------------------- item 6

def test_item06_noop_writes_keep_rv_and_emit_no_event(
        core: client.CoreV1Api, dyn: DynamicClient) -> None:
    """Item 6: PUT/PATCH that leave the object identical keep its RV and emit no watch
    event; the first event after them is the one real change."""
    name = _unique("noop")
    created = core.create_namespaced_config_map(NS, _cm(name, k="v"))
    rv = created.metadata.resource_version

    cm = core.read_namespaced_config_map(name, NS)
    assert core.replace_namespaced_config_map(name, NS, cm).metadata.resource_version == rv
    assert core.patch_namespaced_config_map(
        name, NS, {"data": {"k": "v"}}).metadata.resource_version == rv
    assert core.patch_namespaced_config_map(
        name, NS, {"data": {"k": "v"}},
        _content_type="application/merge-patch+json").metadata.resource_version == rv
    assert core.patch_namespaced_config_map(
        name, NS, [{"op": "replace", "path": "/data/k", "value": "v"}]
    ).metadata.resource_version == rv
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    assert cms.replace(body=_cm(name, k="v"), namespace=NS).metadata.resourceVersion == rv
    assert core.read_namespaced_config_map(name, NS).metadata.resource_version == rv

    changed = core.patch_namespaced_config_map(name, NS, {"data": {"k": "w"}})
    assert changed.metadata.resource_version != rv

    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=rv,
                       field_selector=f"metadata.name={name}", timeout_seconds=5):
        events.append((ev["type"], ev["object"].metadata.resource_version,
                       ev["object"].data))
        w.stop()
    assert events == [("MODIFIED", changed.metadata.resource_version, {"k": "w"})]


# ---------------------------------------------------------------------------------- item 7

def _contend(api: client.CoordinationV1Api, name: str, holder: str,
             barrier: threading.Barrier, results: dict[str, tuple[int, str]]) -> None:
    """GET the Lease, wait until the rival has read it too, then PUT it back changed."""
    lease = api.read_namespaced_lease(name, NS)
    barrier.wait()  # both have read the same RV before either writes
    lease.spec.holder_identity = holder
    try:
        out, code, _ = api.replace_namespaced_lease_with_http_info(name, NS, lease)
        results[holder] = (code, out.metadata.resource_version)
    except ApiException as e:
        assert _status(e)["reason"] == "Conflict"
        assert e.status == 409
        results[holder] = (e.status, "")


def test_item07_concurrent_get_then_put_on_a_lease(sim: KubeSim, tmp_path: Path) -> None:
    """Item 7: two clients GET the same Lease, then both PUT it with that RV at once:
    exactly one 200 and one 409 Conflict, every round. The winner's write is what is stored."""
    clients = [config.new_client_from_config(config_file=str(
        sim.write_kubeconfig(tmp_path / f"kubeconfig-{token}", token=token)))
        for token in ("alice", "bob")]
    try:
        apis = [client.CoordinationV1Api(c) for c in clients]
        name = _unique("race")
        apis[0].create_namespaced_lease(NS, _lease(name, holder="nobody"))
        rounds = 5
        for round_no in range(rounds):
            barrier = threading.Barrier(2, timeout=10)
            results: dict[str, tuple[int, str]] = {}
            threads = [threading.Thread(target=_contend, args=(
                api, name, f"c{i}-{round_no}", barrier, results)) for i, api in enumerate(apis)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=20)
            assert sorted(code for code, _ in results.values()) == [200, 409], results
            winner = next(h for h, (code, _) in results.items() if code == 200)
            stored = apis[0].read_namespaced_lease(name, NS)
            assert stored.spec.holder_identity == winner
            assert stored.metadata.resource_version == results[winner][1]
        puts = [e for e in sim.audit.entries(writes_only=True)
                if e.verb == "update" and e.name == name]
        assert sorted(e.code for e in puts) == [200] * rounds + [409] * rounds
        assert {e.identity for e in puts} == {"token:alice", "token:bob"}
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------------------------- item 8

def test_item08_strategic_merge_on_deployment_merges_containers_by_name(
        apps: client.AppsV1Api, dyn: DynamicClient) -> None:
    """Item 8: SMP on a Deployment merges `containers` by name (a merge patch with the same
    body replaces the list)."""
    name = _unique("smp")
    apps.create_namespaced_deployment(NS, _deployment(name, [
        {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}
    out = apps.patch_namespaced_deployment(name, NS, patch)  # v37: object body → SMP
    assert [(c.name, c.image) for c in out.spec.template.spec.containers] == \
        [("a", "a:1"), ("b", "b:2")]

    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "c:1"}]}}}}
    out = deployments.patch(body=patch, name=name, namespace=NS)  # DynamicClient default: SMP
    assert [(c.name, c.image) for c in out.spec.template.spec.containers] == \
        [("a", "a:1"), ("b", "b:2"), ("c", "c:1")]

    out = deployments.patch(body=patch, name=name, namespace=NS,
                            content_type="application/merge-patch+json")
    assert [(c.name, c.image) for c in out.spec.template.spec.containers] == [("c", "c:1")]


def test_item08_strategic_merge_on_cr_is_415_then_merge_fallback(
        widgets: Any, custom: client.CustomObjectsApi) -> None:
    """Item 8: SMP on a CR → 415 UnsupportedMediaType naming the accepted patch types;
    the kubernetes.core fallback (retry as merge-patch) then succeeds."""
    name = _unique("w")
    widgets.create(body=_widget(name, size=1, tags=["x"]), namespace=NS)
    patch = {"spec": {"size": 2}}
    with pytest.raises(DynamicApiError) as de:
        widgets.patch(body=patch, name=name, namespace=NS)  # default content type: SMP
    st = _status(de.value)
    assert de.value.status == 415 and st["reason"] == "UnsupportedMediaType"
    assert st["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml")
    assert widgets.get(name=name, namespace=NS).spec.size == 1  # nothing was written

    # kubernetes.core k8s (module_utils/k8s/service.py patch_resource): on an SMP error it
    # retries the same body as application/merge-patch+json.
    out = widgets.patch(body=patch, name=name, namespace=NS,
                        content_type="application/merge-patch+json")
    assert out.spec.size == 2 and out.spec.tags == ["x"]

    with pytest.raises(ApiException) as ei:
        custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, "widgets", name, patch,
            _content_type="application/strategic-merge-patch+json")
    assert ei.value.status == 415


# ---------------------------------------------------------------------------------- item 9

def test_item09_failed_json_patch_test_is_422_and_object_unchanged(
        core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    """Item 9: a json-patch whose `test` fails → 422 Invalid and nothing changes.

    The real server wraps json-patch Apply errors in
    NewGenericServerResponse(422, ..., isUnexpectedResponse=false) (endpoints/handlers/
    patch.go applyJSPatch), so the message is the generic one and details are empty.
    """
    name = _unique("jp")
    created = core.create_namespaced_config_map(NS, _cm(name, k="v", other="o"))
    ops = [{"op": "test", "path": "/data/k", "value": "not-v"},
           {"op": "replace", "path": "/data/other", "value": "changed"}]
    with pytest.raises(ApiException) as ei:
        core.patch_namespaced_config_map(name, NS, ops)
    st = _status(ei.value)
    assert ei.value.status == 422 and st["reason"] == "Invalid"
    assert st["message"] == "the server rejected our request due to an error in our request"
    assert st.get("details", {}) == {}
    after = core.read_namespaced_config_map(name, NS)
    assert after.data == {"k": "v", "other": "o"}
    assert after.metadata.resource_version == created.metadata.resource_version

    # A passing test applies the whole patch.
    ops[0]["value"] = "v"
    assert core.patch_namespaced_config_map(name, NS, ops).data == {"k": "v", "other": "changed"}

    # The same on a custom resource.
    custom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget(name, size=1))
    with pytest.raises(ApiException) as ei:
        custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, "widgets", name,
            [{"op": "test", "path": "/spec/size", "value": 5},
             {"op": "replace", "path": "/spec/size", "value": 6}],
            _content_type="application/json-patch+json")
    assert ei.value.status == 422 and _status(ei.value)["reason"] == "Invalid"
    assert custom.get_namespaced_custom_object(
        GROUP, "v1", NS, "widgets", name)["spec"] == {"size": 1}


# ---------------------------------------------------------------------------------- item 10

def _managers(obj: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["manager"], m["operation"]): m["fieldsV1"]
            for m in obj["metadata"].get("managedFields") or []}


def test_item10_server_side_apply(sim: KubeSim, kubeconfig: Path, tmp_path: Path,
                                  dyn: DynamicClient) -> None:
    """Item 10: SSA creates (201) with an Apply entry; another manager changing a field
    kubectl owns → 409 Conflict with FieldManagerConflict causes; force=true → 200 and the
    field's ownership moves; no fieldManager → 422 Invalid.

    The spec's table says 400 for a missing fieldManager, but the real server validates
    PatchOptions first (apimachinery validation.ValidatePatchOptions →
    `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: ...`, a 422);
    the test follows the real server.
    """
    name = _unique("ssa")
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(json.dumps(_cm(name, key="from-kubectl", mine="kubectl")))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.run(["kubectl", "apply", "--server-side", "-f", str(manifest)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"configmap/{name} serverside-applied"

    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    live = cms.get(name=name, namespace=NS).to_dict()
    assert live["data"] == {"key": "from-kubectl", "mine": "kubectl"}
    assert _managers(live)[("kubectl", "Apply")] == \
        {"f:data": {"f:key": {}, "f:mine": {}}}

    # kubectl's apply of an absent object was answered 201 (kubectl only prints the verb).
    applies = [e for e in sim.audit.entries(writes_only=True)
               if e.verb == "patch" and e.name == name]
    assert [e.code for e in applies] == [201], [(e.verb, e.code) for e in applies]

    # Another manager sets the field kubectl owns: conflict.
    body = _cm(name, key="from-other")
    with pytest.raises(DynamicApiError) as de:
        cms.server_side_apply(body=body, namespace=NS, field_manager="other")
    st = _status(de.value)
    assert de.value.status == 409 and st["reason"] == "Conflict"
    assert st["message"] == 'Apply failed with 1 conflict: conflict with "kubectl": .data.key'
    assert st["details"] == {"causes": [{"reason": "FieldManagerConflict",
                                         "message": 'conflict with "kubectl"',
                                         "field": ".data.key"}]}
    assert cms.get(name=name, namespace=NS).data.key == "from-kubectl"

    # force=true: 200, the value changes and .data.key now belongs to "other".
    out = cms.server_side_apply(body=body, namespace=NS, field_manager="other",
                                force_conflicts=True).to_dict()
    assert out["data"] == {"key": "from-other", "mine": "kubectl"}
    managers = _managers(out)
    assert managers[("other", "Apply")] == {"f:data": {"f:key": {}}}
    assert managers[("kubectl", "Apply")] == {"f:data": {"f:mine": {}}}

    # No fieldManager at all.
    with pytest.raises(DynamicApiError) as de:
        cms.server_side_apply(body=body, namespace=NS)
    st = _status(de.value)
    assert de.value.status == 422 and st["reason"] == "Invalid"
    assert st["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                             "value: is required for apply patch")
    assert st["details"] == {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
        {"reason": "FieldValueRequired", "field": "fieldManager",
         "message": "Required value: is required for apply patch"}]}

    # The status codes of the four apply requests, in order (DynamicClient hides them).
    codes = [e.code for e in sim.audit.entries(writes_only=True)
             if e.verb == "patch" and e.name == name]
    assert codes == [201, 409, 200, 422]


# ---------------------------------------------------------------------------------- item 11

def test_item11_generation(
        apps: client.AppsV1Api, custom: client.CustomObjectsApi,
        core: client.CoreV1Api, leases: client.CoordinationV1Api) -> None:
    """Item 11: generation is 1 on create, +1 per spec change, unchanged by metadata-only
    or /status writes; ConfigMap and Lease have none."""
    name = _unique("gen")
    d = apps.create_namespaced_deployment(NS, _deployment(name, [{"name": "a", "image": "a"}]))
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment(name, NS, {"spec": {"replicas": 3}})
    assert d.metadata.generation == 2
    d = apps.patch_namespaced_deployment(name, NS, {"metadata": {"labels": {"x": "y"}}})
    assert d.metadata.generation == 2
    d = apps.patch_namespaced_deployment_status(name, NS, {"status": {"replicas": 3}})
    assert d.metadata.generation == 2 and d.status.replicas == 3
    d = apps.patch_namespaced_deployment(name, NS, {"spec": {"replicas": 2}})
    assert d.metadata.generation == 3

    w = custom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget(name, size=1))
    assert w["metadata"]["generation"] == 1
    w = custom.patch_namespaced_custom_object(GROUP, "v1", NS, "widgets", name,
                                              {"spec": {"size": 2}})
    assert w["metadata"]["generation"] == 2
    w = custom.patch_namespaced_custom_object(GROUP, "v1", NS, "widgets", name,
                                              {"metadata": {"annotations": {"a": "b"}}})
    assert w["metadata"]["generation"] == 2
    w = custom.patch_namespaced_custom_object_status(GROUP, "v1", NS, "widgets", name,
                                                     {"status": {"phase": "Ready"}})
    assert w["metadata"]["generation"] == 2 and w["status"] == {"phase": "Ready"}

    cm = core.create_namespaced_config_map(NS, _cm(name, k="1"))
    assert cm.metadata.generation is None
    cm = core.patch_namespaced_config_map(name, NS, {"data": {"k": "2"}})
    assert cm.metadata.generation is None
    lease = leases.create_namespaced_lease(NS, _lease(name))
    assert lease.metadata.generation is None
    lease = leases.patch_namespaced_lease(name, NS, {"spec": {"holderIdentity": "z"}})
    assert lease.metadata.generation is None


# ---------------------------------------------------------------------------------- item 12

def test_item12_status_subresource_isolation_on_cr(
        custom: client.CustomObjectsApi, widgets: Any) -> None:
    """Item 12 on a CR with `subresources.status`: status is dropped on create; a /status
    PATCH carrying spec changes only status; a main-resource PUT carrying status changes only
    spec; DynamicClient `resource.status.patch` (the k8s_status pattern) obeys the same."""
    name = _unique("st")
    body = _widget(name, size=1)
    body["status"] = {"phase": "Forged"}
    w = custom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", body)
    assert "status" not in w

    w = custom.patch_namespaced_custom_object_status(
        GROUP, "v1", NS, "widgets", name,
        {"spec": {"size": 99}, "status": {"phase": "Ready"}})
    assert w["spec"] == {"size": 1} and w["status"] == {"phase": "Ready"}

    w["spec"]["size"] = 2
    w["status"] = {"phase": "Bogus"}
    w = custom.replace_namespaced_custom_object(GROUP, "v1", NS, "widgets", name, w)
    assert w["spec"] == {"size": 2} and w["status"] == {"phase": "Ready"}

    stored = widgets.get(name=name, namespace=NS).to_dict()
    stored["spec"]["size"] = 50
    stored["status"] = {"phase": "Done"}
    out = widgets.status.patch(body=stored, name=name, namespace=NS,
                               content_type="application/merge-patch+json")
    assert out.spec.size == 2 and out.status.phase == "Done"


def test_item12_status_subresource_isolation_on_deployment(apps: client.AppsV1Api) -> None:
    """Item 12 on a Deployment: /status PATCH with spec changes only status; a main PUT
    with status changes only spec."""
    name = _unique("st")
    apps.create_namespaced_deployment(NS, _deployment(name, [{"name": "a", "image": "a"}]))
    d = apps.patch_namespaced_deployment_status(
        name, NS, {"spec": {"replicas": 5}, "status": {"collisionCount": 2}})
    assert d.spec.replicas == 1 and d.status.collision_count == 2

    d = apps.read_namespaced_deployment(name, NS)
    d.spec.replicas = 3
    d.status.collision_count = 7
    d.status.observed_generation = 42
    d = apps.replace_namespaced_deployment(name, NS, d)
    assert d.spec.replicas == 3
    assert d.status.collision_count == 2 and d.status.observed_generation is None


# ---------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("wire", ["v31", "v37"])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_bad_input_malformed_json_is_400(sim: KubeSim, wire: str, method: str) -> None:
    """Malformed JSON → 400 BadRequest, worded like the real decoder
    (handlers/rest.go transformDecodeError: the body could not even be typed)."""
    path = CM_PATH if method == "POST" else f"{CM_PATH}/x"
    body = b'{"metadata":'
    code, ctype, data = _raw(sim, method, path, body, WIRE[wire])
    st = _status_body(code, ctype, data, 400)
    assert st["reason"] == "BadRequest"
    assert st["message"] == (
        "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
        'version/kind; json parse error: unexpected end of JSON input ({"metadata":)')
    code, ctype, data = _raw(sim, method, path, b'{"metadata": {"name": x}}', WIRE[wire])
    st = _status_body(code, ctype, data, 400)
    assert st["message"].startswith("the object provided is unrecognized (must be of type "
                                     "ConfigMap): couldn't get version/kind; json parse error: ")
    _still_serving(sim)


@pytest.mark.parametrize("body, what", [(b"[1, 2]", "array"), (b'"a string"', "string"),
                                        (b"42", "number"), (b"true", "bool")])
def test_bad_input_body_not_an_object_is_400(sim: KubeSim, body: bytes, what: str) -> None:
    """A JSON array/string/number/bool where an object belongs → 400 from the kind sniffer."""
    code, ctype, data = _raw(sim, "POST", LEASE_PATH, body, V31_HEADERS)
    st = _status_body(code, ctype, data, 400)
    assert st["reason"] == "BadRequest"
    assert st["message"] == (
        "the object provided is unrecognized (must be of type Lease): couldn't get "
        f"version/kind; json parse error: json: cannot unmarshal {what} into Go value of type "
        'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string '
        f'"json:\\"kind,omitempty\\"" }} ({body.hex()})')
    _still_serving(sim)


def test_bad_input_truncated_body_is_400(sim: KubeSim) -> None:
    """A body shorter than its Content-Length (the client gave up half way) → 400, and the
    server is not left waiting on a dead request."""
    payload = json.dumps(_cm("trunc", k="v")).encode()
    with socket.create_connection((sim.host, sim.port), timeout=10) as s:
        s.sendall(b"POST " + CM_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
                  + payload[:20])
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, data = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", head
    st = json.loads(data)
    assert st["kind"] == "Status" and st["reason"] == "BadRequest" and st["code"] == 400
    assert "unexpected end of JSON input" in st["message"]
    _still_serving(sim)


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml",
                                   "application/x-www-form-urlencoded"])
def test_bad_input_wrong_content_type_on_create_is_415(sim: KubeSim, ctype: str) -> None:
    """POST with a body type the server cannot decode → 415 UnsupportedMediaType."""
    code, rctype, data = _raw(sim, "POST", CM_PATH, json.dumps(_cm("ct")).encode(),
                              {"Content-Type": ctype})
    st = _status_body(code, rctype, data, 415)
    assert st["reason"] == "UnsupportedMediaType"
    assert st["message"].startswith("the body of the request was in an unknown format - "
                                    "accepted media types include: application/json, "
                                    "application/yaml")
    assert _raw(sim, "GET", f"{CM_PATH}/ct")[0] == 404  # nothing was created
    _still_serving(sim)


def test_bad_input_unknown_patch_content_type_is_415(sim: KubeSim, widgets: Any) -> None:
    """PATCH with a type that is no patch type → 415.

    Built-in types: go-restful rejects the Content-Type against the route's Consumes list
    before the handler runs, and the apiserver's serviceErrorHandler turns that into
    NewGenericServerResponse(415, ...): reason UnsupportedMediaType, message
    "415: Unsupported Media Type". Custom resources are served by the CRD handler, which
    names the accepted patch types itself.
    """
    code, _, _ = _raw(sim, "POST", CM_PATH, json.dumps(_cm("p")).encode(), V31_HEADERS)
    assert code == 201
    for ctype in ("application/json", "application/xml", None):
        headers = {"Content-Type": ctype} if ctype else {}
        code, rctype, data = _raw(sim, "PATCH", f"{CM_PATH}/p", b'{"data":{"k":"v"}}', headers)
        st = _status_body(code, rctype, data, 415)
        assert st["reason"] == "UnsupportedMediaType" and st["message"] == \
            "415: Unsupported Media Type", (ctype, st)
    widgets.create(body=_widget("p", size=1), namespace=NS)
    code, rctype, data = _raw(sim, "PATCH", f"{WIDGET_PATH}/p", b'{"spec":{"size":2}}',
                              {"Content-Type": "application/json"})
    st = _status_body(code, rctype, data, 415)
    assert st["reason"] == "UnsupportedMediaType"
    assert st["message"].endswith("application/json-patch+json, application/merge-patch+json, "
                                  "application/apply-patch+yaml")
    _still_serving(sim)


@pytest.mark.parametrize("path", [
    f"/api/v1/namespaces/{NS}/widgetz",
    f"/api/v1/namespaces/{NS}/widgetz/x",
    "/apis/apps/v1/namespaces/default/configmaps",
    f"{CM_PATH}/x/bogus-subresource",
])
def test_bad_input_unknown_resource_is_404(sim: KubeSim, path: str) -> None:
    """An unknown resource (or subresource) in a served group version → 404 NotFound Status
    (go-restful finds no route; serviceErrorHandler answers a generic NotFound)."""
    for method, body in (("GET", None), ("POST", b"{}"), ("PUT", b"{}"), ("DELETE", None)):
        code, ctype, data = _raw(sim, method, path, body, V31_HEADERS)
        st = _status_body(code, ctype, data, 404)
        assert st["reason"] == "NotFound"
        assert st["message"] == "the server could not find the requested resource"
    _still_serving(sim)


def test_bad_input_unknown_group_is_404(sim: KubeSim) -> None:
    """An unknown group or version → 404 and never a 5xx.

    Only the code is asserted: the real server hands such paths down its delegation chain to
    the final NotFound handler (apiextensions crdHandler → notfoundhandler → http.NotFound),
    whose body is plain text, so clients cannot rely on a Status body here.
    """
    for path in (f"/apis/nope.example.com/v1/namespaces/{NS}/things",
                 f"/apis/apps/v9/namespaces/{NS}/deployments/x",
                 f"/apis/{GROUP}/v1/namespaces/{NS}/widgets/x"):
        for method in ("GET", "POST", "DELETE"):
            code, _, data = _raw(sim, method, path, b"{}" if method == "POST" else None,
                                 V31_HEADERS)
            assert code == 404, (method, path, code, data[:200])
    _still_serving(sim)


@pytest.mark.parametrize("wire", ["v31", "v37"])
def test_bad_input_name_mismatch_is_400(
        api_client: client.ApiClient, core: client.CoreV1Api, wire: str) -> None:
    """URL name ≠ body name on PUT → 400 BadRequest (handlers/rest.go checkName)."""
    core.create_namespaced_config_map(NS, _cm("url-name", k="v"))
    code, st = _call(api_client, "PUT", f"{CM_PATH}/url-name", WIRE[wire],
                     _cm("body-name", k="w"))
    assert code == 400 and st["kind"] == "Status" and st["reason"] == "BadRequest", st
    assert st["message"] == ("the name of the object (body-name) does not match the name on "
                             "the URL (url-name)")
    code, st = _call(api_client, "PATCH", f"{CM_PATH}/url-name",
                     {**WIRE[wire], "Content-Type": "application/merge-patch+json"},
                     {"metadata": {"name": "other"}})
    assert code == 400 and st["reason"] == "BadRequest", st
    assert core.read_namespaced_config_map("url-name", NS).data == {"k": "v"}


def test_bad_input_wrong_field_types_are_400(sim: KubeSim) -> None:
    """A value of the wrong JSON type → 400 with Go's UnmarshalTypeError wording, which
    names the innermost Go struct and the full field path."""
    cases = [
        (LEASE_PATH, {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": "15"}},
         'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal string '
         "into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32"),
        (LEASE_PATH, {"metadata": {"name": "l"}, "spec": "x"},
         'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal string '
         "into Go struct field Lease.spec of type v1.LeaseSpec"),
        (CM_PATH, {"metadata": {"name": "c", "labels": "x"}},
         'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
         "string into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
        (CM_PATH, {"metadata": {"name": "c"}, "data": {"k": 1}},
         'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
         "number into Go struct field ConfigMap.data of type string"),
        (CM_PATH, {"metadata": "c"},
         'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
         "string into Go struct field ConfigMap.metadata of type v1.ObjectMeta"),
    ]
    for path, body, message in cases:
        for headers in (V31_HEADERS, V37_HEADERS):
            code, ctype, data = _raw(sim, "POST", path, json.dumps(body).encode(), headers)
            st = _status_body(code, ctype, data, 400)
            assert st["reason"] == "BadRequest"
            assert st["message"] == message
    _still_serving(sim)


def test_bad_input_malformed_patch_bodies_are_400(sim: KubeSim) -> None:
    """Undecodable patch bodies → 400 BadRequest for every patch type; nothing changes."""
    assert _raw(sim, "POST", CM_PATH, json.dumps(_cm("pb", k="v")).encode(), V31_HEADERS)[0] \
        == 201
    cases = [
        ("application/merge-patch+json", b"{"),
        ("application/merge-patch+json", b"[1]"),
        ("application/strategic-merge-patch+json", b"{"),
        ("application/strategic-merge-patch+json", b'"s"'),
        ("application/json-patch+json", b"{"),
        ("application/json-patch+json", b'{"op": "add"}'),
        ("application/apply-patch+yaml", b": : :\n\t- ["),
    ]
    for ctype, body in cases:
        path = f"{CM_PATH}/pb" + ("?fieldManager=t" if "apply" in ctype else "")
        code, rctype, data = _raw(sim, "PATCH", path, body, {"Content-Type": ctype})
        st = _status_body(code, rctype, data, 400)
        assert st["reason"] == "BadRequest", (ctype, body, st)
    code, _, data = _raw(sim, "GET", f"{CM_PATH}/pb")
    assert json.loads(data)["data"] == {"k": "v"}
    _still_serving(sim)


def test_bad_input_garbage_and_oversized_paths(sim: KubeSim) -> None:
    """Odd paths under the API prefix: a 16 KiB name, deep junk, encoded separators and
    non-ASCII → 404 NotFound Status, never a 5xx; the server keeps serving."""
    long_name = "a" * 16000
    code, ctype, data = _raw(sim, "GET", f"{CM_PATH}/{long_name}")
    st = _status_body(code, ctype, data, 404)
    assert st["message"] == f'configmaps "{long_name}" not found'
    for path in ("/api/v1/" + "/".join(["junk"] * 400),
                 f"{CM_PATH}/a%2Fb",
                 f"/api/v1/namespaces/{NS}/%E2%98%83",
                 f"{CM_PATH}/x/y/z/w"):
        code, ctype, data = _raw(sim, "GET", path)
        st = _status_body(code, ctype, data, 404)
        assert st["reason"] == "NotFound", (path, st)
    # A request line and headers that are not HTTP at all: answered or dropped, no crash.
    with socket.create_connection((sim.host, sim.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    _still_serving(sim)


def test_bad_input_never_500_across_a_barrage(sim: KubeSim, widgets: Any) -> None:
    """A mix of everything above against every verb and a few resource kinds: each answer
    is a 4xx Status, and the audit log records no 5xx."""
    bodies = [b"", b"{", b"[]", b"null", b'{"metadata":{"name":"Bad_Name!"}}',
              b'{"metadata":{"name":"n"},"spec":{"leaseDurationSeconds":-1}}',
              b'{"metadata":{"name":"n"},"spec":{"leaseDurationSeconds":"x"}}',
              b'{"apiVersion":"v9","kind":"Nope","metadata":{"name":"n"}}',
              b"\xff\xfe\x00"]
    paths = [CM_PATH, f"{CM_PATH}/n", LEASE_PATH, f"{LEASE_PATH}/n", WIDGET_PATH,
             f"{WIDGET_PATH}/n", f"{WIDGET_PATH}/n/status"]
    ctypes = ["application/json", "application/merge-patch+json",
              "application/json-patch+json", "application/apply-patch+yaml", "text/plain"]
    for path in paths:
        for body in bodies:
            for method in ("POST", "PUT", "PATCH"):
                for ctype in ctypes if method == "PATCH" else ctypes[:1] + ctypes[-1:]:
                    code, rctype, data = _raw(sim, method, path + "?fieldManager=b", body,
                                              {"Content-Type": ctype})
                    assert 400 <= code < 500 or code in (200, 201), \
                        (method, path, ctype, body, code, data[:300])
                    if code >= 400:
                        assert rctype.startswith("application/json"), (method, path, data)
                        assert json.loads(data)["kind"] == "Status"
    _still_serving(sim)
