"""The ``data.exclude`` patterns' config check: Python's regex engine backtracks, so a pattern
that can take exponential time to match a contig name is refused before any data is read
(:mod:`dnadiff.data.exclude` also bounds the matching time, for the polynomial cases)."""

from __future__ import annotations

import re

from dnadiff.errors import DnadiffError

try:
    from re import _parser as _re_parser  # Python >= 3.11
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _re_parser

#: what makes Python's backtracking regex engine take exponential time (see data.exclude)
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def regex_hazard(pattern: str) -> str | None:
    """Why matching ``pattern`` can take exponential time in the length of the text (a
    backreference, or a repeated group holding a variable quantifier or an alternation), or
    ``None``. ``pattern`` must compile."""
    def walk(items, repeated: bool) -> str | None:
        for op, av in items:
            op = str(op)
            found = None
            if op.startswith("GROUPREF"):
                return "a backreference"
            if op in _REPEATS:
                low, high, body = av
                if repeated and low != high:
                    return "a quantifier inside a repeated group"
                found = walk(body, repeated or high > 1)
            elif op == "BRANCH":
                if repeated:
                    return "an alternation inside a repeated group"
                for branch in av[1]:
                    found = found or walk(branch, repeated)
            elif op == "SUBPATTERN":
                found = walk(av[-1], repeated)
            elif op == "ATOMIC_GROUP":
                found = walk(av, repeated)
            elif op in ("ASSERT", "ASSERT_NOT"):
                found = walk(av[1], repeated)
            if found:
                return found
        return None

    return walk(_re_parser.parse(pattern), False)


def check_exclude_patterns(patterns, source: str) -> None:
    """Refuse a ``data.exclude`` pattern that does not compile or can take exponential time
    to match (``source`` names the config)."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DnadiffError(f"{source}: key 'data.exclude': {pattern!r} is not a regular "
                               f"expression ({exc})") from None
        hazard = regex_hazard(pattern)
        if hazard:
            raise DnadiffError(f"{source}: key 'data.exclude': {pattern!r} has {hazard}, which "
                               "can take exponential time to match a contig name (e.g. "
                               "'(a+)+'): write it without nesting, e.g. 'a+' or '[ab]+'")
