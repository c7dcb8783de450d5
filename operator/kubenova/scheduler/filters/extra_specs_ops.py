"""Nova's extra-spec value operators (nova/scheduler/filters/extra_specs_ops.py semantics).

A requirement is either a plain string (exact match) or an operator and its operand(s):
    "= 4"          numeric: host value >= 4          "== 4", "!= 4", ">= 4", "<= 4" likewise
    "s== ssd"      string equal                      "s!=", "s<", "s<=", "s>", "s>=" likewise
    "<in> avx"     operand is a substring of the host value
    "<all-in> a b" every operand is a substring of the host value
    "<or> a <or> b"  host value equals one of the alternatives
An unknown first word makes the whole requirement a plain string. Unlike Nova, a non-numeric
value under a numeric operator does not match instead of raising: one odd label must not break
scheduling.
"""

from __future__ import annotations

import operator
from collections.abc import Callable


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def check(value: str, operand: str) -> bool:
        try:
            return compare(float(value), float(operand))
        except ValueError:
            return False

    return check


_OPS: dict[str, Callable[[str, str], bool]] = {
    "=": _numeric(operator.ge),
    "==": _numeric(operator.eq),
    "!=": _numeric(operator.ne),
    ">=": _numeric(operator.ge),
    "<=": _numeric(operator.le),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
    "<in>": lambda value, operand: operand in value,
}


def match(value: str | None, requirement: str) -> bool:
    """Whether a host's value (None: the host has none) satisfies one extra-spec requirement."""
    words = requirement.split()
    op = words.pop(0) if words else None
    if op not in _OPS and op not in ("<or>", "<all-in>"):
        return value == requirement
    if value is None or not words:
        return False
    if op == "<or>":
        # "<or> a <or> b <or> c": alternatives sit at even positions after the first <or>
        return value in words[::2]
    if op == "<all-in>":
        return all(word in value for word in words)
    return _OPS[op](value, words[0])
