"""watches.yaml loading: ansible-operator's accept/reject cases (watches_test.go and its testdata),
field defaults, ${ENV} expansion, role resolution order, Go durations, per-kind env overrides,
and one clear message naming the entry and the field for every rejection."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from election_operator.watches import (
    Finalizer,
    Watch,
    WatchesError,
    ansible_verbosity,
    load_watches,
    max_concurrent_reconciles,
    parse_duration,
    per_kind_int,
    role_candidates,
)


class Project:
    """An operator project dir like ansible-operator's testdata: playbook.yml, roles/role and a
    collection nameSpace.collection with the role someRole."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.playbook = root / "playbook.yml"
        self.playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
        self.role = root / "roles" / "role"
        (self.role / "tasks").mkdir(parents=True)
        (self.role / "tasks" / "main.yml").write_text("[]\n")
        self.collections = root / "collections"
        self.collection_role = (self.collections / "ansible_collections" / "nameSpace"
                                / "collection" / "roles" / "someRole")
        self.collection_role.mkdir(parents=True)
        self.home = root / "home"
        self.home.mkdir()

    def write(self, text: str, name: str = "watches.yaml") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return {"HOME": str(self.home), **extra}

    def load(self, text: str, **env: str) -> list[Watch]:
        return load_watches(self.write(text), base_dir=self.root, environ=self.env(**env))

    def reject(self, text: str, **env: str) -> WatchesError:
        with pytest.raises(WatchesError) as info:
            self.load(text, **env)
        return info.value


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


# ------------------------------------------------------------------ the valid file of AOP's tests

def valid_yaml(p: Project) -> str:
    """testdata/valid.yaml.tmpl with ValidPlaybook/ValidRole filled in. Differences: the
    selector's operator is `In` (AOP's fixture has `matchexpression_operator`, which AOP only
    rejects later, when it builds the predicate; we reject it at load, see below)."""
    return f"""\
    ---
    - version: v1alpha1
      group: app.example.com
      kind: NoFinalizer
      playbook: {p.playbook}
      reconcilePeriod: 2s
    - version: v1alpha1
      group: app.example.com
      kind: WithUnsafeMarked
      playbook: {p.playbook}
      reconcilePeriod: 2s
      markUnsafe: true
    - version: v1alpha1
      group: app.example.com
      kind: Playbook
      playbook: {p.playbook}
      snakeCaseParameters: false
      finalizer:
        name: app.example.com/finalizer
        role: {p.role}
        vars:
          sentinel: finalizer_running
    - version: v1alpha1
      group: app.example.com
      kind: WatchClusterScoped
      playbook: {p.playbook}
      reconcilePeriod: 2s
      watchClusterScopedResources: true
    - version: v1alpha1
      group: app.example.com
      kind: NoReconcile
      playbook: {p.playbook}
      reconcilePeriod: 0s
    - version: v1alpha1
      group: app.example.com
      kind: DefaultStatus
      playbook: {p.playbook}
    - version: v1alpha1
      group: app.example.com
      kind: DisableStatus
      playbook: {p.playbook}
      manageStatus: False
    - version: v1alpha1
      group: app.example.com
      kind: EnableStatus
      playbook: {p.playbook}
      manageStatus: True
    - version: v1alpha1
      group: app.example.com
      kind: Role
      role: {p.role}
      finalizer:
        name: app.example.com/finalizer
        playbook: {p.playbook}
        vars:
          sentinel: finalizer_running
    - version: v1alpha1
      group: app.example.com
      kind: FinalizerRole
      role: {p.role}
      finalizer:
        name: app.example.com/finalizer
        vars:
          sentinel: finalizer_running
    - version: v1alpha1
      group: app.example.com
      kind: MaxConcurrentReconcilesDefault
      role: {p.role}
    - version: v1alpha1
      group: app.example.com
      kind: MaxConcurrentReconcilesEnv
      role: {p.role}
    - version: v1alpha1
      group: app.example.com
      kind: AnsibleVerbosityDefault
      role: {p.role}
    - version: v1alpha1
      group: app.example.com
      kind: AnsibleVerbosityEnv
      role: {p.role}
    - version: v1alpha1
      group: app.example.com
      kind: WatchWithVars
      role: {p.role}
      vars:
        sentinel: reconciling
    - version: v1alpha1
      group: app.example.com
      kind: AnsibleCollectionEnvTest
      role: nameSpace.collection.someRole
    - version: v1alpha1
      group: app.example.com
      kind: AnsibleBlacklistTest
      manageStatus: True
      role: {p.role}
      blacklist:
      - version: "v1alpha1.1"
        group:   "app.example.com/1"
        kind:    "AnsibleBlacklistTest_1"
      - version: "v1alpha1.2"
        group:   "app.example.com/2"
        kind:    "AnsibleBlacklistTest_2"
      - version: "v1alpha1.3"
        group:   "app.example.com/3"
        kind:    "AnsibleBlacklistTest_3"
    - version: "v1alpha1"
      group: "app.example.com"
      kind: "AnsibleSelectorTest"
      manageStatus: True
      role: {p.role}
      selector:
        matchLabels:
          matchLabel_1: matchLabel_1
        matchExpressions:
          - {{key: matchexpression_key, operator: In, values: [value1,value2]}}
    """


