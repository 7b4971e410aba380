"""Callback data of inline buttons: short, versioned strings, parsed strictly.

Telegram returns whatever a client sends, so every payload is parsed as
untrusted input: an unknown or malformed one becomes :class:`ExpiredButton`,
and the handler answers "this button has expired" and does nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage.queries import EventFilter, When

MAX_CALLBACK_BYTES = 64
_KEY = r"[a-z0-9_-]{1,40}"
_EVENT = re.compile(rf"^e:({_KEY})$")
_ORGANISATION = re.compile(rf"^o:({_KEY})$")
_LIST = re.compile(rf"^l:(u|p|a):({_KEY}|-):(\d{{4}}|-):(\d{{1,4}})$")
_WHEN_CODES = {When.UPCOMING: "u", When.PAST: "p", When.ALL: "a"}
_CODES_WHEN = {code: when for when, code in _WHEN_CODES.items()}


class ExpiredButton(ValueError):
    """Callback data this version of the bot did not make (old, forged or corrupted)."""


@dataclass(frozen=True)
class OpenEvent:
    key: str


@dataclass(frozen=True)
class OpenOrganisation:
    key: str


@dataclass(frozen=True)
class OpenList:
    query: EventFilter
    page: int


Action = OpenEvent | OpenOrganisation | OpenList


def _checked(data: str) -> str:
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def event(key: str) -> str:
    return _checked(f"e:{key}")


def organisation(key: str) -> str:
    return _checked(f"o:{key}")


def event_list(query: EventFilter, page: int) -> str:
    year = str(query.year) if query.year is not None else "-"
    org = query.organisation or "-"
    return _checked(f"l:{_WHEN_CODES[query.when]}:{org}:{year}:{page}")


def parse(data: str | None) -> Action:
    """The action a button asks for; :class:`ExpiredButton` for anything else."""
    if not data or len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ExpiredButton(data)
    if match := _EVENT.match(data):
        return OpenEvent(match[1])
    if match := _ORGANISATION.match(data):
        return OpenOrganisation(match[1])
    if match := _LIST.match(data):
        when, org, year, page = match.groups()
        query = EventFilter(
            organisation=None if org == "-" else org,
            year=None if year == "-" else int(year),
            when=_CODES_WHEN[when],
        )
        return OpenList(query, int(page))
    raise ExpiredButton(data)
