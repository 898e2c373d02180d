"""Checklist items 25-35 of emulator.md §7: deletion and GC, namespaces, generateName, dry-run,
Leases and MicroTime, leader election, request edge cases and 429 retries.

Everything goes through real clients: the typed `kubernetes.client` APIs, DynamicClient,
`kubernetes.watch.Watch`, `kubernetes.leaderelection`, and kubectl in a subprocess. `sim.audit`
and `sim.faults` are used only as test hooks (to count requests and to inject failures).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers import until as _until
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from kubesim import KubeSim

T = TypeVar("T")
NS = "default"
GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"


# ---------------------------------------------------------------- helpers

def _status(e: ApiException) -> dict[str, Any]:
    body = json.loads(e.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure" and body["code"] == e.status
    return body


def _raises(fn: Callable[[], Any], code: int) -> dict[str, Any]:
    """Call `fn`, expect an ApiException with HTTP `code`, return its Status body."""
    with pytest.raises(ApiException) as info:
        fn()
    assert info.value.status == code, info.value.body
    return _status(info.value)


def _gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def _client_for(sim: KubeSim, tmp_path: Path, token: str | None = None) -> client.ApiClient:
    path = sim.write_kubeconfig(tmp_path / f"kubeconfig-{token or 'anon'}", token=token)
    return config.new_client_from_config(config_file=str(path))


def _owner_ref(owner: client.V1ConfigMap, block: bool = False) -> dict[str, Any]:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name,
           "uid": owner.metadata.uid}
    if block:
        ref["blockOwnerDeletion"] = True
    return ref


def _cm(core: client.CoreV1Api, name: str, ns: str = NS, **meta: Any) -> client.V1ConfigMap:
    return core.create_namespaced_config_map(
        ns, {"metadata": {"name": name, **meta}, "data": {"k": name}})


def _events_since(core: client.CoreV1Api, rv: str, stop: Callable[[dict[str, Any]], bool],
                  timeout: int = 3) -> list[dict[str, Any]]:
    """Watch ConfigMaps in NS from `rv`; collect raw events up to the first one `stop` accepts."""
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=rv,
                       timeout_seconds=timeout):
        seen.append({"type": ev["type"], "object": ev["raw_object"]})
        if stop(seen[-1]):
            w.stop()
    return seen


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def cms(dyn: DynamicClient) -> Any:
    return dyn.resources.get(api_version="v1", kind="ConfigMap")


# ---------------------------------------------------------------- 25 finalizers

def test_item25_finalizers_hold_deletion_until_cleared(sim: KubeSim, core: client.CoreV1Api,
                                                        cms: Any) -> None:
    """Item 25: DELETE with a finalizer pending marks the object (MODIFIED), a second DELETE is
    a no-op, a new finalizer is refused with 422, and clearing them removes it (DELETED, 404)."""
    created = _cm(core, "held", finalizers=["example.com/hold"])
    rv0 = created.metadata.resource_version

    first = cms.delete(name="held", namespace=NS).to_dict()
    assert first["kind"] == "ConfigMap"  # the object, not a Status: deletion is pending
    md = first["metadata"]
    assert md["deletionTimestamp"] and md["deletionGracePeriodSeconds"] == 0
    assert md["finalizers"] == ["example.com/hold"]
    assert int(md["resourceVersion"]) > int(rv0)

    again = cms.delete(name="held", namespace=NS).to_dict()["metadata"]
    assert again["resourceVersion"] == md["resourceVersion"]
    assert again["deletionTimestamp"] == md["deletionTimestamp"]
    assert core.read_namespaced_config_map("held", NS).metadata.resource_version == \
        md["resourceVersion"]

    late = core.read_namespaced_config_map("held", NS)
    late.metadata.finalizers = ["example.com/hold", "example.com/late"]
    st = _raises(lambda: core.replace_namespaced_config_map("held", NS, late), 422)
    assert st["reason"] == "Invalid"
    assert st["message"] == (
        'ConfigMap "held" is invalid: metadata.finalizers: Forbidden: no new finalizers can '
        'be added if the object is being deleted, found new finalizers '
        '[]string{"example.com/late"}')
    assert st["details"]["causes"] == [{
        "reason": "FieldValueForbidden", "field": "metadata.finalizers",
        "message": st["message"].split("metadata.finalizers: ", 1)[1]}]

    core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
    st = _raises(lambda: core.read_namespaced_config_map("held", NS), 404)
    assert st["message"] == 'configmaps "held" not found'

    assert [e.code for e in sim.audit.entries() if e.verb == "delete"] == [200, 200]
    events = _events_since(core, rv0, lambda e: e["type"] == "DELETED")
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["metadata"]["deletionTimestamp"] == md["deletionTimestamp"]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(md["resourceVersion"])


# ---------------------------------------------------------------- 26 garbage collection

def test_item26_gc_background_removes_dependents_of_the_deleted_owner(
        core: client.CoreV1Api) -> None:
    """Item 26 (Background, the default): the dependent of the deleted owner goes within 1 s;
    a dependent of another, live owner stays with its reference intact."""
    owner = _cm(core, "bg-owner")
    keeper = _cm(core, "bg-keeper")
    _cm(core, "bg-dep", ownerReferences=[_owner_ref(owner)])
    _cm(core, "bg-other", ownerReferences=[_owner_ref(keeper)])

    st = core.delete_namespaced_config_map("bg-owner", NS)  # v37 returns the body as a dict
    assert st["status"] == "Success"
    _until(lambda: _gone(lambda: core.read_namespaced_config_map("bg-dep", NS)), 1.0,
           "the dependent to be collected")
    other = core.read_namespaced_config_map("bg-other", NS)
    assert [r.uid for r in other.metadata.owner_references] == [keeper.metadata.uid]
    assert other.metadata.deletion_timestamp is None


def test_item26_gc_foreground_owner_waits_for_blocking_dependents(
        core: client.CoreV1Api, cms: Any) -> None:
    """Item 26 (Foreground): the owner carries `foregroundDeletion` and stays visible while a
    blockOwnerDeletion dependent exists (held here by its own finalizer); once that finalizer
    is cleared the dependent goes, and then the owner."""
    owner = _cm(core, "fg-owner")
    _cm(core, "fg-dep", finalizers=["example.com/hold"],
        ownerReferences=[_owner_ref(owner, block=True)])

    out = cms.delete(name="fg-owner", namespace=NS,
                     body={"propagationPolicy": "Foreground"}).to_dict()
    assert out["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert out["metadata"]["deletionTimestamp"]

    dep = _until(lambda: (d := core.read_namespaced_config_map("fg-dep", NS))
                 .metadata.deletion_timestamp and d, 1.0, "the GC to delete the dependent")
    assert dep.metadata.finalizers == ["example.com/hold"]  # a leaf is deleted in background
    time.sleep(0.3)  # give a (wrong) GC time to release the owner early
    still = core.read_namespaced_config_map("fg-owner", NS)
    assert still.metadata.finalizers == ["foregroundDeletion"]
    assert still.metadata.deletion_timestamp is not None

    core.patch_namespaced_config_map("fg-dep", NS, {"metadata": {"finalizers": None}})
    _until(lambda: _gone(lambda: core.read_namespaced_config_map("fg-owner", NS)), 1.0,
           "the owner to go once its blocking dependent is gone")
    assert _gone(lambda: core.read_namespaced_config_map("fg-dep", NS))


def test_item26_gc_orphan_keeps_dependent_without_owner_reference(
        core: client.CoreV1Api) -> None:
    """Item 26 (Orphan): the owner goes, the dependent lives on with the reference removed."""
    owner = _cm(core, "or-owner")
    keeper = _cm(core, "or-keeper")
    _cm(core, "or-dep", ownerReferences=[_owner_ref(owner)])
    _cm(core, "or-both", ownerReferences=[_owner_ref(owner), _owner_ref(keeper)])

    core.delete_namespaced_config_map(
        "or-owner", NS, body=client.V1DeleteOptions(propagation_policy="Orphan"))
    _until(lambda: _gone(lambda: core.read_namespaced_config_map("or-owner", NS)), 1.0,
           "the orphaning owner to go")
    dep = core.read_namespaced_config_map("or-dep", NS)
    assert dep.metadata.owner_references is None
    assert dep.metadata.deletion_timestamp is None
    both = core.read_namespaced_config_map("or-both", NS)
    assert [r.uid for r in both.metadata.owner_references] == [keeper.metadata.uid]


def test_item26_kubectl_delete_cascade_foreground_and_orphan(
        core: client.CoreV1Api, kubeconfig: Path) -> None:
    """Item 26 through kubectl: `--cascade=foreground` leaves the owner visible with
    `foregroundDeletion` while a blocking dependent is held; `--cascade=orphan` keeps the
    dependent and strips its owner reference (kubectl waits for the owner to be gone)."""
    owner = _cm(core, "k-owner")
    _cm(core, "k-dep", finalizers=["example.com/hold"],
        ownerReferences=[_owner_ref(owner, block=True)])
    r = _kubectl(kubeconfig, "delete", "configmap", "k-owner", "-n", NS,
                 "--cascade=foreground", "--wait=false")
    assert r.returncode == 0, r.stderr
    assert 'configmap "k-owner" deleted' in r.stdout
    held = _until(lambda: (d := core.read_namespaced_config_map("k-dep", NS))
                  .metadata.deletion_timestamp and d, 1.0, "the dependent to be deleted")
    assert held.metadata.finalizers == ["example.com/hold"]
    assert core.read_namespaced_config_map("k-owner", NS).metadata.finalizers == \
        ["foregroundDeletion"]
    core.patch_namespaced_config_map("k-dep", NS, {"metadata": {"finalizers": None}})
    _until(lambda: _gone(lambda: core.read_namespaced_config_map("k-owner", NS)), 1.0,
           "the foreground owner to go")

    owner = _cm(core, "ko-owner")
    _cm(core, "ko-dep", ownerReferences=[_owner_ref(owner, block=True)])
    r = _kubectl(kubeconfig, "delete", "configmap", "ko-owner", "-n", NS, "--cascade=orphan")
    assert r.returncode == 0, r.stderr
    assert 'configmap "ko-owner" deleted' in r.stdout
    assert _gone(lambda: core.read_namespaced_config_map("ko-owner", NS))
    dep = core.read_namespaced_config_map("ko-dep", NS)
    assert dep.metadata.owner_references is None
    assert dep.metadata.deletion_timestamp is None


# ---------------------------------------------------------------- 27 DELETE responses

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {
                               "type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def test_item27_delete_returns_status_for_configmap_object_for_cr(
        api_client: client.ApiClient, core: client.CoreV1Api) -> None:
    """Item 27: a ConfigMap DELETE answers a Status naming the uid; a CR DELETE answers the
    deleted object (ReturnDeletedObject)."""
    cm = _cm(core, "gone")
    st = core.delete_namespaced_config_map("gone", NS)  # v37 returns the body as a dict
    assert st == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": {"name": "gone", "kind": "configmaps", "uid": cm.metadata.uid}}

    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(CRD)
    _until(lambda: any(c.type == "Established" and c.status == "True" for c in
                       ext.read_custom_resource_definition(CRD["metadata"]["name"])
                       .status.conditions or []), 2.0, "the CRD to be Established")
    custom = client.CustomObjectsApi(api_client)
    made = custom.create_namespaced_custom_object(
        "example.com", "v1", NS, "widgets",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
         "spec": {"size": 3}})
    out = custom.delete_namespaced_custom_object("example.com", "v1", NS, "widgets", "w1")
    assert out["kind"] == "Widget" and out["apiVersion"] == "example.com/v1"
    assert out["metadata"]["uid"] == made["metadata"]["uid"]
    assert out["spec"] == {"size": 3}
    _raises(lambda: custom.get_namespaced_custom_object("example.com", "v1", NS, "widgets",
                                                        "w1"), 404)


def test_item27_delete_preconditions_conflict(core: client.CoreV1Api) -> None:
    """Item 27: DeleteOptions.preconditions on uid or resourceVersion that do not match -> 409.

    The wording follows rest.BeforeDelete, which checks preconditions before storage does and
    names the Kind (GroupResource{Group, Resource: Kind}) rather than the plural.
    """
    cm = _cm(core, "pre")
    uid, rv = cm.metadata.uid, cm.metadata.resource_version
    wrong_uid = "00000000-0000-4000-8000-000000000000"
    st = _raises(lambda: core.delete_namespaced_config_map(
        "pre", NS, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=wrong_uid))), 409)
    assert st["reason"] == "Conflict"
    assert st["message"] == (
        f'Operation cannot be fulfilled on ConfigMap "pre": the UID in the precondition '
        f'({wrong_uid}) does not match the UID in record ({uid}). The object might have been '
        f'deleted and then recreated')
    assert st["details"] == {"name": "pre", "kind": "ConfigMap"}

    core.patch_namespaced_config_map("pre", NS, {"data": {"k": "changed"}})
    current = core.read_namespaced_config_map("pre", NS).metadata.resource_version
    st = _raises(lambda: core.delete_namespaced_config_map(
        "pre", NS, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=rv))), 409)
    assert st["message"] == (
        f'Operation cannot be fulfilled on ConfigMap "pre": the ResourceVersion in the '
        f'precondition ({rv}) does not match the ResourceVersion in record ({current}). The '
        f'object might have been modified')
    assert core.read_namespaced_config_map("pre", NS).metadata.resource_version == current

    ok = core.delete_namespaced_config_map("pre", NS, body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=uid, resource_version=current)))
    assert ok["status"] == "Success" and ok["details"]["uid"] == uid


# ---------------------------------------------------------------- 28 namespaces

def test_item28_namespace_lifecycle(core: client.CoreV1Api, dyn: DynamicClient) -> None:
    """Item 28: `default` exists; a create in a missing namespace is 404; DELETE turns a
    namespace Terminating, its contents are deleted (a finalizer holds one back, and with it
    the namespace), creates in it are 403, and once the content is gone so is the namespace."""
    default = core.read_namespace("default")
    assert default.status.phase == "Active"
    assert default.spec.finalizers == ["kubernetes"]

    st = _raises(lambda: _cm(core, "x", ns="nope"), 404)
    assert st["reason"] == "NotFound"
    assert st["message"] == 'namespaces "nope" not found'
    assert st["details"] == {"name": "nope", "kind": "namespaces"}

    core.create_namespace({"metadata": {"name": "doomed"}})
    _cm(core, "plain", ns="doomed")
    _cm(core, "held", ns="doomed", finalizers=["example.com/hold"])

    namespaces = dyn.resources.get(api_version="v1", kind="Namespace")
    out = namespaces.delete(name="doomed").to_dict()
    assert out["kind"] == "Namespace"
    assert out["status"]["phase"] == "Terminating"
    assert out["metadata"]["deletionTimestamp"]

    _until(lambda: _gone(lambda: core.read_namespaced_config_map("plain", "doomed")), 1.0,
           "the namespace controller to delete the content")
    held = core.read_namespaced_config_map("held", "doomed")
    assert held.metadata.deletion_timestamp is not None
    assert core.read_namespace("doomed").status.phase == "Terminating"

    st = _raises(lambda: _cm(core, "late", ns="doomed"), 403)
    assert st["reason"] == "Forbidden"
    assert st["message"] == ('configmaps "late" is forbidden: unable to create new content in '
                             'namespace doomed because it is being terminated')
    assert st["details"]["causes"] == [{
        "reason": "NamespaceTerminating", "message": "namespace doomed is being terminated",
        "field": "metadata.namespace"}]

    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    _until(lambda: _gone(lambda: core.read_namespace("doomed")), 1.5,
           "the namespace to be removed")
    st = _raises(lambda: _cm(core, "after", ns="doomed"), 404)
    assert st["message"] == 'namespaces "doomed" not found'


# ---------------------------------------------------------------- 29 generateName

def test_item29_generate_name_suffix(core: client.CoreV1Api) -> None:
    """Item 29: generateName gives prefix + 5 characters from the apiserver's alphabet."""
    names = set()
    for _ in range(20):
        made = core.create_namespaced_config_map(NS, {"metadata": {"generateName": "gen-"}})
        assert made.metadata.generate_name == "gen-"
        names.add(made.metadata.name)
    assert len(names) == 20
    for name in names:
        assert re.fullmatch(f"gen-[{GEN_ALPHABET}]{{5}}", name), name
    listed = {c.metadata.name for c in core.list_namespaced_config_map(NS).items}
    assert names <= listed


