"""The figures in a sentence (prices, percentages, durations, counts) and whether a claim
agrees with what the seller's knowledge base says about the same thing.

A trainee who says "the migration package is 40,000 USD" contradicts the pricing FAQ's
"The fixed-price migration package is 48,000 USD": the claim's figure, in the same unit, is
not what the most similar sentence of the retrieved chunks gives, nor inside its range, nor
under its ceiling ("up to 10 %").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {
    "usd": "usd",
    "dollars": "usd",
    "dollar": "usd",
    "$": "usd",
    "eur": "eur",
    "euros": "eur",
    "euro": "eur",
    "€": "eur",
    "%": "percent",
    "percent": "percent",
    "per cent": "percent",
    "weeks": "weeks",
    "week": "weeks",
    "months": "months",
    "month": "months",
    "days": "days",
    "day": "days",
    "years": "years",
    "year": "years",
    "users": "users",
    "user": "users",
    "seats": "users",
    "fields": "fields",
    "minutes": "minutes",
}
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# "180k", "4 million", "1.2m", "2bn": the number times its scale.
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}
_FIGURE = re.compile(
    rf"(?P<pre>\$|€|\b(?:usd|eur)\s?)?(?P<num>{_NUM})\s?"
    r"(?P<scale>(?:k|thousand|million|m|bn|billion)\b)?[\s-]?"
    r"(?P<post>%|per cent|percent|usd|eur|euros?|dollars?|weeks?|months?|days?|years?|users?|"
    r"seats|fields|minutes)?(?!\w)",
    re.IGNORECASE,
)
_CEILING = re.compile(r"(?i)\b(up to|at most|no more than|maximum of|max\.?)\s*$")
_RANGE_WORD = re.compile(r"(?i)^\s*(to|-|–|and)\s*$")


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    ceiling: bool = False  # "up to N": anything at or below N agrees


def figures(sentence: str) -> list[Figure]:
    found: list[Figure] = []
    pending: list[tuple[float, int, bool]] = []  # numbers waiting for a unit after them
    last_end = 0
    for match in _FIGURE.finditer(sentence):
        value = float(match.group("num").replace(",", ""))
        if match.group("scale"):
            value *= _SCALES[match.group("scale").lower()]
        before = sentence[last_end : match.start()]
        ceiling = bool(_CEILING.search(sentence[: match.start()]))
        unit_word = (match.group("pre") or match.group("post") or "").strip().lower()
        unit = _UNITS.get(unit_word)
        if pending and not _RANGE_WORD.match(before):
            pending = []
        if unit is None:
            pending.append((value, match.end(), ceiling))
        else:
            for pending_value, _, pending_ceiling in pending:  # "10 to 14 weeks"
                found.append(Figure(pending_value, unit, pending_ceiling))
            pending = []
            found.append(Figure(value, unit, ceiling))
        last_end = match.end()
    return found


def agrees(claim: Figure, known: list[Figure]) -> bool:
    """Whether a claimed figure fits the known figures of its unit (exact, in a range the
    known figures span, or under a ceiling)."""
    same = [f for f in known if f.unit == claim.unit]
    if not same:
        return True  # nothing known about it: nothing to contradict
    values = sorted(f.value for f in same)
    if any(abs(claim.value - v) < 1e-9 for v in values):
        return True
    if any(f.ceiling and claim.value <= f.value for f in same):
        return True
    return len(values) >= 2 and values[0] <= claim.value <= values[-1]
