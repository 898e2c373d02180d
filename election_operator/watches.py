"""watches.yaml: which custom resources the operator reconciles, and with what.

The format is ansible-operator's (ansible-operator-plugins `internal/ansible/watches`): a YAML
list, one entry per group/version/kind, mapping it to a playbook or a role, with the same keys and
defaults (spec §1). `load_watches` reads, validates and resolves the whole file up front, so that a
mistake stops the operator at start with ONE message that names the file, the entry (index and
GVK), the field and what is accepted; nothing runs from a half-valid file.

How it follows ansible-operator:
- `${VAR}` and `$VAR` are replaced from the environment before the YAML is parsed; a variable that
  is not set stays as written.
- A relative playbook is joined to the base directory (the working directory, `/opt/ansible` in
  the operator image). A role is the first existing directory of `role_candidates` (absolute path,
  FQCN in the collection paths, ANSIBLE_ROLES_PATH, `<base>/roles/<role>`). When both are given
  the playbook wins.
- `maxRunnerArtifacts: 0` means the default 20; `reconcilePeriod: 0` means "use the
  --reconcile-period flag".
- The number of concurrent reconciles and the Ansible verbosity are not watches.yaml keys: they
  come from per-kind environment variables (`per_kind_int`) or the flags.

Where it is stricter than ansible-operator (which silently ignores or defers these): unknown keys
(also in `finalizer`, `blacklist` and `selector`), duplicate keys, wrong value types, an empty
file, a finalizer role or playbook that does not exist even when the finalizer has vars, a
finalizer name that Kubernetes would refuse, a group, version or kind that no API server
could serve (`Cache.Example.com`, `1.0`), negative durations or counts, and label selectors
that Kubernetes would refuse (a malformed label name, an unknown operator, `In` without
values) are errors here, at start.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ansible_collections.election.kubernetes.plugins.module_utils.duration import (
    DURATION_HELP as _DURATION_HELP,
)
from ansible_collections.election.kubernetes.plugins.module_utils.duration import (
    parse_duration,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_RUNNER_ARTIFACTS = 20
DEFAULT_COLLECTIONS_PATHS = ("/usr/share/ansible/collections", "~/.ansible/collections")

# watches.yaml key -> what it accepts (used in error messages).
_WATCH_KEYS: dict[str, str] = {
    "group": "a string (empty for the core group)",
    "version": "a non-empty string such as v1alpha1",
    "kind": "a non-empty string such as Memcached",
    "playbook": "a path to a playbook file",
    "role": "a role name, FQCN (namespace.collection.role) or path",
    "vars": "a mapping of extra variables",
    "reconcilePeriod": "a Go duration such as 30s, 1h2m3s or 0",
    "manageStatus": "true or false",
    "watchDependentResources": "true or false",
    "watchClusterScopedResources": "true or false",
    "maxRunnerArtifacts": "a whole number >= 0 (0 means 20)",
    "finalizer": "a mapping with name and playbook, role and/or vars",
    "blacklist": "a list of {group, version, kind}",
    "selector": "a label selector with matchLabels and/or matchExpressions",
    "snakeCaseParameters": "true or false",
    "watchAnnotationsChanges": "true or false",
    "markUnsafe": "true or false",
}
_FINALIZER_KEYS = ("name", "playbook", "role", "vars")
_GVK_KEYS = ("group", "version", "kind")
_SELECTOR_KEYS = ("matchLabels", "matchExpressions")
_EXPRESSION_KEYS = ("key", "operator", "values")
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# Settings people put in watches.yaml that ansible-operator takes from elsewhere.
_NOT_WATCH_KEYS = {
    "maxConcurrentReconciles": "MAX_CONCURRENT_RECONCILES_{suffix} or --max-concurrent-reconciles",
    "maxWorkers": "MAX_CONCURRENT_RECONCILES_{suffix} or --max-concurrent-reconciles",
    "ansibleVerbosity": "ANSIBLE_VERBOSITY_{suffix} or --ansible-verbosity",
}
# The deprecated environment prefix that is read when the current one is not set.
_DEPRECATED_PREFIXES = {"MAX_CONCURRENT_RECONCILES": "WORKER"}

# A Kubernetes qualified name (what the API server accepts as a finalizer).
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
# What the API server accepts as an API group, a version (a CRD version name is a DNS-1035
# label) and a kind (a DNS-1035 label once lower-cased).
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_KIND = re.compile(r"[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?")
_LABEL_HELP = ("at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter "
               "or digit")


class WatchesError(ValueError):
    """A watches.yaml that cannot be used. `str()` is the one message for the user; the
    attributes say where: the file, the entry index and GVK, and the field (dotted path)."""

    def __init__(self, message: str, *, path: str | None = None, index: int | None = None,
                 gvk: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.path, self.index, self.gvk, self.field = path, index, gvk, field


@dataclass(frozen=True)
class Finalizer:
    """`finalizer:` of a watch. With neither playbook nor role, the watch's own playbook or role
    runs on deletion, with `vars` on top."""

    name: str
    playbook: str | None = None
    role: str | None = None
    vars: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Watch:
    """One resolved watches.yaml entry. `playbook` and `role` are absolute paths (at most one of
    them is set); `reconcile_period` is in seconds, 0 meaning "use the --reconcile-period flag".
    `vars` and `selector` are plain data: treat them as read-only."""

    group: str
    version: str
    kind: str
    playbook: str | None = None
    role: str | None = None
    vars: dict[str, Any] = field(default_factory=dict, hash=False)
    reconcile_period: float = 0.0
    manage_status: bool = True
    watch_dependent_resources: bool = True
    watch_cluster_scoped_resources: bool = False
    max_runner_artifacts: int = DEFAULT_MAX_RUNNER_ARTIFACTS
    finalizer: Finalizer | None = None
    blacklist: tuple[tuple[str, str, str], ...] = ()
    selector: dict[str, Any] | None = field(default=None, hash=False)
    snake_case_parameters: bool = True
    watch_annotations_changes: bool = False
    mark_unsafe: bool = False

    @property
    def gvk(self) -> str:
        """The GVK as ansible-operator logs it and labels metrics with:
        `cache.example.com/v1alpha1, Kind=Memcached` (`/v1, Kind=Secret` for the core group)."""
        return _gvk_string(self.group, self.version, self.kind)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def env_suffix(self) -> str:
        """`<KIND>_<GROUP>` upper-cased with `.` -> `_`, as in
        MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM."""
        return _env_suffix(self.group, self.kind)


def _gvk_string(group: str, version: str, kind: str) -> str:
    return f"{group}/{version}, Kind={kind}"


def _env_suffix(group: str, kind: str) -> str:
    return f"{kind}_{group}".upper().replace(".", "_")


# --------------------------------------------------------------------------- durations

_ENV_REFERENCE = re.compile(r"\$(?:\{([^}]*)\}|([*#$@!?\-0-9])|([A-Za-z_][A-Za-z0-9_]*))")


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Replace `${VAR}` and `$VAR` with the variable's value; references to variables that are
    not set (and `${}`) are left exactly as written."""

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) if m.group(1) is not None else (m.group(2) or m.group(3))
        if name and name in environ:
            return environ[name]
        return m.group(0)

    return _ENV_REFERENCE.sub(replace, text)


