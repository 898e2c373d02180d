"""Patch application and field ownership (managedFields) for the emulator.

Pure functions, no I/O. The HTTP layer maps the exceptions to API errors:

* ``PatchError``    -> 422 Invalid (the patch is well formed but cannot be applied)
* ``BadPatch``      -> 400 BadRequest (the patch body itself is ill-formed)
* ``ApplyConflict`` -> 409 Conflict with ``FieldManagerConflict`` causes

Field sets are handled as Python sets of *paths*; a path is a tuple of path elements
written the way ``fieldsV1`` spells them: ``f:<field>``, ``k:<json key object>``,
``v:<json value>`` and ``i:<index>``. A ``fieldsV1`` tree converts to and from such a set
(``".": {}`` marks a node that is a member of the set while also having children).

Without OpenAPI schemas, list semantics come from a fixed table (the same one strategic
merge patch uses): the lists named there are associative (keyed), ``metadata.finalizers``
is a set, every other list is atomic. A keyed list whose items lack the key, or repeat a
key, falls back to atomic.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

__all__ = [
    "ApplyConflict",
    "BadPatch",
    "PatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "managed_fields_for_update",
    "server_side_apply",
]

Path = tuple[str, ...]
FieldSet = set[Path]


class PatchError(Exception):
    """The patch cannot be applied to the object (422 Invalid)."""


class BadPatch(Exception):
    """The patch body is undecodable or ill-formed (400 BadRequest)."""


class ApplyConflict(Exception):
    """Server-side apply touched fields another manager owns (409 Conflict)."""

    def __init__(self, conflicts: list[tuple[str, str]],
                 described: list[tuple[str, str]] | None = None):
        # conflicts: (manager name, field path); described: (manager as printed, field path)
        self.conflicts = conflicts
        if described is None:
            described = [(_dumps(manager), path) for manager, path in conflicts]
        self.causes: list[dict[str, str]] = [
            {"reason": "FieldManagerConflict", "message": f"conflict with {desc}", "field": path}
            for desc, path in described
        ]
        super().__init__(_conflict_message(described))


def _conflict_message(described: list[tuple[str, str]]) -> str:
    """The upstream apiserver wording (managedfields/internal/conflict.go)."""
    if len(described) == 1:
        desc, path = described[0]
        return f"Apply failed with 1 conflict: conflict with {desc}: {path}"
    by_manager: dict[str, list[str]] = {}
    for desc, path in described:
        by_manager.setdefault(desc, []).append(path)
    lines: list[str] = []
    for desc in sorted(by_manager):
        lines.append(f"conflicts with {desc}:")
        lines.extend(f"- {path}" for path in by_manager[desc])
    return f"Apply failed with {len(described)} conflicts: " + "\n".join(lines)


# --------------------------------------------------------------------------------------
# Shared list semantics
# --------------------------------------------------------------------------------------

# Associative lists: field name -> merge key. `ports` is special-cased (containerPort/port).
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "ownerReferences": "uid",
    "conditions": "type",
}

# Maps owned as one leaf (LabelSelector is a `structType=atomic`, Service selector and
# nodeSelector are `mapType=atomic`).
_ATOMIC_MAPS = frozenset({"selector", "nodeSelector"})

# metadata fields the server owns; never tracked in managedFields, never applied.
_SERVER_METADATA = frozenset({
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
})


class _Missing:
    """Marks an absent value (distinct from JSON null)."""

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<missing>"


_MISSING: Any = _Missing()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _same(a: Any, b: Any) -> bool:
    """JSON equality that does not confuse booleans with numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(_same(a[k], b[k]) for k in a))
    if isinstance(a, list):
        return (isinstance(b, list) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _field_name(pe: str) -> str | None:
    return pe[2:] if pe.startswith("f:") else None


def _list_kind(path: Path) -> str:
    """'map' (keyed), 'set' or 'atomic' for the list found at `path`."""
    name = _field_name(path[-1]) if path else None
    if name is None:
        return "atomic"
    if name == "finalizers" and len(path) >= 2 and path[-2] == "f:metadata":
        return "set"
    if name in _MERGE_KEYS or name == "ports":
        return "map"
    return "atomic"


def _apply_keys(list_name: str, item: Any) -> dict[str, Any] | None:
    """The key fields of an associative list item as SSA/managedFields see them."""
    if not isinstance(item, dict):
        return None
    if list_name == "ports":
        for key in ("containerPort", "port"):
            if key in item:
                return {key: item[key], "protocol": item.get("protocol", "TCP")}
        return None
    key = _MERGE_KEYS.get(list_name)
    if key is None or key not in item:
        return None
    return {key: item[key]}


def _item_pe(path: Path, item: Any) -> str | None:
    """The path element of a list item, or None if the list cannot be treated as keyed."""
    kind = _list_kind(path)
    if kind == "set":
        if isinstance(item, (dict, list)):
            return None
        return "v:" + _dumps(item)
    if kind == "map":
        keys = _apply_keys(_field_name(path[-1]) or "", item)
        if keys is None or any(isinstance(v, (dict, list)) for v in keys.values()):
            return None
        return "k:" + _dumps(dict(sorted(keys.items())))
    return None


def _index_list(path: Path, items: list[Any]) -> dict[str, Any] | None:
    """Path element -> item for a keyed/set list; None when it must be treated as atomic."""
    if _list_kind(path) == "atomic":
        return None
    out: dict[str, Any] = {}
    for item in items:
        pe = _item_pe(path, item)
        if pe is None or pe in out:
            return None
        out[pe] = item
    return out


def _is_atomic_map(path: Path, value: Any) -> bool:
    return isinstance(value, dict) and bool(path) and _field_name(path[-1]) in _ATOMIC_MAPS


def _children(path: Path, value: Any) -> dict[str, Any] | None:
    """Children of a node by path element, or None when the node is a leaf."""
    if _is_atomic_map(path, value):
        return None
    if isinstance(value, dict):
        return {"f:" + k: v for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return _index_list(path, value)
    return None


# --------------------------------------------------------------------------------------
# JSON patch and merge patch
# --------------------------------------------------------------------------------------

def apply_json_patch(obj: dict, ops: Any) -> dict:
    """RFC 6902. A failed `test` or an unusable path raises PatchError; `obj` is untouched."""
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise BadPatch("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    document: Any = copy.deepcopy(obj)
    for op in ops:
        try:
            document = jsonpatch.JsonPatch([copy.deepcopy(op)]).apply(document, in_place=True)
        except jsonpatch.JsonPatchTestFailed as e:
            raise PatchError(f"testing value {op.get('path')} failed: test failed") from e
        except jsonpatch.InvalidJsonPatch as e:
            raise PatchError(_invalid_op_message(op, e)) from e
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException,
                KeyError, IndexError, TypeError, ValueError) as e:
            raise PatchError(_missing_path_message(op)) from e
    if not isinstance(document, dict):
        raise PatchError("json patch result is not an object")
    return document


def _invalid_op_message(op: dict, error: Exception) -> str:
    name = op.get("op")
    if name not in ("add", "remove", "replace", "move", "copy", "test"):
        return f"Unexpected kind: {name}"
    return f"{name} operation is invalid: {error}"


def _missing_path_message(op: dict) -> str:
    """Wording of the json-patch library the apiserver uses (evanphx/json-patch)."""
    name, path = op.get("op"), op.get("path")
    if name == "replace":
        return f"replace operation does not apply: doc is missing key: {path}: missing value"
    if name in ("move", "copy") and op.get("from") is not None:
        return (f"{name} operation does not apply: doc is missing from path: "
                f"{op.get('from')}: missing value")
    return f'{name} operation does not apply: doc is missing path: "{path}": missing value'


def apply_merge_patch(obj: dict, patch: Any) -> dict:
    """RFC 7386: maps merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        raise BadPatch("merge patch must be a JSON object")
    result = _merge_patch(copy.deepcopy(obj), patch)
    return result


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


# --------------------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------------------

_DELETE: Any = object()  # a map patch carrying `$patch: delete`
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"


def apply_strategic_merge_patch(obj: dict, patch: Any) -> dict:
    """Strategic merge patch for built-in types (merge-by-key lists and `$` directives)."""
    if not isinstance(patch, dict):
        raise BadPatch("strategic merge patch must be a JSON object")
    result = _smp_map(copy.deepcopy(obj), patch, ())
    if result is _DELETE:
        return {}
    return result


def _smp_list_key(list_name: str, items: list[Any]) -> str | None:
    """The strategic merge key of a list field, or None when the list is replaced."""
    if list_name == "ports":
        dicts = [i for i in items if isinstance(i, dict)]
        if any("containerPort" in i for i in dicts):
            return "containerPort"
        return "port"
    return _MERGE_KEYS.get(list_name)


def _is_primitive_set(path: Path) -> bool:
    return len(path) >= 2 and path[-1] == "f:finalizers" and path[-2] == "f:metadata"


def _smp_map(original: Any, patch: dict, path: Path) -> Any:
    base: dict = original if isinstance(original, dict) else {}
    directive = patch.get("$patch")
    if directive is not None:
        if directive == "delete":
            return _DELETE
        if directive == "replace":
            rest = {k: v for k, v in patch.items() if k != "$patch"}
            return _smp_map({}, rest, path)
        if directive != "merge":
            raise BadPatch(f"Unknown patch type: {directive}")
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise BadPatch("invalid patch: $retainKeys must be a list of strings")
        base = {k: v for k, v in base.items() if k in retain}
    out = base
    orders: dict[str, Any] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_ORDER_PREFIX):
            orders[key[len(_ORDER_PREFIX):]] = value
            continue
        if key.startswith(_DELETE_PRIMITIVE_PREFIX):
            name = key[len(_DELETE_PRIMITIVE_PREFIX):]
            if not isinstance(value, list):
                raise BadPatch("invalid patch: $deleteFromPrimitiveList must be a list")
            current = out.get(name)
            if isinstance(current, list):
                out[name] = [x for x in current if not any(_same(x, d) for d in value)]
            continue
        if key.startswith("$"):
            continue  # unknown directive: never leak it into the object
        child = (*path, "f:" + key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp_map(out.get(key), value, child)
            if merged is _DELETE:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _smp_list(out.get(key), value, child)
        else:
            out[key] = copy.deepcopy(value)
    for name, order in orders.items():
        current = out.get(name)
        if isinstance(current, list) and isinstance(order, list):
            out[name] = _apply_element_order(current, order, name)
    return out


def _clean(value: Any, path: Path) -> Any:
    """A fresh copy of a patch value with every `$` directive processed away."""
    if isinstance(value, dict):
        result = _smp_map({}, value, path)
        return {} if result is _DELETE else result
    if isinstance(value, list):
        return [_clean(v, path) for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return copy.deepcopy(value)


def _smp_list(original: Any, patch: list[Any], path: Path) -> list[Any]:
    name = _field_name(path[-1]) or ""
    current: list[Any] = original if isinstance(original, list) else []
    replace = any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch)
    items = [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if replace:
        return [_clean(i, path) for i in items]
    if _is_primitive_set(path):
        out = list(current)
        for item in items:
            if not any(_same(item, x) for x in out):
                out.append(copy.deepcopy(item))
        return out
    key = _smp_list_key(name, current + items)
    if key is None:
        return [_clean(i, path) for i in items]
    if not all(isinstance(i, dict) for i in items):
        # a primitive list under a merge-by-key name: merge as a set of values
        out = list(current)
        for item in items:
            if not any(_same(item, x) for x in out):
                out.append(_clean(item, path))
        return out
    out = list(current)
    for item in items:
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        match = next((n for n, x in enumerate(out)
                      if isinstance(x, dict) and _same(x.get(key), item[key])), None)
        if item.get("$patch") == "delete":
            out = [x for x in out if not (isinstance(x, dict) and _same(x.get(key), item[key]))]
            continue
        if match is None:
            out.append(_clean(item, path))
        else:
            merged = _smp_map(out[match], item, path)
            if merged is _DELETE:
                del out[match]
            else:
                out[match] = merged
    return out


def _apply_element_order(current: list[Any], order: list[Any], name: str) -> list[Any]:
    """Permute the items named in `$setElementOrder` into that order; others keep their slots."""
    key = _smp_list_key(name, [*current, *order])

    def ident(item: Any) -> str:
        if key is not None and isinstance(item, dict):
            return _dumps(item.get(key))
        return _dumps(item)

    rank = {ident(item): n for n, item in enumerate(order)}
    slots = [n for n, item in enumerate(current) if ident(item) in rank]
    ordered = sorted((current[n] for n in slots), key=lambda item: rank[ident(item)])
    out = list(current)
    for slot, item in zip(slots, ordered, strict=True):
        out[slot] = item
    return out


# --------------------------------------------------------------------------------------
# Field sets
# --------------------------------------------------------------------------------------

def _fieldsv1_to_set(tree: Any, prefix: Path = ()) -> FieldSet:
    out: FieldSet = set()
    if not isinstance(tree, dict):
        return out
    for pe, child in tree.items():
        if pe == ".":
            if prefix:
                out.add(prefix)
            continue
        path = (*prefix, pe)
        if isinstance(child, dict) and child:
            out |= _fieldsv1_to_set(child, path)
        else:
            out.add(path)
    return out


_PE_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


def _pe_sort_key(pe: str) -> tuple[int, Any]:
    rank = _PE_RANK.get(pe[:1], 4)
    if pe.startswith("i:"):
        try:
            return rank, int(pe[2:])
        except ValueError:
            pass
    return rank, pe[2:]


def _set_to_fieldsv1(paths: FieldSet) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for pe in path:
            node = node.setdefault(pe, {})
    return _order_tree(root, (), paths)


def _order_tree(node: dict[str, Any], prefix: Path, members: FieldSet) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node and prefix in members:
        out["."] = {}
    for pe in sorted(node, key=_pe_sort_key):
        out[pe] = _order_tree(node[pe], (*prefix, pe), members)
    return out


def _path_string(path: Path) -> str:
    """`.spec.containers[name="x"].image`, as structured-merge-diff prints paths."""
    parts: list[str] = []
    for pe in path:
        kind, body = pe[:2], pe[2:]
        if kind == "f:":
            parts.append("." + body)
        elif kind == "k:":
            try:
                keys = json.loads(body)
                parts.append("[" + ",".join(f"{k}={_dumps(v)}" for k, v in keys.items()) + "]")
            except (ValueError, AttributeError):
                parts.append("[" + body + "]")
        elif kind == "v:":
            parts.append("[=" + body + "]")
        elif kind == "i:":
            parts.append("[" + body + "]")
        else:
            parts.append(pe)
    return "".join(parts)


def _iter_sorted(paths: FieldSet) -> list[Path]:
    """Set iteration order of structured-merge-diff: members first, then child subtrees."""
    ordered: list[Path] = []

    def walk(prefix: Path, subset: FieldSet) -> None:
        depth = len(prefix)
        members = sorted((p for p in subset if len(p) == depth + 1),
                         key=lambda p: _pe_sort_key(p[-1]))
        ordered.extend(members)
        groups: dict[str, FieldSet] = {}
        for p in subset:
            if len(p) > depth + 1:
                groups.setdefault(p[depth], set()).add(p)
        for pe in sorted(groups, key=_pe_sort_key):
            walk((*prefix, pe), groups[pe])

    walk((), paths)
    return ordered


def _object_fields(value: Any, path: Path = ()) -> FieldSet:
    """Fields an applied configuration sets (structured-merge-diff ToFieldSet)."""
    out: FieldSet = set()
    if not isinstance(value, dict):
        return out
    for key, child in value.items():
        p = (*path, "f:" + key)
        if child is None or (isinstance(child, dict) and not child) or _is_atomic_map(p, child):
            out.add(p)
        elif isinstance(child, dict):
            out |= _object_fields(child, p)
        elif isinstance(child, list):
            index = _index_list(p, child)
            if index is None:
                out.add(p)
                continue
            for pe, item in index.items():
                out.add((*p, pe))
                if isinstance(item, dict):
                    out |= _object_fields(item, (*p, pe))
        else:
            out.add(p)
    return out


@dataclass
class _Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)

    def changed(self) -> FieldSet:
        return self.added | self.modified

    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed)


def _compare(lhs: Any, rhs: Any, path: Path, out: _Comparison) -> None:
    """Which fields rhs adds, modifies and removes relative to lhs (typed.Compare)."""
    if lhs is _MISSING and rhs is _MISSING:
        return
    if lhs is _MISSING or rhs is _MISSING:
        present = rhs if lhs is _MISSING else lhs
        (out.added if lhs is _MISSING else out.removed).add(path)
        for pe, child in (_children(path, present) or {}).items():
            if lhs is _MISSING:
                _compare(_MISSING, child, (*path, pe), out)
            else:
                _compare(child, _MISSING, (*path, pe), out)
        return
    lc = _children(path, lhs)
    rc = _children(path, rhs)
    same_shape = type(lhs) is type(rhs)
    if lc is not None and rc is not None and same_shape and (lc or rc):
        for pe in list(lc) + [pe for pe in rc if pe not in lc]:
            _compare(lc.get(pe, _MISSING), rc.get(pe, _MISSING), (*path, pe), out)
        return
    # A leaf: scalars, atomic lists, empty maps/lists on both sides, or a change of shape.
    if path and not _same(lhs, rhs):
        out.modified.add(path)
    if not same_shape:
        for pe, child in (lc or {}).items():
            _compare(child, _MISSING, (*path, pe), out)
        for pe, child in (rc or {}).items():
            _compare(_MISSING, child, (*path, pe), out)


def _tracked(path: Path, subresource: str, status_isolated: bool) -> bool:
    """Whether a path may be owned through a write to `subresource`."""
    if not path:
        return False
    head = path[0]
    if head in ("f:apiVersion", "f:kind"):
        return False
    if head == "f:metadata" and len(path) >= 2 and (_field_name(path[1]) in _SERVER_METADATA):
        return False
    if status_isolated:
        if subresource == "status":
            return head == "f:status"
        return head != "f:status"
    return True


def _filter(paths: FieldSet, subresource: str, status_isolated: bool) -> FieldSet:
    return {p for p in paths if _tracked(p, subresource, status_isolated)}


def _compare_tracked(old: Any, new: Any, subresource: str, status_isolated: bool) -> _Comparison:
    raw = _Comparison()
    _compare(old, new, (), raw)
    return _Comparison(
        added=_filter(raw.added, subresource, status_isolated),
        modified=_filter(raw.modified, subresource, status_isolated),
        removed=_filter(raw.removed, subresource, status_isolated),
    )


# What an empty object of a built-in kind already holds: a Go zero value serialises these
# structs (and `containers: null`), so creating such an object does not "add" them (no `.`
# entry for them in fieldsV1).
_ZERO_SKELETONS: dict[str, dict[str, Any]] = {
    "Deployment": {"spec": {"template": {"metadata": {}, "spec": {"containers": []}},
                            "strategy": {}},
                   "status": {}},
    "ReplicaSet": {"spec": {"template": {"metadata": {}, "spec": {"containers": []}}},
                   "status": {}},
    "Pod": {"spec": {"containers": []}, "status": {}},
    "Service": {"spec": {}, "status": {"loadBalancer": {}}},
    "Namespace": {"spec": {}, "status": {}},
    "Node": {"spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {}}, "nodeInfo": {}}},
    "CustomResourceDefinition": {"spec": {"names": {}}, "status": {"acceptedNames": {}}},
    "Lease": {"spec": {}},
    "Event": {"involvedObject": {}, "source": {}},
}


def _zero_object(kind: Any) -> dict[str, Any]:
    skeleton = copy.deepcopy(_ZERO_SKELETONS.get(kind, {})) if isinstance(kind, str) else {}
    return {"metadata": {}, **skeleton}


def _with_zero(obj: dict[str, Any], kind: Any) -> dict[str, Any]:
    """`obj` with the zero-value structs of its kind filled in where absent (for comparing)."""
    return _overlay(_zero_object(kind), obj)


def _overlay(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(top)
        for key, value in base.items():
            out[key] = _overlay(value, top[key]) if key in top else value
        return out
    return top


# --------------------------------------------------------------------------------------
# managedFields entries
# --------------------------------------------------------------------------------------

@dataclass
class _Entry:
    manager: str
    operation: str
    api_version: str
    time: str | None
    subresource: str
    fields: FieldSet
    raw: dict[str, Any]
    dirty: bool = False

    def same_identity(self, manager: str, operation: str, subresource: str,
                      api_version: str) -> bool:
        if (self.manager, self.operation, self.subresource) != (manager, operation, subresource):
            return False
        # Appliers are identified without their apiVersion; updaters with it.
        return operation == "Apply" or self.api_version == api_version

    def describe(self) -> str:
        """The manager as the apiserver prints it in conflict messages."""
        text = _dumps(self.manager)
        if self.subresource:
            text += f" with subresource {_dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def remove(self, paths: FieldSet) -> None:
        if self.fields & paths:
            self.fields -= paths
            self.dirty = True

    def to_dict(self) -> dict[str, Any]:
        if not self.dirty:
            return copy.deepcopy(self.raw)
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version}
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = _set_to_fieldsv1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def _parse_entries(managed: list[dict] | None) -> list[_Entry]:
    entries: list[_Entry] = []
    for raw in managed or []:
        if not isinstance(raw, dict):
            continue
        entries.append(_Entry(
            manager=str(raw.get("manager", "")),
            operation=str(raw.get("operation", "Update")),
            api_version=str(raw.get("apiVersion", "")),
            time=raw.get("time"),
            subresource=str(raw.get("subresource", "") or ""),
            fields=_fieldsv1_to_set(raw.get("fieldsV1")),
            raw=raw,
        ))
    return entries


def _encode_entries(entries: list[_Entry]) -> list[dict]:
    kept = [e for e in entries if e.fields]

    def order(e: _Entry) -> tuple[str, str, str, str, str]:
        return (e.operation, e.time or "", e.manager, e.api_version, e.subresource)

    return [e.to_dict() for e in sorted(kept, key=order)]


def managed_fields_for_update(managed: list[dict], manager: str, old: dict | None, new: dict,
                              api_version: str, now: str, subresource: str = "",
                              *, status_isolated: bool = True) -> list[dict]:
    """managedFields after a create (`old=None`), update or non-apply patch.

    Fields that `new` adds or changes become owned by `manager` (operation Update) and leave
    every other manager; removed fields leave everyone. `status_isolated=False` is for types
    whose `status` is ordinary data (no /status subresource).
    """
    kind = new.get("kind")
    before = _zero_object(kind) if old is None else _with_zero(old, kind)
    cmp = _compare_tracked(before, _with_zero(new, kind), subresource, status_isolated)
    if cmp.empty():
        return copy.deepcopy(managed)
    changed = cmp.changed()
    entries = _parse_entries(managed)
    mine = next((e for e in entries
                 if e.same_identity(manager, "Update", subresource, api_version)), None)
    for entry in entries:
        entry.remove(cmp.removed)
        if entry is not mine:
            entry.remove(changed)
    if changed:
        if mine is None:
            mine = _Entry(manager, "Update", api_version, now, subresource, set(), {})
            entries.append(mine)
        mine.fields |= changed
        mine.time = now
        mine.dirty = True
    return _encode_entries(entries)


# --------------------------------------------------------------------------------------
# Server-side apply
# --------------------------------------------------------------------------------------

def _apply_view(config: dict, subresource: str, status_isolated: bool) -> dict[str, Any]:
    """The part of an applied configuration that is merged into the live object."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if not _tracked(("f:" + key,), subresource, status_isolated):
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SERVER_METADATA}
        out[key] = value
    return out


def _merge_apply(live: Any, config: Any, path: Path) -> Any:
    """Merge an applied value into a live one: maps recurse, keyed lists merge per key."""
    if isinstance(config, dict) and not _is_atomic_map(path, config):
        out = copy.deepcopy(live) if isinstance(live, dict) else {}
        for key, value in config.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = _merge_apply(out.get(key, _MISSING), value, (*path, "f:" + key))
        return out
    if isinstance(config, list) and isinstance(live, list):
        live_index = _index_list(path, live)
        config_index = _index_list(path, config)
        if live_index is not None and config_index is not None:
            out_list = copy.deepcopy(live)
            position = {pe: n for n, pe in enumerate(live_index)}
            for pe, item in config_index.items():
                if pe in position:
                    out_list[position[pe]] = _merge_apply(out_list[position[pe]], item,
                                                          (*path, pe))
                else:
                    out_list.append(_merge_apply(_MISSING, item, (*path, pe)))
            return out_list
    if isinstance(config, list):
        return [_merge_apply(_MISSING, item, path) if isinstance(item, dict)
                else copy.deepcopy(item) for item in config]
    return copy.deepcopy(config)


def _find_item(container: list[Any], list_path: Path, pe: str) -> int | None:
    for n, item in enumerate(container):
        if _item_pe(list_path, item) == pe:
            return n
    return None


def _locate(obj: Any, path: Path) -> Any:
    node = obj
    for depth, pe in enumerate(path):
        if isinstance(node, dict) and pe.startswith("f:"):
            node = node.get(pe[2:], _MISSING)
        elif isinstance(node, list) and pe[:2] in ("k:", "v:"):
            n = _find_item(node, path[:depth], pe)
            node = _MISSING if n is None else node[n]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def _delete_at(obj: Any, path: Path) -> bool:
    parent = _locate(obj, path[:-1])
    pe = path[-1]
    if isinstance(parent, dict) and pe.startswith("f:") and pe[2:] in parent:
        del parent[pe[2:]]
        return True
    if isinstance(parent, list):
        n = _find_item(parent, path[:-1], pe)
        if n is not None:
            del parent[n]
            return True
    return False


_KEEP_WHEN_EMPTY = frozenset({"f:metadata", "f:spec", "f:status"})


def _prune(obj: dict, remove: FieldSet, keep: FieldSet) -> dict:
    """Remove fields an applier gave up that nobody else owns (never a kept field's parent)."""
    out = copy.deepcopy(obj)
    keep_parents = {p[:n] for p in keep for n in range(1, len(p))}
    for path in sorted(remove, key=len):
        if path in keep_parents or path in keep:
            continue
        if len(path) >= 2 and path[-2].startswith("k:") and path[-1].startswith("f:"):
            try:
                key_fields = json.loads(path[-2][2:])
            except ValueError:
                key_fields = {}
            if path[-1][2:] in key_fields:
                continue  # the item stays (someone owns part of it): keep its key
        if not _delete_at(out, path):
            continue
        # Drop containers the removal emptied, unless someone owns them.
        parent = path[:-1]
        while len(parent) > 1 or (len(parent) == 1 and parent[0] not in _KEEP_WHEN_EMPTY):
            node = _locate(out, parent)
            if node is _MISSING or node or parent in keep or parent in keep_parents:
                break
            _delete_at(out, parent)
            parent = parent[:-1]
    return out


def server_side_apply(live: dict | None, config: dict, manager: str, force: bool,
                      managed: list[dict], api_version: str, now: str, subresource: str = "",
                      *, status_isolated: bool = True) -> tuple[dict, list[dict]]:
    """Apply `config` for `manager`; returns the new object and its managedFields.

    Raises ApplyConflict when a field `config` changes is owned by another manager and
    `force` is false.
    """
    if not isinstance(config, dict):
        raise BadPatch("apply patch must be a YAML or JSON object")
    entries = _parse_entries(managed)
    mine = next((e for e in entries if e.same_identity(manager, "Apply", subresource, "")), None)
    others = [e for e in entries if e is not mine]
    applied = _filter(_object_fields(config), subresource, status_isolated)

    kind = config.get("kind") if live is None else live.get("kind", config.get("kind"))
    if live is None:
        result = _merge_apply(_MISSING, config, ())
        before: dict[str, Any] = _zero_object(kind)
    else:
        before = _with_zero(live, kind)
        merged = _merge_apply(live, _apply_view(config, subresource, status_isolated), ())
        last = mine.fields if mine is not None else set()
        keep = set(applied)
        for entry in others:
            keep |= entry.fields
        result = _prune(merged, last - keep, keep)

    cmp = _compare_tracked(before, _with_zero(result, kind), subresource, status_isolated)
    changed = cmp.changed()
    found: list[tuple[_Entry, Path]] = []
    for entry in sorted(others, key=lambda e: (e.manager, e.describe())):
        found.extend((entry, p) for p in _iter_sorted(entry.fields & changed))
    if found and not force:
        raise ApplyConflict(
            [(e.manager, _path_string(p)) for e, p in found],
            [(e.describe(), _path_string(p)) for e, p in found],
        )
    for entry in others:
        entry.remove(changed | cmp.removed)

    object_changed = live is None or not _same(live, result)
    if mine is None:
        mine = _Entry(manager, "Apply", api_version, now, subresource, set(), {})
        entries.append(mine)
    elif object_changed:
        mine.time = now
    mine.api_version = api_version
    mine.fields = applied
    mine.dirty = True
    return result, _encode_entries(entries)