# ---------------------------------------------------------------- 30 dry run

def test_item30_dry_run_persists_nothing(core: client.CoreV1Api, cms: Any) -> None:
    """Item 30: dryRun=All on create, update, patch and delete answers the would-be object
    but stores nothing: the list RV does not move and a watch sees no event for them."""
    base = _cm(core, "dry-base")
    held = _cm(core, "dry-held", finalizers=["example.com/hold"])
    rv_before = core.list_namespaced_config_map(NS).metadata.resource_version

    made = core.create_namespaced_config_map(
        NS, {"metadata": {"name": "dry-new"}, "data": {"a": "1"}}, dry_run="All")
    assert made.metadata.name == "dry-new" and made.data == {"a": "1"}
    assert made.metadata.uid and made.metadata.creation_timestamp
    assert not made.metadata.resource_version

    changed = core.read_namespaced_config_map("dry-base", NS)
    changed.data = {"k": "replaced"}
    out = core.replace_namespaced_config_map("dry-base", NS, changed, dry_run="All")
    assert out.data == {"k": "replaced"}

    out = core.patch_namespaced_config_map("dry-base", NS, {"data": {"extra": "1"}},
                                           dry_run="All")
    assert out.data == {"k": "dry-base", "extra": "1"}

    st = core.delete_namespaced_config_map("dry-base", NS, dry_run="All")
    assert st["status"] == "Success" and st["details"]["uid"] == base.metadata.uid

    pending = cms.delete(name="dry-held", namespace=NS, query_params=[("dryRun", "All")])
    assert pending.metadata.deletionTimestamp

    assert _gone(lambda: core.read_namespaced_config_map("dry-new", NS))
    now = core.read_namespaced_config_map("dry-base", NS)
    assert now.data == {"k": "dry-base"}
    assert now.metadata.resource_version == base.metadata.resource_version
    still = core.read_namespaced_config_map("dry-held", NS)
    assert still.metadata.deletion_timestamp is None
    assert still.metadata.resource_version == held.metadata.resource_version
    assert core.list_namespaced_config_map(NS).metadata.resource_version == rv_before

    _cm(core, "dry-marker")  # a real write: the first event after rv_before must be this one
    events = _events_since(core, rv_before, lambda e: True)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == \
        [("ADDED", "dry-marker")]