def _split_paths(value: str | None) -> list[str]:
    return [p for p in (value or "").split(":") if p]


def _home(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def _abs(base_dir: str, path: str, environ: Mapping[str, str]) -> str:
    if path == "~" or path.startswith("~/"):
        path = _home(environ) + path[1:]
    return os.path.normpath(os.path.join(base_dir, path))


def role_candidates(role: str, base_dir: str, environ: Mapping[str, str]) -> list[str]:
    """The absolute paths where `role` is looked for, in order (the first existing directory is
    used):

    1. `role` itself when it is an absolute path (and nothing else);
    2. for an FQCN `ns.coll.name`: `<p>/ansible_collections/ns/coll/roles/name` for each p of
       ANSIBLE_COLLECTIONS_PATH (else ANSIBLE_COLLECTIONS_PATHS, else
       /usr/share/ansible/collections:~/.ansible/collections);
    3. `<p>/<role>` then `<p>/roles/<role>` for each p of ANSIBLE_ROLES_PATH;
    4. `<base_dir>/roles/<role>`;
    5. `<base_dir>/<role>` (ansible-operator accepts a role path relative to its working dir).

    Relative entries of the path variables are taken from `base_dir`."""
    if os.path.isabs(role):
        return [os.path.normpath(role)]
    candidates: list[str] = []
    parts = role.split(".")
    if len(parts) == 3:
        roots = (_split_paths(environ.get("ANSIBLE_COLLECTIONS_PATH"))
                 or _split_paths(environ.get("ANSIBLE_COLLECTIONS_PATHS"))
                 or list(DEFAULT_COLLECTIONS_PATHS))
        namespace, collection, name = parts
        for root in roots:
            candidates.append(_abs(base_dir, os.path.join(
                root, "ansible_collections", namespace, collection, "roles", name), environ))
    for root in _split_paths(environ.get("ANSIBLE_ROLES_PATH")):
        candidates.append(_abs(base_dir, os.path.join(root, role), environ))
        candidates.append(_abs(base_dir, os.path.join(root, "roles", role), environ))
    candidates.append(_abs(base_dir, os.path.join("roles", role), environ))
    candidates.append(_abs(base_dir, role, environ))
    return list(dict.fromkeys(candidates))


# --------------------------------------------------------------------------- per-kind settings

def per_kind_int(environ: Mapping[str, str], prefix: str, watch: Watch, default: int,
                 valid: Callable[[int], bool] | Container[int] | None = None) -> int:
    """The integer in `<prefix>_<KIND>_<GROUP>` (e.g. MAX_CONCURRENT_RECONCILES_MEMCACHED_
    CACHE_EXAMPLE_COM), or `default` when it is not set, not an integer or not valid. `valid` is
    a predicate or a container of the accepted values (e.g. `range(0, 8)`); None accepts values
    > 0. For MAX_CONCURRENT_RECONCILES the deprecated WORKER_<KIND>_<GROUP> is read when the new
    name is not set."""
    name = f"{prefix}_{watch.env_suffix}"
    raw = environ.get(name)
    if raw is None and prefix in _DEPRECATED_PREFIXES:
        old = f"{_DEPRECATED_PREFIXES[prefix]}_{watch.env_suffix}"
        raw = environ.get(old)
        if raw is not None:
            log.warning("Environment variable %s is deprecated, use %s instead", old, name)
            name = old
    if raw is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        log.warning("%s=%r is not an integer; using the default %s", name, raw, default)
        return default
    value = int(raw)
    if valid is None:
        ok = value > 0
    elif callable(valid):
        ok = valid(value)
    else:
        ok = value in valid
    if not ok:
        log.warning("%s=%s is out of range; using the default %s", name, value, default)
        return default
    return value


def max_concurrent_reconciles(environ: Mapping[str, str], watch: Watch, default: int) -> int:
    """MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP> (or WORKER_...) if > 0, else `default`."""
    return per_kind_int(environ, "MAX_CONCURRENT_RECONCILES", watch, default)


def ansible_verbosity(environ: Mapping[str, str], watch: Watch, default: int) -> int:
    """ANSIBLE_VERBOSITY_<KIND>_<GROUP> if within 0-7, else `default`."""
    return per_kind_int(environ, "ANSIBLE_VERBOSITY", watch, default, range(0, 8))


# --------------------------------------------------------------------------- YAML

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # an unhashable key; the constructor reports it
            continue
        if first is not key_node:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"key {key!r} appears twice in one mapping (first on line "
                f"{first.start_mark.line + 1})", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


# --------------------------------------------------------------------------- loading

class _Entry:
    """Validation of one watches.yaml entry; every failure names the entry and the field."""

    def __init__(self, path: str, index: int, raw: Any, base_dir: str,
                 environ: Mapping[str, str]) -> None:
        self.path, self.index, self.raw = path, index, raw
        self.base_dir, self.environ = base_dir, environ
        if isinstance(raw, dict):
            group, version, kind = ("" if raw.get(k) is None else str(raw.get(k))
                                    for k in _GVK_KEYS)
            self.gvk = _gvk_string(group, version or "<no version>", kind or "<no kind>")
        else:
            self.gvk = "?"

    def fail(self, fld: str | None, problem: str) -> WatchesError:
        where = f"{self.path}: entry {self.index} ({self.gvk})"
        message = f"{where}: {fld}: {problem}" if fld else f"{where}: {problem}"
        return WatchesError(message, path=self.path, index=self.index, gvk=self.gvk, field=fld)

    # -- typed getters; None (absent or null) gives the default
    def string(self, data: dict[str, Any], key: str, fld: str, accepted: str,
               required: bool = False) -> str:
        value = data.get(key)
        if value is None or value == "":
            if required:
                raise self.fail(fld, f"is required and must not be empty; expected {accepted}")
            return ""
        if not isinstance(value, str):
            raise self.fail(fld, f"must be a string, got {_describe(value)}; expected {accepted}"
                            " (quote the value in YAML)")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {_describe(value)}")
        return value

    def mapping(self, data: dict[str, Any], key: str, fld: str, accepted: str) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(fld, f"must be a mapping, got {_describe(value)}; expected {accepted}")
        return value

    def known_keys(self, data: dict[Any, Any], allowed: tuple[str, ...] | dict[str, str],
                   where: str | None) -> None:
        for key in data:
            if isinstance(key, str) and key in allowed:
                continue
            fld = f"{where}.{key}" if where else str(key)
            hint = ""
            if where is None and key in _NOT_WATCH_KEYS:
                hint = ("; it is not a watches.yaml setting, use "
                        + _NOT_WATCH_KEYS[key].format(suffix=self.suffix()))
            else:
                close = [k for k in allowed if k.lower() == str(key).lower()]
                close = close or difflib.get_close_matches(str(key), list(allowed), n=1)
                if close:
                    hint = f"; did you mean {close[0]!r}?"
            raise self.fail(fld, f"unknown key{hint} (accepted keys: {', '.join(allowed)})")

    def suffix(self) -> str:
        group = self.raw.get("group") if isinstance(self.raw.get("group"), str) else ""
        kind = self.raw.get("kind") if isinstance(self.raw.get("kind"), str) else ""
        return _env_suffix(group, kind or "<KIND>")

    # -- the entry
    def parse(self) -> Watch:
        raw = self.raw
        if not isinstance(raw, dict):
            raise self.fail(None, f"must be a mapping with version, kind and playbook or role, "
                                  f"got {_describe(raw)}")
        self.known_keys(raw, _WATCH_KEYS, None)
        group = self.string(raw, "group", "group", _WATCH_KEYS["group"])
        version = self.string(raw, "version", "version", _WATCH_KEYS["version"], required=True)
        kind = self.string(raw, "kind", "kind", _WATCH_KEYS["kind"], required=True)
        if group and not (len(group) <= 253 and _DNS_SUBDOMAIN.fullmatch(group)):
            raise self.fail("group", f"{group!r} is not an API group; expected a lowercase DNS "
                                     f"subdomain such as cache.example.com (empty for the core "
                                     f"group)")
        if not (len(version) <= 63 and _DNS_1035_LABEL.fullmatch(version)):
            raise self.fail("version", f"{version!r} is not an API version; expected a "
                                       f"lowercase name starting with a letter, such as v1alpha1")
        if not (len(kind) <= 63 and _KIND.fullmatch(kind)):
            raise self.fail("kind", f"{kind!r} is not a kind; expected a name of letters and "
                                    f"digits starting with a letter, such as Memcached")
        playbook, role = self.ansible_target(raw, "", required=True)
        return Watch(
            group=group, version=version, kind=kind, playbook=playbook, role=role,
            vars=self.mapping(raw, "vars", "vars", _WATCH_KEYS["vars"]),
            reconcile_period=self.reconcile_period(),
            manage_status=self.boolean("manageStatus", True),
            watch_dependent_resources=self.boolean("watchDependentResources", True),
            watch_cluster_scoped_resources=self.boolean("watchClusterScopedResources", False),
            max_runner_artifacts=self.max_runner_artifacts(),
            finalizer=self.finalizer(),
            blacklist=self.blacklist(),
            selector=self.selector(),
            snake_case_parameters=self.boolean("snakeCaseParameters", True),
            watch_annotations_changes=self.boolean("watchAnnotationsChanges", False),
            mark_unsafe=self.boolean("markUnsafe", False),
        )

    def ansible_target(self, data: dict[str, Any], prefix: str,
                       required: bool) -> tuple[str | None, str | None]:
        """(playbook, role) as absolute paths; the playbook wins when both are given."""
        playbook = self.string(data, "playbook", prefix + "playbook", _WATCH_KEYS["playbook"])
        role = self.string(data, "role", prefix + "role", _WATCH_KEYS["role"])
        if playbook:
            if role:
                log.warning("%s: entry %d (%s): both %splaybook and %srole are set; the "
                            "playbook is used", self.path, self.index, self.gvk, prefix, prefix)
            return self.resolve_playbook(playbook, prefix + "playbook"), None
        if role:
            return None, self.resolve_role(role, prefix + "role")
        if required:
            raise self.fail(None, "must have a playbook or a role (playbook: <path to a playbook "
                                  "file> or role: <role name, FQCN or path>)")
        return None, None

    def resolve_playbook(self, playbook: str, fld: str) -> str:
        resolved = _abs(self.base_dir, playbook, self.environ)
        if not os.path.exists(resolved):
            raise self.fail(fld, f"{resolved} was not found (a relative playbook path is taken "
                                 f"from {self.base_dir})")
        if not os.path.isfile(resolved):
            raise self.fail(fld, f"{resolved} is not a file; expected a playbook file")
        return resolved

    def resolve_role(self, role: str, fld: str) -> str:
        candidates = role_candidates(role, self.base_dir, self.environ)
        for candidate in candidates:
            if os.path.isdir(candidate):
                return candidate
        raise self.fail(fld, f"role {role!r} was not found; looked for a directory at: "
                             f"{', '.join(candidates)} (set ANSIBLE_ROLES_PATH or "
                             f"ANSIBLE_COLLECTIONS_PATH, or give an absolute path)")

    def reconcile_period(self) -> float:
        value = self.raw.get("reconcilePeriod")
        if value is None or (value == 0 and not isinstance(value, bool)):
            return 0.0
        if not isinstance(value, str):
            raise self.fail("reconcilePeriod", f"must be a string with a unit, got "
                                                f"{_describe(value)}; expected {_DURATION_HELP}")
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.fail("reconcilePeriod", str(exc)) from None
        if seconds < 0:
            raise self.fail("reconcilePeriod", f"{value!r} is negative; expected {_DURATION_HELP}"
                                               " (0 means use --reconcile-period)")
        return seconds

    def max_runner_artifacts(self) -> int:
        value = self.raw.get("maxRunnerArtifacts")
        if value is None:
            return DEFAULT_MAX_RUNNER_ARTIFACTS
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail("maxRunnerArtifacts", f"must be a whole number >= 0 (0 means "
                                                   f"{DEFAULT_MAX_RUNNER_ARTIFACTS}), got "
                                                   f"{_describe(value)}")
        return value or DEFAULT_MAX_RUNNER_ARTIFACTS

    def finalizer(self) -> Finalizer | None:
        data = self.raw.get("finalizer")
        if data is None:
            return None
        if not isinstance(data, dict):
            raise self.fail("finalizer", f"must be a mapping with name and playbook, role and/or "
                                         f"vars, got {_describe(data)}")
        self.known_keys(data, _FINALIZER_KEYS, "finalizer")
        name = self.string(data, "name", "finalizer.name",
                           "a finalizer name such as cache.example.com/finalizer", required=True)
        if not _is_qualified_name(name):
            raise self.fail("finalizer.name", f"{name!r} is not a valid finalizer name; expected "
                                              "an optional DNS subdomain prefix and '/', then at "
                                              "most 63 letters, digits, '-', '_' or '.', starting "
                                              "and ending with a letter or digit, e.g. "
                                              "cache.example.com/finalizer")
        finalizer_vars = self.mapping(data, "vars", "finalizer.vars", _WATCH_KEYS["vars"])
        playbook, role = self.ansible_target(data, "finalizer.", required=False)
        if playbook is None and role is None and not finalizer_vars:
            raise self.fail("finalizer", "needs a playbook, a role or vars besides its name "
                                         "(with vars only, the watch's own playbook or role runs "
                                         "on deletion)")
        return Finalizer(name=name, playbook=playbook, role=role, vars=finalizer_vars)

    def blacklist(self) -> tuple[tuple[str, str, str], ...]:
        items = self.raw.get("blacklist")
        if items is None:
            return ()
        if not isinstance(items, list):
            raise self.fail("blacklist", f"must be a list of {{group, version, kind}}, got "
                                         f"{_describe(items)}")
        result = []
        for i, item in enumerate(items):
            fld = f"blacklist[{i}]"
            if not isinstance(item, dict):
                raise self.fail(fld, f"must be a mapping with group, version and kind, got "
                                     f"{_describe(item)}")
            self.known_keys(item, _GVK_KEYS, fld)
            result.append((
                self.string(item, "group", fld + ".group", _WATCH_KEYS["group"]),
                self.string(item, "version", fld + ".version", _WATCH_KEYS["version"],
                            required=True),
                self.string(item, "kind", fld + ".kind", _WATCH_KEYS["kind"], required=True),
            ))
        return tuple(result)

    def selector(self) -> dict[str, Any] | None:
        data = self.raw.get("selector")
        if data is None:
            return None
        if not isinstance(data, dict):
            raise self.fail("selector", f"must be a label selector mapping with matchLabels "
                                        f"and/or matchExpressions, got {_describe(data)}")
        self.known_keys(data, _SELECTOR_KEYS, "selector")
        selector: dict[str, Any] = {}
        labels = self.mapping(data, "matchLabels", "selector.matchLabels",
                              "a mapping of label names to values")
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise self.fail(f"selector.matchLabels.{key}", f"label names and values must be "
                                f"strings, got {_describe(value)} (quote it in YAML)")
            self.label_key(key, f"selector.matchLabels.{key}")
        if labels:
            selector["matchLabels"] = dict(labels)
        expressions = data.get("matchExpressions")
        if expressions is not None:
            if not isinstance(expressions, list):
                raise self.fail("selector.matchExpressions", f"must be a list of {{key, operator,"
                                f" values}}, got {_describe(expressions)}")
            parsed = [self.expression(i, e) for i, e in enumerate(expressions)]
            if parsed:
                selector["matchExpressions"] = parsed
        return selector or None

    def label_key(self, key: str, fld: str) -> None:
        # (Values are not checked: ansible-operator loads a value such as an unexpanded
        # "${VAR}" and its own tests rely on that.)
        if not _is_qualified_name(key):
            raise self.fail(fld, f"{key!r} is not a valid label name; expected an optional DNS "
                                 f"subdomain prefix and '/', then {_LABEL_HELP}, e.g. "
                                 f"app.kubernetes.io/name")

    def expression(self, i: int, item: Any) -> dict[str, Any]:
        fld = f"selector.matchExpressions[{i}]"
        if not isinstance(item, dict):
            raise self.fail(fld, f"must be a mapping with key, operator and values, got "
                                 f"{_describe(item)}")
        self.known_keys(item, _EXPRESSION_KEYS, fld)
        key = self.string(item, "key", fld + ".key", "a label name", required=True)
        operator = self.string(item, "operator", fld + ".operator",
                               " | ".join(_SELECTOR_OPERATORS), required=True)
        if operator not in _SELECTOR_OPERATORS:
            raise self.fail(fld + ".operator", f"{operator!r} is not a label selector operator; "
                                               f"expected one of {', '.join(_SELECTOR_OPERATORS)}")
        values = item.get("values")
        if values is None:
            values = []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise self.fail(fld + ".values", f"must be a list of strings, got "
                                             f"{_describe(values)}")
        self.label_key(key, fld + ".key")
        if operator in ("In", "NotIn") and not values:
            raise self.fail(fld + ".values", f"must not be empty for the operator {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise self.fail(fld + ".values", f"must be empty for the operator {operator}")
        return {"key": key, "operator": operator, "values": list(values)}


def _is_qualified_name(name: str) -> bool:
    prefix, slash, rest = name.rpartition("/")
    if slash and not (prefix and len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(rest) <= 63 and bool(_QUALIFIED_NAME_PART.fullmatch(rest))


def load_watches(path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None,
                 environ: Mapping[str, str] | None = None) -> list[Watch]:
    """Read, validate and resolve a watches.yaml. Relative playbook and role paths are taken
    from `base_dir` (default: the working directory); `environ` (default: os.environ) gives the
    `${VAR}` values and ANSIBLE_ROLES_PATH / ANSIBLE_COLLECTIONS_PATH. Raises WatchesError with
    one message naming the entry and the field at the first problem."""
    path = os.fspath(path)
    environ = os.environ if environ is None else environ
    base = os.path.abspath(os.fspath(base_dir) if base_dir is not None else os.getcwd())
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise WatchesError(f"{path}: cannot read the watches file: {exc}", path=path) from None
    try:
        document = yaml.load(expand_env(text, environ), Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise WatchesError(f"{path}: not valid YAML{where}: {problem}", path=path) from None
    if document is None or document == []:
        raise WatchesError(f"{path}: lists no watches; expected a YAML list of entries, each "
                           "with version, kind and playbook or role", path=path)
    if not isinstance(document, list):
        raise WatchesError(f"{path}: must be a YAML list of entries (- version: ..., kind: ..., "
                           f"role: ...), got {_describe(document)}", path=path)
    watches: list[Watch] = []
    first_index: dict[tuple[str, str, str], int] = {}
    for index, raw in enumerate(document):
        entry = _Entry(path, index, raw, base, environ)
        watch = entry.parse()
        key = (watch.group, watch.version, watch.kind)
        if key in first_index:
            raise entry.fail(None, f"duplicate GVK: entry {first_index[key]} already watches "
                                   f"{watch.gvk}; each group/version/kind may appear once")
        first_index[key] = index
        watches.append(watch)
    return watches
