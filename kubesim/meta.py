"""Object metadata rules: system fields, names, times, and strict decoding of built-in types.

Built-in objects are checked against the field types of the `kubernetes` package's models,
which are generated from the same OpenAPI the real server's Go structs produce: a string
where an int32 belongs is a 400 (the Go JSON decoder refuses it), and unknown fields are
dropped, warned about or refused according to `fieldValidation`.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from typing import Any

from kubernetes.client import models as k8s_models

from .errors import ApiError, bad_request, invalid
from .registry import ResourceType

# ---------------------------------------------------------------- times

_MICRO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
GO_MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(t: dt.datetime) -> str:
    """metav1.Time: RFC 3339 to the second, UTC, `Z`."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro(t: dt.datetime) -> str:
    """metav1.MicroTime: six fractional digits, UTC, `Z`."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(s: str) -> dt.datetime:
    text = s[:-1] + "+00:00" if s.endswith("Z") else s
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$", text)
    if m and m.group(2) and len(m.group(2)) > 7:  # Python takes at most 6 digits
        text = m.group(1) + m.group(2)[:7] + m.group(3)
    return dt.datetime.fromisoformat(text)


def _time_error(kind: str, version: str, value: str, layout: str) -> ApiError:
    detail = go_parse_time_error(value, layout) or (
        f"parsing time {_go_quote(value)} as {_go_quote(layout)}: cannot parse "
        f"{_go_quote(value)} as {_go_quote(layout)}")
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}')


GO_RFC3339_LAYOUT = "2006-01-02T15:04:05Z07:00"


def _go_quote(s: str) -> str:
    """Go's time.quote: bytes outside printable ASCII as \\xHH; `"` and `\\` escaped."""
    out = []
    for c in s:
        if ord(c) >= 0x80 or ord(c) < 0x20:
            out.extend(f"\\x{b:02x}" for b in c.encode("utf-8"))
        else:
            out.append("\\" + c if c in '"\\' else c)
    return '"' + "".join(out) + '"'


def go_parse_time_error(value: str, layout: str = GO_MICRO_LAYOUT) -> str | None:
    """The error Go's time.Parse gives for `value`, or None when it parses.

    Only the two layouts the API uses: RFC 3339 (metav1.Time) and RFC3339Micro
    (metav1.MicroTime, exactly six fractional digits). Like Go's, the message names the
    unparsed rest of the value and the layout element it stopped at.
    """
    micro = layout == GO_MICRO_LAYOUT
    head = f"parsing time {_go_quote(value)}"

    def bad(rest: str, elem: str) -> str:
        return f"{head} as {_go_quote(layout)}: cannot parse {_go_quote(rest)} as " \
               f"{_go_quote(elem)}"

    def digit(s: str, i: int) -> bool:
        return len(s) > i and "0" <= s[i] <= "9"

    rest = value
    if not all(digit(rest, i) for i in range(4)):
        return bad(rest, "2006")
    year, rest = int(rest[:4]), rest[4:]
    nums: dict[str, int] = {}
    for prefix, elem, fixed, what, hi in (("-", "01", True, "month", 12),
                                          ("-", "02", True, "", 99),
                                          ("T", "15", False, "hour", 23),
                                          (":", "04", True, "minute", 59),
                                          (":", "05", True, "second", 59)):
        if not rest.startswith(prefix):
            return bad(rest, prefix)
        rest = rest[len(prefix):]
        if not digit(rest, 0) or (fixed and not digit(rest, 1)):
            return bad(rest, elem)
        n = 2 if digit(rest, 1) else 1
        nums[elem], rest = int(rest[:n]), rest[n:]
        if what and (nums[elem] > hi or (elem == "01" and nums[elem] < 1)):
            return f"{head}: {what} out of range"
    if micro:
        if len(rest) < 7 or rest[0] not in ".," or not all(digit(rest, i) for i in range(1, 7)):
            return bad(rest, ".000000")
        rest = rest[7:]
    elif len(rest) >= 2 and rest[0] in ".," and digit(rest, 1):
        n = 2
        while digit(rest, n):
            n += 1
        rest = rest[n:]
    if rest.startswith("Z"):
        rest = rest[1:]
    else:
        if len(rest) < 6 or rest[3] != ":" or rest[0] not in "+-" \
                or not all(digit(rest, i) for i in (1, 2, 4, 5)):
            return bad(rest, "Z07:00")
        if int(rest[1:3]) > 24:
            return f"{head}: time zone offset hour out of range"
        if int(rest[4:6]) > 60:
            return f"{head}: time zone offset minute out of range"
        rest = rest[6:]
    if rest:
        return f"{head}: extra text: {_go_quote(rest)}"
    month, day = nums["01"], nums["02"]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    if day < 1 or day > days:
        return f"{head}: day out of range"
    return None


