"""Bad-input catalog of the operator's inputs: watches.yaml and the custom resource's spec.

watches.yaml, end to end through the CLI: every field of a watch entry (and of its
finalizer, blacklist and selector) gets a wrong type, a malformed or out-of-range value, and,
where it is required, no value. `election-operator run --watches-file bad.yaml` must exit 2
with one line on stderr that names the file, the entry (index and GVK), the field and what is
accepted, and must not send a single request to the cluster (kubesim's audit log stays
empty): the file is checked before the operator connects. A well-formed kind that the
cluster does not serve (a typo, or its CRD not installed) and a KUBECONFIG that leads nowhere
stop the start the same way, with no write. The cases call
`election_operator.cli.main` in-process (it returns before starting anything when the file
is bad); a few run the installed `election-operator` command as subprocesses to show the same
from the outside. tests/unit/test_watches.py covers the parser's rules in detail; this
catalog is about what a user sees from the command.

The Memcached spec (deploy/crd.yaml, role election.kubernetes.memcached): a wrong type or an
out-of-range `spec.size` is refused by the CRD's schema (422 naming spec.size and the rule,
on create, update and dry run, with kubectl too; nothing stored), and a missing one gets the
documented default. Past the schema (a CRD without it), the role refuses the value before
its first task; run here as the operator runs it (the spec as extra variables), for the
values tests/integration/test_memcached_role.py does not already cover ("three" and -1 under
the operator, and as role parameters).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_harness import BIN, INVENTORY, ROOT
from helpers import until
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from election_operator import cli
from kubesim import KubeSim

GOOD = {"version": "v1alpha1", "group": "cache.example.com", "kind": "Good"}
RUN_FLAGS = ["--leader-elect", "--leader-election-id", "bad-input", "--leader-election-namespace",
             "default", "--health-probe-bind-address", "127.0.0.1:0",
             "--metrics-bind-address", "0"]
BOOL = "must be true or false"
STRING = "must be a string"
REQUIRED = "is required and must not be empty"
MAPPING = "must be a mapping"


@dataclass(frozen=True)
class Case:
    """A change to a good entry (a value of `...` drops the key), the field the message must
    name (None: the entry as a whole) and fragments it must hold."""

    id: str
    change: dict[str, Any]
    field: str | None
    says: tuple[str, ...]


def case(cid: str, change: dict[str, Any], fld: str | None, *says: str) -> Case:
    return Case(cid, change, fld, says)


# "@playbook", "@role", "@dir" are filled in with paths of the test project.
CASES = [
    # -- the GVK
    case("version-missing", {"version": ...}, "version", REQUIRED, "such as v1alpha1"),
    case("version-null", {"version": None}, "version", REQUIRED),
    case("version-empty", {"version": ""}, "version", REQUIRED),
    case("version-number", {"version": 1}, "version", STRING, "got the number 1",
         "quote the value in YAML"),
    case("version-list", {"version": ["v1"]}, "version", STRING, "got a list"),
    case("version-uppercase", {"version": "V1"}, "version", "'V1' is not an API version",
         "such as v1alpha1"),
    case("version-dotted", {"version": "1.0"}, "version", "'1.0' is not an API version",
         "starting with a letter"),
    case("group-list", {"group": ["cache.example.com"]}, "group", STRING, "got a list"),
    case("group-number", {"group": 5}, "group", STRING, "got the number 5"),
    case("group-uppercase", {"group": "Cache.Example.com"}, "group",
         "'Cache.Example.com' is not an API group", "lowercase DNS subdomain"),
    case("group-underscore", {"group": "cache_example.com"}, "group", "is not an API group",
         "empty for the core group"),
    case("kind-missing", {"kind": ...}, "kind", REQUIRED, "such as Memcached"),
    case("kind-empty", {"kind": ""}, "kind", REQUIRED),
    case("kind-number", {"kind": 5}, "kind", STRING, "got the number 5"),
    case("kind-mapping", {"kind": {"name": "Good"}}, "kind", STRING, "got a mapping"),
    case("kind-spaces", {"kind": "Mem cached"}, "kind", "'Mem cached' is not a kind",
         "letters and digits starting with a letter"),
    case("kind-digit-first", {"kind": "9Lives"}, "kind", "'9Lives' is not a kind"),
    # -- what runs
    case("playbook-and-role-missing", {"playbook": ...}, None, "must have a playbook or a role",
         "playbook: <path to a playbook file> or role: <role name, FQCN or path>"),
    case("playbook-number", {"playbook": 5}, "playbook", STRING, "a path to a playbook file"),
    case("playbook-list", {"playbook": ["site.yml"]}, "playbook", STRING, "got a list"),
    case("playbook-not-found", {"playbook": "missing.yml"}, "playbook", "missing.yml was not "
         "found", "a relative playbook path is taken from"),
    case("playbook-directory", {"playbook": "@dir"}, "playbook", "is not a file",
         "expected a playbook file"),
    case("role-number", {"playbook": ..., "role": 5}, "role", STRING,
         "a role name, FQCN (namespace.collection.role) or path"),
    case("role-list", {"playbook": ..., "role": ["memcached"]}, "role", STRING, "got a list"),
    case("role-not-found", {"playbook": ..., "role": "nosuchrole"}, "role",
         "role 'nosuchrole' was not found; looked for a directory at:",
         "set ANSIBLE_ROLES_PATH or ANSIBLE_COLLECTIONS_PATH, or give an absolute path"),
    case("role-fqcn-not-found", {"playbook": ..., "role": "election.kubernetes.nosuchrole"},
         "role", "role 'election.kubernetes.nosuchrole' was not found",
         "ansible_collections/election/kubernetes/roles/nosuchrole"),
    case("vars-list", {"vars": ["a", "b"]}, "vars", MAPPING, "got a list",
         "a mapping of extra variables"),
    case("vars-string", {"vars": "size=3"}, "vars", MAPPING, "got the string 'size=3'"),
    # -- the finalizer
    case("finalizer-string", {"finalizer": "cleanup"}, "finalizer",
         "must be a mapping with name and playbook, role and/or vars", "got the string"),
    case("finalizer-list", {"finalizer": [{"name": "x"}]}, "finalizer", "must be a mapping",
         "got a list"),
    case("finalizer-name-missing", {"finalizer": {"vars": {"state": "absent"}}},
         "finalizer.name", REQUIRED, "such as cache.example.com/finalizer"),
    case("finalizer-name-number", {"finalizer": {"name": 5, "vars": {"state": "absent"}}},
         "finalizer.name", STRING, "got the number 5"),
    case("finalizer-name-invalid", {"finalizer": {"name": "clean up!", "vars": {"a": 1}}},
         "finalizer.name", "'clean up!' is not a valid finalizer name",
         "e.g. cache.example.com/finalizer"),
    case("finalizer-name-too-long", {"finalizer": {"name": "x/" + "a" * 64, "vars": {"a": 1}}},
         "finalizer.name", "is not a valid finalizer name", "at most 63"),
    case("finalizer-nothing-to-run", {"finalizer": {"name": "cache.example.com/finalizer"}},
         "finalizer", "needs a playbook, a role or vars besides its name"),
    case("finalizer-playbook-number", {"finalizer": {"name": "x/y", "playbook": 5}},
         "finalizer.playbook", STRING),
    case("finalizer-playbook-not-found", {"finalizer": {"name": "x/y",
                                                        "playbook": "cleanup.yml"}},
         "finalizer.playbook", "cleanup.yml was not found"),
    case("finalizer-role-list", {"finalizer": {"name": "x/y", "role": ["r"]}},
         "finalizer.role", STRING, "got a list"),
    case("finalizer-role-not-found", {"finalizer": {"name": "x/y", "role": "cleanup",
                                                    "vars": {"a": 1}}},
         "finalizer.role", "role 'cleanup' was not found"),
    case("finalizer-vars-list", {"finalizer": {"name": "x/y", "vars": ["state"]}},
         "finalizer.vars", MAPPING, "got a list"),
    case("finalizer-unknown-key", {"finalizer": {"name": "x/y", "roles": "r"}},
         "finalizer.roles", "unknown key; did you mean 'role'?",
         "accepted keys: name, playbook, role, vars"),
    # -- durations and counts
    case("reconcile-period-number", {"reconcilePeriod": 30}, "reconcilePeriod",
         "must be a string with a unit, got the number 30", "a Go duration"),
    case("reconcile-period-bool", {"reconcilePeriod": True}, "reconcilePeriod",
         "must be a string with a unit, got the boolean true"),
    case("reconcile-period-list", {"reconcilePeriod": ["1m"]}, "reconcilePeriod",
         "must be a string with a unit, got a list"),
    case("reconcile-period-word", {"reconcilePeriod": "hourly"}, "reconcilePeriod",
         "invalid duration 'hourly'", "a Go duration"),
    case("reconcile-period-no-unit", {"reconcilePeriod": "1.5"}, "reconcilePeriod",
         "invalid duration '1.5': missing unit"),
    case("reconcile-period-days", {"reconcilePeriod": "1d"}, "reconcilePeriod",
         "unknown unit 'd'", "units ns, us, ms, s, m, h"),
    case("reconcile-period-negative", {"reconcilePeriod": "-5s"}, "reconcilePeriod",
         "'-5s' is negative", "0 means use --reconcile-period"),
    case("reconcile-period-out-of-range", {"reconcilePeriod": "9999999999h"},
         "reconcilePeriod", "out of range"),
    case("max-runner-artifacts-negative", {"maxRunnerArtifacts": -1}, "maxRunnerArtifacts",
         "must be a whole number >= 0 (0 means 20), got the number -1"),
    case("max-runner-artifacts-string", {"maxRunnerArtifacts": "5"}, "maxRunnerArtifacts",
         "must be a whole number >= 0", "got the string '5'"),
    case("max-runner-artifacts-bool", {"maxRunnerArtifacts": True}, "maxRunnerArtifacts",
         "must be a whole number >= 0", "got the boolean true"),
    case("max-runner-artifacts-fraction", {"maxRunnerArtifacts": 2.5}, "maxRunnerArtifacts",
         "must be a whole number >= 0", "got the number 2.5"),
    # -- switches
    case("manage-status-string", {"manageStatus": "false"}, "manageStatus", BOOL,
         "got the string 'false'"),
    case("manage-status-number", {"manageStatus": 1}, "manageStatus", BOOL, "got the number 1"),
    case("watch-dependent-resources-string", {"watchDependentResources": "yes"},
         "watchDependentResources", BOOL),
    case("watch-cluster-scoped-resources-list", {"watchClusterScopedResources": []},
         "watchClusterScopedResources", BOOL, "got a list"),
    case("snake-case-parameters-word", {"snakeCaseParameters": "nope"}, "snakeCaseParameters",
         BOOL),
    case("watch-annotations-changes-number", {"watchAnnotationsChanges": 0},
         "watchAnnotationsChanges", BOOL, "got the number 0"),
    case("mark-unsafe-string", {"markUnsafe": "yes"}, "markUnsafe", BOOL),
    # -- settings that are not watches.yaml keys, and unknown keys
    case("max-concurrent-reconciles", {"maxConcurrentReconciles": 5}, "maxConcurrentReconciles",
         "it is not a watches.yaml setting, use MAX_CONCURRENT_RECONCILES_GOOD_CACHE_EXAMPLE_COM "
         "or --max-concurrent-reconciles"),
    case("max-workers", {"maxWorkers": 5}, "maxWorkers", "not a watches.yaml setting",
         "MAX_CONCURRENT_RECONCILES_GOOD_CACHE_EXAMPLE_COM"),
    case("ansible-verbosity", {"ansibleVerbosity": 3}, "ansibleVerbosity",
         "not a watches.yaml setting, use ANSIBLE_VERBOSITY_GOOD_CACHE_EXAMPLE_COM or "
         "--ansible-verbosity"),
    case("key-case", {"reconcileperiod": "5s"}, "reconcileperiod",
         "unknown key; did you mean 'reconcilePeriod'?", "accepted keys: group, version, kind"),
    case("key-unknown", {"replicas": 3}, "replicas", "unknown key (accepted keys: group, "
         "version, kind, playbook, role, vars"),
    # -- blacklist
    case("blacklist-mapping", {"blacklist": {"kind": "Secret"}}, "blacklist",
         "must be a list of {group, version, kind}", "got a mapping"),
    case("blacklist-item-string", {"blacklist": ["Secret"]}, "blacklist[0]",
         "must be a mapping with group, version and kind", "got the string 'Secret'"),
    case("blacklist-kind-missing", {"blacklist": [{"version": "v1"}]}, "blacklist[0].kind",
         REQUIRED),
    case("blacklist-version-missing", {"blacklist": [{"kind": "Secret"}]},
         "blacklist[0].version", REQUIRED),
    case("blacklist-group-number", {"blacklist": [{"group": 5, "version": "v1",
                                                   "kind": "Secret"}]},
         "blacklist[0].group", STRING, "got the number 5"),
    case("blacklist-unknown-key", {"blacklist": [{"version": "v1", "kind": "Secret",
                                                  "namespace": "x"}]},
         "blacklist[0].namespace", "unknown key", "accepted keys: group, version, kind"),
    # -- selector
    case("selector-string", {"selector": "app=web"}, "selector",
         "must be a label selector mapping with matchLabels and/or matchExpressions"),
    case("selector-list", {"selector": [{"app": "web"}]}, "selector",
         "must be a label selector mapping", "got a list"),
    case("selector-unknown-key", {"selector": {"matchLabel": {"app": "web"}}},
         "selector.matchLabel", "unknown key; did you mean 'matchLabels'?"),
    case("match-labels-list", {"selector": {"matchLabels": ["app=web"]}},
         "selector.matchLabels", MAPPING, "a mapping of label names to values"),
    case("match-labels-value-number", {"selector": {"matchLabels": {"tier": 1}}},
         "selector.matchLabels.tier", "label names and values must be strings",
         "got the number 1 (quote it in YAML)"),
    case("match-labels-key-invalid", {"selector": {"matchLabels": {"app name": "web"}}},
         "selector.matchLabels.app name", "'app name' is not a valid label name",
         "e.g. app.kubernetes.io/name"),
    case("match-expressions-mapping", {"selector": {"matchExpressions": {"key": "app"}}},
         "selector.matchExpressions", "must be a list of {key, operator, values}"),
    case("match-expression-item-number", {"selector": {"matchExpressions": [5]}},
         "selector.matchExpressions[0]", "must be a mapping with key, operator and values"),
    case("match-expression-key-missing", {"selector": {"matchExpressions": [
        {"operator": "In", "values": ["a"]}]}}, "selector.matchExpressions[0].key", REQUIRED,
         "a label name"),
    case("match-expression-key-invalid", {"selector": {"matchExpressions": [
        {"key": "-app", "operator": "Exists"}]}}, "selector.matchExpressions[0].key",
         "'-app' is not a valid label name"),
    case("match-expression-operator-missing", {"selector": {"matchExpressions": [
        {"key": "app", "values": ["a"]}]}}, "selector.matchExpressions[0].operator", REQUIRED,
         "In | NotIn | Exists | DoesNotExist"),
    case("match-expression-operator-unknown", {"selector": {"matchExpressions": [
        {"key": "app", "operator": "Like", "values": ["a"]}]}},
         "selector.matchExpressions[0].operator", "'Like' is not a label selector operator",
         "expected one of In, NotIn, Exists, DoesNotExist"),
    case("match-expression-values-missing", {"selector": {"matchExpressions": [
        {"key": "app", "operator": "NotIn"}]}}, "selector.matchExpressions[0].values",
         "must not be empty for the operator NotIn"),
    case("match-expression-values-with-exists", {"selector": {"matchExpressions": [
        {"key": "app", "operator": "DoesNotExist", "values": ["a"]}]}},
         "selector.matchExpressions[0].values", "must be empty for the operator DoesNotExist"),
    case("match-expression-values-string", {"selector": {"matchExpressions": [
        {"key": "app", "operator": "In", "values": "web"}]}},
         "selector.matchExpressions[0].values", "must be a list of strings",
         "got the string 'web'"),
    case("match-expression-values-numbers", {"selector": {"matchExpressions": [
        {"key": "app", "operator": "In", "values": [1, 2]}]}},
         "selector.matchExpressions[0].values", "must be a list of strings", "got a list"),
    case("match-expression-unknown-key", {"selector": {"matchExpressions": [
        {"key": "app", "operator": "Exists", "value": "a"}]}},
         "selector.matchExpressions[0].value", "unknown key; did you mean 'values'?"),
]

# Whole files that are not a list of entries.
FILES = [
    ("empty", "", "lists no watches; expected a YAML list of entries"),
    ("empty-list", "[]\n", "lists no watches"),
    ("comment-only", "# nothing yet\n", "lists no watches"),
    ("mapping", "version: v1\nkind: Good\n", "must be a YAML list of entries (- version: ..., "
     "kind: ..., role: ...), got a mapping"),
    ("string", "watches\n", "must be a YAML list of entries"),
    ("entry-string", "- cache.example.com/v1alpha1\n", "entry 0 (?): must be a mapping with "
     "version, kind and playbook or role, got the string"),
    ("not-yaml", "- {version: v1\n", "not valid YAML (line 2, column 1)"),
    ("two-documents", "- {version: v1}\n---\n- {version: v2}\n", "not valid YAML"),
    ("duplicate-key", "- version: v1\n  kind: A\n  kind: B\n  playbook: @playbook\n",
     "key 'kind' appears twice in one mapping (first on line 2)"),
    ("duplicate-gvk", "- {version: v1, kind: A, playbook: @playbook}\n"
     "- {version: v1, kind: A, playbook: @playbook}\n",
     "entry 1 (/v1, Kind=A): duplicate GVK: entry 0 already watches /v1, Kind=A"),
]


class Project:
    """An operator directory: a playbook, a role, and the watches files of the cases."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.playbook = root / "playbook.yml"
        self.playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
        (root / "roles" / "memcached" / "tasks").mkdir(parents=True)
        (root / "roles" / "memcached" / "tasks" / "main.yml").write_text("[]\n")

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("@playbook", str(self.playbook)).replace("@dir", str(self.root))
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value

    def entries(self, c: Case) -> list[dict[str, Any]]:
        good = {**GOOD, "kind": "First", "role": "memcached"}
        bad = {**GOOD, "playbook": str(self.playbook)}
        for key, value in c.change.items():
            if value is ...:
                bad.pop(key, None)
            else:
                bad[key] = self.fill(value)
        return [good, bad]

    def write(self, name: str, text: str) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(text)
        return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KubeSim, Path]]:
    """A cluster the operator would talk to, were the file good (KUBECONFIG points at it)."""
    tmp = tmp_path_factory.mktemp("bad-watches-cluster")
    with KubeSim() as sim:
        yield sim, sim.write_kubeconfig(tmp / "kubeconfig", token="election-operator")


