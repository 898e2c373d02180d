"""Bad-input catalog of the modules: every option of k8s_lease_elect, k8s_leader_become,
k8s_status and requeue_after gets a wrong type, an out-of-range or malformed value, and (when
it is required) no value. Each case must fail the task with one message that names the option
(or the field) and says what is accepted, with no traceback, and write nothing to the cluster.

The cases run through ansible-playbook against one kubesim, as users run the modules: one
looping task per module (a few playbooks at once), each case with its own bearer token
(K8S_AUTH_API_KEY), so the kubesim audit log says what each case sent. A case checked before
any request must send none; the few cases that need the cluster to know the value is bad (a
kind that is not served, an object that does not exist) may read, never write: no create,
update, patch or delete, dry runs included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_harness import Playbooks
from helpers import until
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from ansible_collections.election.kubernetes.plugins.module_utils import options
from kubesim import KubeSim

NS = "default"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
LE, LB = "election.kubernetes.k8s_lease_elect", "election.kubernetes.k8s_leader_become"
ST, RQ = "election.kubernetes.k8s_status", "election.kubernetes.requeue_after"
MEMCACHED = {"api_version": "cache.example.com/v1alpha1", "kind": "Memcached", "name": "mc",
             "namespace": NS}
SECONDS = "expected a number of seconds"
FINITE = "expected a finite number of seconds"
ONE_STRING = "expected a single string"
BOOLEANS = "Valid booleans include"
SUBDOMAIN = "RFC 1123 subdomain"
LABEL = "RFC 1123 label of at most 63 characters"
DURATION = "expected a Go duration"
MISSING = "/nonexistent/election-kubernetes"


@dataclass(frozen=True)
class Case:
    """One bad input: the module, a short id, the task's arguments (None values are passed
    as null), the fragments the message must hold (the option, what is accepted), and
    whether the module may read the cluster before it can tell (never write)."""

    module: str
    id: str
    args: dict[str, Any]
    says: tuple[str, ...]
    reads: bool = False

    @property
    def token(self) -> str:
        return f"bad-{self.module.rsplit('.', 1)[1]}-{self.id}"


def cases(module: str, base: dict[str, Any], table: list[tuple[Any, ...]], **kw: Any
          ) -> list[Case]:
    """Cases from (id, changes to `base`, *fragments) rows; a change to `...` drops the
    option."""
    out = []
    for row in table:
        cid, change, *says = row
        args = {**base, **change}
        args = {k: v for k, v in args.items() if v is not ...}
        out.append(Case(module, cid, args, tuple(says), **kw))
    return out


# --------------------------------------------------------------------------- k8s_lease_elect

LEASE = {"name": "bad-input", "namespace": NS, "identity": "host-a"}
LEASE_CASES = cases(LE, LEASE, [
    ("name-missing", {"name": ...}, "missing required arguments: name"),
    ("name-null", {"name": None}, "name ''", "not a valid Lease name", SUBDOMAIN),
    ("name-list", {"name": ["a"]}, "argument 'name'", ONE_STRING),
    ("name-uppercase", {"name": "Nightly_Report"}, "name 'Nightly_Report'", SUBDOMAIN),
    ("name-too-long", {"name": "a" * 254}, "not a valid Lease name", "at most 253 characters"),
    ("namespace-missing", {"namespace": ...}, "namespace is required outside a cluster",
     "set the namespace option"),
    ("namespace-invalid", {"namespace": "Batch Jobs"}, "namespace 'Batch Jobs'", LABEL),
    ("namespace-too-long", {"namespace": "a" * 64}, "not a valid namespace name", LABEL),
    ("namespace-list", {"namespace": [NS]}, "argument 'namespace'", ONE_STRING),
    ("identity-empty", {"identity": ""}, "identity must not be empty"),
    ("identity-list", {"identity": ["a"]}, "argument 'identity'", ONE_STRING),
    ("lease-duration-word", {"lease_duration": "long"}, "argument 'lease_duration'",
     "convert to int"),
    ("lease-duration-fraction", {"lease_duration": 15.5}, "argument 'lease_duration'",
     "convert to int"),
    ("lease-duration-bool", {"lease_duration": True}, "lease_duration must be a number of "
     "seconds"),
    ("lease-duration-zero", {"lease_duration": 0}, "lease_duration must be greater than 0"),
    ("lease-duration-negative", {"lease_duration": -15},
     "lease_duration must be greater than 0"),
    ("lease-duration-not-above-renew", {"lease_duration": 10},
     "lease_duration (10) must be greater than renew_deadline (10)"),
    ("renew-deadline-word", {"renew_deadline": "soon"}, "argument 'renew_deadline'", SECONDS),
    ("renew-deadline-zero", {"renew_deadline": 0}, "renew_deadline must be greater than 0"),
    ("renew-deadline-not-above-retry", {"renew_deadline": 2.4},
     "renew_deadline (2.4) must be greater than 1.2 x retry_period (2)"),
    ("renew-deadline-above-lease", {"renew_deadline": 20},
     "lease_duration (15) must be greater than renew_deadline (20)"),
    ("retry-period-bool", {"retry_period": False}, "argument 'retry_period'", SECONDS),
    ("retry-period-inf", {"retry_period": "inf"}, "argument 'retry_period'", FINITE),
    ("retry-period-zero", {"retry_period": 0}, "retry_period must be greater than 0"),
    ("retry-period-too-long", {"retry_period": 9},
     "renew_deadline (10) must be greater than 1.2 x retry_period (9)"),
    ("state-unknown", {"state": "follower"}, "value of state must be one of: leader, released"),
    ("wait-word", {"wait": "maybe"}, "argument 'wait'", BOOLEANS),
    ("timeout-bool", {"timeout": True}, "argument 'timeout'", SECONDS),
    ("timeout-nan", {"timeout": "nan"}, "argument 'timeout'", FINITE),
    ("timeout-negative", {"timeout": -1}, "timeout must be 0 (no limit) or more seconds"),
    ("clock-skew-margin-word", {"clock_skew_margin": "some"}, "argument 'clock_skew_margin'",
     SECONDS),
    ("clock-skew-margin-negative", {"clock_skew_margin": -1},
     "clock_skew_margin must be a number of seconds >= 0"),
    ("state-dir-list", {"state_dir": ["a"]}, "argument 'state_dir'", ONE_STRING),
    # "@..." paths are filled in by the fixture: a file and a not-YAML file in its directory
    ("state-dir-file", {"state_dir": "@file"}, "state_dir ", "is not a directory",
     "expected a directory this user can write"),
    ("state-dir-under-file", {"state_dir": "@file/sub"}, "state_dir ", "is not a directory",
     "expected a directory this user can write"),
])

# The connection options are shared by the three Kubernetes modules (module_utils/kube.py):
# all of them here with k8s_lease_elect, and a few again with each other module below.
AUTH_CASES = cases(LE, LEASE, [
    ("kubeconfig-missing", {"kubeconfig": f"{MISSING}/kubeconfig"}, "kubeconfig ",
     "(option kubeconfig) does not exist or is not a file",
     "expected the path of a kubeconfig file"),
    ("kubeconfig-directory", {"kubeconfig": "@dir"}, "(option kubeconfig) does not exist or "
     "is not a file"),
    ("kubeconfig-number", {"kubeconfig": 5}, "kubeconfig (option kubeconfig) must be the path "
     "of a kubeconfig file or the kubeconfig content as a mapping"),
    ("kubeconfig-list", {"kubeconfig": ["/etc/kubeconfig"]}, "kubeconfig (option kubeconfig) "
     "must be the path of a kubeconfig file or the kubeconfig content as a mapping, got a "
     "list"),
    ("kubeconfig-bad-mapping", {"kubeconfig": {"clusters": []}},
     "cannot load the kubeconfig mapping (option kubeconfig)", "current-context"),
    ("kubeconfig-not-yaml", {"kubeconfig": "@notyaml"}, "cannot load kubeconfig",
     "(option kubeconfig)", "while parsing"),
    ("kubeconfig-env-missing", {}, f"kubeconfig {MISSING}/env (KUBECONFIG) does not exist",
     "expected the path of a kubeconfig file"),
    ("kubeconfig-k8s-auth-env-missing", {}, f"kubeconfig {MISSING}/auth (K8S_AUTH_KUBECONFIG) "
     "does not exist"),
    ("context-unknown", {"context": "elsewhere"}, "context 'elsewhere' is not in kubeconfig",
     "its contexts are: "),
    ("context-list", {"context": ["kubesim"]}, "argument 'context'", ONE_STRING),
    ("host-not-url", {"host": "not a url"}, "host 'not a url' is not a URL",
     "expected http:// or https://HOST[:PORT]"),
    ("host-scheme", {"host": "ftp://api.example.com"}, "host 'ftp://api.example.com' is not "
     "a URL", "http:// or https://"),
    ("host-bad-port", {"host": "https://api.example.com:port"}, "is not a URL",
     "HOST[:PORT]"),
    ("host-list", {"host": ["https://a"]}, "argument 'host'", ONE_STRING),
    ("host-env-not-url", {}, "host 'api server' is not a URL", "http:// or https://"),
    ("api-key-list", {"api_key": ["token-in-a-list"]}, "argument 'api_key'", ONE_STRING),
    ("username-mapping", {"username": {"u": 1}}, "argument 'username'", ONE_STRING),
    ("password-list", {"password": ["secret-word"]}, "argument 'password'", ONE_STRING),
    ("validate-certs-word", {"validate_certs": "maybe"}, "argument 'validate_certs'", BOOLEANS),
    ("ca-cert-missing", {"ca_cert": f"{MISSING}/ca.pem"}, f"ca_cert {MISSING}/ca.pem does "
     "not exist or is not a file", "expected the path of a PEM file"),
    ("ca-cert-list", {"ca_cert": ["a.pem"]}, "argument 'ca_cert'", ONE_STRING),
    ("client-cert-missing", {"client_cert": f"{MISSING}/c.pem"}, "client_cert ",
     "does not exist or is not a file", "PEM file"),
    ("cert-file-alias-directory", {"cert_file": "/"}, "client_cert / does not exist or is "
     "not a file"),
    ("client-key-missing", {"client_key": f"{MISSING}/k.pem"}, "client_key ",
     "does not exist or is not a file", "PEM file"),
    ("key-file-alias-mapping", {"key_file": {"a": 1}}, "client_key", ONE_STRING),
    ("proxy-not-url", {"proxy": "::::"}, "proxy '::::' is not a URL", "http://",
     "socks5://"),
    ("proxy-no-scheme", {"proxy": "proxy.example.com:3128"}, "proxy 'proxy.example.com:3128' "
     "is not a URL", "such as http://proxy.example.com:3128"),
    ("no-proxy-list", {"no_proxy": ["a"]}, "argument 'no_proxy'", ONE_STRING),
    ("impersonate-user-list", {"impersonate_user": ["a"]}, "argument 'impersonate_user'",
     ONE_STRING),
    ("impersonate-groups-mapping", {"impersonate_groups": {"a": 1}},
     "argument 'impersonate_groups'", "convert to list"),
    ("impersonate-groups-nested", {"impersonate_groups": [["a"]]}, "impersonate_groups",
     ONE_STRING),
])
# The environment of the cases that take an option from it (K8S_AUTH_* and KUBECONFIG).
AUTH_ENV = {"kubeconfig-env-missing": {"KUBECONFIG": f"{MISSING}/env"},
            "kubeconfig-k8s-auth-env-missing": {"K8S_AUTH_KUBECONFIG": f"{MISSING}/auth"},
            "host-env-not-url": {"K8S_AUTH_HOST": "api server"}}

# --------------------------------------------------------------------------- k8s_leader_become

LIFE = {"lock_name": "bad-input-lock", "namespace": NS, "pod_name": "pod-a"}
LIFE_CASES = cases(LB, LIFE, [
    ("lock-name-missing", {"lock_name": ...}, "missing required arguments: lock_name"),
    ("lock-name-invalid", {"lock_name": "Lock_1"}, "lock_name 'Lock_1'", SUBDOMAIN),
    ("lock-name-too-long", {"lock_name": "l" * 254}, "lock_name", "at most 253 characters"),
    ("lock-name-list", {"lock_name": ["l"]}, "argument 'lock_name'", ONE_STRING),
    ("namespace-invalid", {"namespace": "Ops Team"}, "namespace 'Ops Team'", LABEL),
    ("namespace-mapping", {"namespace": {"a": 1}}, "argument 'namespace'", ONE_STRING),
    ("namespace-missing-outside-cluster-fail", {"namespace": ..., "outside_cluster": "fail"},
     "leader election impossible", "no namespace option"),
    ("pod-name-missing", {"pod_name": ...}, "pod_name is required", "POD_NAME"),
    ("pod-name-invalid", {"pod_name": "Pod_A"}, "pod_name 'Pod_A' is not a valid Pod name",
     SUBDOMAIN),
    ("pod-name-list", {"pod_name": ["pod-a"]}, "argument 'pod_name'", ONE_STRING),
    ("wait-word", {"wait": "later"}, "argument 'wait'", BOOLEANS),
    ("timeout-word", {"timeout": "forever"}, "argument 'timeout'", SECONDS),
    ("timeout-negative", {"timeout": -5}, "timeout must be 0 (no limit) or more seconds"),
    ("max-backoff-bool", {"max_backoff": True}, "argument 'max_backoff'", SECONDS),
    ("max-backoff-inf", {"max_backoff": "inf"}, "argument 'max_backoff'", FINITE),
    ("max-backoff-below-one", {"max_backoff": 0.5}, "max_backoff must be at least 1 s"),
    ("node-not-ready-unknown", {"node_not_ready": "kill"},
     "value of node_not_ready must be one of: delete, wait"),
    ("node-not-ready-grace-word", {"node_not_ready_grace": "a bit"},
     "argument 'node_not_ready_grace'", SECONDS),
    ("node-not-ready-grace-negative", {"node_not_ready_grace": -1},
     "node_not_ready_grace must be 0 or more seconds"),
    ("outside-cluster-unknown", {"outside_cluster": "ignore"},
     "value of outside_cluster must be one of: proceed, fail"),
    ("kubeconfig-missing", {"kubeconfig": f"{MISSING}/kubeconfig"},
     "(option kubeconfig) does not exist or is not a file"),
    ("host-not-url", {"host": "api:6443"}, "host 'api:6443' is not a URL"),
])

# --------------------------------------------------------------------------- k8s_status

STATUS = {**MEMCACHED, "status": {"phase": "Ready"}}
COND = {"type": "Available", "status": "True"}
STATUS_CASES = cases(ST, STATUS, [
    ("api-version-too-many-parts", {"api_version": "cache.example.com/v1/alpha"},
     "api_version 'cache.example.com/v1/alpha' is not an API version",
     "expected GROUP/VERSION such as cache.example.com/v1alpha1"),
    ("api-version-empty", {"api_version": ""}, "api_version '' is not an API version"),
    ("api-version-uppercase-group", {"api_version": "Cache.Example.com/v1alpha1"},
     "is not an API version", "GROUP/VERSION"),
    ("api-version-list", {"api_version": ["v1"]}, "argument 'api_version'", ONE_STRING),
    ("kind-missing", {"kind": ...}, "missing required arguments: kind"),
    ("kind-empty", {"kind": ""}, "kind '' is not a kind", "such as Memcached"),
    ("kind-list", {"kind": ["Memcached"]}, "argument 'kind'", ONE_STRING),
    ("name-missing", {"name": ...}, "missing required arguments: name"),
    ("name-null", {"name": None}, "name '' is not a valid object name",
     "must not be empty"),
    ("name-slash", {"name": "mc/status"}, "name 'mc/status' is not a valid object name",
     "must not contain '/' or '%'"),
    ("name-dot-dot", {"name": ".."}, "name '..' is not a valid object name"),
    ("name-mapping", {"name": {"a": 1}}, "argument 'name'", ONE_STRING),
    ("namespace-invalid", {"namespace": "Team A"}, "namespace 'Team A'", LABEL),
    ("namespace-slash", {"namespace": "default/x"}, "namespace 'default/x'", LABEL),
    ("namespace-list", {"namespace": [NS]}, "argument 'namespace'", ONE_STRING),
    ("status-and-conditions-missing", {"status": ...}, "one of the following is required: "
     "status, conditions"),
    ("status-string", {"status": "ready"}, "argument 'status'", "convert to dict"),
    ("status-conditions-string", {"status": {"conditions": "ok"}}, "status.conditions must "
     "be a list of condition objects"),
    ("status-conditions-item", {"status": {"conditions": [5]}}, "status.conditions[0] must be "
     "an object with a type"),
    ("status-conditions-type-missing", {"status": {"conditions": [{"status": "True"}]}},
     "status.conditions[0].type is required (a non-empty string)"),
    ("status-conditions-type-repeated", {"status": {"conditions": [COND, COND]}},
     "status.conditions[1].type 'Available' repeats status.conditions[0]"),
    ("conditions-string", {"status": ..., "conditions": "Available"}, "conditions",
     "convert to dict"),
    ("conditions-mapping", {"status": ..., "conditions": COND}, "argument 'conditions'",
     "convert to list"),
    ("conditions-item-bool", {"status": ..., "conditions": [True]}, "conditions",
     "convert to dict"),
    ("condition-type-missing", {"status": ..., "conditions": [{"status": "True"}]},
     "conditions[0].type is required"),
    ("condition-type-number", {"status": ..., "conditions": [{"type": 5, "status": "True"}]},
     "conditions[0].type must be a string"),
    ("condition-status-missing", {"status": ..., "conditions": [{"type": "Available"}]},
     "conditions[0].status is required"),
    ("condition-status-unknown", {"status": ..., "conditions": [
        {"type": "Available", "status": "Maybe"}]},
     "conditions[0].status must be one of True, False, Unknown"),
    ("condition-reason-words", {"status": ..., "conditions": [{**COND, "reason": "all good"}]},
     "conditions[0].reason must be a single CamelCase word"),
    ("condition-reason-number", {"status": ..., "conditions": [{**COND, "reason": 5}]},
     "conditions[0].reason must be a string"),
    ("condition-message-list", {"status": ..., "conditions": [{**COND, "message": ["a"]}]},
     "conditions[0].message must be a string"),
    ("condition-transition-time", {"status": ..., "conditions": [
        {**COND, "lastTransitionTime": "yesterday"}]},
     "conditions[0].lastTransitionTime must be an RFC 3339 date-time such as "
     "2024-01-02T03:04:05Z"),
    ("condition-heartbeat-time", {"status": ..., "conditions": [
        {**COND, "lastHeartbeatTime": "2024-13-01T00:00:00Z"}]},
     "conditions[0].lastHeartbeatTime must be an RFC 3339 date-time"),
    ("condition-unknown-key", {"status": ..., "conditions": [{**COND, "severity": "high"}]},
     "conditions[0]: unknown key severity; a condition takes type, status"),
    ("condition-type-repeated", {"status": ..., "conditions": [COND, COND]},
     "conditions[1].type 'Available' repeats conditions[0]"),
    ("conditions-in-both-places", {"status": {"conditions": [COND]}, "conditions": [COND]},
     "conditions are given both in status.conditions and in the conditions option"),
    ("replace-word", {"replace": "yes please"}, "argument 'replace'", BOOLEANS),
    ("replace-lists-word", {"replace_lists": "sometimes"}, "argument 'replace_lists'",
     BOOLEANS),
    ("kubeconfig-missing", {"kubeconfig": f"{MISSING}/kubeconfig"},
     "(option kubeconfig) does not exist or is not a file"),
    ("host-not-url", {"host": "localhost"}, "host 'localhost' is not a URL"),
    ("client-key-missing", {"client_key": f"{MISSING}/k.pem"}, "client_key ",
     "does not exist"),
]) + cases(ST, STATUS, [
    # Only the API server knows these are wrong: reads, never a write.
    ("api-version-not-served", {"api_version": "cache.example.com/v9"},
     "the API has no kind Memcached in api_version cache.example.com/v9",
     "check kind and api_version"),
    ("kind-not-served", {"kind": "Memcache"}, "the API has no kind Memcache in api_version "
     "cache.example.com/v1alpha1"),
    ("kind-without-status", {"api_version": "v1", "kind": "ConfigMap", "name": "cm"},
     "ConfigMap (v1, resource configmaps) has no status subresource"),
    ("namespace-missing-for-namespaced-kind", {"namespace": ...},
     "namespace is required: Memcached (cache.example.com/v1alpha1) is namespaced"),
    ("name-not-found", {"name": "ghost"}, 'cannot get memcacheds.cache.example.com "ghost" in '
     "namespace default", "not found"),
], reads=True)

# --------------------------------------------------------------------------- requeue_after

REQUEUE_CASES = cases(RQ, {"time": "5s"}, [
    ("time-missing", {"time": ...}, "missing required arguments: time"),
    ("time-null", {"time": None}, "time: invalid duration ''", DURATION),
    ("time-word", {"time": "soon"}, "time: invalid duration 'soon'", DURATION),
    ("time-no-unit", {"time": "5"}, "time: invalid duration '5': missing unit", DURATION),
    ("time-number", {"time": 30}, "time: invalid duration '30': missing unit", DURATION),
    ("time-unknown-unit", {"time": "2d"}, "time: invalid duration '2d': unknown unit 'd'",
     DURATION),
    ("time-negative", {"time": "-5s"}, "time: '-5s' is negative; expected 0 or more"),
    ("time-out-of-range", {"time": "9999999999h"}, "time: invalid duration '9999999999h': "
     "out of range"),
    ("time-list", {"time": ["5s"]}, "argument 'time'", ONE_STRING),
    ("period-alias-word", {"time": ..., "period": "later"}, "time: invalid duration 'later'",
     DURATION),
])

ALL_CASES = LEASE_CASES + AUTH_CASES + LIFE_CASES + STATUS_CASES + REQUEUE_CASES
# Playbooks run at once, each one looping over its cases.
BATCHES = {"lease": LEASE_CASES, "auth": AUTH_CASES, "life": LIFE_CASES,
           "status": STATUS_CASES, "requeue": REQUEUE_CASES}


def _fill(value: Any, paths: dict[str, str]) -> Any:
    """`@name...` placeholders in a path option -> a path under the test's directory."""
    if isinstance(value, str) and value.startswith("@"):
        name, _, rest = value[1:].partition("/")
        return paths[name] + (f"/{rest}" if rest else "")
    return value


