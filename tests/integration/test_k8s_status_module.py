"""The module `election.kubernetes.k8s_status`, run the way users run it: `ansible-playbook` in a
subprocess (cwd = the repository, so ansible.cfg finds the collection), KUBECONFIG pointing at
kubesim, against a Memcached CRD with the status subresource.

Each playbook registers the module's results (failures kept with `ignore_errors`) and writes
them to a JSON file with `copy`. The kubesim audit log tells what the module sent: its
User-Agent is `election.kubernetes/k8s_status`, and dry runs are not writes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ansible_harness import Playbooks, module_task
from helpers import until
from kubernetes import client

from kubesim import KubeSim

NS = "default"
UA = "election.kubernetes/k8s_status"
GROUP, VERSION, PLURAL = "cache.example.com", "v1alpha1", "memcacheds"
API_VERSION = f"{GROUP}/{VERSION}"
OLD = "2020-01-02T03:04:05Z"


def memcached_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "memcached", "kind": "Memcached",
                      "shortNames": ["mc"]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                    "status": {"type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}},
                "subresources": {"status": {}},
            }],
        },
    }


def gadget_crd() -> dict[str, Any]:
    """A kind without the status subresource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }],
        },
    }


class Cluster:
    """Direct access to kubesim for setting up and checking objects (its own User-Agent)."""

    def __init__(self, sim: KubeSim, tmp_path: Path) -> None:
        from kubernetes import config

        path = sim.write_kubeconfig(tmp_path / "kubeconfig-test")
        self.api = config.new_client_from_config(config_file=str(path))
        self.api.user_agent = "test-setup"
        self.custom = client.CustomObjectsApi(self.api)

    def crd(self, body: dict[str, Any]) -> None:
        ext = client.ApiextensionsV1Api(self.api)
        ext.create_custom_resource_definition(body=body)

        def established() -> bool:
            got = ext.read_custom_resource_definition(body["metadata"]["name"])
            return any(c.type == "Established" and c.status == "True"
                       for c in (got.status.conditions or []))
        until(established, 5, f"CRD {body['metadata']['name']} established")

    def create(self, name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        obj = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL,
            {"apiVersion": API_VERSION, "kind": "Memcached", "metadata": {"name": name},
             "spec": {"size": 3}})
        if status is not None:
            obj = self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, NS, PLURAL, name, {"status": status})
        return obj

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)

    def close(self) -> None:
        self.api.close()


class Ansible(Playbooks):
    """Playbooks of k8s_status tasks against kubesim."""

    @staticmethod
    def task(register: str, name: str | None = "mc", *, check_mode: bool = False,
             **params: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"api_version": API_VERSION, "kind": "Memcached", "name": name,
                                "namespace": NS}
        args.update(params)
        return module_task("election.kubernetes.k8s_status", register, args,
                           check_mode=check_mode)


