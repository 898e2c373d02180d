"""snake_case of spec keys: ansible-operator's paramconv, its whole Go test table, MapToSnake."""

from __future__ import annotations

import pytest

from election_operator.paramconv import map_to_snake, to_snake

# TestToSnake of ansible-operator-plugins internal/ansible/paramconv/paramconv_test.go,
# every row, with its name: (name, input, want).
GO_TO_SNAKE_TABLE = [
    ("should keep the same", "var", "var"),
    ("should convert to Snake when is only numbers", "888", "888"),
    ("should convert to Snake when has numbers and _", "k8s_var", "k8s_var"),
    ("should convert to Snake when start with _", "_k8s_var", "_k8s_var"),
    ("should convert to Snake and replace the space for _", "k8s var", "k8s_var"),
    ("should handle Camel and add _ prefix when starts with", "ThisShouldHaveUnderscores",
     "_this_should_have_underscores"),
    ("should convert to snake when has Camel and numbers", "sizeK8sBuckets", "size_k8s_buckets"),
    ("should be able to handle mixed vars", "_CanYou_Handle_mixedVars",
     "_can_you_handle_mixed_vars"),
    ("should be a noop", "this_should_be_a_noop", "this_should_be_a_noop"),
    ("should handle special plural word at end", "egressIPs", "egress_ips"),
    ("should handle special plural word in middle", "egressIPsEgress", "egress_ips_egress"),
    ("should handle special plural word in middle followed by lowercase letter",
     "egressIPsegress", "egress_ips_egress"),
    ("should handle special plural word at the start", "IPsegress", "_ips_egress"),
    ("should handle special word at the end", "egressIP", "egress_ip"),
    ("should handle special word in the middle", "egressIPEgress", "egress_ip_egress"),
    ("should handle special word in the middle followed by lowercase", "egressIPegress",
     "egress_ip_egress"),
    ("should handle multiple special words", "URLegressIPEgressHTTP",
     "url_egress_ip_egress_http"),
    ("should handle multiple plural special words", "URLsegressIPsEgressHTTPs",
     "_urls_egress_ips_egress_https"),
    ("should not interpret special word when entire word is uppercase",
     "THIS_IS_SKIP_NOT_SK_IP", "_this_is_skip_not_sk_ip"),
]


@pytest.mark.parametrize(("name", "given", "want"), GO_TO_SNAKE_TABLE,
                         ids=[row[0] for row in GO_TO_SNAKE_TABLE])
def test_to_snake_matches_the_go_table(name: str, given: str, want: str) -> None:
    assert to_snake(given) == want


def test_go_map_to_snake_table() -> None:
    # TestMapToSnake of the same file.
    given = {"var": "value", "var_var": "value", "size_k8s_test": "value", "888": "value"}
    assert map_to_snake(given) == given


@pytest.mark.parametrize(("given", "want"), [
    ("a12b34", "a_12_b34"),  # letter, digits, letter+digits get word boundaries
    ("JSONData", "_json_data"),  # an acronym stays one word
    ("replicaCount", "replica_count"),
    ("  padded  ", "padded"),
    ("kebab-case-key", "kebab_case_key"),
    ("", ""),  # Go panics here; we keep the empty key
])
def test_to_snake_other_shapes(given: str, want: str) -> None:
    assert to_snake(given) == want


def test_map_to_snake_converts_keys_at_every_depth_and_never_values() -> None:
    spec = {
        "sizeK8sBuckets": 3,
        "egressIPs": ["10.0.0.1", {"innerKey": "camelValue"}],
        "nested": {"deepKey": {"deeperKey": "KeepMe"}, "listOfLists": [[{"aB": 1}]]},
        "flag": None,
    }
    assert map_to_snake(spec) == {
        "size_k8s_buckets": 3,
        "egress_ips": ["10.0.0.1", {"inner_key": "camelValue"}],
        # "aB" -> "ab", not "a_b": a one-letter first word is not split off (as in Go).
        "nested": {"deep_key": {"deeper_key": "KeepMe"}, "list_of_lists": [[{"ab": 1}]]},
        "flag": None,
    }
    # The input is not modified.
    assert "sizeK8sBuckets" in spec and "innerKey" in spec["egressIPs"][1]


def test_map_to_snake_passes_scalars_through() -> None:
    assert map_to_snake("CamelString") == "CamelString"
    assert map_to_snake(["aB", 1]) == ["aB", 1]
