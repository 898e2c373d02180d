"""The extravars contract of one reconcile (spec §2, `make_parameters`), key by key, and the
event filters of the operator (spec §4): the primary watch's predicates, the dependent
predicate and the label selector of a watch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from election_operator.operator import (
    dependent_update_matters,
    label_selector_string,
    passes_predicates,
)
from election_operator.reconciler import make_parameters, var_prefix
from election_operator.watches import Finalizer, Watch

SPEC: dict[str, Any] = {
    "size": 3,
    "sizeK8sBuckets": 8,
    "egressIPs": ["10.0.0.1"],
    "ThisShouldHaveUnderscores": True,
    "nestedConfig": {"innerKey": "x", "listOfThings": [{"itemName": "a", "URLPath": "/p"}]},
    "alreadySnake_key": None,
}

CR: dict[str, Any] = {
    "apiVersion": "cache.my-example.com/v1alpha1",
    "kind": "Memcached",
    "metadata": {"name": "sample", "namespace": "team-a", "uid": "u-1", "generation": 2,
                 "labels": {"app": "memcached"}},
    "spec": SPEC,
    "status": {"conditions": []},
}

# The snake_cased spec of CR, written out by hand from the Go rules (nested keys too, values
# untouched).
SNAKED_SPEC: dict[str, Any] = {
    "size": 3,
    "size_k8s_buckets": 8,
    "egress_ips": ["10.0.0.1"],
    "_this_should_have_underscores": True,
    "nested_config": {"inner_key": "x", "list_of_things": [{"item_name": "a", "url_path": "/p"}]},
    "already_snake_key": None,
}

META = {"name": "sample", "namespace": "team-a"}


def watch(**kw: Any) -> Watch:
    kw.setdefault("group", "cache.my-example.com")
    return Watch(version="v1alpha1", kind=kw.pop("kind", "Memcached"), role="/roles/memcached",
                 **kw)


def test_sample_reconcile_extravars_equal_the_contract_key_by_key() -> None:
    cr = copy.deepcopy(CR)
    params = make_parameters(watch(), cr)
    expected = {
        **SNAKED_SPEC,
        "ansible_operator_meta": META,
        "_cache_my_example_com_memcached": CR,
        "_cache_my_example_com_memcached_spec": SPEC,
    }
    assert sorted(params) == sorted(expected)
    for key, value in expected.items():
        assert params[key] == value, key
    assert cr == CR, "the object must not be changed"
    # The extravars are JSON data of their own: changing them does not change the object.
    params["_cache_my_example_com_memcached"]["spec"]["size"] = 99
    assert cr["spec"]["size"] == 3


def test_watch_vars_override_spec_keys_and_finalizer_vars_apply_to_finalizer_runs() -> None:
    w = watch(vars={"size": 5, "from_watch": "w", "cleanup": False},
              finalizer=Finalizer(name="cache.example.com/finalizer",
                                  vars={"cleanup": True, "from_finalizer": 1}))
    normal = make_parameters(w, copy.deepcopy(CR))
    assert normal["size"] == 5  # watch vars win over the spec key
    assert normal["_cache_my_example_com_memcached_spec"]["size"] == 3  # the raw spec does not
    assert normal["from_watch"] == "w"
    assert normal["cleanup"] is False
    assert "from_finalizer" not in normal

    final = make_parameters(w, copy.deepcopy(CR), finalizer_run=True)
    assert final["cleanup"] is True  # finalizer vars on top of the watch vars
    assert final["from_finalizer"] == 1
    assert final["size"] == 5
    assert sorted(final) == sorted([*normal, "from_finalizer"])


def test_snake_case_parameters_false_keeps_the_keys() -> None:
    params = make_parameters(watch(snake_case_parameters=False), copy.deepcopy(CR))
    for key, value in SPEC.items():
        assert params[key] == value
    assert "size_k8s_buckets" not in params and "nested_config" not in params
    assert params["nestedConfig"]["listOfThings"][0] == {"itemName": "a", "URLPath": "/p"}


def test_mark_unsafe_wraps_every_string_of_the_spec_keys_and_the_object() -> None:
    params = make_parameters(watch(mark_unsafe=True), copy.deepcopy(CR))
    assert params["size"] == 3  # non-strings are left alone
    assert params["egress_ips"] == [{"__ansible_unsafe": "10.0.0.1"}]
    assert params["nested_config"] == {
        "inner_key": {"__ansible_unsafe": "x"},
        "list_of_things": [{"item_name": {"__ansible_unsafe": "a"},
                            "url_path": {"__ansible_unsafe": "/p"}}]}
    whole = params["_cache_my_example_com_memcached"]
    assert whole["metadata"]["name"] == {"__ansible_unsafe": "sample"}
    assert whole["kind"] == {"__ansible_unsafe": "Memcached"}
    assert whole["metadata"]["generation"] == 2
    # Not wrapped: ansible_operator_meta, and the raw spec (as ansible-operator does).
    assert params["ansible_operator_meta"] == META
    assert params["_cache_my_example_com_memcached_spec"] == SPEC


def test_core_group_kind_and_an_object_without_spec() -> None:
    w = Watch(group="", version="v1", kind="Secret", role="/roles/secret")
    assert var_prefix(w) == "__secret"
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"k": "dg=="},
              "metadata": {"name": "s", "namespace": "default"}}
    params = make_parameters(w, secret)
    assert params == {"ansible_operator_meta": {"name": "s", "namespace": "default"},
                      "__secret": secret, "__secret_spec": {}}


def test_dashes_and_dots_of_group_and_kind_become_underscores() -> None:
    w = Watch(group="my-app.example.com", version="v1", kind="Web-Site", role="/r")
    assert var_prefix(w) == "_my_app_example_com_web_site"


# ------------------------------------------------------------------ predicates


def obj(generation: int | None = 1, **md: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "m", "namespace": "ns", "resourceVersion": "1", **md}
    if generation is not None:
        meta["generation"] = generation
    return {"apiVersion": "cache.example.com/v1", "kind": "Memcached", "metadata": meta,
            "spec": {"size": 1}}


W = Watch(group="cache.example.com", version="v1", kind="Memcached", role="/r")
W_ANN = Watch(group="cache.example.com", version="v1", kind="Memcached", role="/r",
              watch_annotations_changes=True)


def test_added_and_deleted_always_pass() -> None:
    assert passes_predicates(W, "ADDED", obj(), None)
    assert passes_predicates(W, "DELETED", obj(), obj())
    assert passes_predicates(W, "MODIFIED", obj(), None)


def test_a_status_only_change_does_not_pass_a_generation_change_does() -> None:
    old = obj()
    status_only = obj(resourceVersion="2")
    status_only["status"] = {"conditions": [{"type": "Running", "status": "True"}]}
    assert not passes_predicates(W, "MODIFIED", status_only, old)
    assert not passes_predicates(W, "MODIFIED", obj(labels={"a": "b"}), old)
    spec_change = obj(generation=2, resourceVersion="3")
    assert passes_predicates(W, "MODIFIED", spec_change, old)


def test_objects_without_generation_pass_every_update() -> None:
    # Secrets and ConfigMaps have no generation: NoGenerationPredicate lets them through.
    assert passes_predicates(W, "MODIFIED", obj(generation=None, resourceVersion="2"),
                             obj(generation=None))
    assert passes_predicates(W, "MODIFIED", obj(generation=0, resourceVersion="2"),
                             obj(generation=0))


def test_deletion_start_passes() -> None:
    deleting = obj(deletionTimestamp="2024-01-01T00:00:00Z", finalizers=["x/y"])
    assert passes_predicates(W, "MODIFIED", deleting, obj(finalizers=["x/y"]))


def test_annotation_changes_pass_only_with_watch_annotations_changes() -> None:
    old, new = obj(), obj(annotations={"a": "1"}, resourceVersion="2")
    assert not passes_predicates(W, "MODIFIED", new, old)
    assert passes_predicates(W_ANN, "MODIFIED", new, old)
    assert not passes_predicates(W_ANN, "MODIFIED", obj(labels={"l": "1"}), old)


def test_dependent_predicate() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"size": "3"},
          "metadata": {"name": "c", "namespace": "ns", "resourceVersion": "5",
                       "managedFields": [{"manager": "a", "time": "2024-01-01T00:00:00Z"}]}}
    assert dependent_update_matters(cm, None)
    noise = copy.deepcopy(cm)
    noise["metadata"]["resourceVersion"] = "6"
    noise["metadata"]["managedFields"][0]["time"] = "2024-01-02T00:00:00Z"
    noise["status"] = {"phase": "x"}
    assert not dependent_update_matters(noise, cm)
    edited = copy.deepcopy(cm)
    edited["data"]["size"] = "4"
    assert dependent_update_matters(edited, cm)
    relabeled = copy.deepcopy(cm)
    relabeled["metadata"]["labels"] = {"a": "b"}
    assert dependent_update_matters(relabeled, cm)


@pytest.mark.parametrize(("selector", "expected"), [
    (None, None),
    ({}, None),
    ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "db"]}]},
     "tier in (web,db)"),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]},
     "tier notin (x)"),
    ({"matchLabels": {"app": "m"},
      "matchExpressions": [{"key": "canary", "operator": "Exists"},
                           {"key": "legacy", "operator": "DoesNotExist"}]},
     "app=m,canary,!legacy"),
])
def test_label_selector_string(selector: dict[str, Any] | None, expected: str | None) -> None:
    assert label_selector_string(selector) == expected
