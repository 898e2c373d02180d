"""Deliverable 5 of the issue: kubesim's test hooks and its command line.

  * fault injection per client identity (a bearer token, else the User-Agent): latency, error
    answers (500/503/429), refuse (connection closed), blackhole (no answer until the rule is
    removed or the client's timeout fires), the `remaining` count, verb/resource filters;
    managed in-process, over HTTP (/kubesim/v1/faults) and with `python -m kubesim fault`;
    malformed rules are a 400 that names the field;
  * the audit log of every request (writes: time, identity, verb, object, resourceVersion),
    read in-process, over HTTP and with `python -m kubesim audit`;
  * `python -m kubesim --port 0 --kubeconfig K` serving kubectl and stopping on SIGTERM, and
    `--controllers` running Deployments to Ready Pods whose readiness follows their Node's.

Every effect is observed through real clients: the typed `kubernetes` API (each identity its
own ApiClient), kubectl, and plain HTTP for the hook endpoints themselves.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from helpers import until as eventually
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubesim import KubeSim

REPO = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"
POD_NAME = re.compile(r"^(?P<deploy>[a-z0-9-]+?)-(?P<hash>[a-z0-9]{6,10})-(?P<suffix>[a-z0-9]{5})$")


# ------------------------------------------------------------------ helpers
def core_for(sim: KubeSim, tmp_path: Path, token: str | None = None,
             user_agent: str | None = None) -> client.CoreV1Api:
    """A typed client of its own (own connection pool), as one identity."""
    path = sim.write_kubeconfig(tmp_path / f"kubeconfig-{token or 'anon'}-{user_agent or ''}",
                                token=token)
    api = config.new_client_from_config(config_file=str(path))
    if user_agent:
        api.user_agent = user_agent
    return client.CoreV1Api(api)


def hook(url: str, method: str, path: str, body: Any = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    """Call a /kubesim/v1/ hook over HTTP; returns (status, decoded JSON body)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"{url}/kubesim/v1/{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def kubesim_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "kubesim", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    return subprocess.run([KUBECTL, *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=30)


def timed(fn: Callable[[], Any]) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


def status_of(e: ApiException) -> dict[str, Any]:
    return json.loads(e.body)


def last_seq(sim: KubeSim) -> int:
    entries = sim.audit.entries()
    return entries[-1].seq if entries else 0


@pytest.fixture
def alice(sim: KubeSim, tmp_path: Path) -> client.CoreV1Api:
    return core_for(sim, tmp_path, token="alice")


@pytest.fixture
def bob(sim: KubeSim, tmp_path: Path) -> client.CoreV1Api:
    return core_for(sim, tmp_path, token="bob")


# ------------------------------------------------------------------ faults by token
def test_fault_latency_only_for_that_token(sim: KubeSim, alice: client.CoreV1Api,
                                           bob: client.CoreV1Api) -> None:
    """Deliverable 5: a latency rule for token:alice delays alice's requests by its
    `seconds` and leaves bob's as fast as before; removing it ends the delay."""
    for c in (alice, bob):  # open the connections first: measure the server, not TCP setup
        c.read_namespace("default")
    f = sim.faults.add({"identity": "token:alice", "action": "latency", "seconds": 0.6})
    assert timed(lambda: alice.read_namespace("default")) >= 0.6
    assert timed(lambda: alice.list_namespaced_config_map("default")) >= 0.6
    assert timed(lambda: bob.read_namespace("default")) < 0.3
    sim.faults.remove(f.id)
    assert timed(lambda: alice.read_namespace("default")) < 0.3


