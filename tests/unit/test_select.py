"""Label selectors, field selectors and continue tokens (kubesim.select)."""

from __future__ import annotations

import base64
import json

import pytest

from kubesim.select import (
    SelectorError,
    decode_continue,
    encode_continue,
    label_selector_from_spec,
    parse_field_selector,
    parse_label_selector,
)

LABELS = [
    {},
    {"app": "web"},
    {"app": "db", "tier": "backend"},
    {"app": "web", "tier": "frontend", "example.com/owner": "alice"},
    {"app": "cache", "count": "7"},
]


def select(selector: str) -> list[int]:
    match = parse_label_selector(selector)
    return [i for i, labels in enumerate(LABELS) if match(labels)]


# ------------------------------------------------------------------ label selector operators

@pytest.mark.parametrize("selector, expected", [
    ("", [0, 1, 2, 3, 4]),
    ("app=web", [1, 3]),
    ("app==web", [1, 3]),
    ("app!=web", [0, 2, 4]),                     # a missing key satisfies !=
    ("app in (web,db)", [1, 2, 3]),
    ("app notin (web,db)", [0, 4]),              # and notin
    ("tier", [2, 3]),
    ("!tier", [0, 1, 4]),
    ("app=web,tier=frontend", [3]),              # comma is AND
    ("app,!tier", [1, 4]),
    ("example.com/owner=alice", [3]),
    ("count>5", [4]),
    ("count<5", []),
    ("app=", []),                                # empty value matches only an empty label
    ("app in ()", []),                           # `()` is the set {""}
    ("  app  in  ( web , db ) ,  tier  ", [2, 3]),   # whitespace tolerant
    ("app\tin\t(web),\ntier", [3]),
    ("app in (in, notin, web)", [1, 3]),         # keywords are values inside the set
])
def test_label_selector_operators(selector: str, expected: list[int]) -> None:
    assert select(selector) == expected


def test_label_selector_matches_none_labels() -> None:
    assert parse_label_selector("!a")(None) is True  # type: ignore[arg-type]
    assert parse_label_selector("a")(None) is False  # type: ignore[arg-type]


def test_empty_value_in_set() -> None:
    match = parse_label_selector("x in (foo,,baz),y,z notin ()")
    assert match({"x": "", "y": "1"}) is True
    assert match({"x": "foo", "y": "1", "z": "a"}) is True
    assert match({"x": "foo", "y": "1", "z": ""}) is False
    assert match({"x": "bar", "y": "1"}) is False


# ------------------------------------------------------------------ label selector errors

@pytest.mark.parametrize("selector, message", [
    ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("x in a", "unable to parse requirement: found 'a' expected: '('"),
    ("x foo", "unable to parse requirement: found 'foo', expected: in, notin, =, ==, !=, gt, lt"),
    ("x=a,", "found '', expected: identifier after ','"),
    (",x=a", "found ',', expected: !, identifier, or 'end of string'"),
    ("x=a y=b", "found 'y', expected: ',' or 'end of string'"),
    ("x=a==b", "found '==', expected: ',' or 'end of string'"),
    ("!x=a", "found '=', expected: ',' or 'end of string'"),
    ("x=(a)", "unable to parse requirement: found '(', expected: identifier"),
    ("x<a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' "
            "operators, the value must be an integer"),
])
def test_label_selector_syntax_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as e:
        parse_label_selector(selector)
    assert str(e.value) == message


def test_label_selector_invalid_key() -> None:
    with pytest.raises(SelectorError) as e:
        parse_label_selector("bad$key=a")
    msg = str(e.value)
    assert msg.startswith('unable to parse requirement: <nil>: Invalid value: "bad$key": '
                          "name part must consist of alphanumeric characters")
    assert "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'" in msg


def test_label_selector_invalid_prefix_and_long_name() -> None:
    with pytest.raises(SelectorError, match="prefix part a lowercase RFC 1123 subdomain"):
        parse_label_selector("Example.COM/x")
    with pytest.raises(SelectorError, match="name part must be no more than 63 characters"):
        parse_label_selector("a" * 64)
    with pytest.raises(SelectorError, match="a qualified name must consist of"):
        parse_label_selector("a/b/c")


def test_label_selector_invalid_value() -> None:
    with pytest.raises(SelectorError) as e:
        parse_label_selector("app=-bad-")
    assert str(e.value).startswith(
        'unable to parse requirement: values[0][app]: Invalid value: "-bad-": a valid label '
        "must be an empty string or consist of alphanumeric characters")
    with pytest.raises(SelectorError, match="must be no more than 63 characters"):
        parse_label_selector("app=" + "v" * 64)


def test_operator_symbols_lex_greedily() -> None:
    # `!!` is `!` followed by `!`, as in the Go lexer: the second one is not an operator.
    with pytest.raises(SelectorError) as e:
        parse_label_selector("a!!b")
    assert str(e.value) == ("unable to parse requirement: found '!', expected: in, notin, =, "
                            "==, !=, gt, lt")


# ------------------------------------------------------------------ metav1.LabelSelector