def _memcached_crd() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    return yaml.safe_load((root / "deploy" / "crd.yaml").read_text())


@dataclass
class Catalog:
    sim: KubeSim
    results: dict[str, dict[str, Any]]  # token -> the registered result of the case
    before: int  # the last audit sequence number before the cases ran


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    tmp = tmp_path_factory.mktemp("bad-input-modules")
    paths = {"file": str(tmp / "a-file"), "notyaml": str(tmp / "not-yaml"), "dir": str(tmp)}
    Path(paths["file"]).write_text("not a directory\n")
    Path(paths["notyaml"]).write_text("clusters: [unclosed\n")
    with KubeSim(bookmark_interval=0.5) as sim:
        setup = sim.write_kubeconfig(tmp / "kubeconfig-setup", token="test-setup")
        api = config.new_client_from_config(config_file=str(setup))
        dyn = DynamicClient(api, cache_file=str(tmp / "discovery.json"))
        dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                          kind="CustomResourceDefinition").create(body=_memcached_crd())
        until(lambda: _served(dyn), 5, "the Memcached kind in discovery")
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "cache.example.com", "v1alpha1", NS, "memcacheds",
            {"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
             "metadata": {"name": "mc"}, "spec": {"size": 1}})
        client.CoreV1Api(api).create_namespaced_config_map(
            NS, {"metadata": {"name": "cm"}, "data": {"a": "b"}})
        api.close()
        before = sim.audit.entries()[-1].seq
        books = Playbooks(sim, tmp)
        env = books.env(ANSIBLE_PIPELINING="1")
        runs = {}
        for batch, items in BATCHES.items():
            module = items[0].module
            loop = [{"args": {k: _fill(v, paths) for k, v in c.args.items()},
                     "env": {"K8S_AUTH_API_KEY": c.token, **AUTH_ENV.get(c.id, {})}}
                    for c in items]
            task = {"name": f"bad input: {module}", module: "{{ item.args }}",
                    "environment": "{{ item.env }}", "loop": loop, "register": batch,
                    "ignore_errors": True,
                    "loop_control": {"label": "{{ item.env.K8S_AUTH_API_KEY }}"}}
            runs[batch] = books.start([task], env=env)
        results: dict[str, dict[str, Any]] = {}
        try:
            for batch, run in runs.items():
                registered = run.result(timeout=240)[batch]["results"]
                assert len(registered) == len(BATCHES[batch])
                for c, res in zip(BATCHES[batch], registered, strict=True):
                    results[c.token] = res
        finally:
            books.close()
        yield Catalog(sim, results, before)


