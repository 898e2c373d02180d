"""List selection: label selectors, field selectors and pagination tokens.

Pure functions, no server state. The behaviour follows apimachinery:

- `parse_label_selector` is a port of the lexer/parser in apimachinery `pkg/labels/selector.go`
  (`labels.Parse`): the same tokens (`=`, `==`, `!=`, `in`, `notin`, `!`, `(`, `)`, `,`, and
  `>`/`<` with an integer value), the same validation of keys (qualified names) and values
  (label values), and error texts worded like the Go ones, e.g.
  ``unable to parse requirement: found 'b' expected: '('`` or
  ``unable to parse requirement: <nil>: Invalid value: "a b c": name part must consist of ...``.
  The API server answers a bad `labelSelector` with 400 BadRequest carrying that text.
- `label_selector_from_spec` is `metav1.LabelSelectorAsSelector` (matchLabels and
  matchExpressions).
- `parse_field_selector` follows apimachinery `pkg/fields/selector.go` (`fields.ParseSelector`):
  terms split on unescaped commas, operators `!=`, `==`, `=` (first one found, no whitespace
  trimming), values unescaped with `\\`, `\\,`, `\\=`. A field the type does not index gives
  `field label not supported: <key>` (the text of the core types' field label conversion funcs).
- `encode_continue`/`decode_continue` produce and read an opaque `continue` token shaped like the
  etcd3 store's (`base64url(JSON{"v":"meta.k8s.io/v1","rv":N,"start":KEY})`).

Every failure raises `SelectorError`; the server turns it into 400 BadRequest with `str(e)`
(for a continue token, prefixed `invalid continue token: `, as the API server words it).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any


class SelectorError(ValueError):
    """A selector or continue token the server must reject with 400 BadRequest."""


# ---------------------------------------------------------------------------------------------
# Validation of label keys and values (k8s.io/apimachinery/pkg/util/validation)

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                       "and end with an alphanumeric character")
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    eg = "".join(("" if i == 0 else " or ") + f"'{ex}', " for i, ex in enumerate(examples))
    return f"{msg} (e.g. {eg}regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def _qualified_name_errors(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errs.append("prefix part " + _max_len_error(253))
            if not _DNS1123_SUBDOMAIN_RE.match(prefix):
                errs.append("prefix part " + _regex_error(
                    _DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    else:
        return ["a qualified name " + _regex_error(
            _QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append("name part " + _regex_error(
            _QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def _label_value_errors(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT,
                                 "MyValue", "my_value", "12345"))
    return errs


def _invalid(path: str, value: Any, detail: str) -> str:
    """field.Invalid(...).Error(): `<path>: Invalid value: "<v>": <detail>`."""
    shown = json.dumps(value) if isinstance(value, str) else _go_value(value)
    return f"{path}: Invalid value: {shown}: {detail}"


def _go_value(value: Any) -> str:
    if isinstance(value, list):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    return str(value)


def _aggregate(errs: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error()."""
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


# ---------------------------------------------------------------------------------------------
# Requirements

_IN, _NOTIN, _EQ, _DEQ, _NEQ = "in", "notin", "=", "==", "!="
_EXISTS, _DOES_NOT_EXIST, _GT, _LT = "exists", "!", "gt", "lt"

Matcher = Callable[[dict[str, str]], bool]