@pytest.mark.parametrize("spec, expected", [
    (None, [0, 1, 2, 3, 4]),
    ({}, [0, 1, 2, 3, 4]),
    ({"matchLabels": {"app": "web"}}, [1, 3]),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]},
     [1, 2, 3]),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]},
     [0, 2, 4]),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, [2, 3]),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, [0, 1, 4]),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]}, [3]),
])
def test_label_selector_from_spec(spec: dict | None, expected: list[int]) -> None:
    match = label_selector_from_spec(spec)
    assert [i for i, labels in enumerate(LABELS) if match(labels)] == expected


@pytest.mark.parametrize("spec, message", [
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     '"Gt" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "values set must be empty for exists and does not exist"),
    ({"matchLabels": {"a": "b c"}}, 'values[0][a]: Invalid value: "b c"'),
    ({"matchLabels": {"b@d": "x"}}, 'key: Invalid value: "b@d"'),
])
def test_label_selector_from_spec_errors(spec: dict, message: str) -> None:
    with pytest.raises(SelectorError) as e:
        label_selector_from_spec(spec)
    assert message in str(e.value)


# ------------------------------------------------------------------ field selectors

POD_FIELDS = {"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"}
PODS = [
    {"metadata": {"name": "a", "namespace": "x"}, "spec": {"nodeName": "n1"},
     "status": {"phase": "Running"}},
    {"metadata": {"name": "b", "namespace": "x"}, "spec": {}, "status": {"phase": "Pending"}},
    {"metadata": {"name": "c", "namespace": "y"}},
]


def fselect(selector: str, objs: list[dict] = PODS, supported: set[str] = POD_FIELDS) -> list[str]:
    match = parse_field_selector(selector, supported)
    return [o["metadata"]["name"] for o in objs if match(o)]


@pytest.mark.parametrize("selector, expected", [
    ("", ["a", "b", "c"]),
    ("metadata.name=a", ["a"]),
    ("metadata.name==b", ["b"]),
    ("metadata.name!=a", ["b", "c"]),
    ("metadata.namespace=x,status.phase=Running", ["a"]),
    ("spec.nodeName=", ["b", "c"]),                 # a missing field reads as ""
    ("spec.nodeName!=", ["a"]),
    ("status.phase=Pending,metadata.namespace!=y", ["b"]),
])
def test_field_selector(selector: str, expected: list[str]) -> None:
    assert fselect(selector) == expected


def test_field_selector_other_types() -> None:
    secrets = [{"metadata": {"name": "s1"}, "type": "Opaque"},
               {"metadata": {"name": "s2"}, "type": "kubernetes.io/tls"}]
    assert fselect("type=kubernetes.io/tls", secrets, {"type"}) == ["s2"]
    events = [{"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "p"},
               "source": {"component": "kubelet"}},
              {"metadata": {"name": "e2"}, "involvedObject": {"kind": "Node", "name": "p"}}]
    fields = {"involvedObject.kind", "involvedObject.name", "source"}
    assert fselect("involvedObject.name=p,involvedObject.kind=Pod", events, fields) == ["e1"]
    assert fselect("source=kubelet", events, fields) == ["e1"]   # source means source.component
    nodes = [{"metadata": {"name": "n1"}, "spec": {"unschedulable": True}},
             {"metadata": {"name": "n2"}, "spec": {}}]
    assert fselect("spec.unschedulable=false", nodes, {"spec.unschedulable"}) == ["n2"]
    assert fselect("spec.unschedulable=true", nodes, {"spec.unschedulable"}) == ["n1"]


def test_field_selector_escapes() -> None:
    objs = [{"metadata": {"name": "a,b=c\\d"}}, {"metadata": {"name": "a"}}]
    assert fselect(r"metadata.name=a\,b\=c\\d", objs) == ["a,b=c\\d"]


@pytest.mark.parametrize("selector, message", [
    ("spec.restartPolicy=Always", "field label not supported: spec.restartPolicy"),
    ("metadata.labels=x", "field label not supported: metadata.labels"),
    ("metadata.name = a", "field label not supported: metadata.name "),   # no trimming, as Go
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("metadata.name=a=b", "invalid field selector: unescaped character in value: ="),
    (r"metadata.name=a\x", "invalid field selector: invalid escape sequence: \\x"),
    ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as e:
        parse_field_selector(selector, POD_FIELDS)
    assert str(e.value) == message


def test_field_selector_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_field_selector("nope=1", {"metadata.name"})


# ------------------------------------------------------------------ continue tokens

def test_continue_round_trip() -> None:
    token = encode_continue(42, "default/my-config")
    assert "=" not in token and "/" not in token and "+" not in token   # URL-safe, unpadded
    assert decode_continue(token) == (42, "default/my-config")
    assert decode_continue(encode_continue(7, "/cluster-scoped")) == (7, "/cluster-scoped")


def _token(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize("token, message", [
    ("%%%", "continue key is not valid: illegal base64 data or JSON"),
    (_token([1, 2]), "continue key is not valid: not an object"),
    (_token({"v": "other", "rv": 3, "start": "a"}),
     "continue key is not valid: server does not recognize this encoded version"),
    (_token({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}),
     "continue key is not valid: incorrect encoded start resourceVersion (version "
     "meta.k8s.io/v1)"),
    (_token({"v": "meta.k8s.io/v1", "rv": 3, "start": ""}),
     "continue key is not valid: encoded start key empty"),
])
def test_continue_bad_tokens(token: str, message: str) -> None:
    with pytest.raises(SelectorError) as e:
        decode_continue(token)
    assert str(e.value) == message
