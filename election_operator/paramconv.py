"""snake_case conversion of custom-resource spec keys, exactly as ansible-operator does it.

ansible-operator passes the keys of `.spec` to Ansible through `paramconv.MapToSnake`
(ansible-operator-plugins `internal/ansible/paramconv`). Roles written for it rely on its
output, quirks included, so this module reproduces them rather than doing a "clean" conversion:

- A leading capital gives a leading underscore: `ThisShouldHaveUnderscores` ->
  `_this_should_have_underscores`.
- The special words `http`, `url` and `ip` (and their plurals) are cut out as words of their own:
  `egressIPs` -> `egress_ips`, `egressIPegress` -> `egress_ip_egress`; each special word is
  isolated at its FIRST occurrence only. When the first word is a special word, there is no
  leading underscore (`URLegressIP...` -> `url_...`), except for a plural (`IPsegress` ->
  `_ips_egress`).
- A string that is entirely upper case skips the special-word step:
  `THIS_IS_SKIP_NOT_SK_IP` -> `_this_is_skip_not_sk_ip`.
- A letter, digits, a letter and digits get spaces between them (`a12b34` -> `a_12_b34`);
  `k8s` stays one word.
- Spaces, `_` and `-` are word separators.

Differences from the Go code: the empty string converts to itself (Go panics), and the special
words are tried in one fixed order (http, url, ip) where Go iterates a map in random order.
"""

from __future__ import annotations

import re
from typing import Any

# The special words, tried in this order, and the upper-case form they are searched for in.
_SPECIAL_WORDS: dict[str, str] = {"http": "HTTP", "url": "URL", "ip": "IP"}

# A letter, digits, then a letter followed by digits (Go's `\d` is ASCII only).
_NUMBER_SEQUENCE = re.compile(r"([a-zA-Z])([0-9]+)([a-zA-Z]([0-9]+))")


def _is_upper(c: str) -> bool:
    return "A" <= c <= "Z"


def _is_lower(c: str) -> bool:
    return "a" <= c <= "z"


def _isolate_special_words(value: str) -> str:
    """Surround the first occurrence of each special word with `_`; a following `s` is taken
    as its plural and upper-cased with it (`egressIPsEgress` -> `egress_IPS_Egress`)."""
    for word in _SPECIAL_WORDS.values():
        start = value.find(word)
        if start < 0:
            continue
        end = start + len(word)  # index just past the word
        if end == len(value):  # the word ends the string
            value = f"{value[:start]}_{value[start:]}"
        elif value[end] == "s":  # plural
            if end == len(value) - 1:
                value = f"{value[:start]}_{word}S"
            elif start == 0:
                value = f"{word}S_{value[end + 1:]}"
            else:
                value = f"{value[:start]}_{word}S_{value[end + 1:]}"
        elif start == 0:
            value = f"{word}_{value[end:]}"
        else:
            value = f"{value[:start]}_{word}_{value[end:]}"
    return value


def to_snake(name: str) -> str:
    """Convert one key to snake_case the way ansible-operator's `paramconv.ToSnake` does."""
    s = _NUMBER_SEQUENCE.sub(r"\1 \2 \3", name).strip(" ")
    if not s:
        return s
    prefix = "_" if _is_upper(s[0]) else ""
    if s.upper() != s:
        s = _isolate_special_words(s)

    words: list[str] = []
    current = ""
    # Position of the character inside the current word: -1 right after a word was closed.
    pos = -1
    for i, c in enumerate(s):
        pos += 1
        nxt = s[i + 1] if i + 1 < len(s) else ""
        # A case change between this letter and the next marks a word boundary (acronyms such
        # as "JSONData" keep "JSON" as one word).
        case_changes = bool(nxt) and (
            (_is_upper(c) and _is_lower(nxt)) or (_is_lower(c) and _is_upper(nxt))
        )
        if pos > 0 and current[-1] != "_" and case_changes:
            if _is_upper(c):  # "...xAb": the capital starts the next word
                words.append(current.lower())
                current, pos = c, 0
            else:  # "...aB": the lower-case letter ends this word
                words.append((current + c).lower())
                current, pos = "", -1
        elif c in " _-":
            words.append(current.lower())
            current, pos = "", -1
        else:
            current += c
    words.append(current.lower())
    joined = "_".join(words)
    if words[0] in _SPECIAL_WORDS:
        return joined
    return prefix + joined


def map_to_snake(obj: Any) -> Any:
    """Return a copy of `obj` whose mapping keys, at every depth (inside nested mappings and
    lists), went through `to_snake`. Values are not changed; non-string keys are kept as-is.
    Two keys that convert to the same name collapse into one (the later one wins)."""
    if isinstance(obj, dict):
        return {
            (to_snake(k) if isinstance(k, str) else k): map_to_snake(v) for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [map_to_snake(v) for v in obj]
    return obj