@pytest.mark.parametrize("roles_path_set", [False, True],
                         ids=["valid watches file",
                              "should load file successfully with ANSIBLE ROLES PATH ENV VAR set"])
def test_aop_valid_watches_file(project: Project, roles_path_set: bool) -> None:
    env = {"ANSIBLE_COLLECTIONS_PATH": str(project.collections)}
    if roles_path_set:
        env["ANSIBLE_ROLES_PATH"] = f"path/invalid:/path/invalid/myroles:{project.root}"
    watches = {w.kind: w for w in project.load(valid_yaml(project), **env)}
    pb, role = str(project.playbook), str(project.role)
    fin_vars = {"sentinel": "finalizer_running"}

    assert list(watches) == [
        "NoFinalizer", "WithUnsafeMarked", "Playbook", "WatchClusterScoped", "NoReconcile",
        "DefaultStatus", "DisableStatus", "EnableStatus", "Role", "FinalizerRole",
        "MaxConcurrentReconcilesDefault", "MaxConcurrentReconcilesEnv", "AnsibleVerbosityDefault",
        "AnsibleVerbosityEnv", "WatchWithVars", "AnsibleCollectionEnvTest", "AnsibleBlacklistTest",
        "AnsibleSelectorTest"]
    assert watches["NoFinalizer"] == Watch(group="app.example.com", version="v1alpha1",
                                           kind="NoFinalizer", playbook=pb, reconcile_period=2.0)
    assert watches["WithUnsafeMarked"].mark_unsafe is True
    assert watches["Playbook"].snake_case_parameters is False
    assert watches["Playbook"].finalizer == Finalizer(
        name="app.example.com/finalizer", role=role, vars=fin_vars)
    assert watches["WatchClusterScoped"].watch_cluster_scoped_resources is True
    assert watches["WatchClusterScoped"].reconcile_period == 2.0
    assert watches["NoReconcile"].reconcile_period == 0.0
    assert watches["DefaultStatus"].manage_status is True
    assert watches["DisableStatus"].manage_status is False
    assert watches["EnableStatus"].manage_status is True
    assert watches["Role"].role == role and watches["Role"].playbook is None
    assert watches["Role"].finalizer == Finalizer(
        name="app.example.com/finalizer", playbook=pb, vars=fin_vars)
    assert watches["FinalizerRole"].finalizer == Finalizer(
        name="app.example.com/finalizer", vars=fin_vars)
    assert watches["WatchWithVars"].vars == {"sentinel": "reconciling"}
    assert watches["AnsibleCollectionEnvTest"].role == str(project.collection_role)
    assert watches["AnsibleBlacklistTest"].blacklist == (
        ("app.example.com/1", "v1alpha1.1", "AnsibleBlacklistTest_1"),
        ("app.example.com/2", "v1alpha1.2", "AnsibleBlacklistTest_2"),
        ("app.example.com/3", "v1alpha1.3", "AnsibleBlacklistTest_3"))
    assert watches["AnsibleSelectorTest"].selector == {
        "matchLabels": {"matchLabel_1": "matchLabel_1"},
        "matchExpressions": [{"key": "matchexpression_key", "operator": "In",
                              "values": ["value1", "value2"]}]}
    # Everything not set in the file has ansible-operator's default.
    for watch in watches.values():
        assert watch.watch_dependent_resources is True
        assert watch.max_runner_artifacts == 20
        assert (watch.selector is None) == (watch.kind != "AnsibleSelectorTest")


def test_aop_max_concurrent_reconciles_and_verbosity_come_from_env(project: Project) -> None:
    # valid.yaml's *Default / *Env kinds, with the env that TestLoad sets.
    env = {"WORKER_MAXCONCURRENTRECONCILESENV_APP_EXAMPLE_COM": "4",
           "ANSIBLE_VERBOSITY_ANSIBLEVERBOSITYENV_APP_EXAMPLE_COM": "4"}
    watches = {w.kind: w for w in project.load(valid_yaml(project), ANSIBLE_COLLECTIONS_PATH=str(
        project.collections))}
    assert max_concurrent_reconciles(env, watches["MaxConcurrentReconcilesDefault"], 1) == 1
    assert max_concurrent_reconciles(env, watches["MaxConcurrentReconcilesEnv"], 1) == 4
    assert ansible_verbosity(env, watches["AnsibleVerbosityDefault"], 2) == 2
    assert ansible_verbosity(env, watches["AnsibleVerbosityEnv"], 2) == 4


# ------------------------------------------------------------------ AOP's rejected files

