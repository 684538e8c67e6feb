"""A company's regular expressions, searched with a deadline.

Compliance rules and rubric ``pattern`` checks are written by a company's admins and run on
every turn, in a replica's event loop. Python's ``re`` cannot be stopped: a pattern that
backtracks catastrophically (``(a|aa)+$`` on a long run of a's) would hold the loop, and every
conversation on that replica, for minutes. The ``regex`` package reads the same syntax and
stops a search at a timeout.
"""

from __future__ import annotations

import regex

# A sane pattern searches a 4,000-character turn in well under a millisecond; this is a
# pathological one's ceiling per search, so a turn with a few rules stays within a blink.
SEARCH_TIMEOUT_S = 0.05

Pattern = regex.Pattern
Match = regex.Match


class PatternTimeout(Exception):
    """A company's pattern gave up on a text: it backtracks too much to decide in time."""

    def __init__(self, pattern: str) -> None:
        super().__init__(
            f"the pattern {pattern[:80]!r} took over {SEARCH_TIMEOUT_S * 1000:.0f} ms on one "
            "text: it backtracks too much (nested repetition such as (a|aa)+ is the usual cause)"
        )
        self.pattern = pattern


def compile_pattern(pattern: str) -> Pattern[str]:
    return regex.compile(pattern)


def search(pattern: Pattern[str], text: str) -> Match[str] | None:
    """``pattern.search(text)``, or :class:`PatternTimeout` past the deadline."""
    try:
        return pattern.search(text, timeout=SEARCH_TIMEOUT_S)
    except TimeoutError:
        raise PatternTimeout(pattern.pattern) from None
