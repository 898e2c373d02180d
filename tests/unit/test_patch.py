"""Behavioural tests for kubesim.patch (patch types and managedFields)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubesim.patch import (
    ApplyConflict,
    BadPatch,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    managed_fields_for_update,
    server_side_apply,
)

NOW = "2024-05-01T10:00:00Z"
LATER = "2024-05-01T10:05:00Z"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                     "resourceVersion": "10", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "sidecar", "image": "side:1"},
                ]},
            },
        },
    }


def configmap(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "default"}, "data": dict(data)}


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def has_dollar_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k.startswith("$") or has_dollar_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_dollar_key(v) for v in value)
    return False


def fields_of(managed: list[dict[str, Any]], manager: str, operation: str = "") -> dict:
    matches = [e for e in managed if e["manager"] == manager
               and (not operation or e["operation"] == operation)]
    assert len(matches) == 1, managed
    return matches[0]["fieldsV1"]


def managers(managed: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in managed]


# --------------------------------------------------------------------------- strategic merge

def test_smp_merges_containers_by_name() -> None:
    original = deployment()
    snapshot = copy.deepcopy(original)
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "app:2"},
        {"name": "extra", "image": "extra:1"},
    ]}}}}
    result = apply_strategic_merge_patch(original, patch)
    assert original == snapshot  # input untouched
    names = [c["name"] for c in containers(result)]
    assert names == ["app", "sidecar", "extra"]
    app = containers(result)[0]
    assert app["image"] == "app:2"
    assert app["ports"] == [{"containerPort": 80}]  # untouched fields of the item survive
    assert containers(result)[1] == {"name": "sidecar", "image": "side:1"}


def test_smp_env_by_name_and_null_deletes() -> None:
    patch = {"metadata": {"labels": {"app": None, "tier": "front"}},
             "spec": {"template": {"spec": {"containers": [
                 {"name": "app",
                  "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]},
             ]}}}}
    result = apply_strategic_merge_patch(deployment(), patch)
    assert result["metadata"]["labels"] == {"tier": "front"}
    assert containers(result)[0]["env"] == [
        {"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]


def test_smp_patch_delete_removes_keyed_item() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "$patch": "delete"},
    ]}}}}
    result = apply_strategic_merge_patch(deployment(), patch)
    assert [c["name"] for c in containers(result)] == ["app"]
    assert not has_dollar_key(result)


def test_smp_patch_replace_list_and_map() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "only", "image": "only:1"},
    ]}}}, "metadata": {"labels": {"$patch": "replace", "new": "yes"}}}
    result = apply_strategic_merge_patch(deployment(), patch)
    assert containers(result) == [{"name": "only", "image": "only:1"}]
    assert result["metadata"]["labels"] == {"new": "yes"}
    assert not has_dollar_key(result)


def test_smp_map_level_delete() -> None:
    result = apply_strategic_merge_patch(deployment(), {"spec": {"selector": {"$patch": "delete"}}})
    assert "selector" not in result["spec"]


def test_smp_set_element_order_is_honoured_and_stripped() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
        "containers": [{"name": "app", "image": "app:3"}],
    }}}}
    result = apply_strategic_merge_patch(deployment(), patch)
    assert not has_dollar_key(result)
    assert [c["name"] for c in containers(result)] == ["sidecar", "app"]
    assert containers(result)[1]["image"] == "app:3"


def test_smp_conditions_by_type() -> None:
    obj = {"kind": "Pod", "status": {"conditions": [
        {"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                       {"type": "PodScheduled", "status": "True"}]}}
    result = apply_strategic_merge_patch(obj, patch)
    assert result["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]


def test_smp_other_keyed_lists_and_directives() -> None:
    svc = {"kind": "Service", "metadata": {"finalizers": ["a"], "ownerReferences": [
        {"uid": "1", "name": "x"}]},
        "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
                 "selector": {"app": "x"}, "type": "ClusterIP", "clusterIP": "10.0.0.1"}}
    patch = {"metadata": {"finalizers": ["b", "a"], "ownerReferences": [{"uid": "2", "name": "y"}],
                          "$deleteFromPrimitiveList/finalizers": ["a"]},
             "spec": {"ports": [{"port": 443, "targetPort": 8443}],
                      "$retainKeys": ["ports", "selector", "type"], "type": "NodePort"}}
    result = apply_strategic_merge_patch(svc, patch)
    assert result["metadata"]["finalizers"] == ["b"]
    assert [o["uid"] for o in result["metadata"]["ownerReferences"]] == ["1", "2"]
    assert result["spec"]["ports"] == [{"port": 80, "name": "http"},
                                       {"port": 443, "name": "https", "targetPort": 8443}]
    assert "clusterIP" not in result["spec"]  # dropped by $retainKeys
    assert result["spec"]["type"] == "NodePort"
    assert not has_dollar_key(result)


def test_smp_volume_mounts_by_mount_path_and_unkeyed_lists_replaced() -> None:
    obj = {"spec": {"containers": [{"name": "c", "args": ["a", "b"],
                                    "volumeMounts": [{"mountPath": "/a", "name": "va"}]}]}}
    patch = {"spec": {"containers": [{"name": "c", "args": ["z"],
                                      "volumeMounts": [{"mountPath": "/b", "name": "vb"}]}]}}
    result = apply_strategic_merge_patch(obj, patch)
    c = result["spec"]["containers"][0]
    assert c["args"] == ["z"]
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/a", "/b"]


def test_smp_rejects_non_object() -> None:
    with pytest.raises(BadPatch):
        apply_strategic_merge_patch(deployment(), ["nope"])


# --------------------------------------------------------------------------- json / merge

def test_json_patch_applies_ops() -> None:
    cm = configmap(a="1")
    result = apply_json_patch(cm, [{"op": "add", "path": "/data/b", "value": "2"},
                                   {"op": "replace", "path": "/data/a", "value": "9"}])
    assert result["data"] == {"a": "9", "b": "2"}
    assert cm["data"] == {"a": "1"}


def test_json_patch_failed_test_leaves_object_unchanged() -> None:
    cm = configmap(a="1")
    snapshot = copy.deepcopy(cm)
    ops = [{"op": "replace", "path": "/data/a", "value": "2"},
           {"op": "test", "path": "/data/a", "value": "1"}]
    with pytest.raises(PatchError) as info:
        apply_json_patch(cm, ops)
    assert "/data/a" in str(info.value)
    assert cm == snapshot


def test_json_patch_bad_path_and_bad_body() -> None:
    with pytest.raises(PatchError):
        apply_json_patch(configmap(a="1"), [{"op": "remove", "path": "/data/missing"}])
    with pytest.raises(PatchError):
        apply_json_patch(configmap(a="1"), [{"op": "add", "path": "/nope/x", "value": 1}])
    with pytest.raises(BadPatch):
        apply_json_patch(configmap(a="1"), {"op": "add", "path": "/data/x", "value": "1"})


def test_merge_patch_null_deletes_and_lists_replace() -> None:
    obj = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"list": [1, 2, 3]}}
    result = apply_merge_patch(obj, {"metadata": {"labels": {"a": None, "c": "3"}},
                                     "spec": {"list": [9]}})
    assert result == {"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"list": [9]}}
    assert obj["metadata"]["labels"] == {"a": "1", "b": "2"}
    with pytest.raises(BadPatch):
        apply_merge_patch(obj, [1])


# --------------------------------------------------------------------------- managedFields

def test_create_owns_every_field_in_fieldsv1_format() -> None:
    managed = managed_fields_for_update([], "kubectl-create", None, deployment(), "apps/v1", NOW)
    assert len(managed) == 1
    entry = managed[0]
    assert {k: entry[k] for k in ("manager", "operation", "apiVersion", "time", "fieldsType")} == {
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1",
        "time": NOW, "fieldsType": "FieldsV1"}
    assert "subresource" not in entry
    f = entry["fieldsV1"]
    assert "f:name" not in f["f:metadata"] and "f:uid" not in f["f:metadata"]
    assert "f:apiVersion" not in f and "f:kind" not in f
    assert f["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    assert f["f:spec"]["f:replicas"] == {}
    item = f["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert item["."] == {} and item["f:image"] == {}
    assert 'k:{"name":"A"}' in item["f:env"]
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in item["f:ports"]


def test_update_moves_ownership_between_managers() -> None:
    cm = configmap(a="1", b="2")
    managed = managed_fields_for_update([], "creator", None, cm, "v1", NOW)
    assert fields_of(managed, "creator") == {"f:data": {".": {}, "f:a": {}, "f:b": {}}}

    edited = apply_merge_patch(cm, {"data": {"a": "changed", "c": "3"}})
    after = managed_fields_for_update(managed, "editor", cm, edited, "v1", LATER)
    assert fields_of(after, "creator") == {"f:data": {".": {}, "f:b": {}}}
    assert fields_of(after, "editor") == {"f:data": {"f:a": {}, "f:c": {}}}
    editor = next(e for e in after if e["manager"] == "editor")
    assert editor["time"] == LATER and editor["operation"] == "Update"

    # No-op: managedFields unchanged.
    assert managed_fields_for_update(after, "other", edited, edited, "v1", LATER) == after

    # Taking the creator's last leaf leaves it the map node it created; a removed field
    # leaves every manager.
    final = apply_merge_patch(edited, {"data": {"b": "x", "c": None}})
    last = managed_fields_for_update(after, "editor", edited, final, "v1", LATER)
    assert fields_of(last, "creator") == {"f:data": {}}
    assert fields_of(last, "editor") == {"f:data": {"f:a": {}, "f:b": {}}}

    # An entry whose set becomes empty is dropped.
    gone = apply_merge_patch(final, {"data": None})
    assert managers(managed_fields_for_update(last, "editor", final, gone, "v1", LATER)) == []


def test_status_subresource_owns_only_status() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    managed = managed_fields_for_update([], "creator", None, pod, "v1", NOW)
    new = copy.deepcopy(pod)
    new["status"] = {"phase": "Running"}
    new["spec"]["containers"][0]["image"] = "ignored"
    after = managed_fields_for_update(managed, "kubelet", pod, new, "v1", LATER, "status")
    kubelet = next(e for e in after if e["manager"] == "kubelet")
    assert kubelet["subresource"] == "status"
    assert list(kubelet["fieldsV1"]) == ["f:status"]
    assert fields_of(after, "creator") == fields_of(managed, "creator")


# --------------------------------------------------------------------------- server-side apply

def test_ssa_create() -> None:
    config = configmap(a="1")
    config["metadata"]["labels"] = {"team": "x"}
    obj, managed = server_side_apply(None, config, "applier", False, [], "v1", NOW)
    assert obj == config and obj is not config
    assert managed == [{
        "manager": "applier", "operation": "Apply", "apiVersion": "v1", "time": NOW,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:team": {}}}},
    }]


def _live_deployment() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    live = deployment()
    return live, managed_fields_for_update([], "kubectl-create", None, live, "apps/v1", NOW)


def test_ssa_conflict_with_other_manager() -> None:
    live, managed = _live_deployment()
    snapshot = (copy.deepcopy(live), copy.deepcopy(managed))
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 3}}
    with pytest.raises(ApplyConflict) as info:
        server_side_apply(live, config, "ssa", False, managed, "apps/v1", LATER)
    err = info.value
    assert err.conflicts == [("kubectl-create", ".spec.replicas")]
    assert str(err) == ('Apply failed with 1 conflict: conflict with "kubectl-create" '
                        "using apps/v1: .spec.replicas")
    assert err.causes == [{"reason": "FieldManagerConflict",
                           "message": 'conflict with "kubectl-create" using apps/v1',
                           "field": ".spec.replicas"}]
    assert (live, managed) == snapshot


def test_ssa_conflict_message_lists_several_paths() -> None:
    live, managed = _live_deployment()
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 3, "template": {"spec": {"containers": [
                  {"name": "app", "image": "app:9"}]}}}}
    with pytest.raises(ApplyConflict) as info:
        server_side_apply(live, config, "ssa", False, managed, "apps/v1", LATER)
    assert str(info.value) == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-create" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="app"].image')


def test_ssa_force_moves_ownership() -> None:
    live, managed = _live_deployment()
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 3}}
    obj, after = server_side_apply(live, config, "ssa", True, managed, "apps/v1", LATER)
    assert obj["spec"]["replicas"] == 3
    assert obj["metadata"]["uid"] == "u-1" and obj["metadata"]["resourceVersion"] == "10"
    assert containers(obj) == containers(live)
    assert fields_of(after, "ssa", "Apply") == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields_of(after, "kubectl-create")["f:spec"]
    assert managers(after)[0] == ("ssa", "Apply")  # Apply entries sort before Update ones


def test_ssa_removes_fields_the_applier_dropped() -> None:
    first = configmap(a="1", b="2")
    obj, managed = server_side_apply(None, first, "applier", False, [], "v1", NOW)
    obj["metadata"]["uid"] = "u-9"
    obj2, managed2 = server_side_apply(obj, configmap(a="1"), "applier", False, managed,
                                       "v1", LATER)
    assert obj2["data"] == {"a": "1"}
    assert obj2["metadata"]["uid"] == "u-9"
    assert fields_of(managed2, "applier") == {"f:data": {"f:a": {}}}
    assert managed2[0]["time"] == LATER


def test_ssa_keyed_list_merge_and_item_removal() -> None:
    base = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}
    obj, managed = server_side_apply(None, base, "x", False, [], "apps/v1", NOW)
    # another applier adds its own container: merged by key, no conflict
    other = copy.deepcopy(base)
    other["spec"]["template"]["spec"]["containers"] = [{"name": "c", "image": "c:1"}]
    obj, managed = server_side_apply(obj, other, "y", False, managed, "apps/v1", NOW)
    assert [c["name"] for c in containers(obj)] == ["a", "b", "c"]
    # x drops container b: it goes, c (owned by y) stays
    mine = copy.deepcopy(base)
    mine["spec"]["template"]["spec"]["containers"] = [{"name": "a", "image": "a:1"}]
    obj, managed = server_side_apply(obj, mine, "x", False, managed, "apps/v1", LATER)
    assert [c["name"] for c in containers(obj)] == ["a", "c"]


def test_ssa_co_ownership_is_kept() -> None:
    obj, managed = server_side_apply(None, configmap(a="1", b="2"), "one", False, [], "v1", NOW)
    # Same value from a second applier: no conflict, both own .data.a
    obj, managed = server_side_apply(obj, configmap(a="1"), "two", False, managed, "v1", LATER)
    assert fields_of(managed, "one") == {"f:data": {"f:a": {}, "f:b": {}}}
    assert fields_of(managed, "two") == {"f:data": {"f:a": {}}}
    # The first applier gives .data.a up: the value stays because "two" still owns it.
    obj, managed = server_side_apply(obj, configmap(b="2"), "one", False, managed, "v1", LATER)
    assert obj["data"] == {"a": "1", "b": "2"}
    # A different value from "one" now conflicts with "two" (an applier: no apiVersion shown).
    with pytest.raises(ApplyConflict) as info:
        server_side_apply(obj, configmap(a="5", b="2"), "one", False, managed, "v1", LATER)
    assert info.value.conflicts == [("two", ".data.a")]
    assert str(info.value) == 'Apply failed with 1 conflict: conflict with "two": .data.a'


def test_ssa_noop_keeps_object_and_time() -> None:
    obj, managed = server_side_apply(None, configmap(a="1"), "one", False, [], "v1", NOW)
    obj2, managed2 = server_side_apply(obj, configmap(a="1"), "one", False, managed, "v1", LATER)
    assert obj2 == obj
    assert managed2 == managed


def test_ssa_result_is_json_serialisable_and_inputs_untouched() -> None:
    live, managed = _live_deployment()
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web",
              "labels": {"extra": "1"}}, "spec": {"replicas": 1}}
    frozen = json.dumps([live, managed, config], sort_keys=True)
    obj, after = server_side_apply(live, config, "ssa", False, managed, "apps/v1", LATER)
    assert json.dumps([live, managed, config], sort_keys=True) == frozen
    assert obj["metadata"]["labels"] == {"app": "web", "extra": "1"}
    # replicas co-owned (same value), label owned by ssa only
    assert fields_of(after, "ssa") == {"f:metadata": {"f:labels": {"f:extra": {}}},
                                       "f:spec": {"f:replicas": {}}}
    assert "f:replicas" in fields_of(after, "kubectl-create")["f:spec"]
    json.dumps([obj, after])


def test_finalizers_are_a_set_in_fieldsv1() -> None:
    config = configmap(a="1")
    config["metadata"]["finalizers"] = ["example.com/x"]
    _, managed = server_side_apply(None, config, "applier", False, [], "v1", NOW)
    assert fields_of(managed, "applier")["f:metadata"] == {
        "f:finalizers": {'v:"example.com/x"': {}}}