def test_aop_error_duplicate_gvk(project: Project) -> None:
    err = project.reject(f"""\
    ---
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: {project.playbook}
      finalizer:
        name: finalizer.app.example.com
        vars:
          sentinel: finalizer_running
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: {project.playbook}
      finalizer:
        name: finalizer.app.example.com
        vars:
          sentinel: finalizer_running
    """)
    assert "entry 1 (app.example.com/v1alpha1, Kind=Database)" in str(err)
    assert "duplicate GVK" in str(err) and "entry 0" in str(err)
    assert err.index == 1


def test_another_version_of_the_same_kind_is_not_a_duplicate(project: Project) -> None:
    watches = project.load(f"""\
    - {{version: v1, group: app.example.com, kind: Database, playbook: {project.playbook}}}
    - {{version: v2, group: app.example.com, kind: Database, playbook: {project.playbook}}}
    """)
    assert [w.version for w in watches] == ["v1", "v2"]


def test_aop_error_no_file(project: Project) -> None:
    missing = project.root / "please_don't_create_me_gvk.yaml"
    with pytest.raises(WatchesError, match="cannot read the watches file"):
        load_watches(missing, base_dir=project.root, environ=project.env())


def test_aop_error_invalid_yaml(project: Project) -> None:
    err = project.reject("""\
    ---
    version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: playbook.yaml
    """)
    assert "not valid YAML (line 3" in str(err)


def test_aop_error_invalid_yaml_file_that_is_not_a_list(project: Project) -> None:
    err = project.reject("version: v1alpha1\nkind: Database\nplaybook: playbook.yml\n")
    assert "must be a YAML list of entries" in str(err) and "got a mapping" in str(err)


def test_aop_error_invalid_playbook_path(project: Project) -> None:
    err = project.reject("""\
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: invalid/playbook.yaml
    """)
    expected = os.path.join(project.root, "invalid/playbook.yaml")
    assert str(err) == (
        f"{project.root}/watches.yaml: entry 0 (app.example.com/v1alpha1, Kind=Database): "
        f"playbook: {expected} was not found (a relative playbook path is taken from "
        f"{project.root})")
    assert err.field == "playbook" and err.gvk == "app.example.com/v1alpha1, Kind=Database"


def test_aop_error_invalid_finalizer_playbook_path(project: Project) -> None:
    err = project.reject(f"""\
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: {project.playbook}
      finalizer:
        name: app.example.com/finalizer
        playbook: playbook.yaml
        vars:
          sentinel: finalizer_running
    """)
    assert "entry 0 (app.example.com/v1alpha1, Kind=Database): finalizer.playbook: " in str(err)
    assert "playbook.yaml was not found" in str(err)


def test_aop_error_invalid_finalizer_without_name(project: Project) -> None:
    err = project.reject(f"""\
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: {project.playbook}
      finalizer:
        vars:
          sentinel: finalizer_running
    """)
    assert "finalizer.name: is required and must not be empty" in str(err)


def test_aop_error_invalid_role_path(project: Project) -> None:
    err = project.reject("""\
    - version: v1alpha1
      group: app.example.com
      kind: Database
      role: opt/ansible/playbook.yaml
    """)
    assert "entry 0 (app.example.com/v1alpha1, Kind=Database): role: " in str(err)
    assert "role 'opt/ansible/playbook.yaml' was not found" in str(err)
    assert os.path.join(project.root, "roles", "opt/ansible/playbook.yaml") in str(err)


def test_aop_error_invalid_finalizer_role_path_even_with_vars(project: Project) -> None:
    err = project.reject(f"""\
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: {project.playbook}
      finalizer:
        name: finalizer.app.example.com
        role: ansible/role
        vars:
          sentinel: finalizer_running
    """)
    assert "finalizer.role: role 'ansible/role' was not found" in str(err)


def test_aop_error_invalid_finalizer_no_playbook_role_or_vars(project: Project) -> None:
    err = project.reject(f"""\
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: {project.playbook}
      finalizer:
        name: foo.app.example.com/finalizer
    """)
    assert "(app.example.com/v1alpha1, Kind=Database): finalizer: needs a playbook, a role or " \
           "vars" in str(err)


def test_aop_error_invalid_duration(project: Project) -> None:
    err = project.reject(f"""\
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: {project.playbook}
      reconcilePeriod: invalid
    """)
    assert "entry 0 (app.example.com/v1alpha1, Kind=Database): reconcilePeriod: invalid " \
           "duration 'invalid'" in str(err)
    assert '"1h2m3s"' in str(err)


def test_aop_error_invalid_status_unknown_key(project: Project) -> None:
    err = project.reject(f"""\
    - version: v1alpha1
      group: app.example.com
      kind: Database
      playbook: {project.playbook}
      watches: invalid
    """)
    assert "entry 0 (app.example.com/v1alpha1, Kind=Database): watches: unknown key" in str(err)
    assert "accepted keys: group, version, kind, playbook, role" in str(err)