@pytest.fixture
def project(tmp_path: Path, cluster: tuple[KubeSim, Path],
            monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)  # relative playbooks and roles are taken from here
    monkeypatch.setenv("KUBECONFIG", str(cluster[1]))
    monkeypatch.delenv("ANSIBLE_ROLES_PATH", raising=False)
    return Project(tmp_path)


def run_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli.main(["run", "--watches-file", str(path), *RUN_FLAGS])
    err = capsys.readouterr().err
    return code, err.splitlines()


def assert_no_request(sim: KubeSim, since: int) -> None:
    sent = [(e.identity, e.verb, e.path) for e in sim.audit.entries(since=since)]
    assert sent == [], f"the operator sent requests with a bad watches file: {sent}"


def _last_seq(sim: KubeSim) -> int:
    entries = sim.audit.entries()
    return entries[-1].seq if entries else 0


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_field_exits_2_with_one_message_naming_entry_and_field(
        c: Case, project: Project, cluster: tuple[KubeSim, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    sim, _ = cluster
    seq = _last_seq(sim)
    path = project.write("watches", yaml.safe_dump(project.entries(c), sort_keys=False))
    code, lines = run_cli(path, capsys)
    assert code == 2
    assert len(lines) == 1, lines
    msg = lines[0]
    assert msg.startswith(f"election-operator: {path}: entry 1 ("), msg
    if c.field is None:
        assert "): must have" in msg, msg
    else:
        assert f"): {c.field}: " in msg, msg
    for fragment in c.says:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    assert "Traceback" not in msg
    assert_no_request(sim, seq)


@pytest.mark.parametrize(("name", "text", "says"), FILES, ids=[f[0] for f in FILES])
def test_bad_file_exits_2_with_one_message(
        name: str, text: str, says: str, project: Project, cluster: tuple[KubeSim, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    sim, _ = cluster
    seq = _last_seq(sim)
    path = project.write(name, project.fill(text))
    code, lines = run_cli(path, capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"election-operator: {path}: "), lines[0]
    assert says in lines[0], f"{says!r} not in {lines[0]!r}"
    assert_no_request(sim, seq)


@pytest.mark.parametrize("target", ["missing", "directory"])
def test_a_watches_file_that_cannot_be_read(
        target: str, project: Project, cluster: tuple[KubeSim, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    sim, _ = cluster
    seq = _last_seq(sim)
    path = project.root / "nowhere.yaml" if target == "missing" else project.root
    code, lines = run_cli(path, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert f"election-operator: {path}: cannot read the watches file" in lines[0], lines[0]
    assert_no_request(sim, seq)


def test_every_watch_key_is_in_the_catalog() -> None:
    """Each key a watch entry, a finalizer, a blacklist item or a selector takes is the
    subject of at least one case (a key added later without one fails here)."""
    from election_operator import watches

    subjects = {c.field for c in CASES if c.field}
    top = {f.split(".")[0].split("[")[0] for f in subjects}
    assert set(watches._WATCH_KEYS) - top == set(), "watch keys without a case"
    assert set(watches._NOT_WATCH_KEYS) - top == set()
    for key in watches._FINALIZER_KEYS:
        assert f"finalizer.{key}" in subjects, key
    for key in watches._GVK_KEYS:
        assert f"blacklist[0].{key}" in subjects, key
    for key in watches._SELECTOR_KEYS:
        assert any(f.startswith(f"selector.{key}") for f in subjects), key
    for key in watches._EXPRESSION_KEYS:
        assert f"selector.matchExpressions[0].{key}" in subjects, key


def test_the_installed_command_refuses_bad_files_the_same_way(
        project: Project, cluster: tuple[KubeSim, Path]) -> None:
    """The `election-operator` command itself (subprocesses, run at once): exit 2, one line
    on stderr naming entry and field, no request."""
    sim, kubeconfig = cluster
    seq = _last_seq(sim)
    picked = {c.id: c for c in CASES}
    chosen = [picked["version-number"], picked["reconcile-period-number"],
              picked["match-expression-operator-unknown"]]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    procs = []
    for c in chosen:
        path = project.write(c.id, yaml.safe_dump(project.entries(c), sort_keys=False))
        procs.append((c, path, subprocess.Popen(
            [str(BIN / "election-operator"), "run", "--watches-file", str(path), *RUN_FLAGS],
            cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)))
    for c, path, proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (c.id, out, err)
        lines = err.splitlines()
        assert len(lines) == 1, (c.id, lines)
        assert lines[0].startswith(f"election-operator: {path}: entry 1 ("), lines[0]
        assert f"): {c.field}: " in lines[0] and c.says[0] in lines[0], lines[0]
        assert out == ""
    assert_no_request(sim, seq)


def test_a_kind_the_cluster_does_not_serve_or_an_unusable_kubeconfig_stops_the_start(
        project: Project, cluster: tuple[KubeSim, Path]) -> None:
    """Only the cluster can tell that a well-formed GVK is misspelt (or its CRD missing), and
    only the file system that KUBECONFIG points nowhere: the command still exits 2 with one
    line naming the entry and the field (or the variable), and writes nothing."""
    sim, kubeconfig = cluster
    seq = _last_seq(sim)
    good = project.write("served", yaml.safe_dump([{**GOOD, "kind": "Memcache",
                                                     "playbook": str(project.playbook)}]))
    runs = {"kind": (good, str(kubeconfig)), "kubeconfig": (good, str(project.root / "nope"))}
    procs = {}
    for name, (path, kc) in runs.items():
        env = {**os.environ, "KUBECONFIG": kc}
        procs[name] = subprocess.Popen(
            [str(BIN / "election-operator"), "run", "--watches-file", str(path), *RUN_FLAGS,
             "--runner-dir", str(project.root / f"runner-{name}")],
            cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
    lines = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (name, out, err)
        lines[name] = err.splitlines()
        assert len(lines[name]) == 1 and "Traceback" not in err, (name, err)
    assert lines["kind"][0] == (
        f"election-operator: {good}: entry 0 (cache.example.com/v1alpha1, Kind=Memcache): "
        f"kind: the API server does not serve kind Memcache in cache.example.com/v1alpha1; "
        f"install its CustomResourceDefinition, or correct group, version and kind")
    assert lines["kubeconfig"][0] == (
        f"election-operator: kubeconfig {project.root / 'nope'} (KUBECONFIG) does not exist or "
        f"is not a file; expected the path of a kubeconfig file")
    writes = [(e.verb, e.path) for e in sim.audit.entries(since=seq)
              if e.verb in ("create", "update", "patch", "delete", "deletecollection")]
    assert writes == []


# --------------------------------------------------------------------------- the Memcached spec

GROUP, VERSION, PLURAL = "cache.example.com", "v1alpha1", "memcacheds"
INTEGER = 'spec.size in body must be of type integer'
SPECS = [
    ("size-word", {"size": "three"}, "spec.size", INTEGER + ': "string"'),
    ("size-numeric-string", {"size": "3"}, "spec.size", INTEGER + ': "string"'),
    ("size-fraction", {"size": 2.5}, "spec.size", INTEGER + ': "number"'),
    ("size-bool", {"size": True}, "spec.size", INTEGER + ': "boolean"'),
    ("size-list", {"size": [3]}, "spec.size", INTEGER + ': "array"'),
    ("size-mapping", {"size": {"replicas": 3}}, "spec.size", INTEGER + ': "object"'),
    ("size-negative", {"size": -1}, "spec.size",
     "spec.size in body should be greater than or equal to 0"),
    ("size-above-maximum", {"size": 101}, "spec.size",
     "spec.size in body should be less than or equal to 100"),
    ("size-beyond-int32", {"size": 2**31}, "spec.size", "should be less than or equal to 100"),
    ("spec-string", "size=3", "spec", 'spec in body must be of type object: "string"'),
]


def memcached(name: str, spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Memcached",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


class Crs:
    """The Memcached CRD (deploy/crd.yaml, or without its schema) on a kubesim, and clients
    with their own tokens."""

    def __init__(self, sim: KubeSim, tmp: Path, schema: bool = True) -> None:
        self.sim, self.tmp = sim, tmp
        admin = self.client("crs-setup")
        crd = yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
        if not schema:
            crd["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True}}
        dyn = DynamicClient(admin, cache_file=str(tmp / "discovery.json"))
        dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                          kind="CustomResourceDefinition").create(body=crd)
        until_served(client.CustomObjectsApi(admin))
        admin.close()

    def client(self, token: str) -> client.ApiClient:
        path = self.sim.write_kubeconfig(self.tmp / f"kubeconfig-{token}", token=token)
        return config.new_client_from_config(config_file=str(path))

    def writes(self, token: str) -> list[tuple[str, int, bool]]:
        """Every write request of `token` (refused ones and dry runs included)."""
        return [(e.verb, e.code, e.dry_run) for e in self.sim.audit.entries(
            identity=f"token:{token}") if e.verb in ("create", "update", "patch", "delete")]


def until_served(api: client.CustomObjectsApi) -> None:
    def served() -> bool:
        try:
            api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
            return True
        except ApiException:
            return False

    until(served, 5, "the Memcached kind served")


@pytest.fixture(scope="module")
def crs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crs]:
    tmp = tmp_path_factory.mktemp("bad-spec")
    with KubeSim() as sim:
        yield Crs(sim, tmp)


def _status_message(e: ApiException) -> str:
    return str(json.loads(e.body)["message"])


@pytest.mark.parametrize(("cid", "spec", "fld", "says"), SPECS, ids=[s[0] for s in SPECS])
def test_the_schema_refuses_a_bad_spec_and_stores_nothing(
        crs: Crs, cid: str, spec: Any, fld: str, says: str) -> None:
    api = crs.client(f"spec-{cid}")
    custom = client.CustomObjectsApi(api)
    name = f"bad-{cid}"
    try:
        for dry_run in ("All", None):
            with pytest.raises(ApiException) as info:
                custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL,
                                                       memcached(name, spec), dry_run=dry_run)
            assert info.value.status == 422
            msg = _status_message(info.value)
            assert msg.startswith(f'Memcached.{GROUP} "{name}" is invalid: {fld}: '
                                  f'Invalid value: '), msg
            assert says in msg, msg
        with pytest.raises(ApiException) as info:
            custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
        assert info.value.status == 404, "nothing stored"
        assert crs.writes(f"spec-{cid}") == [("create", 422, True), ("create", 422, False)]
    finally:
        api.close()


def test_the_schema_refuses_a_bad_spec_on_update_and_keeps_the_object(crs: Crs) -> None:
    api = crs.client("spec-update")
    custom = client.CustomObjectsApi(api)
    try:
        good = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL,
                                                      memcached("kept", {"size": 2}))
        for _, spec, fld, says in SPECS:
            with pytest.raises(ApiException) as info:
                custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "kept",
                                                      {"spec": spec})
            assert info.value.status == 422 and says in _status_message(info.value)
            with pytest.raises(ApiException) as info:
                custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL,
                                                        "kept", {**good, "spec": spec})
            assert info.value.status == 422 and f"{fld}: Invalid value" in _status_message(
                info.value)
        now = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "kept")
        assert now["spec"] == {"size": 2}
        assert now["metadata"]["resourceVersion"] == good["metadata"]["resourceVersion"]
    finally:
        api.close()


def test_kubectl_shows_the_schema_message(crs: Crs) -> None:
    path = crs.tmp / "bad-memcached.yaml"
    path.write_text(yaml.safe_dump(memcached("by-kubectl", {"size": "three"})))
    kubeconfig = crs.sim.write_kubeconfig(crs.tmp / "kubeconfig-kubectl", token="spec-kubectl")
    proc = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert 'spec.size: Invalid value: "three": spec.size in body must be of type integer' in \
        proc.stderr, proc.stderr
    assert [w for w in crs.writes("spec-kubectl") if w[1] < 300] == []


@pytest.mark.parametrize(("name", "spec"), [("no-size", {}), ("null-size", {"size": None}),
                                          ("no-spec", None)])
def test_a_missing_size_gets_the_documented_default(crs: Crs, name: str, spec: Any) -> None:
    """spec.size is not required: without it (or null) the schema's default 1 is stored;
    without a spec the role's default, also 1, applies."""
    api = crs.client("spec-default")
    custom = client.CustomObjectsApi(api)
    try:
        body = memcached(name, spec)
        if spec is None:
            del body["spec"]
        stored = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
        assert (stored.get("spec") or {}).get("size", 1) == 1, stored
        if spec is not None:
            assert stored["spec"]["size"] == 1
    finally:
        api.close()


# Values that only a CRD without the schema lets through, as the operator passes them to the
# role (the spec as extra variables); tests/integration/test_memcached_role.py covers "three",
# [3] and -1.
ROLE_SPECS = [
    ("size-fraction", {"size": 2.5}, "argument 'size' is of type float and we were unable to "
     "convert to int"),
    ("size-mapping", {"size": {"replicas": 3}}, "argument 'size' is of type dict and we were "
     "unable to convert to int"),
    ("size-null", {"size": None}, "argument 'size' is of type NoneType and we were unable to "
     "convert to int"),
    ("size-negative-string", {"size": "-2"},
     "spec.size must be an integer from 0 to 100; got -2"),
    ("size-boolean", {"size": True}, "spec.size must be an integer from 0 to 100; got True"),
    ("size-over-the-maximum", {"size": 101},
     "spec.size must be an integer from 0 to 100; got 101"),
    ("meta-missing", {"ansible_operator_meta": None}, "argument 'ansible_operator_meta' is of "
     "type NoneType and we were unable to convert to dict"),
    ("meta-name-missing", {"ansible_operator_meta": {"namespace": "default"}},
     "missing required arguments: name found in ansible_operator_meta"),
    ("state-unknown", {"state": "deleted"}, "value of state must be one of: present, absent, "
     "got: deleted"),
]


def test_past_the_schema_the_role_refuses_the_spec_before_any_request(
        tmp_path: Path) -> None:
    """Each value: the play fails in the role's argument validation (or its first check),
    with the message naming size (or the variable); its token sends no request at all."""
    with KubeSim() as sim:
        Crs(sim, tmp_path, schema=False)
        procs = []
        for cid, variables, _ in ROLE_SPECS:
            d = tmp_path / cid
            d.mkdir()
            (d / "inventory").write_text(INVENTORY)
            (d / "play.yml").write_text(yaml.safe_dump([{
                "name": "reconcile", "hosts": "localhost", "gather_facts": False,
                "roles": ["election.kubernetes.memcached"]}]))
            extravars = {"ansible_operator_meta": {"name": "loose", "namespace": "default"},
                         **variables}
            (d / "extravars.json").write_text(json.dumps(extravars))
            env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(d), "ANSIBLE_NOCOLOR": "1",
                   "KUBECONFIG": str(sim.write_kubeconfig(d / "kubeconfig", token=f"role-{cid}")),
                   "ANSIBLE_LOCAL_TEMP": str(d / "tmp"), "ANSIBLE_HOME": str(d / "home")}
            procs.append(subprocess.Popen(
                [str(BIN / "ansible-playbook"), "-i", str(d / "inventory"), str(d / "play.yml"),
                 "-e", f"@{d / 'extravars.json'}"], cwd=ROOT, env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        for (cid, _, says), proc in zip(ROLE_SPECS, procs, strict=True):
            out = proc.communicate(timeout=120)[0]
            assert proc.returncode == 2, (cid, out)
            assert says in out, (cid, out)
            assert "failed=1" in out and "Traceback" not in out, (cid, out)
            assert sim.audit.entries(identity=f"token:role-{cid}") == [], cid