@pytest.mark.parametrize(("code", "reason", "retry_after"), [
    (500, "InternalError", None),
    (503, "ServiceUnavailable", "1"),
    (429, "TooManyRequests", "1"),
])
def test_fault_error_status_for_one_token(sim: KubeSim, alice: client.CoreV1Api,
                                          bob: client.CoreV1Api, code: int, reason: str,
                                          retry_after: str | None) -> None:
    """Deliverable 5: an error rule answers alice with `code` and a metav1.Status (429 and 503
    with Retry-After, 429 with details.retryAfterSeconds), writes nothing, and bob's
    identical request goes through."""
    sim.faults.add({"identity": "token:alice", "action": "error", "code": code,
                    "verbs": ["create"]})
    with pytest.raises(ApiException) as exc:
        alice.create_namespaced_config_map("default", cm("from-alice"))
    e = exc.value
    assert e.status == code
    body = status_of(e)
    assert (body["kind"], body["status"], body["reason"], body["code"]) == \
        ("Status", "Failure", reason, code)
    assert e.headers.get("Retry-After") == retry_after
    if code == 429:
        assert body["details"]["retryAfterSeconds"] == 1
    with pytest.raises(ApiException) as missing:
        bob.read_namespaced_config_map("from-alice", "default")
    assert missing.value.status == 404
    made = bob.create_namespaced_config_map("default", cm("from-bob"))
    assert made.metadata.name == "from-bob"
    audit = [(e.identity, e.verb, e.name, e.code)
             for e in sim.audit.entries(writes_only=True)]
    assert audit == [("token:alice", "create", "", code), ("token:bob", "create", "from-bob", 201)]


def test_fault_503_with_retry_after_is_retried_by_the_client(sim: KubeSim,
                                                             alice: client.CoreV1Api) -> None:
    """Deliverable 5: what a user of the Python client sees: a GET answered 503 with
    Retry-After (here 0) is retried by urllib3 on its own, so a one-shot rule (remaining: 1)
    costs one extra request, visible in the audit log, and the call succeeds."""
    since = last_seq(sim)
    sim.faults.add({"identity": "token:alice", "action": "error", "code": 503,
                    "retry_after": 0, "remaining": 1})
    assert alice.read_namespace("default").metadata.name == "default"
    assert [(e.verb, e.code) for e in sim.audit.entries(since=since)] == \
        [("get", 503), ("get", 200)]


def test_fault_remaining_counts_down_then_stops(sim: KubeSim, alice: client.CoreV1Api,
                                                bob: client.CoreV1Api) -> None:
    """Deliverable 5: `remaining: 2` fails exactly alice's next two matching requests (bob's
    requests in between do not use it up); the rule then lists with remaining 0."""
    f = sim.faults.add({"identity": "token:alice", "action": "error", "code": 500,
                        "remaining": 2})
    codes = []
    for _ in range(3):
        bob.read_namespace("default")
        try:
            alice.read_namespace("default")
            codes.append(200)
        except ApiException as e:
            codes.append(e.status)
    assert codes == [500, 500, 200]
    status, listed = hook(sim.url, "GET", "faults")
    assert status == 200
    assert [(r["id"], r["remaining"]) for r in listed["faults"]] == [(f.id, 0)]


def test_fault_refuse_closes_the_connection(sim: KubeSim, alice: client.CoreV1Api,
                                            bob: client.CoreV1Api) -> None:
    """Deliverable 5: `refuse` closes alice's connection without an answer: a POST raises a
    urllib3 connection error at once; a GET is retried by urllib3 (3 retries, all in the audit
    log) before it gives up; bob is served; with `remaining: 1` the client's retry succeeds."""
    sim.faults.add({"identity": "token:alice", "action": "refuse"})
    since = last_seq(sim)
    with pytest.raises(urllib3.exceptions.ProtocolError, match="Connection aborted"):
        alice.create_namespaced_config_map("default", cm("refused"))
    with pytest.raises(urllib3.exceptions.MaxRetryError, match="closed connection"):
        alice.list_namespaced_config_map("default")
    attempts = sim.audit.entries(since=since, identity="token:alice")
    assert [e.verb for e in attempts] == ["create", "list", "list", "list", "list"]
    assert all(not 200 <= e.code < 300 for e in attempts)
    assert bob.list_namespaced_config_map("default").items == []  # and "refused" was not made

    sim.faults.clear()
    sim.faults.add({"identity": "token:alice", "action": "refuse", "remaining": 1})
    assert alice.read_namespace("default").metadata.name == "default"