def test_aop_error_collection_not_installed_in_the_default_locations(project: Project) -> None:
    # ANSIBLE_COLLECTIONS_PATH unset: /usr/share/ansible/collections and ~/.ansible/collections.
    err = project.reject("""\
    - version: v1alpha1
      group: app.example.com
      kind: SanityUnconfirmed
      role: nameSpace.collection.someRole
    """)
    assert "role 'nameSpace.collection.someRole' was not found" in str(err)
    assert ("/usr/share/ansible/collections/ansible_collections/nameSpace/collection/roles/"
            "someRole") in str(err)
    assert (f"{project.home}/.ansible/collections/ansible_collections/nameSpace/collection/roles/"
            "someRole") in str(err)


# ------------------------------------------------------------------ more rejections

# Each case: a change to a good entry (YAML; `~` removes a key), the field named, a fragment.
REJECTIONS = [
    ("version: ~", "version", "is required and must not be empty"),
    ("kind: ''", "kind", "is required and must not be empty"),
    ("playbook: ~", None, "must have a playbook or a role"),
    ("version: 1", "version", "must be a string, got the number 1"),
    ("group: [a]", "group", "must be a string, got a list"),
    ("playbook: 5", "playbook", "must be a string, got the number 5"),
    ("reconcilePeriod: 30", "reconcilePeriod", "must be a string with a unit, got the number 30"),
    ("reconcilePeriod: 10d", "reconcilePeriod", "unknown unit 'd'"),
    ("reconcilePeriod: -5s", "reconcilePeriod", "is negative"),
    ("manageStatus: 'false'", "manageStatus", "must be true or false, got the string 'false'"),
    ("watchDependentResources: 1", "watchDependentResources", "must be true or false"),
    ("watchClusterScopedResources: []", "watchClusterScopedResources", "must be true or false"),
    ("snakeCaseParameters: nope", "snakeCaseParameters", "must be true or false"),
    ("watchAnnotationsChanges: 0", "watchAnnotationsChanges", "must be true or false"),
    ("markUnsafe: 'yes'", "markUnsafe", "must be true or false"),
    ("maxRunnerArtifacts: -1", "maxRunnerArtifacts", "must be a whole number >= 0"),
    ("maxRunnerArtifacts: '5'", "maxRunnerArtifacts", "must be a whole number >= 0"),
    ("maxRunnerArtifacts: true", "maxRunnerArtifacts", "must be a whole number >= 0"),
    ("vars: [a, b]", "vars", "must be a mapping, got a list"),
    ("finalizer: cleanup", "finalizer", "must be a mapping with name"),
    ("finalizer: {name: 'bad name!', vars: {a: 1}}", "finalizer.name",
     "is not a valid finalizer name"),
    ("finalizer: {name: x/y, vars: {a: 1}, roles: r}", "finalizer.roles",
     "unknown key; did you mean 'role'?"),
    ("finalizer: {name: x/y, vars: [a]}", "finalizer.vars", "must be a mapping, got a list"),
    ("blacklist: {kind: Secret}", "blacklist", "must be a list of {group, version, kind}"),
    ("blacklist: [Secret]", "blacklist[0]", "must be a mapping with group, version and kind"),
    ("blacklist: [{version: v1}]", "blacklist[0].kind", "is required"),
    ("blacklist: [{version: v1, kind: Secret, namespace: x}]", "blacklist[0].namespace",
     "unknown key"),
    ("selector: app=web", "selector", "must be a label selector mapping"),
    ("selector: {matchLabels: {app: 1}}", "selector.matchLabels.app",
     "must be strings, got the number 1"),
    ("selector: {matchLabel: {app: web}}", "selector.matchLabel",
     "unknown key; did you mean 'matchLabels'?"),
    ("selector: {matchExpressions: {key: a}}", "selector.matchExpressions",
     "must be a list of {key, operator, values}"),
    ("selector: {matchExpressions: [{key: a, operator: Like, values: [b]}]}",
     "selector.matchExpressions[0].operator", "expected one of In, NotIn, Exists, DoesNotExist"),
    ("selector: {matchExpressions: [{operator: In, values: [b]}]}",
     "selector.matchExpressions[0].key", "is required"),
    ("selector: {matchExpressions: [{key: a, operator: In}]}",
     "selector.matchExpressions[0].values", "must not be empty for the operator In"),
    ("selector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}",
     "selector.matchExpressions[0].values", "must be empty for the operator Exists"),
    ("selector: {matchExpressions: [{key: a, operator: In, values: [1]}]}",
     "selector.matchExpressions[0].values", "must be a list of strings"),
    ("reconcileperiod: 5s", "reconcileperiod", "unknown key; did you mean 'reconcilePeriod'?"),
    ("ManageStatus: true", "ManageStatus", "unknown key; did you mean 'manageStatus'?"),
    ("maxWorkers: 5", "maxWorkers",
     "use MAX_CONCURRENT_RECONCILES_DATABASE_APP_EXAMPLE_COM or --max-concurrent-reconciles"),
    ("maxConcurrentReconciles: 5", "maxConcurrentReconciles",
     "use MAX_CONCURRENT_RECONCILES_DATABASE_APP_EXAMPLE_COM or --max-concurrent-reconciles"),
    ("ansibleVerbosity: 5", "ansibleVerbosity",
     "use ANSIBLE_VERBOSITY_DATABASE_APP_EXAMPLE_COM or --ansible-verbosity"),
]