# ---------------------------------------------------------------- 31 Lease and MicroTime

def _lease(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name}, "spec": {"holderIdentity": "a", **spec}}


def _bad_time(value: str, rest: str, elem: str) -> str:
    return (f'Lease in version "v1" cannot be handled as a Lease: parsing time "{value}" as '
            f'"{MICRO_LAYOUT}": cannot parse "{rest}" as "{elem}"')


def test_item31_lease_validation_and_strict_microtime(
        api_client: client.ApiClient, dyn: DynamicClient) -> None:
    """Item 31: leaseDurationSeconds 0 is 422; MicroTime round-trips as `.123456Z` (an offset
    is accepted and normalised to UTC); no fraction, 9 digits, or the typed client's
    isoformat() of a zero-microsecond datetime (§2.13 hazard) are 400 in strict mode."""
    coord = client.CoordinationV1Api(api_client)
    st = _raises(lambda: coord.create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="zero"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=0))), 422)
    assert st["reason"] == "Invalid"
    assert st["message"] == ('Lease.coordination.k8s.io "zero" is invalid: '
                             'spec.leaseDurationSeconds: Invalid value: 0: must be greater '
                             'than 0')
    assert st["details"]["kind"] == "Lease" and st["details"]["group"] == "coordination.k8s.io"
    assert st["details"]["causes"][0]["field"] == "spec.leaseDurationSeconds"

    leases = dyn.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    leases.create(body=_lease("micro", leaseDurationSeconds=10,
                              acquireTime="2024-05-06T07:08:09.123456Z",
                              renewTime="2024-05-06T09:08:09.654321+02:00"), namespace=NS)
    spec = leases.get(name="micro", namespace=NS).to_dict()["spec"]
    assert spec["acquireTime"] == "2024-05-06T07:08:09.123456Z"
    assert spec["renewTime"] == "2024-05-06T07:08:09.654321Z"
    typed = coord.read_namespaced_lease("micro", NS).spec
    assert typed.acquire_time == dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)

    for value, rest, elem in (("2024-05-06T07:08:09Z", "Z", ".000000"),
                              ("2024-05-06T07:08:09.123456789Z", "789Z", "Z07:00"),
                              ("2024-05-06T07:08:09.123Z", ".123Z", ".000000")):
        with pytest.raises(DynamicApiError) as info:
            leases.create(body=_lease("bad", renewTime=value), namespace=NS)
        assert info.value.status == 400
        body = json.loads(info.value.body)
        assert body["reason"] == "BadRequest"
        assert body["message"] == _bad_time(value, rest, elem)

    # The v37 typed client sends datetimes with isoformat(): microsecond 0 has no fraction.
    zero = dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
    st = _raises(lambda: coord.create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="iso"),
        spec=client.V1LeaseSpec(holder_identity="a", renew_time=zero))), 400)
    assert st["message"] == _bad_time("2024-01-01T00:00:00+00:00", "+00:00", ".000000")
    ok = coord.create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="iso"),
        spec=client.V1LeaseSpec(holder_identity="a", renew_time=zero.replace(microsecond=1))))
    assert ok.spec.renew_time == zero.replace(microsecond=1)