def test_fault_blackhole_holds_until_timeout_or_removal(sim: KubeSim, alice: client.CoreV1Api,
                                                        bob: client.CoreV1Api) -> None:
    """Deliverable 5: `blackhole` never answers alice: her client's own timeout fires (a POST
    is not retried: urllib3 ReadTimeoutError), while bob is served at once. A request held
    with a long timeout is released when the rule is removed over HTTP (the connection is
    closed unanswered), long before its timeout; a `seconds` blackhole lets go by itself.
    Nothing alice sent was written."""
    f = sim.faults.add({"identity": "token:alice", "action": "blackhole", "verbs": ["create"]})
    t = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        alice.create_namespaced_config_map("default", cm("held-1"), _request_timeout=0.3)
    assert 0.3 <= time.monotonic() - t < 1.5
    assert timed(lambda: bob.create_namespaced_config_map("default", cm("bob-1"))) < 0.5
    assert alice.read_namespace("default")  # only `create` is blackholed

    outcome: dict[str, Any] = {}

    def held() -> None:
        t0 = time.monotonic()
        try:
            alice.create_namespaced_config_map("default", cm("held-2"), _request_timeout=10)
            outcome["result"] = "answered"
        except urllib3.exceptions.HTTPError as e:
            outcome["result"] = type(e).__name__
        outcome["elapsed"] = time.monotonic() - t0

    thread = threading.Thread(target=held)
    thread.start()
    time.sleep(0.4)
    assert thread.is_alive()  # still waiting for an answer
    assert hook(sim.url, "DELETE", f"faults/{f.id}") == (200, {"removed": f.id})
    thread.join(5)
    assert not thread.is_alive()
    assert outcome["result"] == "ProtocolError"
    assert 0.4 <= outcome["elapsed"] < 3

    sim.faults.add({"identity": "token:alice", "action": "blackhole", "seconds": 0.3,
                    "verbs": ["create"]})
    t = time.monotonic()
    with pytest.raises(urllib3.exceptions.ProtocolError):
        alice.create_namespaced_config_map("default", cm("held-3"), _request_timeout=10)
    assert 0.3 <= time.monotonic() - t < 2
    names = [c.metadata.name for c in bob.list_namespaced_config_map("default").items]
    assert names == ["bob-1"]


def test_fault_verbs_and_resources_filters(sim: KubeSim, alice: client.CoreV1Api,
                                           bob: client.CoreV1Api) -> None:
    """Deliverable 5: a rule limited to verbs [create, delete] on resources [configmaps]
    fails exactly those: alice can still list/get ConfigMaps and create/delete Secrets."""
    bob.create_namespaced_config_map("default", cm("shared", k="v"))
    sim.faults.add({"identity": "token:alice", "action": "error", "code": 500,
                    "verbs": ["create", "delete"], "resources": ["configmaps"]})
    for call in (lambda: alice.create_namespaced_config_map("default", cm("nope")),
                 lambda: alice.delete_namespaced_config_map("shared", "default")):
        with pytest.raises(ApiException) as exc:
            call()
        assert exc.value.status == 500
    assert [c.metadata.name for c in alice.list_namespaced_config_map("default").items] == \
        ["shared"]
    assert alice.read_namespaced_config_map("shared", "default").data == {"k": "v"}
    alice.patch_namespaced_config_map("shared", "default", {"data": {"k": "w"}})
    alice.create_namespaced_secret("default", {"metadata": {"name": "s"},
                                               "stringData": {"a": "b"}})
    alice.delete_namespaced_secret("s", "default")
    bob.delete_namespaced_config_map("shared", "default")


# ------------------------------------------------------------------ faults by User-Agent
def test_fault_by_user_agent(sim: KubeSim, tmp_path: Path) -> None:
    """Deliverable 5: without a bearer token a client is identified by its User-Agent: an exact
    UA rule and a `prefix*` rule hit only that agent; a client that sends a token is
    identified by the token, whatever its User-Agent; kubectl can be singled out too."""
    chaos = core_for(sim, tmp_path, user_agent="chaos-monkey/1.0")
    plain = core_for(sim, tmp_path)
    token_chaos = core_for(sim, tmp_path, token="carol", user_agent="chaos-monkey/1.0")
    for identity in ("chaos-monkey/1.0", "chaos-*"):
        sim.faults.clear()
        sim.faults.add({"identity": identity, "action": "error", "code": 500})
        with pytest.raises(ApiException) as exc:
            chaos.read_namespace("default")
        assert exc.value.status == 500
        assert plain.read_namespace("default").metadata.name == "default"
        assert token_chaos.read_namespace("default").metadata.name == "default"
    assert {e.identity for e in sim.audit.entries()} == \
        {"chaos-monkey/1.0", "OpenAPI-Generator/37.0.2/python", "token:carol"}

    # kubectl's User-Agent starts with "kubectl/" (a 500: client-go would retry a 503,
    # which carries Retry-After, up to 10 times)
    sim.faults.clear()
    sim.faults.add({"identity": "kubectl/*", "action": "error", "code": 500,
                    "resources": ["configmaps"]})
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubectl-config")
    out = kubectl(kubeconfig, "get", "configmaps", "-n", "default")
    assert out.returncode == 1
    assert "Error from server (InternalError)" in out.stderr
    assert kubectl(kubeconfig, "get", "ns", "default", "-o", "name").stdout == \
        "namespace/default\n"
    assert plain.list_namespaced_config_map("default").items == []