def _new_requirement(key: str, op: str, values: list[str], path: str | None) -> tuple:
    """labels.NewRequirement: validate and return (key, op, values); raise on error.

    `path` is the field path prefix used in messages: None for the string parser (Go prints a nil
    path as `<nil>` for the key and as nothing in front of `values`), "" for a LabelSelector spec.
    """
    errs: list[str] = []
    key_path = "key" if path is None or path == "" else f"{path}.key"
    values_path = "values" if path is None or path == "" else f"{path}.values"
    if kerrs := _qualified_name_errors(key):
        errs.append(_invalid(key_path, key, "; ".join(kerrs)))
    if op in (_IN, _NOTIN):
        if not values:
            errs.append(_invalid(values_path, values,
                                 "for 'in', 'notin' operators, values set can't be empty"))
    elif op in (_EQ, _DEQ, _NEQ):
        if len(values) != 1:
            errs.append(_invalid(values_path, values,
                                 "exact-match compatibility requires one single value"))
    elif op in (_EXISTS, _DOES_NOT_EXIST):
        if values:
            errs.append(_invalid(values_path, values,
                                 "values set must be empty for exists and does not exist"))
    elif op in (_GT, _LT):
        if len(values) != 1:
            errs.append(_invalid(values_path, values,
                                 "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(values):
            if _parse_int64(v) is None:
                errs.append(_invalid(f"{values_path}[{i}]", v,
                                     "for 'Gt', 'Lt' operators, the value must be an integer"))
    for i, v in enumerate(values):
        if verrs := _label_value_errors(v):
            errs.append(_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(verrs)))
    if errs:
        raise SelectorError(_aggregate(errs))
    return key, op, frozenset(values)


def _parse_int64(s: str) -> int | None:
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        return None
    n = int(s)
    return n if -(2**63) <= n < 2**63 else None


def _requirement_matches(req: tuple, labels: dict[str, str]) -> bool:
    key, op, values = req
    present = key in labels
    if op in (_IN, _EQ, _DEQ):
        return present and labels[key] in values
    if op in (_NOTIN, _NEQ):
        return not present or labels[key] not in values
    if op == _EXISTS:
        return present
    if op == _DOES_NOT_EXIST:
        return not present
    if op in (_GT, _LT):
        if not present:
            return False
        have = _parse_int64(labels[key])
        want = _parse_int64(next(iter(values)))
        if have is None or want is None:
            return False
        return have > want if op == _GT else have < want
    return False


def _matcher(reqs: list[tuple]) -> Matcher:
    def matches(labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(_requirement_matches(r, labels) for r in reqs)
    return matches


# ---------------------------------------------------------------------------------------------
# Label selector string parser (labels.Parse)

_T_ERROR, _T_END, _T_CLOSE, _T_COMMA, _T_NOT = "ERROR", "END", ")", ",", "!"
_T_DEQ, _T_EQ, _T_GT, _T_ID, _T_IN, _T_LT = "==", "=", ">", "ID", "in", "<"
_T_NEQ, _T_NOTIN, _T_OPEN = "!=", "notin", "("

_LITERAL_TOKENS = {")": _T_CLOSE, ",": _T_COMMA, "!": _T_NOT, "==": _T_DEQ, "=": _T_EQ,
                   ">": _T_GT, "in": _T_IN, "<": _T_LT, "!=": _T_NEQ, "notin": _T_NOTIN,
                   "(": _T_OPEN}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")


def _lex(s: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    pos, n = 0, len(s)
    while True:
        while pos < n and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_T_END, ""))
            return items
        if s[pos] in _SPECIAL:
            buf, last = "", None
            while pos < n and s[pos] in _SPECIAL:
                buf += s[pos]
                if buf in _LITERAL_TOKENS:
                    last = (_LITERAL_TOKENS[buf], buf)
                    pos += 1
                elif last is not None:
                    break
                else:
                    pos += 1
            if last is None:
                items.append((_T_ERROR, f"error expected: keyword found '{buf}'"))
            else:
                items.append(last)
        else:
            start = pos
            while pos < n and s[pos] not in _SPECIAL and s[pos] not in _WHITESPACE:
                pos += 1
            word = s[start:pos]
            items.append((_LITERAL_TOKENS.get(word, _T_ID), word))


class _Parser:
    def __init__(self, s: str) -> None:
        self.items = _lex(s)
        self.pos = 0

    def _tok(self, i: int, values: bool) -> tuple[str, str]:
        tok, lit = self.items[i]
        if values and tok in (_T_IN, _T_NOTIN):
            tok = _T_ID
        return tok, lit

    def lookahead(self, values: bool = True) -> tuple[str, str]:
        return self._tok(self.pos, values)

    def consume(self, values: bool = True) -> tuple[str, str]:
        self.pos += 1
        return self._tok(self.pos - 1, values)

    def parse(self) -> list[tuple]:
        reqs: list[tuple] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_T_ID, _T_NOT):
                try:
                    reqs.append(self.requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                t, lit2 = self.consume()
                if t == _T_END:
                    return reqs
                if t == _T_COMMA:
                    t2, l2 = self.lookahead()
                    if t2 not in (_T_ID, _T_NOT):
                        raise SelectorError(f"found '{l2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == _T_END:
                return reqs
            else:
                raise SelectorError(
                    f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> tuple:
        op = None
        tok, lit = self.consume()
        if tok == _T_NOT:
            op = _DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok != _T_ID:
            raise SelectorError(f"found '{lit}', expected: identifier")
        key = lit
        if kerrs := _qualified_name_errors(key):
            raise SelectorError(_invalid("<nil>", key, "; ".join(kerrs)))
        if op == _DOES_NOT_EXIST or self.lookahead()[0] in (_T_END, _T_COMMA):
            # `!key` takes no operator; anything after it fails in parse() like in Go.
            return _new_requirement(key, op or _EXISTS, [], None)
        tok, lit = self.consume(values=False)
        ops = {_T_IN: _IN, _T_NOTIN: _NOTIN, _T_EQ: _EQ, _T_DEQ: _DEQ, _T_NEQ: _NEQ,
               _T_GT: _GT, _T_LT: _LT}
        if tok not in ops:
            raise SelectorError(
                f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
        op = ops[tok]
        values = self.set_values() if op in (_IN, _NOTIN) else self.exact_value()
        return _new_requirement(key, op, sorted(values), None)

    def set_values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != _T_OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in (_T_ID, _T_COMMA):
            values = self.identifiers()
            tok2, _ = self.consume()
            if tok2 != _T_CLOSE:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return values
        if tok == _T_CLOSE:
            self.consume()
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _T_ID:
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == _T_COMMA:
                    continue
                if tok2 == _T_CLOSE:
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _T_COMMA:
                if not values:
                    values.add("")
                tok2, _ = self.lookahead()
                if tok2 == _T_CLOSE:
                    values.add("")
                    return values
                if tok2 == _T_COMMA:
                    values.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead()
        if tok in (_T_END, _T_COMMA):
            return {""}
        tok, lit = self.consume()
        if tok == _T_ID:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(s: str) -> Matcher:
    """Parse a `labelSelector` query value; return `matches(labels) -> bool`.

    An empty string selects everything. Raises SelectorError with the apimachinery message.
    """
    return _matcher(_Parser(s or "").parse())


def label_selector_from_spec(sel: dict | None) -> Matcher:
    """A metav1.LabelSelector (`{"matchLabels": {...}, "matchExpressions": [...]}`) as a matcher.

    matchExpressions operators: In, NotIn, Exists, DoesNotExist. `None` and `{}` match everything
    (note: apimachinery's LabelSelectorAsSelector maps a *nil* selector to "nothing"; callers that
    need that distinction check for None themselves). Invalid keys/values/operators raise
    SelectorError.
    """
    if not sel:
        return _matcher([])
    if not isinstance(sel, dict):
        raise SelectorError("label selector must be an object")
    reqs: list[tuple] = []
    match_labels = sel.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise SelectorError("matchLabels must be a map of string to string")
    for k, v in match_labels.items():
        if not isinstance(v, str):
            raise SelectorError(_invalid("values", v, "label values must be strings"))
        reqs.append(_new_requirement(str(k), _EQ, [v], ""))
    ops = {"In": _IN, "NotIn": _NOTIN, "Exists": _EXISTS, "DoesNotExist": _DOES_NOT_EXIST}
    for expr in sel.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            raise SelectorError("matchExpressions entries must be objects")
        operator = expr.get("operator")
        if operator not in ops:
            raise SelectorError(f"{json.dumps(operator or '')} is not a valid label selector "
                                "operator")
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SelectorError("matchExpressions values must be a list of strings")
        reqs.append(_new_requirement(str(expr.get("key", "")), ops[operator], list(values), ""))
    return _matcher(reqs)


# ---------------------------------------------------------------------------------------------
# Field selectors (fields.ParseSelector + per-type field label support)

# Field labels whose value is not simply the field at that path in the stored object.
_FIELD_ALIASES = {"source": "source.component"}
_FIELD_DEFAULTS = {"spec.unschedulable": "false"}


def _split_terms(s: str) -> list[str]:
    terms, cur, escaped = [], [], False
    for ch in s:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == ",":
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def _unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(
                    f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(
                f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def field_value(obj: dict, path: str) -> str:
    """The string value a field selector compares for `path` (dotted); missing -> ""."""
    cur: Any = obj
    for part in _FIELD_ALIASES.get(path, path).split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _FIELD_DEFAULTS.get(path, "")
        cur = cur[part]
    if cur is None:
        return _FIELD_DEFAULTS.get(path, "")
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, (dict, list)):
        return json.dumps(cur, separators=(",", ":"), sort_keys=True)
    return str(cur)


def parse_field_selector(s: str, supported: set[str]) -> Callable[[dict], bool]:
    """Parse a `fieldSelector` query value against the type's supported field labels.

    Returns `matches(obj) -> bool`. Syntax errors and unsupported keys raise SelectorError
    (`field label not supported: <key>`). An empty string selects everything.
    """
    terms: list[tuple[str, bool, str]] = []
    for part in sorted(_split_terms(s or "")):
        if part == "":
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{part}'")
        lhs, op, rhs = split
        terms.append((lhs, op == "!=", _unescape(rhs)))
    for lhs, _, _ in terms:
        if lhs not in supported:
            raise SelectorError(f"field label not supported: {lhs}")

    def matches(obj: dict) -> bool:
        for lhs, negate, want in terms:
            if (field_value(obj, lhs) == want) == negate:
                return False
        return True
    return matches


# ---------------------------------------------------------------------------------------------
# Continue tokens

_CONTINUE_VERSION = "meta.k8s.io/v1"


def encode_continue(list_rv: int, last_key: str) -> str:
    """An opaque token: resume after `last_key` in the snapshot of resourceVersion `list_rv`."""
    raw = json.dumps({"v": _CONTINUE_VERSION, "rv": int(list_rv), "start": last_key},
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    """Inverse of encode_continue: (list_rv, last_key). A malformed token raises SelectorError
    worded like the storage layer (`continue key is not valid: ...`); the API server prefixes
    `invalid continue token: ` when it turns that into 400 BadRequest."""
    def bad(detail: str) -> SelectorError:
        return SelectorError(f"continue key is not valid: {detail}")
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
    except (binascii.Error, UnicodeError, ValueError):
        raise bad("illegal base64 data or JSON") from None
    if not isinstance(data, dict):
        raise bad("not an object")
    if data.get("v") != _CONTINUE_VERSION:
        raise bad("server does not recognize this encoded version")
    rv, start = data.get("rv"), data.get("start")
    # A negative rv (-1) means "continue at the latest revision": the server hands such a
    # token out with a 410 when the original snapshot was compacted (storage.DecodeContinue
    # rejects only 0).
    if not isinstance(rv, int) or isinstance(rv, bool) or rv == 0:
        raise bad(f"incorrect encoded start resourceVersion (version {_CONTINUE_VERSION})")
    if not isinstance(start, str) or not start:
        raise bad("encoded start key empty")
    return rv, start
