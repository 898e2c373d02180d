"""The memcached role (roles/memcached) and the deploy/ files it works with, on kubesim.

- The role alone, run by ansible-playbook as a user would outside an operator: it creates the
  Deployment named after the custom resource (labels, owner, size, image), writes
  `status.nodes`, is idempotent, writes nothing in check mode, and refuses bad variables with
  the argument_specs message before any request.
- Under election-operator (one replica, lease election): a spec that got past the CRD's
  schema (here: the CRD installed without it, as a cluster whose CRD predates the schema
  would be) gets a Failure condition carrying the role's message, and nothing is deleted;
  the finalizer variant (deploy/watches-finalizer.yaml) deletes the Deployment itself.
"""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_harness import BIN, INVENTORY, ROOT
from helpers import until
from kubernetes import client, config, utils
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from operator_harness import Replica

from kubesim import KubeSim

NS = "default"
DEPLOY = ROOT / "deploy"
GROUP, VERSION, KIND, PLURAL = "cache.example.com", "v1alpha1", "Memcached", "memcacheds"
COLLECTIONS = str(ROOT / ".venv" / "collections")


def crd(schema: bool = True) -> dict[str, Any]:
    """deploy/crd.yaml; without `schema`, spec and status preserve anything (no checks)."""
    doc = yaml.safe_load((DEPLOY / "crd.yaml").read_text())
    if not schema:
        doc = copy.deepcopy(doc)
        doc["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": {
            "type": "object", "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}
    return doc


class Memcached:
    """The test's view of kubesim with the Memcached CRD installed."""

    def __init__(self, sim: KubeSim, tmp_path: Path, schema: bool = True) -> None:
        self.sim, self.tmp = sim, tmp_path
        self.kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        self.api = config.new_client_from_config(config_file=str(self.kubeconfig))
        self.dyn = DynamicClient(self.api, cache_file=str(tmp_path / "discovery.json"))
        self.apps = client.AppsV1Api(self.api)
        self.dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                               kind="CustomResourceDefinition").create(body=crd(schema))
        self.crs = until(self._crs, 5, "the Memcached kind in discovery")

    def _crs(self) -> Any:
        try:
            self.dyn.resources.invalidate_cache()
            return self.dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind=KIND)
        except Exception:  # noqa: BLE001 - not served yet
            return None

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.crs.create(namespace=NS, body={
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": name, "namespace": NS}, "spec": spec}).to_dict()

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.crs.patch(namespace=NS, name=name, body={"spec": spec},
                       content_type="application/merge-patch+json")

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return self.crs.get(namespace=NS, name=name).to_dict()
        except Exception as e:  # noqa: BLE001 - the dynamic client's NotFoundError
            if getattr(e, "status", None) == 404:
                return None
            raise

    def condition(self, name: str, ctype: str) -> dict[str, Any] | None:
        cr = self.get(name) or {}
        for c in (cr.get("status") or {}).get("conditions") or []:
            if c.get("type") == ctype:
                return c
        return None

    def deployment(self, name: str) -> client.V1Deployment | None:
        try:
            return self.apps.read_namespaced_deployment(name, NS)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def nodes(self, name: str) -> list[str]:
        return ((self.get(name) or {}).get("status") or {}).get("nodes") or []

    def writes(self, identity: str | None = None, since: int = 0) -> list[Any]:
        """Successful writes that were not dry runs."""
        return [e for e in self.sim.audit.entries(since=since, writes_only=True,
                                                  identity=identity)
                if e.code < 300 and not e.dry_run]

    def last_seq(self) -> int:
        entries = self.sim.audit.entries()
        return entries[-1].seq if entries else 0

    def close(self) -> None:
        self.api.close()


@pytest.fixture
def cache(sim_workloads: KubeSim, tmp_path: Path) -> Iterator[Memcached]:
    m = Memcached(sim_workloads, tmp_path)
    yield m
    m.close()


# --------------------------------------------------------------------------- the role alone

def run_role(m: Memcached, name: str, *, check: bool = False, token: str = "role-alone",
             **variables: Any) -> tuple[int, str, dict[str, int]]:
    """Run election.kubernetes.memcached with ansible-playbook as a user would (vars as
    role parameters); return (exit code, output, recap counts)."""
    d = m.tmp / f"role-{len(list(m.tmp.glob('role-*')))}"
    d.mkdir()
    (d / "inventory").write_text(INVENTORY)
    params = {"ansible_operator_meta": {"name": name, "namespace": NS}, **variables}
    play = [{"name": "memcached", "hosts": "localhost", "gather_facts": False,
             "roles": [{"role": "election.kubernetes.memcached", **params}]}]
    (d / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    kubeconfig = m.sim.write_kubeconfig(d / "kubeconfig", token=token)
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(d), "KUBECONFIG": str(kubeconfig),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(d / "tmp"),
           "ANSIBLE_HOME": str(d / "ansible-home")}
    cmd = [str(BIN / "ansible-playbook"), "-i", str(d / "inventory"), str(d / "play.yml")]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+"
                      r"failed=(\d+)", out)
    counts = ({"ok": int(recap[1]), "changed": int(recap[2]), "failed": int(recap[3])}
              if recap else {})
    return proc.returncode, out, counts


def test_role_creates_the_deployment_and_status_and_is_idempotent(cache: Memcached) -> None:
    cr = cache.create("alone", {"size": 2})
    rc, out, counts = run_role(cache, "alone", size=2, memcached_image="mirror/memcached:1.6")
    assert rc == 0, out
    d = cache.deployment("alone")
    assert d is not None and d.spec.replicas == 2
    assert d.metadata.labels == {"app": "memcached", "memcached_cr": "alone"}
    assert d.spec.selector.match_labels == {"app": "memcached", "memcached_cr": "alone"}
    owner = d.metadata.owner_references
    assert [(o.api_version, o.kind, o.name, o.uid, o.controller, o.block_owner_deletion)
            for o in owner] == [(f"{GROUP}/{VERSION}", KIND, "alone", cr["metadata"]["uid"],
                                 True, True)]
    container = d.spec.template.spec.containers[0]
    assert container.image == "mirror/memcached:1.6"
    assert container.command == ["memcached", "-m=64", "-o", "modern", "-v"]
    assert [p.container_port for p in container.ports] == [11211]

    # The Pods come from kubesim's controllers; status.nodes follows (a run that saw fewer
    # Pods than the size asks for a requeue; run again as the operator would).
    pods = client.CoreV1Api(cache.api)

    def pod_names() -> list[str]:
        return sorted(p.metadata.name for p in pods.list_namespaced_pod(
            NS, label_selector="app=memcached,memcached_cr=alone").items)

    until(lambda: len(pod_names()) == 2, 15, "two memcached Pods")
    rc, out, counts = run_role(cache, "alone", size=2, memcached_image="mirror/memcached:1.6")
    assert rc == 0, out
    assert cache.nodes("alone") == pod_names()

    # A further run changes nothing, and says so. (kubernetes.core's k8s module sends its
    # patch anyway and compares the result; the server sees a no-op.)
    versions = (cache.get("alone")["metadata"]["resourceVersion"],
                cache.deployment("alone").metadata.resource_version)
    rc, out, counts = run_role(cache, "alone", size=2, memcached_image="mirror/memcached:1.6")
    assert rc == 0 and counts["changed"] == 0, out
    assert (cache.get("alone")["metadata"]["resourceVersion"],
            cache.deployment("alone").metadata.resource_version) == versions

    # Check mode reports the change a new size would make and writes nothing.
    seq = cache.last_seq()
    rc, out, counts = run_role(cache, "alone", check=True, size=3,
                               memcached_image="mirror/memcached:1.6")
    assert rc == 0 and counts["changed"] >= 1, out
    assert cache.writes("token:role-alone", since=seq) == []
    assert cache.deployment("alone").spec.replicas == 2


@pytest.mark.parametrize(("variables", "message"), [
    ({"size": "three"}, "argument 'size' is of type"),
    ({"size": [3]}, "argument 'size' is of type"),
    ({"state": "gone"}, "value of state must be one of: present, absent, got: gone"),
    ({"ansible_operator_meta": {"name": "x"}},
     "missing required arguments: namespace found in ansible_operator_meta"),
    ({"size": -1}, "spec.size must be an integer from 0 to 100; got -1"),
])
def test_role_refuses_bad_variables_before_any_write(cache: Memcached, variables: dict[str, Any],
                                                     message: str) -> None:
    cache.create("bad", {"size": 1})
    seq = cache.last_seq()
    rc, out, counts = run_role(cache, "bad", **variables)
    assert rc != 0 and counts.get("failed") == 1, out
    assert message in out, out
    assert cache.sim.audit.entries(since=seq, identity="token:role-alone") == []
    assert cache.deployment("bad") is None


def test_role_state_absent_deletes_the_deployment(cache: Memcached) -> None:
    cache.create("gone", {"size": 1})
    assert run_role(cache, "gone", size=1)[0] == 0
    assert cache.deployment("gone") is not None
    rc, out, counts = run_role(cache, "gone", state="absent")
    assert rc == 0 and counts["changed"] == 1, out
    assert cache.deployment("gone") is None
    rc, out, counts = run_role(cache, "gone", state="absent")
    assert rc == 0 and counts["changed"] == 0, out


def test_role_names_a_missing_custom_resource(cache: Memcached) -> None:
    rc, out, _ = run_role(cache, "nobody", size=1)
    assert rc != 0
    assert "Memcached default/nobody (cache.example.com/v1alpha1) was not found" in out, out
    assert cache.deployment("nobody") is None


# --------------------------------------------------------------------------- under the operator

LEASE_ARGS = ("--leader-elect", "--leader-election-id", "memcached-operator",
              "--leader-election-namespace", NS, "--leader-elect-lease-duration", "4s",
              "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "1s")


def operator(m: Memcached, tmp_path: Path, watches: Path, name: str = "op-a") -> Replica:
    """A replica authenticated as the operator's ServiceAccount, which has only the
    permissions of deploy/role.yaml (and deploy/role_finalizer.yaml for the finalizer
    variant), as deployed."""
    files = ["service_account.yaml", "role.yaml", "role_binding.yaml"]
    if "finalizer" in watches.name:
        files += ["role_finalizer.yaml", "role_binding_finalizer.yaml"]
    utils.create_from_yaml(m.api, yaml_objects=[yaml.safe_load((DEPLOY / f).read_text())
                                                for f in files], namespace=NS)
    m.sim.serviceaccount_token(NS, "memcached-operator", token=f"token-{name}")
    return Replica(m.sim, tmp_path, name, watches, LEASE_ARGS,
                   env={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS, "WATCH_NAMESPACE": NS})


def refused(m: Memcached, replica: Replica) -> list[Any]:
    return [(e.verb, e.resource, e.subresource, e.code)
            for e in m.sim.audit.entries(identity=replica.identity) if e.code in (401, 403)]


def successful(m: Memcached, name: str, size: int) -> bool:
    c = m.condition(name, "Successful")
    d = m.deployment(name)
    return bool(c and c["status"] == "True" and d and d.spec.replicas == size
                and len(m.nodes(name)) == size)


def test_spec_past_the_schema_fails_with_the_role_message_and_deletes_nothing(
        sim_workloads: KubeSim, tmp_path: Path) -> None:
    m = Memcached(sim_workloads, tmp_path, schema=False)
    replica = operator(m, tmp_path, DEPLOY / "watches.yaml")
    try:
        m.create("loose", {"size": 2})
        until(lambda: successful(m, "loose", 2), 60, "loose reconciled with 2 Pods")
        nodes = m.nodes("loose")
        for bad, message in (("three", "argument 'size' is of type"),
                             (-1, "spec.size must be an integer from 0 to 100; got -1")):
            seq = m.last_seq()
            m.patch_spec("loose", {"size": bad})

            def failed(message: str = message) -> dict[str, Any] | None:
                c = m.condition("loose", "Failure")
                return c if c and c["status"] == "True" and message in c["message"] else None

            failure = until(failed, 60, f"a Failure condition for size {bad!r}")
            assert failure["reason"] == "Failed", failure
            assert m.condition("loose", "Successful")["status"] == "False"
            # Nothing was deleted or scaled: the only writes were to the CR's status.
            writes = m.writes(replica.identity, since=seq)
            assert {(e.resource, e.subresource) for e in writes} <= {
                ("memcacheds", "status"), ("leases", "")}, writes
            d = m.deployment("loose")
            assert d is not None and d.spec.replicas == 2
            assert m.nodes("loose") == nodes
        # A good spec again recovers.
        m.patch_spec("loose", {"size": 1})
        until(lambda: successful(m, "loose", 1), 60, "loose reconciled with 1 Pod")
        assert refused(m, replica) == []
    finally:
        replica.close()
        m.close()


def test_finalizer_variant_deletes_the_deployment(sim_workloads: KubeSim,
                                                 tmp_path: Path) -> None:
    m = Memcached(sim_workloads, tmp_path)
    replica = operator(m, tmp_path, DEPLOY / "watches-finalizer.yaml")
    try:
        m.create("fin", {"size": 1})
        until(lambda: successful(m, "fin", 1), 60, "fin reconciled")
        assert m.get("fin")["metadata"]["finalizers"] == ["cache.example.com/finalizer"]
        seq = m.last_seq()
        m.crs.delete(namespace=NS, name="fin")
        until(lambda: m.get("fin") is None, 60, "the custom resource gone")
        assert m.deployment("fin") is None
        deletes = [e for e in m.writes(replica.identity, since=seq) if e.verb == "delete"]
        assert [(e.resource, e.name) for e in deletes] == [("deployments", "fin")], deletes
        assert refused(m, replica) == []
    finally:
        replica.close()
        m.close()