def _served(dyn: DynamicClient) -> bool:
    try:
        dyn.resources.invalidate_cache()
        dyn.resources.get(api_version="cache.example.com/v1alpha1", kind="Memcached")
        return True
    except Exception:  # noqa: BLE001 - not served yet
        return False


def test_case_tokens_are_unique() -> None:
    tokens = [c.token for c in ALL_CASES]
    assert len(tokens) == len(set(tokens)), [t for t in tokens if tokens.count(t) > 1]


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.token for c in ALL_CASES])
def test_bad_input_fails_with_one_clear_message_and_writes_nothing(
        catalog: Catalog, case: Case) -> None:
    res = catalog.results[case.token]
    msg = res.get("msg")
    assert res.get("failed") is True, f"accepted: {res}"
    assert isinstance(msg, str) and msg, res
    for fragment in case.says:
        assert fragment in msg, f"{fragment!r} not in the message {msg!r}"
    # One message a user can act on: one line, from the module itself, not a crash. (A module
    # that raised would show "Task failed: Module failed", "MODULE FAILURE" or its stderr;
    # ansible-core 2.19 puts a placeholder `exception` in every failed result.)
    assert "\n" not in msg, msg
    assert not msg.startswith("Task failed"), msg
    assert "Traceback" not in msg and "MODULE FAILURE" not in msg, msg
    assert "module_stderr" not in res and "module_stdout" not in res, res
    assert res.get("exception", "(traceback unavailable)") == "(traceback unavailable)", res
    sent = catalog.sim.audit.entries(since=catalog.before, identity=f"token:{case.token}")
    writes = [(e.verb, e.resource, e.name, e.code, e.dry_run) for e in sent
              if e.verb in WRITE_VERBS]
    assert writes == [], f"bad input sent writes: {writes}"
    if not case.reads:
        assert [(e.verb, e.path) for e in sent] == [], "checked before any request"