@pytest.fixture
def cluster(sim: KubeSim, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(sim, tmp_path)
    c.crd(memcached_crd())
    yield c
    c.close()


@pytest.fixture
def ansible(sim: KubeSim, tmp_path: Path) -> Iterator[Ansible]:
    a = Ansible(sim, tmp_path)
    yield a
    a.close()


def module_writes(sim: KubeSim, since: int = 0) -> list[Any]:
    """The module's writes (dry runs excluded), failed ones included."""
    return sim.audit.entries(since=since, writes_only=True, identity=UA)


def last_seq(sim: KubeSim) -> int:
    entries = sim.audit.entries()
    return entries[-1].seq if entries else 0


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("failed"), result.get("msg", result)
    return result


def cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    found = [c for c in status.get("conditions", []) if c.get("type") == ctype]
    assert len(found) == 1, f"one {ctype} condition expected: {status}"
    return found[0]


def age(stamp: str) -> float:
    return (datetime.now(UTC) - datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
            .replace(tzinfo=UTC)).total_seconds()


# ---------------------------------------------------------------- status keys

def test_sets_keys_keeps_others_and_a_second_run_changes_nothing(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    cluster.create("mc", status={"phase": "Pending", "keep": {"a": 1}})
    before = cluster.get("mc")
    r = ansible.run([
        ansible.task("first", status={"nodes": ["mc-b", "mc-a"], "keep": {"b": 2}}),
        ansible.task("again", status={"nodes": ["mc-b", "mc-a"], "keep": {"b": 2}}),
        ansible.task("subset", status={"nodes": ["mc-a"], "phase": "Pending"}),
    ])
    first = ok(r["first"])
    assert first["changed"] is True
    want = {"phase": "Pending", "keep": {"a": 1, "b": 2}, "nodes": ["mc-b", "mc-a"]}
    assert first["result"]["status"] == want, "given keys set, others kept, objects merged"
    assert first["result"]["metadata"]["name"] == "mc"
    stored = cluster.get("mc")
    assert stored["status"] == want
    assert stored["spec"] == before["spec"], "the spec is never touched"
    assert ok(r["again"])["changed"] is False, "same status again: no change"
    assert ok(r["subset"])["changed"] is False, "a sub-list of the current list is held"
    assert r["again"]["result"]["status"] == want
    writes = module_writes(sim)
    assert [(w.verb, w.subresource, w.code) for w in writes] == [("patch", "status", 200)], \
        "exactly one write, through the status subresource"


def test_null_removes_a_key(ansible: Ansible, cluster: Cluster) -> None:
    cluster.create("mc", status={"phase": "Pending", "gone": "x"})
    r = ansible.run([ansible.task("rm", status={"gone": None}),
                     ansible.task("again", status={"gone": None})])
    assert ok(r["rm"])["changed"] is True
    assert cluster.get("mc")["status"] == {"phase": "Pending"}
    assert ok(r["again"])["changed"] is False


# ---------------------------------------------------------------- conditions

def test_conditions_are_added_replaced_by_type_and_stamped(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    custom = {"type": "Custom", "status": "True", "reason": "Set", "lastTransitionTime": OLD,
              "observedGeneration": 1}
    cluster.create("mc", status={"conditions": [
        custom,
        {"type": "Ready", "status": "True", "reason": "Up", "message": "up",
         "lastTransitionTime": OLD}]})
    r = ansible.run([
        ansible.task("add", conditions=[
            {"type": "Available", "status": True, "reason": "Ready", "message": "m"}]),
        ansible.task("same", conditions=[
            {"type": "Available", "status": "True", "reason": "Ready", "message": "m"}]),
        ansible.task("message", conditions=[
            {"type": "Ready", "status": "True", "reason": "Up", "message": "still up"}]),
        ansible.task("flip", conditions=[
            {"type": "Ready", "status": False, "reason": "Down", "message": "down"}]),
        ansible.task("explicit", conditions=[
            {"type": "Pinned", "status": "Unknown", "lastTransitionTime": OLD}]),
    ])
    add = ok(r["add"])
    assert add["changed"] is True
    available = cond(add["result"]["status"], "Available")
    assert available["status"] == "True", "a boolean status is written as the string True"
    assert age(available["lastTransitionTime"]) < 120, "a new condition is stamped now"
    assert ok(r["same"])["changed"] is False, "an unchanged condition is not rewritten"
    assert cond(r["same"]["result"]["status"], "Available") == available

    message = ok(r["message"])
    assert message["changed"] is True
    ready = cond(message["result"]["status"], "Ready")
    assert ready["message"] == "still up"
    assert ready["lastTransitionTime"] == OLD, "same status: lastTransitionTime kept"

    flip = ok(r["flip"])
    ready = cond(flip["result"]["status"], "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Down")
    assert ready["lastTransitionTime"] != OLD and age(ready["lastTransitionTime"]) < 120, \
        "a status change stamps a new lastTransitionTime"
    assert cond(r["explicit"]["result"]["status"], "Pinned")["lastTransitionTime"] == OLD

    final = cluster.get("mc")["status"]["conditions"]
    assert [c["type"] for c in final] == ["Custom", "Ready", "Available", "Pinned"], \
        "replaced in place, new ones appended"
    assert final[0] == custom, "conditions of other types are left as they are"
    assert len(module_writes(sim)) == 4


# ---------------------------------------------------------------- replace modes

def test_replace_sets_exactly_the_given_status(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    cluster.create("mc", status={"phase": "Pending", "nodes": ["a"], "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": OLD}]})
    r = ansible.run([
        ansible.task("replace", status={"phase": "Done"}, replace=True,
                     conditions=[{"type": "Ready", "status": "True", "reason": "Fine"}]),
        ansible.task("again", status={"phase": "Done"}, force=True,
                     conditions=[{"type": "Ready", "status": "True", "reason": "Fine"}]),
    ])
    rep = ok(r["replace"])
    assert rep["changed"] is True
    assert isinstance(rep["result"], dict), "result is the object (not a 1-tuple)"
    want = {"phase": "Done", "conditions": [
        {"type": "Ready", "status": "True", "reason": "Fine", "lastTransitionTime": OLD}]}
    assert rep["result"]["status"] == want
    assert cluster.get("mc")["status"] == want
    assert ok(r["again"])["changed"] is False, "force is replace's alias; same status again"
    assert [(w.verb, w.subresource, w.code) for w in module_writes(sim)] == \
        [("update", "status", 200)]


def test_replace_lists(ansible: Ansible, cluster: Cluster) -> None:
    cluster.create("mc", status={"nodes": ["a", "b", "c"], "phase": "Up"})
    r = ansible.run([
        ansible.task("subset", status={"nodes": ["a", "b"]}),
        ansible.task("exact", status={"nodes": ["a", "b"]}, replace_lists=True),
        ansible.task("again", status={"nodes": ["a", "b"]}, replace_lists=True),
    ])
    assert ok(r["subset"])["changed"] is False
    assert r["subset"]["result"]["status"]["nodes"] == ["a", "b", "c"]
    assert ok(r["exact"])["changed"] is True
    assert cluster.get("mc")["status"] == {"nodes": ["a", "b"], "phase": "Up"}
    assert ok(r["again"])["changed"] is False


# ---------------------------------------------------------------- check mode

def test_check_mode_writes_nothing_and_reports_the_change(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    cluster.create("mc", status={"phase": "Pending"})
    before = cluster.get("mc")
    r = ansible.run([
        ansible.task("merge", status={"phase": "Up"}, check_mode=True),
        ansible.task("replace", status={"x": 1}, replace=True, check_mode=True),
        ansible.task("cond", conditions=[{"type": "Ready", "status": "True"}],
                     check_mode=True),
        ansible.task("same", status={"phase": "Pending"}, check_mode=True),
    ])
    assert ok(r["merge"])["changed"] is True
    assert r["merge"]["result"]["status"] == {"phase": "Up"}, "the status the write would give"
    assert ok(r["replace"])["changed"] is True
    assert r["replace"]["result"]["status"] == {"x": 1}
    assert ok(r["cond"])["changed"] is True
    assert cond(r["cond"]["result"]["status"], "Ready")["status"] == "True"
    assert ok(r["same"])["changed"] is False
    assert module_writes(sim) == [], "check mode stores nothing"
    dry = [e for e in sim.audit.entries(identity=UA) if e.dry_run]
    assert len(dry) == 3 and all(e.subresource == "status" for e in dry)
    after = cluster.get("mc")
    assert after["status"] == before["status"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


# ---------------------------------------------------------------- conflicts

def test_a_concurrent_status_write_is_merged_after_a_409(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    """The module's first PATCH is held for 1 s (after it read the object); meanwhile another
    client writes the status. The PATCH carries the old resourceVersion and gets 409; the
    module reads again, merges again, and its second PATCH succeeds, keeping both writes."""
    cluster.create("mc", status={"phase": "Pending"})
    fault = sim.faults.add({"identity": UA, "action": "latency", "seconds": 1.0,
                            "verbs": ["patch"], "resources": [PLURAL], "remaining": 1})
    started = ansible.start([ansible.task("set", status={"nodes": ["mc-1"]})])
    # remaining drops to 0 when the module's PATCH reaches the server and is held
    until(lambda: any(f["id"] == fault.id and f["remaining"] == 0 for f in sim.faults.list()),
          60, "the module's PATCH to arrive")
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "mc", {"status": {"other": "written meanwhile"}})
    r = started.result()
    assert ok(r["set"])["changed"] is True
    want = {"phase": "Pending", "other": "written meanwhile", "nodes": ["mc-1"]}
    assert r["set"]["result"]["status"] == want
    assert cluster.get("mc")["status"] == want
    patches = [(w.verb, w.code) for w in module_writes(sim)]
    assert patches == [("patch", 409), ("patch", 200)], "one conflict, then success"
    reads = [e for e in sim.audit.entries(identity=UA)
             if e.verb == "get" and e.resource == PLURAL]
    assert len(reads) == 2, "the object is read again after the conflict"


def test_gives_up_after_repeated_conflicts(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    cluster.create("mc", status={"phase": "Pending"})
    sim.faults.add({"identity": UA, "action": "error", "code": 409, "verbs": ["patch"],
                    "resources": [PLURAL]})
    r = ansible.run([ansible.task("set", status={"phase": "Up"})])["set"]
    assert r["failed"]
    assert r["msg"] == ('cannot write the status of memcacheds.cache.example.com "mc" in '
                        'namespace default: it was changed by another client during each of '
                        '5 attempts (409 Conflict every time)')
    assert len(module_writes(sim)) == 5
    assert cluster.get("mc")["status"] == {"phase": "Pending"}


# ---------------------------------------------------------------- bad input and targets

def test_bad_input_fails_naming_the_field_and_writes_nothing(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    cluster.create("mc", status={"phase": "Pending"})
    since = last_seq(sim)
    good = {"type": "Ready", "status": "True"}
    r = ansible.run([
        ansible.task("reason", conditions=[good, {"type": "A", "status": "True",
                                                  "reason": "Not camel"}]),
        ansible.task("status", conditions=[{"type": "A", "status": "Maybe"}]),
        ansible.task("key", conditions=[{"type": "A", "status": "True", "colour": "red"}]),
        ansible.task("time", conditions=[{"type": "A", "status": "True",
                                          "lastTransitionTime": "yesterday"}]),
        ansible.task("notype", conditions=[{"status": "True"}]),
        ansible.task("both", status={"conditions": [good]}, conditions=[good]),
        ansible.task("dup", conditions=[good, good]),
        ansible.task("neither"),
    ])
    msgs = {k: v.get("msg") for k, v in r.items()}
    assert all(v.get("failed") for v in r.values()), msgs
    assert msgs["reason"] == ("conditions[1].reason must be a single CamelCase word (letters "
                              "only, ^(?:[A-Z]*[a-z]*)+$), got 'Not camel'")
    assert msgs["status"] == ("conditions[0].status must be one of True, False, Unknown (or a "
                              "boolean), got the string 'Maybe'")
    assert msgs["key"] == ("conditions[0]: unknown key colour; a condition takes type, status, "
                           "reason, message, lastHeartbeatTime, lastTransitionTime")
    assert msgs["time"] == ("conditions[0].lastTransitionTime must be an RFC 3339 date-time "
                            "such as 2024-01-02T03:04:05Z, got the string 'yesterday'")
    assert msgs["notype"] == "conditions[0].type is required"
    assert msgs["both"] == ("conditions are given both in status.conditions and in the "
                            "conditions option; use one of them")
    assert msgs["dup"] == ("conditions[1].type 'Ready' repeats conditions[0]; give each "
                           "condition type once")
    assert msgs["neither"] == "one of the following is required: status, conditions"
    assert sim.audit.entries(since=since, identity=UA) == [], \
        "bad input is refused before any request"
    assert cluster.get("mc")["status"] == {"phase": "Pending"}


def test_targets_that_cannot_take_a_status(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    cluster.crd(gadget_crd())
    cluster.custom.create_namespaced_custom_object(
        "example.com", "v1", NS, "gadgets",
        {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}})
    cluster.create("mc")
    r = ansible.run([
        ansible.task("gadget", name="g", api_version="example.com/v1", kind="Gadget",
                     status={"a": 1}),
        ansible.task("configmap", name="cm", api_version="v1", kind="ConfigMap",
                     status={"a": 1}),
        ansible.task("unknown", kind="Memcache", status={"a": 1}),
        ansible.task("missing", name="nope", status={"a": 1}),
        ansible.task("nonamespace", namespace=None, status={"a": 1}),
        ansible.task("shortname", kind="mc", status={"a": 1}),
    ])
    msgs = {k: v.get("msg") for k, v in r.items()}
    assert msgs["gadget"] == ("Gadget (example.com/v1, resource gadgets) has no status "
                              "subresource, so its status cannot be set (for a custom "
                              "resource, enable subresources.status in its "
                              "CustomResourceDefinition)")
    assert msgs["configmap"].startswith("ConfigMap (v1, resource configmaps) has no status "
                                        "subresource"), msgs["configmap"]
    assert msgs["unknown"] == (
        "the API has no kind Memcache in api_version cache.example.com/v1alpha1 (looked up "
        "by kind, plural name, singular name and short names): check kind and api_version, "
        "and that the CustomResourceDefinition is installed")
    assert msgs["missing"] == ('cannot get memcacheds.cache.example.com "nope" in namespace '
                               'default: 404 Not Found: memcacheds.cache.example.com "nope" '
                               'not found')
    assert msgs["nonamespace"] == ("namespace is required: Memcached "
                                   "(cache.example.com/v1alpha1) is namespaced")
    assert ok(r["shortname"])["changed"] is True, "a short name finds the kind too"
    assert cluster.get("mc")["status"] == {"a": 1}
    assert [w.name for w in module_writes(sim)] == ["mc"]


def test_fields_the_schema_prunes_are_warned_about(
        ansible: Ansible, cluster: Cluster) -> None:
    strict = gadget_crd()
    strict["metadata"]["name"] = "strictgadgets.example.com"
    strict["spec"]["names"] = {"plural": "strictgadgets", "singular": "strictgadget",
                               "kind": "StrictGadget"}
    strict["spec"]["versions"][0].update(
        schema={"openAPIV3Schema": {"type": "object", "properties": {
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}}},
        subresources={"status": {}})
    cluster.crd(strict)
    cluster.custom.create_namespaced_custom_object(
        "example.com", "v1", NS, "strictgadgets",
        {"apiVersion": "example.com/v1", "kind": "StrictGadget", "metadata": {"name": "s"}})
    r = ansible.run([ansible.task("s", name="s", api_version="example.com/v1",
                                  kind="StrictGadget", status={"phase": "Up", "bogus": 1})])["s"]
    assert ok(r)["changed"] is True
    assert r["result"]["status"] == {"phase": "Up"}
    assert any("did not store status key(s) bogus" in w for w in r.get("warnings", [])), r


def test_unreachable_api_is_reported(ansible: Ansible) -> None:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = f"http://127.0.0.1:{port}"
    r = ansible.run([ansible.task("down", status={"a": 1}, host=host)])["down"]
    assert r["failed"]
    assert r["msg"] == (f"cannot get the API discovery documents: the Kubernetes API at {host} "
                        f"is unreachable (connection refused)")


def test_diff_mode_shows_the_status(ansible: Ansible, cluster: Cluster) -> None:
    cluster.create("mc", status={"phase": "Pending"})
    task = ansible.task("d", status={"phase": "Up"})
    task["diff"] = True
    r = ansible.run([task])["d"]
    assert r["diff"] == {"before": {"status": {"phase": "Pending"}},
                         "after": {"status": {"phase": "Up"}}}


def test_two_playbooks_writing_conditions_at_once_lose_nothing(
        ansible: Ansible, cluster: Cluster, sim: KubeSim) -> None:
    """Several concurrent writers of different conditions: every condition ends up stored
    (each write carries the resourceVersion it read, and conflicts are merged again)."""
    cluster.create("mc", status={})
    types = ["Alpha", "Beta", "Gamma"]
    runs = [ansible.start([ansible.task("c", conditions=[{"type": t, "status": "True"}])])
            for t in types]
    results = [run.result()["c"] for run in runs]  # they run in parallel meanwhile
    assert all(ok(r)["changed"] for r in results)
    stored = cluster.get("mc")["status"]["conditions"]
    assert sorted(c["type"] for c in stored) == types