# ------------------------------------------------------------------ audit log
def test_audit_records_writes_in_process_and_over_http(sim: KubeSim, alice: client.CoreV1Api,
                                                       bob: client.CoreV1Api) -> None:
    """Deliverable 5: every write is in the audit log with its time, the client's identity,
    verb, object (group/resource/namespace/name/subresource), status code and the
    resourceVersion the client got back; reads and dry runs are logged but are not writes.
    The same log is served over HTTP (writes=true, identity=, since=) and by the CLI."""
    since = last_seq(sim)
    t0 = time.time()
    made = alice.create_namespaced_config_map("default", cm("audited", a="1"))
    patched = bob.patch_namespaced_config_map("audited", "default", {"data": {"a": "2"}})
    alice.read_namespaced_config_map("audited", "default")
    alice.create_namespaced_config_map("default", cm("dry"), dry_run="All")
    ns = bob.patch_namespace_status("default", {"metadata": {"labels": {"x": "y"}}})
    alice.delete_namespaced_config_map("audited", "default")
    t1 = time.time()

    writes = sim.audit.entries(since=since, writes_only=True)
    assert [(e.identity, e.verb, e.group, e.resource, e.namespace, e.name, e.subresource,
             e.code) for e in writes] == [
        ("token:alice", "create", "", "configmaps", "default", "audited", "", 201),
        ("token:bob", "patch", "", "configmaps", "default", "audited", "", 200),
        ("token:bob", "patch", "", "namespaces", "", "default", "status", 200),
        ("token:alice", "delete", "", "configmaps", "default", "audited", "", 200),
    ]
    assert [e.resource_version for e in writes[:3]] == [
        made.metadata.resource_version, patched.metadata.resource_version,
        ns.metadata.resource_version]
    assert all(t0 <= e.time <= t1 for e in writes)
    assert [e.seq for e in writes] == sorted(e.seq for e in writes)
    assert [e.identity for e in sim.audit.entries(since=since, writes_only=True,
                                                  identity="token:bob")] == ["token:bob"] * 2

    status, body = hook(sim.url, "GET", f"audit?writes=true&since={since}")
    assert status == 200
    over_http = body["entries"]
    assert [(e["seq"], e["identity"], e["verb"], e["name"], e["resource_version"], e["time"])
            for e in over_http] == [(e.seq, e.identity, e.verb, e.name, e.resource_version,
                                     e.time) for e in writes]
    assert all(e["write"] for e in over_http)
    status, body = hook(sim.url, "GET", f"audit?since={since}&identity=token:alice")
    assert [(e["verb"], e["name"], e["dry_run"], e["write"]) for e in body["entries"]] == [
        ("create", "audited", False, True),
        ("get", "audited", False, False),
        ("create", "dry", True, False),
        ("delete", "audited", False, True),
    ]
    assert hook(sim.url, "GET", "audit?since=soon")[0] == 400

    lines = kubesim_cli("audit", "--url", sim.url, "--writes", "--since", str(since))
    cli_entries = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [(e["identity"], e["verb"], e["name"]) for e in cli_entries] == \
        [(e.identity, e.verb, e.name) for e in writes]


