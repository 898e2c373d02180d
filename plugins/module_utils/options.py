# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Option types of the modules' argument specs, stricter than Ansible's built-in ones.

Ansible's `str` and `path` types turn a list or a mapping into its Python text (`['a']`), and
its `float` type takes a boolean as 1.0 or 0.0 and accepts `nan` and `inf`, so a wrong type
would pass silently. These callables are used as `type=` in the argument specs (the
documentation keeps `type: str`, `path` or `float`); when one raises, Ansible fails the task
with one message: "argument 'timeout' is of type bool and we were unable to convert to
seconds: ...". Scalars that Ansible converts unambiguously (a number for a string) still pass.

No Ansible imports here.
"""

from __future__ import annotations

import math
import os
from typing import Any


def describe(value: Any) -> str:
    """What a wrong value is, for messages: "a list", "a boolean", "int 5"."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def string(value: Any) -> str:
    """A single text value: a string, or a number written as one; never a list or mapping."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, int | float):  # a bool is an int: "True", as Ansible writes it
        return str(value)
    raise TypeError(f"expected a single string, got {describe(value)}")


def path(value: Any) -> str:
    """A file-system path (`~` and `$VAR` expanded, as Ansible's `path` type does)."""
    if isinstance(value, bool):
        raise TypeError("expected a path, got a boolean")
    text = string(value)
    return os.path.expanduser(os.path.expandvars(text))


def seconds(value: Any) -> float:
    """A finite number of seconds (an int, a float or a numeric string); never a boolean."""
    if isinstance(value, bool):
        raise TypeError(f"expected a number of seconds such as 30 or 2.5, got a boolean "
                        f"({str(value).lower()})")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str | bytes):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number of seconds such as 30 or 2.5, got "
                             f"{value!r}") from None
    else:
        raise TypeError(f"expected a number of seconds such as 30 or 2.5, got {describe(value)}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number of seconds, got {value!r}")
    return number
