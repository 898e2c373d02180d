"""Custom resources against their CRD's structural schema: prune, default, validate.

Follows apiextensions-apiserver: unknown fields are pruned unless
`x-kubernetes-preserve-unknown-fields`, nulls of non-nullable fields are dropped before
defaulting, `default:` fills absent fields, and type/enum/range/length/pattern/required
violations are a 422 worded like `spec.size in body should be greater than or equal to 0`.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from . import errors
from .registry import ResourceType

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _go_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        return "\"" + type(v).__name__ + "\""
    return str(v)


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


class _Walker:
    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.causes: list[tuple[str, Any, str]] = []

    def walk(self, value: Any, sch: dict[str, Any], path: str) -> Any:
        if value is None:
            return None
        typ = sch.get("type")
        if sch.get("x-kubernetes-int-or-string"):
            if not isinstance(value, (int, str)) or isinstance(value, bool):
                self.causes.append((path, _go_value(value),
                                    f"{path} in body must be of type integer,string: "
                                    f'"{_type_name(value)}"'))
            return value
        if typ and not self._type_ok(value, typ):
            self.causes.append((path, _go_value(value), f"{path} in body must be of type "
                                                        f'{typ}: "{_type_name(value)}"'))
            return value
        if isinstance(value, dict):
            value = self._object(value, sch, path)
        elif isinstance(value, list):
            items = sch.get("items")
            if isinstance(items, dict):
                value = [self.walk(v, items, f"{path}[{i}]") for i, v in enumerate(value)]
            self._array_rules(value, sch, path)
        else:
            self._scalar_rules(value, sch, path)
        if "enum" in sch and value not in sch["enum"]:
            allowed = ", ".join(_go_value(e) for e in sch["enum"])
            self.causes.append((path, None, f"Unsupported value: {_go_value(value)}: "
                                            f"supported values: {allowed}"))
        return value

    @staticmethod
    def _type_ok(value: Any, typ: str) -> bool:
        if typ == "object":
            return isinstance(value, dict)
        if typ == "array":
            return isinstance(value, list)
        if typ == "string":
            return isinstance(value, str)
        if typ == "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        if typ == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if typ == "boolean":
            return isinstance(value, bool)
        return True

    def _object(self, value: dict[str, Any], sch: dict[str, Any], path: str) -> dict[str, Any]:
        props: dict[str, Any] = sch.get("properties") or {}
        extra = sch.get("additionalProperties")
        preserve = sch.get("x-kubernetes-preserve-unknown-fields") is True
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if k in props:
                if v is None and not props[k].get("nullable"):
                    continue  # pruned before defaulting
                out[k] = self.walk(v, props[k], sub)
            elif isinstance(extra, dict):
                out[k] = self.walk(v, extra, sub)
            elif preserve or extra is True:
                out[k] = v
            else:
                self.unknown.append(sub)
        for k, p in props.items():
            if k not in out and "default" in p:
                out[k] = self.walk(copy.deepcopy(p["default"]), p, f"{path}.{k}" if path else k)
        for k in sch.get("required") or []:
            if k not in out:
                self.causes.append((f"{path}.{k}" if path else k, None, "Required value"))
        n = len(out)
        if "maxProperties" in sch and n > sch["maxProperties"]:
            self.causes.append((path, None, f"Too many: {n}: must have at most "
                                            f"{sch['maxProperties']} items"))
        if "minProperties" in sch and n < sch["minProperties"]:
            self.causes.append((path, None, f"Invalid value: {n}: {path} in body should have "
                                            f"at least {sch['minProperties']} properties"))
        return out

    def _array_rules(self, value: list[Any], sch: dict[str, Any], path: str) -> None:
        n = len(value)
        if "maxItems" in sch and n > sch["maxItems"]:
            self.causes.append((path, None, f"Too many: {n}: must have at most "
                                            f"{sch['maxItems']} items"))
        if "minItems" in sch and n < sch["minItems"]:
            self.causes.append((path, n, f"{path} in body should have at least "
                                         f"{sch['minItems']} items"))

    def _scalar_rules(self, value: Any, sch: dict[str, Any], path: str) -> None:
        gv = _go_value(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in sch:
                lo = sch["minimum"]
                if sch.get("exclusiveMinimum") and value <= lo:
                    self.causes.append((path, gv, f"{path} in body should be greater than "
                                                  f"{_num(lo)}"))
                elif value < lo:
                    self.causes.append((path, gv, f"{path} in body should be greater than or "
                                                  f"equal to {_num(lo)}"))
            if "maximum" in sch:
                hi = sch["maximum"]
                if sch.get("exclusiveMaximum") and value >= hi:
                    self.causes.append((path, gv, f"{path} in body should be less than "
                                                  f"{_num(hi)}"))
                elif value > hi:
                    self.causes.append((path, gv, f"{path} in body should be less than or "
                                                  f"equal to {_num(hi)}"))
        if isinstance(value, str):
            if "maxLength" in sch and len(value) > sch["maxLength"]:
                self.causes.append((path, None, f"Too long: may not be more than "
                                                f"{sch['maxLength']} bytes"))
            if "minLength" in sch and len(value) < sch["minLength"]:
                self.causes.append((path, gv, f"{path} in body should be at least "
                                              f"{sch['minLength']} chars long"))
            if "pattern" in sch and not re.search(sch["pattern"], value):
                self.causes.append((path, gv, f"{path} in body should match "
                                              f"'{sch['pattern']}'"))


def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def prepare(rt: ResourceType, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Prune, default and validate a custom resource; returns it and the pruned paths."""
    sch = rt.schema
    if not sch:
        return obj, []
    w = _Walker()
    rest = {k: v for k, v in obj.items() if k not in _ROOT_KEEP}
    root_props = {k: v for k, v in (sch.get("properties") or {}).items() if k not in _ROOT_KEEP}
    root = dict(sch, properties=root_props)
    checked = w.walk(rest, root, "")
    out = {k: obj[k] for k in _ROOT_KEEP if k in obj}
    out.update(checked if isinstance(checked, dict) else {})
    if w.causes:
        name = (obj.get("metadata") or {}).get("name", "")
        raise errors.invalid(f"{rt.kind}.{rt.group}", name, w.causes, rt.group)
    return out, w.unknown