def test_audit_names_objects_created_with_generate_name(sim: KubeSim,
                                                        alice: client.CoreV1Api) -> None:
    """Deliverable 5: a POST's audit entry names the object it created, also when the server
    picked the name from generateName (like the objectRef of a real audit event)."""
    made = alice.create_namespaced_config_map(
        "default", {"metadata": {"generateName": "gen-"}})
    (entry,) = sim.audit.entries(writes_only=True)
    assert entry.name == made.metadata.name
    assert re.fullmatch(r"gen-[a-z0-9]{5}", entry.name)


# ------------------------------------------------------------------ managing faults
def test_faults_over_http_and_cli(sim: KubeSim, alice: client.CoreV1Api,
                                  bob: client.CoreV1Api) -> None:
    """Deliverable 5: rules are added, listed, removed and cleared over HTTP and with
    `python -m kubesim fault ...`, and act on the running server at once; hook requests are
    never subject to faults, so a `*` rule cannot lock the test out."""
    status, body = hook(sim.url, "POST", "faults",
                        {"identity": "*", "action": "error", "code": 500, "verbs": ["delete"]})
    assert status == 201
    http_id = body["id"]

    added = kubesim_cli("fault", "add", "--url", sim.url, "--identity", "token:alice",
                        "--action", "error", "--code", "503", "--verb", "create",
                        "--resource", "configmaps", "--count", "1")
    cli_id = json.loads(added.stdout)["id"]
    assert cli_id == http_id + 1
    listed = json.loads(kubesim_cli("fault", "list", "--url", sim.url).stdout)
    assert [(f["id"], f["identity"], f["action"], f["code"], f["verbs"], f["resources"],
             f["remaining"]) for f in listed["faults"]] == [
        (http_id, "*", "error", 500, ["delete"], [], -1),
        (cli_id, "token:alice", "error", 503, ["create"], ["configmaps"], 1),
    ]
    assert [f["id"] for f in hook(sim.url, "GET", "faults")[1]["faults"]] == [http_id, cli_id]

    with pytest.raises(ApiException) as exc:
        alice.create_namespaced_config_map("default", cm("a"))
    assert exc.value.status == 503
    alice.create_namespaced_config_map("default", cm("a"))  # count used up
    with pytest.raises(ApiException) as exc:
        bob.delete_namespaced_config_map("a", "default")
    assert exc.value.status == 500

    removed = kubesim_cli("fault", "remove", "--url", sim.url, "--id", str(cli_id))
    assert json.loads(removed.stdout) == {"removed": cli_id}
    assert [f["id"] for f in sim.faults.list()] == [http_id]
    assert json.loads(kubesim_cli("fault", "clear", "--url", sim.url).stdout) == \
        {"cleared": True}
    assert sim.faults.list() == []
    bob.delete_namespaced_config_map("a", "default")

    # every request is refused, yet the hooks still answer
    hook(sim.url, "POST", "faults", {"identity": "*", "action": "refuse"})
    with pytest.raises(urllib3.exceptions.HTTPError):
        bob.read_namespace("default")
    assert hook(sim.url, "DELETE", "faults") == (200, {"cleared": True})
    assert bob.read_namespace("default").metadata.name == "default"


@pytest.mark.parametrize(("spec", "field"), [
    ({"identity": "token:a", "action": "explode"}, "action"),
    ({"action": "error"}, "identity"),
    ({"identity": "", "action": "error"}, "identity"),
    ({"identity": "token:a"}, "action"),
    ({"identity": "token:a", "action": "error", "code": 200}, "code"),
    ({"identity": "token:a", "action": "error", "code": "500"}, "code"),
    ({"identity": "token:a", "action": "latency", "seconds": -1}, "seconds"),
    ({"identity": "token:a", "action": "latency", "seconds": "slow"}, "seconds"),
    ({"identity": "token:a", "action": "error", "verbs": "get"}, "verbs"),
    ({"identity": "token:a", "action": "error", "verbs": ["GET"]}, "verbs"),
    ({"identity": "token:a", "action": "error", "resources": [1]}, "resources"),
    ({"identity": "token:a", "action": "error", "remaining": "twice"}, "remaining"),
    ({"identity": "token:a", "action": "error", "remaining": -5}, "remaining"),
    ({"identity": "token:a", "action": "error", "retry_after": -1}, "retry_after"),
    ({"identity": "token:a", "action": "error", "colour": "red"}, "colour"),
    (["identity", "action"], "JSON object"),
])
def test_fault_invalid_spec_is_400_naming_the_field(sim: KubeSim, alice: client.CoreV1Api,
                                                    spec: Any, field: str) -> None:
    """Deliverable 5: a malformed rule is refused with 400 and a Status whose message names
    the offending field; nothing is added, and requests keep being served (a bad type never
    turns into a 500 on later requests)."""
    status, body = hook(sim.url, "POST", "faults", spec)
    assert status == 400
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "BadRequest", 400)
    assert body["message"].startswith("invalid fault: ")
    assert field in body["message"]
    assert sim.faults.list() == []
    assert alice.read_namespace("default").metadata.name == "default"