def test_every_request_came_from_a_case_and_none_wrote(catalog: Catalog) -> None:
    """Every request of the run carries a case's token (so 'no request' above is not an
    identity mix-up), only the read-only cases sent any, and nothing was written."""
    entries = catalog.sim.audit.entries(since=catalog.before)
    readers = {f"token:{c.token}" for c in ALL_CASES if c.reads}
    assert {e.identity for e in entries} <= readers, {e.identity for e in entries} - readers
    assert f"token:{STATUS_CASES[-1].token}" in {e.identity for e in entries}, \
        "the object that is not found was asked for (the audit log is not empty by accident)"
    assert [e for e in entries if e.verb in WRITE_VERBS] == []


def test_every_option_of_every_module_is_covered() -> None:
    """Each documented option (aliases aside) is the subject of at least one case, so an
    option added later without a bad-input case fails here."""
    import importlib

    for module in (LE, LB, ST, RQ):
        name = module.rsplit(".", 1)[1]
        mod = importlib.import_module(
            f"ansible_collections.election.kubernetes.plugins.modules.{name}")
        options = set(yaml.safe_load(mod.DOCUMENTATION)["options"])
        if "election.kubernetes.auth" in yaml.safe_load(mod.DOCUMENTATION).get(
                "extends_documentation_fragment", []):
            from ansible_collections.election.kubernetes.plugins.doc_fragments.auth import (
                ModuleDocFragment,
            )
            options |= set(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
        touched: set[str] = set()
        for c in ALL_CASES:
            if c.module == module or (c in AUTH_CASES and module in (LE, LB, ST)):
                touched |= {c.id.split("-alias")[0]}
        covered = {o for o in options
                   if any(t.startswith(o.replace("_", "-")) for t in touched)}
        assert covered == options, f"{name}: no bad-input case for {sorted(options - covered)}"


# --------------------------------------------------------------------------- the option types

@pytest.mark.parametrize(("value", "problem"), [
    (["a"], "expected a single string, got a list"),
    ({"a": 1}, "expected a single string, got a mapping"),
    (("a",), "expected a single string, got a list"),
])
def test_string_options_refuse_lists_and_mappings(value: Any, problem: str) -> None:
    """The types the catalog's playbooks exercise once per option, with the variety of wrong
    values each refuses (in-process: no playbook needed)."""
    with pytest.raises(TypeError, match=problem):
        options.string(value)
    with pytest.raises(TypeError, match=problem):
        options.path(value)


def test_string_options_take_scalars_as_ansible_converts_them() -> None:
    assert [options.string(v) for v in ("a", 5, 2.5, None, b"b")] == ["a", "5", "2.5", "", "b"]
    assert options.path("~/x") == str(Path.home() / "x")
    with pytest.raises(TypeError, match="expected a path, got a boolean"):
        options.path(True)


@pytest.mark.parametrize(("value", "problem"), [
    (True, "got a boolean"), (False, "got a boolean"), ("soon", "got 'soon'"),
    ("", "got ''"), ([2], "got a list"), ({"s": 2}, "got a mapping"), (None, "got NoneType"),
    ("nan", "finite"), ("inf", "finite"), ("-inf", "finite"), (float("nan"), "finite"),
    ("1e400", "finite"),
])
def test_seconds_options_refuse_booleans_words_and_non_finite_numbers(
        value: Any, problem: str) -> None:
    with pytest.raises((TypeError, ValueError), match=problem):
        options.seconds(value)


def test_seconds_options_take_numbers_and_numeric_strings() -> None:
    assert [options.seconds(v) for v in (0, 2, 2.5, "3", " 4.5 ", -1)] == [0, 2, 2.5, 3, 4.5, -1]