def normalize_micro(value: Any, kind: str, version: str, strict: bool) -> str:
    if not isinstance(value, str):
        raise bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: '
                          f"json: cannot unmarshal {json_type(value)} into Go value of type "
                          f"string")
    if strict:
        if go_parse_time_error(value, GO_MICRO_LAYOUT):
            raise _time_error(kind, version, value, GO_MICRO_LAYOUT)
    elif not _RFC3339_RE.match(value) or go_parse_time_error(value, GO_RFC3339_LAYOUT):
        raise _time_error(kind, version, value, GO_MICRO_LAYOUT)
    return format_micro(parse_rfc3339(value))


def normalize_time(value: Any, kind: str, version: str) -> str:
    if not isinstance(value, str) or not _RFC3339_RE.match(value) \
            or go_parse_time_error(value, GO_RFC3339_LAYOUT):
        raise _time_error(kind, version, str(value), GO_RFC3339_LAYOUT)
    return format_time(parse_rfc3339(value))


# ---------------------------------------------------------------- names

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is '" + DNS1123_SUBDOMAIN + "')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '" + DNS1123_LABEL + "')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
               "start with an alphabetic character, and end with an alphanumeric character "
               "(e.g. 'my-name',  or 'abc-123', regex used for validation is '"
               + DNS1035_LABEL + "')")


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and re.fullmatch(DNS1123_SUBDOMAIN, name) is not None


def is_dns1123_label(name: str) -> bool:
    return len(name) <= 63 and re.fullmatch(DNS1123_LABEL, name) is not None


def name_errors(rt: ResourceType, name: str) -> list[str]:
    """What is wrong with `name` for this type, in the real server's words."""
    if rt.kind == "Namespace":
        if len(name) > 63:
            return ["must be no more than 63 characters"]
        return [] if re.fullmatch(DNS1123_LABEL, name) else [LABEL_MSG]
    if rt.kind == "Service":
        if len(name) > 63:
            return ["must be no more than 63 characters"]
        return [] if re.fullmatch(DNS1035_LABEL, name) else [DNS1035_MSG]
    if rt.group == "rbac.authorization.k8s.io":
        if name in (".", ".."):
            return [f"may not be '{name}'"]
        bad = [c for c in ("/", "%") if c in name]
        return [f"may not contain '{c}'" for c in bad]
    if len(name) > 253:
        return ["must be no more than 253 characters"]
    return [] if re.fullmatch(DNS1123_SUBDOMAIN, name) else [SUBDOMAIN_MSG]


_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name(prefix: str) -> str:
    if len(prefix) > 58:
        prefix = prefix[:58]
    return prefix + "".join(random.choice(_GEN_ALPHABET) for _ in range(5))


def new_uid() -> str:
    return str(uuid.uuid4())