def test_item31_relaxed_microtime_accepts_what_python_clients_send(tmp_path: Path) -> None:
    """Item 31, relaxed mode (`KubeSim(strict_microtime=False)`): any RFC 3339 time is
    accepted for a MicroTime and stored with exactly six fractional digits."""
    with KubeSim(strict_microtime=False) as relaxed:
        api = _client_for(relaxed, tmp_path)
        try:
            leases = DynamicClient(api).resources.get(api_version="coordination.k8s.io/v1",
                                                      kind="Lease")
            leases.create(body=_lease("loose", acquireTime="2024-05-06T07:08:09Z",
                                      renewTime="2024-05-06T07:08:09.123456789Z"),
                          namespace=NS)
            spec = leases.get(name="loose", namespace=NS).to_dict()["spec"]
            assert spec["acquireTime"] == "2024-05-06T07:08:09.000000Z"
            assert spec["renewTime"] == "2024-05-06T07:08:09.123456Z"

            zero = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
            coord = client.CoordinationV1Api(api)
            made = coord.create_namespaced_lease(NS, client.V1Lease(
                metadata=client.V1ObjectMeta(name="iso"),
                spec=client.V1LeaseSpec(holder_identity="a", renew_time=zero)))
            assert made.spec.renew_time == zero
            assert leases.get(name="iso", namespace=NS).to_dict()["spec"]["renewTime"] == \
                "2024-01-01T00:00:00.000000Z"
        finally:
            api.close()


