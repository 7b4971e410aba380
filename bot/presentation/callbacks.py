"""Callback data of inline buttons: short, versioned strings, parsed strictly.

Telegram returns whatever a client sends, so every payload is parsed as
untrusted input: an unknown or malformed one becomes :class:`ExpiredButton`,
and the handler answers "this button has expired" and does nothing.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from config.languages import SUPPORTED_LANGUAGES
from storage.dates import MAX_YEAR, MIN_YEAR, InvalidDate, PartialDate
from storage.models import SubscriptionScope
from storage.queries import EventFilter, When

MAX_CALLBACK_BYTES = 64
_KEY = r"[a-z0-9_-]{1,40}"
_EVENT = re.compile(rf"^e:({_KEY})$")
_ORGANISATION = re.compile(rf"^o:({_KEY})$")
_LIST = re.compile(rf"^l:(u|p|a):({_KEY}|-):(\d{{4}}|-):(\d{{1,4}})$")
_FOLLOW = re.compile(rf"^f:(a|o|e)(?::({_KEY}))?$")
_UNFOLLOW = re.compile(r"^u:(\d{1,12})$")
_LEAD_MENU = re.compile(r"^t:(\d{1,12})$")
_TOGGLE_LEAD = re.compile(r"^lt:(\d{1,12}):(\d{1,6})$")
_LEAD_DONE = re.compile(r"^ld:(\d{1,12})$")
_SCOPE_CODES = {
    "a": SubscriptionScope.ALL,
    "o": SubscriptionScope.ORGANISATION,
    "e": SubscriptionScope.EVENT,
}
_LANGUAGE = re.compile(r"^lg:([a-z]{2})$")
_CALENDAR = re.compile(rf"^c:({_KEY})$")
_OPERATION = re.compile(r"^op:([a-f0-9]{8}):(ok|no)$")
_CHANNEL = re.compile(r"^ch:(-?\d{1,16}):([a-z]{1,8})(?::([a-z0-9_-]{1,40}))?$")
_REVIEW_PAGE = re.compile(r"^rv:p:(\d{1,4})$")
# An action on an item of the review queue: on an event or organisation by its key, or on a
# chairmanship by organisation, country and start as written ("_": no start recorded).
_REVIEW_ACTION = re.compile(rf"^rv:(h|d|c):(e|o):({_KEY})$")
_REVIEW_CHAIR_ACTION = re.compile(rf"^rv:(c|s):c:({_KEY}):([A-Z]{{2}}):([0-9T:-]{{4,16}}|_)$")
_REVIEW_SUBJECTS = {"e": "event", "o": "organisation"}
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


@dataclass(frozen=True)
class Follow:
    scope: SubscriptionScope
    key: str | None


@dataclass(frozen=True)
class Unfollow:
    subscription_id: int


@dataclass(frozen=True)
class LeadMenu:
    subscription_id: int  # 0: the chat's default lead times


@dataclass(frozen=True)
class ToggleLead:
    subscription_id: int
    minutes: int


@dataclass(frozen=True)
class LeadDone:
    subscription_id: int


@dataclass(frozen=True)
class SubscribeMenu:
    pass


@dataclass(frozen=True)
class SetLanguage:
    language: str


@dataclass(frozen=True)
class CalendarFile:
    key: str


@dataclass(frozen=True)
class NewFeedAddress:
    """Replace the chat's calendar feed address (the old one stops working)."""


@dataclass(frozen=True)
class ForgetMe:
    confirmed: bool


@dataclass(frozen=True)
class OperationAnswer:
    """An operator's Save/Cancel under a preview; the operation itself waits server-side."""

    token: str
    confirmed: bool


@dataclass(frozen=True)
class ChannelAction:
    """Managing a linked channel from a private chat: ``action`` with an optional argument."""

    channel_id: int
    action: str
    argument: str | None = None


class ReviewVerb(enum.StrEnum):
    """What a review queue button does to its item."""

    HELD = "h"  # record the event as held
    DATES = "d"  # say which command sets new dates (a date must be typed)
    CHECKED = "c"  # record the fact as checked today
    SUCCESSOR = "s"  # record the successor the rotation rule projects


@dataclass(frozen=True)
class ReviewPage:
    page: int


@dataclass(frozen=True)
class ReviewAction:
    """A button under an item of the review queue; ``item_key`` names the fact as
    ``storage.review.ReviewItem.key`` does (``event:ID``, ``chair:ORG:CC:START``…)."""

    verb: ReviewVerb
    item_key: str


Action = (
    OpenEvent
    | OpenOrganisation
    | OpenList
    | Follow
    | Unfollow
    | LeadMenu
    | ToggleLead
    | LeadDone
    | SubscribeMenu
    | SetLanguage
    | CalendarFile
    | NewFeedAddress
    | OperationAnswer
    | ChannelAction
    | ForgetMe
    | ReviewPage
    | ReviewAction
)


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


