"""Which regular expressions risk catastrophic backtracking.

Access rules search paths an attacker chooses with regular expressions an
administrator wrote. They run on RE2, whose time is linear in the path
whatever the pattern; the classic shapes that take a backtracking engine
(Python's ``re``, PCRE) exponential time are refused besides, when the rules
are read: a rule file is often shared with other tools, and the shape is a
mistake there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["backtracking_risk"]


def backtracking_risk(pattern: str) -> str | None:
    """Return why ``pattern`` risks catastrophic backtracking, or ``None``.

    Python's ``re`` backtracks, so some patterns take exponential (or high
    polynomial) time on a path made to hit them; a rule is searched against
    paths of up to thousands of characters an attacker chooses. The
    shapes refused are the classic ones:

    - a repeat inside a repeat, bounded or not: ``(a+)+``, ``(\\w*)*``, ``(.*a){20}``,
      ``(a?){30}``, ``([a-z]{1,16}-?){1,16}``;
    - alternatives that can start alike, inside a repeat: ``(a|a)*``, ``(a|ab)*``;
    - three or more repeats of "anything" in a row (an unanchored pattern
      counts one more, for the places the search starts): ``.*a.*b``.

    It errs on the side of refusing: a refused pattern can always be written
    another way (``[^/]+`` instead of ``.+`` between slashes, say).
    """
    from re import _parser  # type: ignore[attr-defined]

    try:
        items = list(_parser.parse(pattern))
    except re.error:
        return None
    found = _nested_repeat(items, _parser, outer_multi=False, outer_unbounded=False)
    if found is not None:
        return found
    anchored = bool(items) and items[0] == (_parser.AT, _parser.AT_BEGINNING_STRING)
    anchored = anchored or (bool(items) and items[0] == (_parser.AT, _parser.AT_BEGINNING))
    if _wide_in_a_row(items, _parser) + (0 if anchored else 1) >= 3:
        return "three repeats of any character in a row"
    return None


def _repeats(parser: Any) -> tuple[Any, ...]:
    possessive = getattr(parser, "POSSESSIVE_REPEAT", None)
    return (parser.MAX_REPEAT, parser.MIN_REPEAT) + ((possessive,) if possessive else ())


def _unbounded(high: int, parser: Any) -> bool:
    return bool(high == parser.MAXREPEAT or high > 16)


#: How many rounds of an enclosing repeat a varying inner repeat may take.
_FEW = 4


def _nested_repeat(
    items: Iterable[Any],
    parser: Any,
    *,
    outer_multi: bool,
    outer_unbounded: bool,
    outer_many: bool = False,
) -> str | None:
    for op, arg in items:
        found: str | None = None
        if op in _repeats(parser):
            low, high, body = arg
            unbounded = _unbounded(high, parser)
            # Bounded ones too: (x{1,16}){1,16} tries up to 16**16 splits. A few
            # rounds of a short one, like (\d{1,3}\.){3} of an address, are harmless.
            if (
                (unbounded and outer_multi)
                or (outer_unbounded and low != high)
                or (outer_many and low != high)
            ):
                return "a repeat inside a repeat"
            found = _nested_repeat(
                list(body),
                parser,
                outer_multi=outer_multi or high > 1,
                outer_unbounded=outer_unbounded or unbounded,
                outer_many=outer_many or high > _FEW,
            )
        elif op == parser.SUBPATTERN:
            found = _nested_repeat(
                list(arg[-1]),
                parser,
                outer_multi=outer_multi,
                outer_unbounded=outer_unbounded,
                outer_many=outer_many,
            )
        elif op == parser.BRANCH:
            branches = [list(branch) for branch in arg[1]]
            if outer_unbounded and _overlapping(branches, parser):
                return "alternatives that can match alike, inside a repeat"
            for branch in branches:
                found = found or _nested_repeat(
                    branch,
                    parser,
                    outer_multi=outer_multi,
                    outer_unbounded=outer_unbounded,
                    outer_many=outer_many,
                )
        elif op in (parser.ASSERT, parser.ASSERT_NOT):
            found = _nested_repeat(
                list(arg[1]),
                parser,
                outer_multi=outer_multi,
                outer_unbounded=outer_unbounded,
                outer_many=outer_many,
            )
        if found is not None:
            return found
    return None


def _overlapping(branches: list[list[Any]], parser: Any) -> bool:
    """Tell whether two of ``branches`` may start with the same character (or one is
    empty): unless each starts with a literal of its own, assume so."""
    firsts = []
    for branch in branches:
        if not branch or branch[0][0] != parser.LITERAL:
            return True
        firsts.append(branch[0][1])
    return len(set(firsts)) != len(firsts)


def _wide_in_a_row(items: Iterable[Any], parser: Any) -> int:
    """Return how many unbounded repeats of (nearly) any character follow one another
    in ``items`` (the most along any branch)."""
    count = 0
    for op, arg in items:
        if op in _repeats(parser):
            if _unbounded(arg[1], parser) and _wide(list(arg[2]), parser):
                count += 1
        elif op == parser.SUBPATTERN:
            count += _wide_in_a_row(list(arg[-1]), parser)
        elif op == parser.BRANCH:
            count += max(_wide_in_a_row(list(branch), parser) for branch in arg[1])
    return count


def _wide(body: list[Any], parser: Any) -> bool:
    """Tell whether a repeat's ``body`` is one item that matches nearly any character
    (``.``, ``\\S``, ``[\\s\\S]``)."""
    while len(body) == 1 and body[0][0] == parser.SUBPATTERN:
        body = list(body[0][1][-1])
    if len(body) != 1:
        return False
    op, arg = body[0]
    if op == parser.ANY:
        return True
    # Not a negated class: [^/]+ between slashes cannot overlap its neighbours.
    return op == parser.IN and any(
        item[0] == parser.CATEGORY and "NOT" in str(item[1]) for item in arg
    )