# ---------------------------------------------------------------- 32 leader election

class _Stopped(Exception):
    """Raised from a candidate's lock to end its (otherwise endless) election loop."""


class _StoppableLeaseLock(LeaseLock):
    """The real LeaseLock on its own ApiClient, which the test can switch off at the end."""

    def __init__(self, name: str, namespace: str, identity: str,
                 api: client.ApiClient, stop: threading.Event) -> None:
        super().__init__(name, namespace, identity)
        self.api_instance = client.CoordinationV1Api(api)
        self._stop = stop

    def get(self, name: str, namespace: str) -> Any:
        if self._stop.is_set():
            raise _Stopped()
        return super().get(name, namespace)


def test_item32_leader_election_three_candidates_and_takeover(
        sim: KubeSim, core: client.CoreV1Api, api_client: client.ApiClient,
        tmp_path: Path) -> None:
    """Item 32: three `kubernetes.leaderelection` candidates: exactly one leads; when its lock
    calls fail (an injected 500 for its token) it stops renewing and calls onstopped_leading,
    and another candidate takes the Lease over (holderIdentity changes).

    Config refuses periods under 1 s, so retry_period is shortened after validation.
    """
    stop = threading.Event()
    started: list[str] = []
    stopped: list[str] = []
    lock = threading.Lock()
    clients: list[client.ApiClient] = []
    threads = []

    def candidate(ident: str) -> None:
        api = _client_for(sim, tmp_path, token=ident)
        clients.append(api)

        def on_started() -> None:
            with lock:
                started.append(ident)

        def on_stopped() -> None:
            with lock:
                stopped.append(ident)

        cfg = electionconfig.Config(
            _StoppableLeaseLock("elect", NS, ident, api, stop), lease_duration=2,
            renew_deadline=1.5, retry_period=1, onstarted_leading=on_started,
            onstopped_leading=on_stopped)
        cfg.retry_period = 0.3

        def run() -> None:
            try:
                leaderelection.LeaderElection(cfg).run()
            except _Stopped:
                pass

        t = threading.Thread(target=run, name=f"candidate-{ident}", daemon=True)
        threads.append(t)
        t.start()

    try:
        for ident in ("cand-a", "cand-b", "cand-c"):
            candidate(ident)
        first = _until(lambda: started[:1], 3.0, "a first leader")[0]
        coord = client.CoordinationV1Api(api_client)
        time.sleep(1.0)  # several retry periods: nobody else may acquire meanwhile
        assert started == [first]
        lease = coord.read_namespaced_lease("elect", NS)
        assert lease.spec.holder_identity == first
        assert lease.spec.lease_duration_seconds == 2
        renewed = lease.spec.renew_time
        assert _until(lambda: coord.read_namespaced_lease("elect", NS).spec.renew_time
                      != renewed, 1.0, "the leader to renew")

        sim.faults.add({"identity": f"token:{first}", "action": "error", "code": 500})
        second = _until(lambda: started[1:2], 6.0, "another candidate to take over")[0]
        assert second != first
        _until(lambda: first in stopped, 3.0, "the old leader's onstopped_leading")
        lease = coord.read_namespaced_lease("elect", NS)
        assert lease.spec.holder_identity == second
        assert lease.spec.acquire_time > renewed
        # Every Lease write went through PUT/POST with optimistic concurrency.
        writes = [e for e in sim.audit.entries(writes_only=True) if e.resource == "leases"]
        assert {e.verb for e in writes} <= {"create", "update"}
        assert sum(e.verb == "create" and 200 <= e.code < 300 for e in writes) == 1
    finally:
        stop.set()
        sim.faults.clear()
        for t in threads:
            t.join(timeout=3)
        for api in clients:
            api.close()
    assert not any(t.is_alive() for t in threads)