def follow_all() -> str:
    return "f:a"


def follow_org(key: str) -> str:
    return _checked(f"f:o:{key}")


def follow_event(key: str) -> str:
    return _checked(f"f:e:{key}")


def unfollow(subscription_id: int) -> str:
    return f"u:{subscription_id}"


def lead_menu(subscription_id: int) -> str:
    return f"t:{subscription_id}"


def toggle_lead(subscription_id: int, minutes: int) -> str:
    return f"lt:{subscription_id}:{minutes}"


def lead_done(subscription_id: int) -> str:
    return f"ld:{subscription_id}"


def subscribe_menu() -> str:
    return "sm"


def set_language(language: str) -> str:
    return f"lg:{language}"


def calendar_file(key: str) -> str:
    return _checked(f"c:{key}")


def new_feed_address() -> str:
    return "cf:new"


def operation_answer(token: str, confirmed: bool) -> str:
    return f"op:{token}:{'ok' if confirmed else 'no'}"


def channel_action(channel_id: int, action: str, argument: str | None = None) -> str:
    return _checked(f"ch:{channel_id}:{action}" + (f":{argument}" if argument else ""))


def forget_me(confirmed: bool) -> str:
    return "fm:yes" if confirmed else "fm:no"


def review_page(page: int) -> str:
    return f"rv:p:{page}"


def review_action(verb: ReviewVerb, item_key: str) -> str:
    """``rv:VERB:e:ID``, ``rv:VERB:o:KEY`` or ``rv:VERB:c:ORG:CC:START`` for an item."""
    subject, _, rest = item_key.partition(":")
    if subject == "chair":
        org, country, start = rest.split(":", 2)
        return _checked(f"rv:{verb.value}:c:{org}:{country}:{start or '_'}")
    return _checked(f"rv:{verb.value}:{subject[0]}:{rest}")


def _review_action(data: str) -> ReviewAction:
    if match := _REVIEW_ACTION.match(data):
        verb, subject, key = ReviewVerb(match[1]), _REVIEW_SUBJECTS[match[2]], match[3]
        if subject != "event" and verb is not ReviewVerb.CHECKED:
            raise ExpiredButton(data)
        return ReviewAction(verb, f"{subject}:{key}")
    if match := _REVIEW_CHAIR_ACTION.match(data):
        verb, org, country, start = ReviewVerb(match[1]), match[2], match[3], match[4]
        if start == "_":
            start = ""
        else:
            try:
                if PartialDate.parse(start).literal != start:
                    raise ExpiredButton(data)
            except InvalidDate:
                raise ExpiredButton(data) from None
        return ReviewAction(verb, f"chair:{org}:{country}:{start}")
    raise ExpiredButton(data)


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
        if year != "-" and not MIN_YEAR <= int(year) <= MAX_YEAR:
            raise ExpiredButton(data)  # forged: no list of ours is of year 0 or 9999
        query = EventFilter(
            organisation=None if org == "-" else org,
            year=None if year == "-" else int(year),
            when=_CODES_WHEN[when],
        )
        return OpenList(query, int(page))
    if match := _FOLLOW.match(data):
        scope = _SCOPE_CODES[match[1]]
        if (scope is SubscriptionScope.ALL) != (match[2] is None):
            raise ExpiredButton(data)
        return Follow(scope, match[2])
    if match := _UNFOLLOW.match(data):
        return Unfollow(int(match[1]))
    if match := _LEAD_MENU.match(data):
        return LeadMenu(int(match[1]))
    if match := _TOGGLE_LEAD.match(data):
        return ToggleLead(int(match[1]), int(match[2]))
    if match := _LEAD_DONE.match(data):
        return LeadDone(int(match[1]))
    if data == "sm":
        return SubscribeMenu()
    if (match := _LANGUAGE.match(data)) and match[1] in SUPPORTED_LANGUAGES:
        return SetLanguage(match[1])
    if match := _CALENDAR.match(data):
        return CalendarFile(match[1])
    if data == "cf:new":
        return NewFeedAddress()
    if data in ("fm:yes", "fm:no"):
        return ForgetMe(data == "fm:yes")
    if match := _OPERATION.match(data):
        return OperationAnswer(match[1], match[2] == "ok")
    if match := _CHANNEL.match(data):
        return ChannelAction(int(match[1]), match[2], match[3])
    if match := _REVIEW_PAGE.match(data):
        return ReviewPage(int(match[1]))
    if data.startswith("rv:"):
        return _review_action(data)
    raise ExpiredButton(data)