def test_fault_hook_bad_requests(sim: KubeSim) -> None:
    """Deliverable 5: the hook endpoints answer mistakes with 4xx Status bodies: a body that is
    not JSON → 400, removing a fault id that is not a number → 400 or that does not exist →
    404, and the CLI reports the server's 400 with a non-zero exit."""
    status, body = hook(sim.url, "POST", "faults", raw=b"{not json")
    assert (status, body["reason"]) == (400, "BadRequest")
    assert "not JSON" in body["message"]
    status, body = hook(sim.url, "DELETE", "faults/abc")
    assert (status, body["reason"]) == (400, "BadRequest")
    status, body = hook(sim.url, "DELETE", "faults/999")
    assert (status, body["reason"]) == (404, "NotFound")
    out = kubesim_cli("fault", "add", "--url", sim.url, "--identity", "token:a", "--action",
                      "error", "--code", "302", check=False)
    assert out.returncode != 0
    assert "kubesim answered 400" in out.stderr and "code" in out.stderr
    out = kubesim_cli("fault", "add", "--url", sim.url, "--action", "explode", check=False)
    assert out.returncode == 2 and "invalid choice: 'explode'" in out.stderr
    assert sim.faults.list() == []


# ------------------------------------------------------------------ the CLI server
@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path,
                                                                              subprocess.Popen]]:
    """`python -m kubesim --port 0 --kubeconfig K [extra args]` in a subprocess."""
    extra = getattr(request, "param", [])
    kubeconfig = tmp_path / "k.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "kubesim", "--port", "0", "--kubeconfig",
                             str(kubeconfig), *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        yield url, kubeconfig, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_serves_kubectl_and_stops_on_sigterm(
        served: tuple[str, Path, subprocess.Popen]) -> None:
    """Deliverable 5 (CLI acceptance): `python -m kubesim --port 0 --kubeconfig K` prints its
    URL first and writes K; `KUBECONFIG=K kubectl get ns` lists the four system namespaces,
    Active; SIGTERM stops it promptly with exit status 0, ending an open watch too."""
    url, kubeconfig, proc = served
    out = kubectl(kubeconfig, "get", "ns")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows[0] == ["NAME", "STATUS", "AGE"]
    assert sorted((r[0], r[1]) for r in rows[1:]) == [
        ("default", "Active"), ("kube-node-lease", "Active"), ("kube-public", "Active"),
        ("kube-system", "Active")]
    assert url in kubeconfig.read_text()

    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    watcher = subprocess.Popen([KUBECTL, "get", "ns", "--watch", "-o", "name"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("namespace/")  # the watch is open
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - t < 2
        watcher.wait(10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.wait(5)
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.27"}]
"""


def _ready(pod: dict[str, Any]) -> str:
    return next(c["status"] for c in pod["status"].get("conditions", []) if c["type"] == "Ready")


@pytest.mark.parametrize("served", [["--controllers", "--nodes", "2"]], indirect=True)
def test_cli_controllers_run_deployments_and_follow_node_readiness(
        served: tuple[str, Path, subprocess.Popen]) -> None:
    """Deliverable 5 (CLI acceptance, `--controllers`): a Deployment applied with kubectl
    gets Pods named <deploy>-<hash>-<5 chars>, Running and Ready, spread over the Nodes, and
    its status reports readyReplicas/availableReplicas/observedGeneration. Flipping a Node
    NotReady with POST /kubesim/v1/nodes/<name>/ready turns its Pods' Ready condition False
    (and the Deployment's readyReplicas down); flipping it back restores them."""
    url, kubeconfig, proc = served
    applied = kubectl(kubeconfig, "apply", "-f", "-", stdin=DEPLOYMENT)
    assert applied.returncode == 0, applied.stderr

    def get(*args: str) -> dict[str, Any]:
        out = kubectl(kubeconfig, "get", *args, "-o", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def ready_count(want: int) -> dict[str, Any] | None:
        d = get("deployment", "web")
        return d if (d.get("status") or {}).get("readyReplicas", 0) == want else None

    deploy = eventually(lambda: ready_count(3))
    status = deploy["status"]
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"],
            status["updatedReplicas"]) == (3, 3, 3, 3)
    assert status["observedGeneration"] == deploy["metadata"]["generation"] == 1
    pods = get("pods", "-l", "app=web")["items"]
    assert len(pods) == 3
    hashes = set()
    for pod in pods:
        m = POD_NAME.match(pod["metadata"]["name"])
        assert m and m["deploy"] == "web", pod["metadata"]["name"]
        hashes.add(m["hash"])
        assert pod["metadata"]["labels"]["pod-template-hash"] == m["hash"]
        assert pod["status"]["phase"] == "Running"
        assert _ready(pod) == "True"
    assert len(hashes) == 1
    by_node: dict[str, set[str]] = {}
    for pod in pods:
        by_node.setdefault(pod["spec"]["nodeName"], set()).add(pod["metadata"]["name"])
    assert sorted(by_node) == ["kubesim-node-1", "kubesim-node-2"]

    node = "kubesim-node-1"
    assert hook(url, "POST", f"nodes/{node}/ready", {"ready": False}) == \
        (200, {"node": node, "ready": False})

    def pods_ready() -> dict[str, str]:
        return {p["metadata"]["name"]: _ready(p) for p in get("pods", "-l", "app=web")["items"]}

    want = {name: "False" if name in by_node[node] else "True"
            for names in by_node.values() for name in names}
    eventually(lambda: pods_ready() == want)
    nodes = kubectl(kubeconfig, "get", "nodes", "--no-headers").stdout.split("\n")
    assert sorted(line.split()[:2] for line in nodes if line) == [
        [node, "NotReady"], ["kubesim-node-2", "Ready"]]
    assert all(p["status"]["phase"] == "Running" for p in get("pods", "-l", "app=web")["items"])
    eventually(lambda: ready_count(3 - len(by_node[node])))

    assert hook(url, "POST", f"nodes/{node}/ready", {"ready": True})[0] == 200
    eventually(lambda: set(pods_ready().values()) == {"True"})
    eventually(lambda: ready_count(3))

    assert hook(url, "POST", "nodes/nope/ready", {"ready": False})[0] == 404
    assert hook(url, "POST", f"nodes/{node}/ready", {"ready": "no"})[0] == 400


def test_set_node_ready_in_process(sim_workloads: KubeSim, tmp_path: Path) -> None:
    """Deliverable 5: `sim.set_node_ready(name, False)` makes that Node's Ready condition
    Unknown (NodeStatusUnknown) and the Ready condition of the Pods bound to it False, seen
    through the typed client; Pods on the other Node stay Ready."""
    sim = sim_workloads
    core = core_for(sim, tmp_path)
    apps = client.AppsV1Api(core.api_client)
    apps.create_namespaced_deployment("default", {
        "metadata": {"name": "api"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})

    def pod_ready() -> dict[str, tuple[str, str]]:
        return {p.metadata.name: (p.spec.node_name, next(
            (c.status for c in p.status.conditions or [] if c.type == "Ready"), ""))
            for p in core.list_namespaced_pod("default", label_selector="app=api").items}

    eventually(lambda: len(pod_ready()) == 2 and
               all(r == "True" for _, r in pod_ready().values()))
    before = pod_ready()
    node = next(iter(before.values()))[0]
    sim.set_node_ready(node, False)
    cond = next(c for c in core.read_node(node).status.conditions if c.type == "Ready")
    assert (cond.status, cond.reason) == ("Unknown", "NodeStatusUnknown")
    want = {name: (n, "False" if n == node else "True") for name, (n, _) in before.items()}
    eventually(lambda: pod_ready() == want)
    with pytest.raises(KeyError):
        sim.set_node_ready("no-such-node", False)