@pytest.mark.parametrize(("change", "field", "fragment"), REJECTIONS,
                         ids=[case[0] for case in REJECTIONS])
def test_each_rejection_names_the_entry_and_the_field(
        project: Project, change: str, field: str | None, fragment: str) -> None:
    good = {"version": "v1", "group": "app.example.com", "kind": "Good",
            "playbook": str(project.playbook)}
    bad = {**good, "kind": "Database"}
    for key, value in yaml.safe_load(change).items():
        if value is None:
            del bad[key]
        else:
            bad[key] = value
    err = project.reject(yaml.safe_dump([good, bad], sort_keys=False))
    message = str(err)
    assert message.startswith(f"{project.root}/watches.yaml: entry 1 ("), message
    assert err.index == 1 and err.field == field
    if field is not None:
        assert f"): {field}: " in message, message
    assert fragment in message, message
    assert "\n" not in message


def test_missing_version_and_kind_show_in_the_entry_label(project: Project) -> None:
    assert "entry 0 (/<no version>, Kind=Database): version:" in str(
        project.reject("- kind: Database\n"))
    assert "entry 0 (app.example.com/v1, Kind=<no kind>): kind:" in str(
        project.reject("- {group: app.example.com, version: v1}\n"))


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "lists no watches"),
    ("[]", "lists no watches"),
    ("# only a comment\n", "lists no watches"),
    ("just a string", "must be a YAML list of entries"),
    ("- just a string", "entry 0 (?): must be a mapping with version, kind and playbook or role"),
    ("- version: v1\n  kind: A\n  kind: B\n", "key 'kind' appears twice in one mapping"),
    ("- {version: v1\n", "not valid YAML"),
    ("- a: 1\n---\n- b: 2\n", "not valid YAML"),
])
def test_malformed_files(project: Project, text: str, fragment: str) -> None:
    assert fragment in str(project.reject(text))


def test_a_playbook_that_is_a_directory_is_rejected(project: Project) -> None:
    err = project.reject(f"- {{version: v1, kind: A, playbook: {project.role}}}\n")
    assert "playbook: " in str(err) and "is not a file" in str(err)


# ------------------------------------------------------------------ defaults and values

def test_a_minimal_entry_gets_every_default(project: Project) -> None:
    (watch,) = project.load("- {version: v1, kind: Secret, role: role}\n")
    assert watch == Watch(group="", version="v1", kind="Secret", role=str(project.role))
    assert watch.playbook is None and watch.vars == {} and watch.finalizer is None
    assert watch.reconcile_period == 0.0 and watch.max_runner_artifacts == 20
    assert watch.manage_status and watch.watch_dependent_resources and watch.snake_case_parameters
    assert not (watch.watch_cluster_scoped_resources or watch.watch_annotations_changes
                or watch.mark_unsafe)
    assert watch.blacklist == () and watch.selector is None
    assert watch.gvk == "/v1, Kind=Secret"
    assert watch.api_version == "v1"
    assert watch.env_suffix == "SECRET_"


def test_every_field_is_read(project: Project) -> None:
    (watch,) = project.load(f"""\
    - version: v1alpha1
      group: cache.example.com
      kind: Memcached
      playbook: playbook.yml
      vars: {{size: 3, nested: {{aB: [1]}}}}
      reconcilePeriod: 1h2m3s
      manageStatus: false
      watchDependentResources: false
      watchClusterScopedResources: true
      maxRunnerArtifacts: 5
      finalizer: {{name: cache.example.com/finalizer, role: {project.role}, vars: {{x: 1}}}}
      blacklist: [{{group: apps, version: v1, kind: Deployment}}, {{version: v1, kind: Secret}}]
      selector: {{matchLabels: {{tier: cache}},
                 matchExpressions: [{{key: env, operator: NotIn, values: [dev]}},
                                    {{key: legacy, operator: DoesNotExist}}]}}
      snakeCaseParameters: false
      watchAnnotationsChanges: true
      markUnsafe: true
    """)
    assert watch == Watch(
        group="cache.example.com", version="v1alpha1", kind="Memcached",
        playbook=str(project.playbook), role=None, vars={"size": 3, "nested": {"aB": [1]}},
        reconcile_period=3723.0, manage_status=False, watch_dependent_resources=False,
        watch_cluster_scoped_resources=True, max_runner_artifacts=5,
        finalizer=Finalizer(name="cache.example.com/finalizer", role=str(project.role),
                            vars={"x": 1}),
        blacklist=(("apps", "v1", "Deployment"), ("", "v1", "Secret")),
        selector={"matchLabels": {"tier": "cache"},
                  "matchExpressions": [
                      {"key": "env", "operator": "NotIn", "values": ["dev"]},
                      {"key": "legacy", "operator": "DoesNotExist", "values": []}]},
        snake_case_parameters=False, watch_annotations_changes=True, mark_unsafe=True)
    assert watch.gvk == "cache.example.com/v1alpha1, Kind=Memcached"
    assert watch.api_version == "cache.example.com/v1alpha1"
    assert watch.env_suffix == "MEMCACHED_CACHE_EXAMPLE_COM"
    assert hash(watch) == hash(watch)  # usable as a dict key / in sets