# ---------------------------------------------------------------- 33 content types

def test_item33_missing_content_type_is_json_and_unknown_patch_type_is_415(
        api_client: client.ApiClient, core: client.CoreV1Api, dyn: DynamicClient,
        sim: KubeSim) -> None:
    """Item 33: POST and PUT without a Content-Type are decoded as JSON (the v37 typed client
    sends none); a PATCH whose Content-Type is not a patch type is 415 (its exact wording,
    which differs between built-ins and CRs, is pinned in test_crud_concurrency.py)."""
    url = f"{sim.url}/api/v1/namespaces/{NS}/configmaps"
    # The generated client's transport, with no Content-Type header at all.
    resp = api_client.call_api("POST", url, header_params={"Accept": "application/json"},
                               body={"metadata": {"name": "bare"}, "data": {"a": "1"}})
    resp.read()
    assert resp.status == 201
    made = json.loads(resp.data)
    assert made["kind"] == "ConfigMap" and made["data"] == {"a": "1"}
    made["data"] = {"a": "2"}
    resp = api_client.call_api("PUT", f"{url}/bare", header_params={"Accept": "application/json"},
                               body=made)
    resp.read()
    assert resp.status == 200
    assert json.loads(resp.data)["data"] == {"a": "2"}

    typed = _cm(core, "typed")  # v37 create/replace send no Content-Type either
    typed.data = {"k": "v2"}
    assert core.replace_namespaced_config_map("typed", NS, typed).data == {"k": "v2"}

    for ctype in ("application/x-unknown-patch+json", "application/json"):
        with pytest.raises(DynamicApiError) as info:
            dyn.request("PATCH", f"/api/v1/namespaces/{NS}/configmaps/bare",
                        body={"data": {"a": "3"}}, content_type=ctype)
        assert info.value.status == 415
        body = json.loads(info.value.body)
        assert (body["kind"], body["status"], body["code"], body["reason"]) == \
            ("Status", "Failure", 415, "UnsupportedMediaType")
    assert core.read_namespaced_config_map("bare", NS).data == {"a": "2"}


