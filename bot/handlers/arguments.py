"""Reading command arguments typed by people: years, dates, names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage.dates import MAX_YEAR, MIN_YEAR, InvalidDate, PartialDate, Precision

MAX_ARGUMENT_CHARS = 200
_YEAR = re.compile(r"^\d{4}$")


class BadArgument(ValueError):
    """Input the user should correct; ``what`` is the offending text."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def joined(args: list[str] | None) -> str:
    """The arguments as one string, cut to a sane length."""
    return " ".join(args or []).strip()[:MAX_ARGUMENT_CHARS]


def parse_when(text: str) -> PartialDate | None:
    """``2024`` / ``2024-07`` / ``2024-07-03`` (or nothing); :class:`BadArgument` otherwise."""
    text = text.strip()
    if not text:
        return None
    try:
        value = PartialDate.parse(text)
    except InvalidDate as exc:
        raise BadArgument(text) from exc
    if value.precision is Precision.TIME:  # a time of day is not a period to ask about
        raise BadArgument(text)
    return value


@dataclass(frozen=True)
class NameAndYear:
    name: str
    year: int | None


def parse_name_and_year(text: str) -> NameAndYear:
    """``sco 2024``, ``2024``, ``ШОС``: a trailing four-digit word is a year."""
    words = text.split()
    year = None
    if words and _YEAR.match(words[-1]):
        year = int(words.pop())
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise BadArgument(str(year))
    return NameAndYear(" ".join(words), year)