@pytest.mark.parametrize(("value", "seconds"), [
    ("1h2m3s", 3723.0), ("500ms", 0.5), ("10s", 10.0), ('"0"', 0.0), ("0", 0.0), ("0s", 0.0),
    ("1.5h", 5400.0), ("null", 0.0),
])
def test_reconcile_period_values(project: Project, value: str, seconds: float) -> None:
    (watch,) = project.load(f"- {{version: v1, kind: A, role: role, reconcilePeriod: {value}}}\n")
    assert watch.reconcile_period == seconds


@pytest.mark.parametrize(("value", "expected"), [("0", 20), ("1", 1), ("null", 20), ("50", 50)])
def test_max_runner_artifacts_zero_means_twenty(project: Project, value: str,
                                                expected: int) -> None:
    (watch,) = project.load(f"- {{version: v1, kind: A, role: role, "
                            f"maxRunnerArtifacts: {value}}}\n")
    assert watch.max_runner_artifacts == expected


def test_playbook_wins_over_role_even_when_the_role_does_not_exist(project: Project) -> None:
    (watch,) = project.load("- {version: v1, kind: A, playbook: playbook.yml, role: nowhere}\n")
    assert watch.playbook == str(project.playbook) and watch.role is None


def test_relative_playbooks_are_taken_from_base_dir(project: Project, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    path = elsewhere / "watches.yaml"
    path.write_text("- {version: v1, kind: A, playbook: playbook.yml}\n")
    (watch,) = load_watches(path, base_dir=project.root, environ={})
    assert watch.playbook == str(project.playbook)
    with pytest.raises(WatchesError, match="playbook: .*was not found"):
        load_watches(path, base_dir=elsewhere, environ={})


def test_base_dir_defaults_to_the_working_directory(project: Project,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root)
    path = project.write("- {version: v1, kind: A, playbook: playbook.yml, "
                         "finalizer: {name: a.io/f, playbook: playbook.yml}}\n")
    (watch,) = load_watches(path, environ={})
    assert watch.playbook == str(project.playbook)
    assert watch.finalizer == Finalizer(name="a.io/f", playbook=str(project.playbook))


# ------------------------------------------------------------------ ${ENV}

def test_aop_replace_env_vars(project: Project) -> None:
    # TestReplaceEnvVars with testdata/env-vars.yaml (operator `In`, see valid_yaml).
    watches = project.load("""\
    ---
    - version: "${WATCH_VERSION}"
      group: "app.example.com"
      kind: "AnsibleSelectorTest"
      playbook: ${WATCH_PLAYBOOK}
      selector:
        matchLabels:
          ${WATCH_MATCH_LABEL_VAR_NAME}: "${WATCH_MATCH_LABEL_VAR_VALUE}"
          undefined: "${WATCH_UNDEFINED_ENV_VAR}"
        matchExpressions:
          - {key: ${WATCH_MATCH_EXPRESSIONS_KEY}, operator: In, values: [a, b]}
    """, WATCH_PLAYBOOK=str(project.playbook), WATCH_VERSION="v123",
        WATCH_MATCH_LABEL_VAR_NAME="label123", WATCH_MATCH_LABEL_VAR_VALUE="value123",
        WATCH_MATCH_EXPRESSIONS_KEY="key123")
    (watch,) = watches
    assert watch.group == "app.example.com"
    assert watch.version == "v123"
    assert watch.playbook == str(project.playbook)
    assert watch.selector is not None
    assert watch.selector["matchLabels"] == {"label123": "value123",
                                             "undefined": "${WATCH_UNDEFINED_ENV_VAR}"}
    assert watch.selector["matchExpressions"][0]["key"] == "key123"


def test_env_expansion_forms(project: Project) -> None:
    (watch,) = project.load("""\
    - version: v1
      kind: A
      role: $ROLE_NAME
      vars:
        braces: "${GREETING} world"
        bare: "$GREETING world"
        unset_braces: "${NOT_SET}"
        unset_bare: "$NOT_SET"
        empty_braces: "${}"
        lone_dollar: "cost: 5$"
    """, ROLE_NAME="role", GREETING="hello")
    assert watch.role == str(project.role)
    assert watch.vars == {"braces": "hello world", "bare": "hello world",
                          "unset_braces": "${NOT_SET}", "unset_bare": "$NOT_SET",
                          "empty_braces": "${}", "lone_dollar": "cost: 5$"}


def test_load_watches_reads_os_environ_by_default(project: Project,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHES_TEST_KIND", "FromEnviron")
    path = project.write(f"- {{version: v1, kind: '${{WATCHES_TEST_KIND}}', "
                         f"playbook: {project.playbook}}}\n")
    assert load_watches(path)[0].kind == "FromEnviron"


# ------------------------------------------------------------------ role resolution

def make_role(path: Path) -> Path:
    (path / "tasks").mkdir(parents=True)
    return path


def test_role_resolution_order(project: Project, tmp_path_factory) -> None:
    """absolute > FQCN in each collections path > each ANSIBLE_ROLES_PATH entry (p/<role>, then
    p/roles/<role>) > <base>/roles/<role>: remove the winner, the next one wins."""
    extra = tmp_path_factory.mktemp("extra")
    fqcn = "acme.web.server"
    coll1 = make_role(extra / "c1/ansible_collections/acme/web/roles/server")
    coll2 = make_role(extra / "c2/ansible_collections/acme/web/roles/server")
    rp1 = make_role(extra / f"r1/{fqcn}")
    rp1_roles = make_role(extra / f"r1/roles/{fqcn}")
    rp2 = make_role(extra / f"r2/{fqcn}")
    rp2_roles = make_role(extra / f"r2/roles/{fqcn}")
    local = make_role(project.root / "roles" / fqcn)
    env = {"ANSIBLE_COLLECTIONS_PATH": f"{extra}/c1:{extra}/c2",
           "ANSIBLE_ROLES_PATH": f"{extra}/r1:{extra}/r2"}
    yaml_text = f"- {{version: v1, kind: A, role: {fqcn}}}\n"
    for expected in (coll1, coll2, rp1, rp1_roles, rp2, rp2_roles, local):
        assert project.load(yaml_text, **env)[0].role == str(expected)
        expected.rename(expected.with_name(expected.name + ".gone"))
    err = project.reject(yaml_text, **env)
    assert (f"looked for a directory at: {coll1}, {coll2}, {rp1}, {rp1_roles}, {rp2}, "
            f"{rp2_roles}, {local}, {project.root / fqcn}") in str(err)
    # An absolute path is used as it is, and nothing else is looked at.
    assert project.load(f"- {{version: v1, kind: A, role: {project.role}}}\n",
                        **env)[0].role == str(project.role)


def test_collections_paths_plural_and_relative_entries(project: Project) -> None:
    yaml_text = "- {version: v1, kind: A, role: nameSpace.collection.someRole}\n"
    expected = str(project.collection_role)
    assert project.load(yaml_text, ANSIBLE_COLLECTIONS_PATHS=str(project.collections))[0].role \
        == expected
    # Relative entries are taken from the base dir; the singular name wins over the plural.
    assert project.load(yaml_text, ANSIBLE_COLLECTIONS_PATH="collections",
                        ANSIBLE_COLLECTIONS_PATHS="/nowhere")[0].role == expected


def test_default_collections_path_in_home(project: Project) -> None:
    role = make_role(project.home / ".ansible/collections/ansible_collections/a/b/roles/c")
    assert project.load("- {version: v1, kind: A, role: a.b.c}\n")[0].role == str(role)


def test_roles_path_entry_with_roles_subdir(project: Project, tmp_path_factory) -> None:
    extra = tmp_path_factory.mktemp("rp")
    role = make_role(extra / "roles" / "memcached")
    (watch,) = project.load("- {version: v1, kind: A, role: memcached}\n",
                            ANSIBLE_ROLES_PATH=f"/nonexistent::{extra}")
    assert watch.role == str(role)


def test_role_relative_to_base_dir(project: Project) -> None:
    role = make_role(project.root / "my" / "roles-dir" / "web")
    (watch,) = project.load("- {version: v1, kind: A, role: my/roles-dir/web}\n")
    assert watch.role == str(role)


def test_a_file_is_not_a_role(project: Project) -> None:
    (project.root / "roles" / "notarole").write_text("")
    assert "role 'notarole' was not found" in str(
        project.reject("- {version: v1, kind: A, role: notarole}\n"))


def test_aop_get_possible_role_paths(tmp_path: Path) -> None:
    # TestGetPossibleRolePaths, with our extra last candidate <base>/<role>.
    base, home = str(tmp_path), "/home/op"
    roles = os.path.join(base, "roles")
    assert role_candidates("Foo", base, {}) == [f"{roles}/Foo", f"{base}/Foo"]
    assert role_candidates("relative/Foo", base, {}) == [f"{roles}/relative/Foo",
                                                         f"{base}/relative/Foo"]
    assert role_candidates("Foo", base, {"ANSIBLE_ROLES_PATH": "relative:nested/relative:/and/abs"}
                           ) == [f"{base}/relative/Foo", f"{base}/relative/roles/Foo",
                                 f"{base}/nested/relative/Foo", f"{base}/nested/relative/roles/Foo",
                                 "/and/abs/Foo", "/and/abs/roles/Foo", f"{roles}/Foo",
                                 f"{base}/Foo"]
    assert role_candidates("myNS.myCol.myRole", base, {"HOME": home}) == [
        "/usr/share/ansible/collections/ansible_collections/myNS/myCol/roles/myRole",
        f"{home}/.ansible/collections/ansible_collections/myNS/myCol/roles/myRole",
        f"{roles}/myNS.myCol.myRole", f"{base}/myNS.myCol.myRole"]
    # When ANSIBLE_COLLECTIONS_PATH is set, the defaults are not checked.
    assert role_candidates("myNS.myCol.myRole", base,
                           {"HOME": home, "ANSIBLE_COLLECTIONS_PATH": "/my/collections/"}) == [
        "/my/collections/ansible_collections/myNS/myCol/roles/myRole",
        f"{roles}/myNS.myCol.myRole", f"{base}/myNS.myCol.myRole"]
    assert role_candidates("/abs/role", base, {"ANSIBLE_ROLES_PATH": "/x"}) == ["/abs/role"]


# ------------------------------------------------------------------ durations

@pytest.mark.parametrize(("text", "ns"), [
    # From Go's time.ParseDuration tests.
    ("0", 0), ("5s", 5_000_000_000), ("30s", 30_000_000_000), ("1478s", 1_478_000_000_000),
    ("-5s", -5_000_000_000), ("+5s", 5_000_000_000), ("-0", 0), ("+0", 0),
    ("5.0s", 5_000_000_000), ("5.6s", 5_600_000_000), ("5.s", 5_000_000_000),
    (".5s", 500_000_000), ("1.004s", 1_004_000_000), ("100.00100s", 100_001_000_000),
    ("10ns", 10), ("11us", 11_000), ("12µs", 12_000), ("12μs", 12_000), ("13ms", 13_000_000),
    ("15m", 900_000_000_000), ("16h", 57_600_000_000_000), ("3h30m", 12_600_000_000_000),
    ("10.5s4m", 250_500_000_000), ("-2m3.4s", -123_400_000_000),
    ("1h2m3s4ms5us6ns", 3_723_004_005_006), ("39h9m14.425s", 140_954_425_000_000),
    ("0.3333333333333333333h", 1_200_000_000_000), ("500ms", 500_000_000),
])
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns / 1e9


@pytest.mark.parametrize("text", [
    "", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "00", "1h 2m", "\x85\x85",
    "9223372036854775808ns", "9223372036854775.808us",
])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


# ------------------------------------------------------------------ per-kind env overrides

MEMCACHED = Watch(group="cache.example.com", version="v1alpha1", kind="MemCacheService")


@pytest.mark.parametrize(("env", "expected"), [
    # TestMaxConcurrentReconciles
    ({}, 1),
    ({"WORKER_MEMCACHESERVICE_CACHE_EXAMPLE_COM": "0"}, 1),
    ({"WORKER_MEMCACHESERVICE_CACHE_EXAMPLE_COM": "3"}, 3),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHESERVICE_CACHE_EXAMPLE_COM": "2"}, 2),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHESERVICE_CACHE_EXAMPLE_COM": "3",
      "WORKER_MEMCACHESERVICE_CACHE_EXAMPLE_COM": "1"}, 3),
    # and: negative or unparsable values give the default, without falling back to WORKER_
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHESERVICE_CACHE_EXAMPLE_COM": "-2"}, 1),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHESERVICE_CACHE_EXAMPLE_COM": "four",
      "WORKER_MEMCACHESERVICE_CACHE_EXAMPLE_COM": "3"}, 1),
])
def test_max_concurrent_reconciles_env(env: dict[str, str], expected: int) -> None:
    assert max_concurrent_reconciles(env, MEMCACHED, 1) == expected
    assert per_kind_int(env, "MAX_CONCURRENT_RECONCILES", MEMCACHED, 1) == expected
    assert per_kind_int(env, "MAX_CONCURRENT_RECONCILES", MEMCACHED, 1,
                        lambda v: v > 0) == expected


@pytest.mark.parametrize(("value", "expected"), [
    # TestAnsibleVerbosity
    (None, 1), ("-1", 1), ("8", 1), ("3", 3), ("0", 0), ("7", 7),
    ("x", 1), ("", 1),
])
def test_ansible_verbosity_env(value: str | None, expected: int) -> None:
    env = {} if value is None else {"ANSIBLE_VERBOSITY_MEMCACHESERVICE_CACHE_EXAMPLE_COM": value}
    assert ansible_verbosity(env, MEMCACHED, 1) == expected
    assert per_kind_int(env, "ANSIBLE_VERBOSITY", MEMCACHED, 1, range(0, 8)) == expected
    assert per_kind_int(env, "ANSIBLE_VERBOSITY", MEMCACHED, 1,
                        lambda v: 0 <= v <= 7) == expected


def test_core_group_env_name_ends_with_an_underscore() -> None:
    secret = Watch(group="", version="v1", kind="Secret")
    assert max_concurrent_reconciles({"MAX_CONCURRENT_RECONCILES_SECRET_": "5"}, secret, 1) == 5