# ---------------------------------------------------------------- 34 request validation

def test_item34_name_uid_creation_timestamp_and_routing(
        core: client.CoreV1Api, dyn: DynamicClient) -> None:
    """Item 34: a URL/body name mismatch is 400; a uid change is 422 through PATCH but 409
    through PUT; a creationTimestamp change is silently ignored; an unknown resource is 404
    and a PUT on a collection 405.

    Real apiserver behaviour, followed here where the spec's "uid or creationTimestamp → 422"
    is too coarse: a PUT body's uid is a storage precondition (rest.defaultUpdatedObjectInfo
    .Preconditions), checked by GuaranteedUpdate before validation, so it fails as a 409
    Conflict "StorageError: invalid object ... Precondition failed"; a PATCH has no such
    precondition and reaches ValidateObjectMetaUpdate ("field is immutable", 422).
    rest.BeforeUpdate copies creationTimestamp from the stored object, so a changed one is
    ignored (200, value unchanged) rather than refused.
    """
    cm = _cm(core, "a")
    uid = cm.metadata.uid

    body = core.read_namespaced_config_map("a", NS)
    body.metadata.name = "b"
    st = _raises(lambda: core.replace_namespaced_config_map("a", NS, body), 400)
    assert st["reason"] == "BadRequest"
    assert st["message"] == "the name of the object (b) does not match the name on the URL (a)"

    other = "11111111-1111-4111-8111-111111111111"
    st = _raises(lambda: core.patch_namespaced_config_map(
        "a", NS, {"metadata": {"uid": other}}), 422)
    assert st["reason"] == "Invalid"
    assert st["message"] == (f'ConfigMap "a" is invalid: metadata.uid: Invalid value: '
                             f'"{other}": field is immutable')

    body = core.read_namespaced_config_map("a", NS)
    body.metadata.uid = other
    st = _raises(lambda: core.replace_namespaced_config_map("a", NS, body), 409)
    assert st["reason"] == "Conflict"
    assert st["message"] == (
        f'Operation cannot be fulfilled on configmaps "a": StorageError: invalid object, '
        f'Code: 4, Key: /registry/configmaps/{NS}/a, ResourceVersion: 0, AdditionalErrorMsg: '
        f'Precondition failed: UID in precondition: {other}, UID in object meta: {uid}')

    body = core.read_namespaced_config_map("a", NS)
    created_at = body.metadata.creation_timestamp
    body.metadata.creation_timestamp = created_at - dt.timedelta(days=365)
    body.data = {"k": "new"}
    out = core.replace_namespaced_config_map("a", NS, body)
    assert out.metadata.creation_timestamp == created_at
    assert out.data == {"k": "new"}
    assert out.metadata.uid == uid

    for path in (f"/api/v1/namespaces/{NS}/widgetz", "/apis/nope.example.com/v1/things"):
        with pytest.raises(DynamicApiError) as info:
            dyn.request("GET", path)
        assert info.value.status == 404
        body404 = json.loads(info.value.body)
        assert body404["reason"] == "NotFound"
        assert body404["message"] == "the server could not find the requested resource"

    with pytest.raises(DynamicApiError) as info:
        dyn.request("PUT", f"/api/v1/namespaces/{NS}/configmaps",
                    body={"metadata": {"name": "a"}})
    assert info.value.status == 405
    body405 = json.loads(info.value.body)
    assert body405["reason"] == "MethodNotAllowed"
    assert body405["message"] == "the server does not allow this method on the requested resource"