def qualified_name_errors(key: str) -> list[str]:
    errs = []
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        errs.append("prefix part must be non-empty")
    elif prefix and not is_dns1123_subdomain(prefix):
        errs.append("prefix part " + SUBDOMAIN_MSG)
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not re.fullmatch(_QUALIFIED_NAME, name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                    "'my.name',  or '123-abc', regex used for validation is '"
                    "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errs


def label_value_errors(value: str) -> list[str]:
    if len(value) > 63:
        return ["must be no more than 63 characters"]
    if not re.fullmatch(_LABEL_VALUE, value):
        return ["a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                "'MyValue',  or 'my_value',  or '12345', regex used for validation is '"
                "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    return []


def metadata_causes(meta: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """Validation of labels, annotations and ownerReferences common to every type."""
    causes: list[tuple[str, Any, str]] = []
    for key, value in (meta.get("labels") or {}).items():
        for e in qualified_name_errors(key):
            causes.append(("metadata.labels", f'"{key}"', e))
        if isinstance(value, str):
            for e in label_value_errors(value):
                causes.append(("metadata.labels", f'"{value}"', e))
    for key in (meta.get("annotations") or {}):
        for e in qualified_name_errors(key.lower()):
            causes.append(("metadata.annotations", f'"{key}"', e))
    controllers = 0
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        base = f"metadata.ownerReferences[{i}]"
        for f in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(f):
                detail = "Invalid value: \"\": " if f != "uid" else "Invalid value: \"\": "
                causes.append((f"{base}.{f}", None, f"{detail}{f} must not be empty"))
        if ref.get("controller"):
            controllers += 1
    if controllers > 1:
        causes.append(("metadata.ownerReferences", None,
                       "Invalid value: ...: Only one reference can have Controller set to true"))
    return causes


# ---------------------------------------------------------------- strict decoding

def json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


_GO_TYPES = {"str": "string", "int": "int32", "bool": "bool", "float": "float64",
             "datetime": "v1.Time", "date": "string"}

_MICROTIME_FIELDS = {("Lease", "spec.acquireTime"), ("Lease", "spec.renewTime"),
                     ("Event", "eventTime")}


class Decoder:
    """Type-checks a built-in object against its model and prunes unknown fields."""

    def __init__(self, rt: ResourceType, strict_microtime: bool) -> None:
        self.rt = rt
        self.strict_microtime = strict_microtime
        self.unknown: list[str] = []

    def model(self) -> Any:
        return getattr(k8s_models, "V1" + self.rt.kind, None)

    def decode(self, obj: dict[str, Any]) -> dict[str, Any]:
        model = self.model()
        if model is None:
            return obj
        return self._object(obj, model, "", model.__name__[2:])

    def _fail(self, path: str, value: Any, go_type: str, struct: str) -> ApiError:
        kind, version = self.rt.kind, self.rt.version
        return bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot '
            f"unmarshal {json_type(value)} into Go struct field {struct}.{path} of type {go_type}")

    def _object(self, obj: Any, model: Any, path: str, struct: str) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise self._fail(path or "", obj, struct, struct)
        by_json = {j: a for a, j in model.attribute_map.items()}
        out: dict[str, Any] = {}
        for key, value in obj.items():
            sub = f"{path}.{key}" if path else key
            attr = by_json.get(key)
            if attr is None:
                self.unknown.append(sub)
                continue
            if value is None:
                out[key] = None
                continue
            out[key] = self._value(value, model.openapi_types[attr], sub, struct)
        return out

    def _value(self, value: Any, typ: str, path: str, struct: str) -> Any:
        if typ.startswith("List[") or typ.startswith("list["):
            inner = typ[5:-1]
            if not isinstance(value, list):
                raise self._fail(path, value, "[]" + _go_type(inner), struct)
            return [self._value(v, inner, path, struct) for v in value]
        if typ.startswith("Dict[") or typ.startswith("dict("):
            inner = typ[typ.index(",") + 1:-1].strip()
            if not isinstance(value, dict):
                raise self._fail(path, value, "map[string]" + _go_type(inner), struct)
            return {k: (None if v is None else self._value(v, inner, path, struct))
                    for k, v in value.items()}
        if typ == "object":
            return value
        if typ == "str":
            if not isinstance(value, str):
                raise self._fail(path, value, "string", struct)
            return value
        if typ == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    return int(value)
                raise self._fail(path, value, "int32", struct)
            return value
        if typ == "bool":
            if not isinstance(value, bool):
                raise self._fail(path, value, "bool", struct)
            return value
        if typ == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._fail(path, value, "float64", struct)
            return value
        if typ == "datetime":
            if (self.rt.kind, path) in _MICROTIME_FIELDS:
                return normalize_micro(value, self.rt.kind, self.rt.version,
                                       self.strict_microtime)
            return normalize_time(value, self.rt.kind, self.rt.version)
        model = getattr(k8s_models, typ, None)
        if model is None:
            return value
        # Go's UnmarshalTypeError names the innermost struct being decoded and the full path.
        if not isinstance(value, dict):
            raise self._fail(path, value, _go_type(typ), struct)
        return self._object(value, model, path, _go_struct_name(typ))


def _go_struct_name(model_name: str) -> str:
    """V1LeaseSpec -> LeaseSpec, CoreV1EventSeries -> EventSeries (the Go type's name)."""
    return re.sub(r"^[A-Za-z]*?V\d+(?:(?:alpha|beta)\d+)?(?=[A-Z])", "", model_name)


def _go_type(typ: str) -> str:
    """How Go prints a field's type: int32, []string, v1.LeaseSpec."""
    if typ in _GO_TYPES:
        return _GO_TYPES[typ]
    m = re.match(r"^[A-Za-z]*?(V\d+(?:(?:alpha|beta)\d+)?)(?=[A-Z])", typ)
    if m and getattr(k8s_models, typ, None) is not None:
        return f"{m.group(1).lower()}.{typ[m.end():]}"
    return typ


# ---------------------------------------------------------------- type rules

def validate_type(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Per-type validation (the strategies' Validate/ValidateUpdate), as 422s."""
    name = obj["metadata"].get("name", "")
    causes: list[tuple[str, Any, str]] = list(metadata_causes(obj["metadata"]))
    if rt.kind == "Lease":
        spec = obj.get("spec") or {}
        d = spec.get("leaseDurationSeconds")
        if d is not None and d <= 0:
            causes.append(("spec.leaseDurationSeconds", d, "must be greater than 0"))
        t = spec.get("leaseTransitions")
        if t is not None and t < 0:
            causes.append(("spec.leaseTransitions", t, "must be greater than or equal to 0"))
        if spec.get("preferredHolder") and not spec.get("strategy"):
            causes.append(("spec.preferredHolder", f'"{spec["preferredHolder"]}"',
                           "only allowed if strategy is set"))
    elif rt.kind in ("ConfigMap", "Secret"):
        for section in ("data", "binaryData", "stringData"):
            for key in (obj.get(section) or {}):
                if not re.fullmatch(r"[-._a-zA-Z0-9]+", key) or len(key) > 253:
                    causes.append((f"{section}[{key}]", f'"{key}"',
                                   "a valid config key must consist of alphanumeric "
                                   "characters, '-', '_' or '.' (e.g. 'key.name',  or "
                                   "'KEY_NAME',  or 'key-name', regex used for validation is "
                                   "'[-._a-zA-Z0-9]+')"))
        if old is not None and old.get("immutable"):
            for section in ("data", "binaryData"):
                if (obj.get(section) or {}) != (old.get(section) or {}):
                    causes.append((section, None,
                                   "Forbidden: field is immutable when `immutable` is set"))
            if not obj.get("immutable"):
                causes.append(("immutable", None,
                               "Forbidden: field is immutable when `immutable` is set"))
    elif rt.kind == "Deployment":
        spec = obj.get("spec") or {}
        r = spec.get("replicas")
        if r is not None and r < 0:
            causes.append(("spec.replicas", r, "must be greater than or equal to 0"))
        if not (spec.get("selector") or {}):
            causes.append(("spec.selector", None, "Required value"))
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        match = ((spec.get("selector") or {}).get("matchLabels") or {})
        if any(tmpl_labels.get(k) != v for k, v in match.items()):
            causes.append(("spec.template.metadata.labels", repr(tmpl_labels),
                           "`selector` does not match template `labels`"))
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
        if not containers:
            causes.append(("spec.template.spec.containers", None, "Required value"))
        if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
            causes.append(("spec.selector", repr(spec.get("selector")), "field is immutable"))
    elif rt.kind == "Pod":
        containers = (obj.get("spec") or {}).get("containers")
        if not containers:
            causes.append(("spec.containers", None, "Required value"))
        for i, c in enumerate(containers or []):
            if not c.get("name"):
                causes.append((f"spec.containers[{i}].name", None, "Required value"))
            if not c.get("image"):
                causes.append((f"spec.containers[{i}].image", None, "Required value"))
    if causes:
        raise invalid(kind_qualified(rt), name, causes, rt.group)


def kind_qualified(rt: ResourceType) -> str:
    return f"{rt.kind}.{rt.group}" if rt.group else rt.kind