# ---------------------------------------------------------------- 35 429 and retries

def _configured_client(sim: KubeSim, tmp_path: Path, token: str,
                       **settings: Any) -> client.ApiClient:
    """An ApiClient whose Configuration gets `settings` before its transport is built."""
    cfg = client.Configuration()
    for key, value in settings.items():
        setattr(cfg, key, value)
    path = sim.write_kubeconfig(tmp_path / f"kubeconfig-{token}", token=token)
    return config.new_client_from_config(config_file=str(path), client_configuration=cfg)


def test_item35_injected_429_and_client_go_retries(
        sim: KubeSim, core: client.CoreV1Api, tmp_path: Path) -> None:
    """Item 35: an injected 429 carries Retry-After and details.retryAfterSeconds; with the v37
    `Configuration.client_go_retries` switch the typed client waits Retry-After and repeats
    the GET, which then succeeds (the audit log shows both GETs).

    Without that switch urllib3's own default Retry also repeats a GET answered 429 with a
    Retry-After, so the bare 429 is observed with `Configuration.retries = False`.
    """
    _cm(core, "busy")
    fault = {"action": "error", "code": 429, "retry_after": 1, "remaining": 1,
             "verbs": ["get"], "resources": ["configmaps"]}

    bare = _configured_client(sim, tmp_path, "no-retry", retries=False)
    retrying = _configured_client(sim, tmp_path, "retrier", client_go_retries=True)
    try:
        sim.faults.add(dict(fault, identity="token:no-retry"))
        with pytest.raises(ApiException) as info:
            client.CoreV1Api(bare).read_namespaced_config_map("busy", NS)
        assert info.value.status == 429
        assert info.value.headers["Retry-After"] == "1"
        st = _status(info.value)
        assert st["reason"] == "TooManyRequests"
        assert st["details"]["retryAfterSeconds"] == 1

        sim.faults.add(dict(fault, identity="token:retrier"))
        t0 = time.monotonic()
        got = client.CoreV1Api(retrying).read_namespaced_config_map("busy", NS)
        elapsed = time.monotonic() - t0
    finally:
        bare.close()
        retrying.close()
    assert got.data == {"k": "busy"}
    assert elapsed >= 0.9  # it waited the Retry-After second
    gets = [(e.verb, e.name, e.code) for e in sim.audit.entries(identity="token:retrier")]
    assert gets == [("get", "busy", 429), ("get", "busy", 200)]
