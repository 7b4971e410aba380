"""Hostile input, generated: no handler raises, every reply is one Telegram accepts, and
the database changes only where the sender may change it.

Two layers, both with Hypothesis:

* the parsers of what people type and what buttons carry (``bot.handlers.arguments``,
  ``bot.presentation.callbacks.parse``) on arbitrary text return a value or raise their documented
  error (``BadArgument``, ``ExpiredButton``), never anything else; and every button the
  bot makes parses back to its action;
* raw update JSON shaped like Telegram's goes through the real application in process
  (the Bot API emulator in place of Telegram, no HTTP), one application per test, a few
  updates per example: messages, edits and channel posts in private chats, groups, forum
  topics and channels, from people, anonymous admins and linked channels, or from nobody;
  commands with nothing, what they expect, or hostile text after them (unicode, control
  characters, HTML, 4,096 characters); entities at odd offsets; button presses on what
  the bot showed, by the person or someone else, or forged, under inline or inaccessible
  messages; inline queries; membership changes; update kinds PTB does not know; an
  operator's /addevent dialogue and edits, saved, then the notices they cause. Each test
  starts from a seed: a linked channel, and chats that follow things. After each update:

  a. ``process_update`` lets nothing out, the error handler is never reached and nothing
     is logged at ERROR;
  b. every message, edit, inline answer, callback answer and document the bot sent was
     accepted by the emulator (valid HTML, under Telegram's limits, valid buttons);
  c. the catalogue (events, organisations, chairmanships, places, change log) is
     unchanged unless the sender is an operator, and the seeded chats' settings and
     subscriptions are unchanged unless the sender may change them (the chat's own
     person, its admins, an anonymous admin);
  d. a button press is answered exactly once;
  e. replies to people go to the chat they wrote in (operators excepted: /announce posts
     to channels), and into the forum topic they wrote in.

Reminder sweeps run only where an example asks for one (held to a and b), the per-user
request limit is lifted and the reply cache is off, so an example does not depend on
timing. An operator's data file is not sent (its download is not emulated).

The default profile ("ci") runs 150 examples per test. A long run, 2,000 per test::

    HYPOTHESIS_PROFILE=long make test PYTEST_ARGS=tests/test_fuzz.py

(with ``TEST_DATABASE_URL=…`` for PostgreSQL too). A failure prints the minimal updates
and, for a crash, the handler's own traceback. Examples share one application and its
database, so a failure that needs an earlier example's state may be reported as flaky,
with the original error attached.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import traceback
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, currently_in_test_context, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from telegram import Update

from bot.app import build_application, running
from bot.clock import FixedClock
from bot.context import BotApplication, BotContext
from bot.handlers.arguments import (
    MAX_ARGUMENT_CHARS,
    BadArgument,
    NameAndYear,
    joined,
    parse_name_and_year,
    parse_when,
)
from bot.presentation import callbacks
from bot.transports.emulated import EmulatedRequest
from bot.transports.emulator import (
    BOT_USER,
    ApiError,
    BotApiEmulator,
    StoredMessage,
    UploadedFile,
    decode_parameters,
)
from storage.datafile import EVENT_KINDS
from storage.dates import MAX_YEAR, MIN_YEAR, PartialDate, Precision
from storage.models import (
    Chairmanship,
    Chat,
    Event,
    EventChange,
    Organisation,
    Place,
    Subscription,
    SubscriptionScope,
)
from storage.queries import EventFilter, When
from tests.conftest import NOW, OPERATOR_ID, make_settings

# --- profiles ---------------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "database": None,  # no .hypothesis/ directory in the working tree
    "print_blob": True,
}
settings.register_profile("ci", max_examples=150, **_COMMON)
settings.register_profile("long", max_examples=2000, **_COMMON)
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# --- who and where ----------------------------------------------------------------------

NOW_TS = int(NOW.timestamp())
OPERATOR = OPERATOR_ID
ADMIN = 4242  # administers the group, the forum supergroup and the channel
STRANGER = 5001
GROUP_ID = -4001
SUPERGROUP_ID = -1001001  # a forum
CHANNEL_ID = -1002002
CHANNEL_USERNAME = "summitnews"
ANONYMOUS_ADMIN = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
TELEGRAM_SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
# The chats whose settings and subscriptions are watched (the seed makes them follow
# things; every update may name them). Others come and go with random users.
WATCHED = (OPERATOR, ADMIN, STRANGER, GROUP_ID, SUPERGROUP_ID, CHANNEL_ID)

# Methods whose refusal means the bot sent something Telegram would not take.
OUTPUT_METHODS = {
    "sendMessage",
    "editMessageText",
    "answerInlineQuery",
    "answerCallbackQuery",
    "sendDocument",
}
MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")

COMMANDS = [
    "start", "help", "chairs", "org", "summits", "upcoming", "past", "next", "event",
    "search", "subscribe", "unsubscribe", "mysubs", "leadtimes", "lang", "tz", "calendar",
    "digest", "channels", "announce", "addevent", "editevent", "postpone", "cancel",
    "setstatus", "stats", "forgetme",
]  # fmt: skip
EVENT_KEYS = [
    "sco-2024-astana", "sco-2026-bishkek", "csto-2026-moscow", "cica-2026-baku",
    "cis-2026-ashgabat", "ifas-2026-kazakhstan", "world-water-day", "no-such-event",
]  # fmt: skip
CHANNEL_ACTIONS = [
    "menu", "link", "all", "org", "lead", "lang", "digest", "pause", "resume", "tz", "unlink", "x",
]  # fmt: skip
ORG_KEYS = ["sco", "csto", "cica", "ots", "cis", "ifas", "iofs", "nato"]
WORDS = [
    *EVENT_KEYS, *ORG_KEYS, "SCO", "ШОС", "ШЫҰ", "上合", "شنغهاي", "СНГ", "next CSTO summit",
    "2024", "2024-07", "2024-07-04", "2026-10-12T10:00", "2026-13-45", "0000", "1899",
    "9999", "-1", "all", "всё", "全部", "الكل", "Asia/Almaty", "Алматы", "北京", "UTC+5",
    "+05:30", "UTC+99", "Mars/Olympus", "weekly", "daily", "off", "en", "ru", "kk", "zh",
    "ar", "zh-hans", "de", "title", "start", "end", "place", "status", "note", "source",
    "planned", "proposed", "confirmed", "held", "postponed", "cancelled", "none", "-",
    "summit", "Astana", "KZ", "@summitnews", "@nobody_here", str(CHANNEL_ID), "<b>",
    "</b>", "<b>bold</b>", "<i>x", "<script>", "<a href='x'>", "&", "&amp;", "&lt;",
    "&#1234;", "&#x110000;", "&bogus;", "a & b", '"q"', "🇰🇿", "👨‍👩‍👧‍👦", "\u200f", "\u202e",
    "\x00", "\n", "\t", "\u2028", "ﷺ", "𝟚𝟘𝟚𝟜", "٢٠٢٤",
]  # fmt: skip

# --- parsers ----------------------------------------------------------------------------

# Arbitrary text: any code point (control characters included), and the words people type.
any_text = st.text(max_size=120)
words = st.one_of(st.sampled_from(WORDS), st.text(max_size=30))
texts = st.one_of(
    any_text,
    st.lists(words, max_size=6).map(" ".join),
    st.text(min_size=60, max_size=300),
)


@FUZZ
@given(texts)
def test_parse_when_returns_a_period_or_bad_argument(text: str) -> None:
    try:
        value = parse_when(text)
    except BadArgument as exc:
        assert exc.what == text.strip()
        return
    if not text.strip():
        assert value is None
    else:
        assert isinstance(value, PartialDate)
        assert value.precision is not Precision.TIME


@FUZZ
@given(texts)
def test_parse_name_and_year_returns_a_name_and_year_or_bad_argument(text: str) -> None:
    try:
        value = parse_name_and_year(text)
    except BadArgument as exc:
        assert not MIN_YEAR <= int(exc.what) <= MAX_YEAR
        return
    assert isinstance(value, NameAndYear)
    assert value.year is None or MIN_YEAR <= value.year <= MAX_YEAR


@FUZZ
@given(st.one_of(st.none(), st.lists(st.one_of(words, st.text(max_size=300)), max_size=20)))
def test_joined_is_a_short_string(args: list[str] | None) -> None:
    value = joined(args)
    assert isinstance(value, str)
    assert len(value) <= MAX_ARGUMENT_CHARS


def _numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 20).map(str),  # ids of the subscriptions the fuzz starts with
        st.integers(0, 10**12).map(str),
        st.integers(-(10**17), 10**17).map(str),
        st.sampled_from(["0", "00", "-0", "2147483648", "9223372036854775808", "٣", "１"]),
        st.text(st.characters(categories=["Nd"]), min_size=1, max_size=13),
    )


def _keys() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(EVENT_KEYS + ORG_KEYS),
        st.from_regex(r"[a-z0-9_-]{1,40}", fullmatch=True),
        st.text(max_size=45),
    )


def callback_payloads() -> st.SearchStrategy[str]:
    """Button data: random, and shaped like each kind the bot makes, with random values."""
    number, key = _numbers(), _keys()
    minutes = st.one_of(st.sampled_from(["15", "60", "180", "1440", "10080", "43200"]), number)
    optional = st.one_of(st.just(""), key.map(":{}".format), minutes.map(":{}".format))
    channel_actions = st.one_of(
        st.sampled_from(CHANNEL_ACTIONS),
        st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    )
    shaped = st.one_of(
        st.builds("e:{}".format, key),
        st.builds("o:{}".format, key),
        st.builds(
            "l:{}:{}:{}:{}".format,
            st.sampled_from("upax"),
            st.one_of(st.just("-"), key),
            st.one_of(st.just("-"), st.integers(0, 9999).map(str), number),
            number,
        ),
        st.builds(
            "f:{}{}".format, st.sampled_from("aoex"), st.one_of(st.just(""), key.map(":{}".format))
        ),
        st.builds("{}:{}".format, st.sampled_from(["u", "t", "ld"]), number),
        st.builds("lt:{}:{}".format, number, minutes),
        st.just("sm"),
        st.builds(
            "lg:{}".format,
            st.one_of(st.sampled_from(["en", "ru", "kk", "zh", "ar", "de"]), st.text(max_size=3)),
        ),
        st.builds("c:{}".format, key),
        st.builds(
            "op:{}:{}".format,
            st.one_of(st.from_regex(r"[a-f0-9]{8}", fullmatch=True), st.text(max_size=9)),
            st.sampled_from(["ok", "no", "yes"]),
        ),
        st.builds(
            "ch:{}:{}{}".format,
            st.one_of(st.sampled_from([str(CHANNEL_ID), "0", str(GROUP_ID)]), number),
            channel_actions,
            optional,
        ),
        st.sampled_from(["fm:yes", "fm:no", "fm:maybe"]),
    )
    return st.one_of(shaped, st.text(max_size=80), st.binary(max_size=70).map(_latin))


def _latin(data: bytes) -> str:
    return data.decode("latin-1")


ACTIONS = typing.get_args(callbacks.Action)


@FUZZ
@given(st.one_of(st.none(), callback_payloads(), st.text(min_size=60, max_size=200)))
def test_callback_parse_returns_an_action_or_expired_button(data: str | None) -> None:
    try:
        action = callbacks.parse(data)
    except callbacks.ExpiredButton:
        return
    assert isinstance(action, ACTIONS)
    assert data is not None and len(data.encode()) <= callbacks.MAX_CALLBACK_BYTES


# Keys as the data file allows them (slugs: "sco-2024", never "-" alone, which a list's
# button uses for "no organisation"), as long as a button carries them.
KEY = st.from_regex(r"[a-z0-9]+(?:[-_][a-z0-9]+)*", fullmatch=True).filter(lambda k: len(k) <= 40)
SMALL_ID = st.integers(1, 10**12 - 1)


@FUZZ
@given(
    st.one_of(
        st.builds(lambda k: (callbacks.event(k), callbacks.OpenEvent(k)), KEY),
        st.builds(lambda k: (callbacks.organisation(k), callbacks.OpenOrganisation(k)), KEY),
        st.builds(
            lambda when, org, year, page: (
                callbacks.event_list(EventFilter(organisation=org, year=year, when=when), page),
                callbacks.OpenList(EventFilter(organisation=org, year=year, when=when), page),
            ),
            st.sampled_from(list(When)),
            st.one_of(st.none(), KEY),
            st.one_of(st.none(), st.integers(MIN_YEAR, MAX_YEAR)),  # as /upcoming takes
            st.integers(0, 9999),
        ),
        st.builds(
            lambda k: (
                callbacks.follow_org(k),
                callbacks.Follow(SubscriptionScope.ORGANISATION, k),
            ),
            KEY,
        ),
        st.builds(
            lambda k: (callbacks.follow_event(k), callbacks.Follow(SubscriptionScope.EVENT, k)), KEY
        ),
        st.builds(lambda i: (callbacks.unfollow(i), callbacks.Unfollow(i)), SMALL_ID),
        st.builds(lambda i: (callbacks.lead_menu(i), callbacks.LeadMenu(i)), SMALL_ID),
        st.builds(lambda i: (callbacks.lead_done(i), callbacks.LeadDone(i)), SMALL_ID),
        st.builds(
            lambda i, m: (callbacks.toggle_lead(i, m), callbacks.ToggleLead(i, m)),
            SMALL_ID,
            st.integers(0, 999_999),
        ),
        st.builds(lambda k: (callbacks.calendar_file(k), callbacks.CalendarFile(k)), KEY),
        st.builds(
            lambda t, ok: (callbacks.operation_answer(t, ok), callbacks.OperationAnswer(t, ok)),
            st.from_regex(r"[a-f0-9]{8}", fullmatch=True),
            st.booleans(),
        ),
        st.builds(
            lambda c, a, arg: (
                callbacks.channel_action(c, a, arg),
                callbacks.ChannelAction(c, a, arg),
            ),
            st.integers(-(10**15), 10**15),
            st.from_regex(r"[a-z]{1,8}", fullmatch=True),
            st.one_of(st.none(), KEY),
        ),
    )
)
def test_buttons_the_bot_makes_parse_back(made: tuple[str, callbacks.Action]) -> None:
    data, action = made
    assert callbacks.parse(data) == action


# --- update JSON ------------------------------------------------------------------------

# Names and titles: anything printable but NUL (which Telegram never sends in a name).
names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=64)
titles = st.one_of(st.just("Summit watchers"), names, st.sampled_from(["<b>", "A & B", "🇰🇿"]))
languages = st.one_of(
    st.none(),
    st.sampled_from(["en", "ru", "kk", "zh-hans", "zh-CN", "zh-TW", "ar", "de", "pt-br", ""]),
    st.text(max_size=12),
)
user_ids = st.one_of(st.sampled_from([OPERATOR, ADMIN, STRANGER]), st.integers(100_000, 2**52))


@st.composite
def users(draw: st.DrawFn, ids: st.SearchStrategy[int] = user_ids) -> dict[str, Any]:
    user: dict[str, Any] = {"id": draw(ids), "is_bot": False, "first_name": draw(names)}
    if draw(st.booleans()):
        user["last_name"] = draw(names)
    language = draw(languages)
    if language is not None:
        user["language_code"] = language
    return user


def chat_json(where: str, user: dict[str, Any], title: str) -> dict[str, Any]:
    if where == "private":
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    if where == "group":
        return {"id": GROUP_ID, "type": "group", "title": title}
    if where == "supergroup":
        return {"id": SUPERGROUP_ID, "type": "supergroup", "title": title, "is_forum": True}
    return {"id": CHANNEL_ID, "type": "channel", "title": title, "username": CHANNEL_USERNAME}


def long_texts() -> st.SearchStrategy[str]:
    units = st.sampled_from(["x", "&", "<b>", "ШОС ", "🇰🇿", "a b ", "\n", "sco ", "\u200f"])
    return st.builds(lambda unit, n: (unit * n)[:4096], units, st.integers(1000, 4096))


# What people write after a command: nothing, hostile text, or what the command expects.
hostile = st.one_of(
    st.sampled_from(WORDS),
    st.lists(words, min_size=1, max_size=5).map(" ".join),
    any_text,
    long_texts(),
)
dates = st.sampled_from(
    ["2024", "2024-07", "2024-07-04", "2026-10-12T10:00", "2027-02-30", "2026-12-01 2026-12-03",
     "1899", "2201", "2026-10-12T25:00", "2026-10-12T10:00+05:00", "2026-W01", "-"]
)  # fmt: skip
zones = st.sampled_from(
    ["Asia/Almaty", "Алматы", "北京", "الرياض", "UTC+5", "+05:30", "UTC-12", "UTC+14", "UTC+99",
     "Mars/Olympus", "Europe/Kyiv", "EST", "utc", "GMT+3", "Etc/GMT-14", "../../etc/passwd"]
)  # fmt: skip
org_names = st.sampled_from([*ORG_KEYS, "SCO", "ШОС", "ШЫҰ", "上合", "شنغهاي", "СНГ", "OTS"])
event_keys = st.sampled_from(EVENT_KEYS)
statuses = st.sampled_from(["planned", "proposed", "confirmed", "held", "postponed",
                            "cancelled", "Отменено", "done"])  # fmt: skip
fields = st.sampled_from(["title", "start", "end", "place", "status", "note", "source", "x"])
everything = st.sampled_from(["all", "всё", "барлығы", "全部", "الكل", "ALL"])
channels_named = st.sampled_from(
    ["", "@summitnews", "@SummitNews", "@nobody_here", str(CHANNEL_ID), "-1", "@", "1" * 30]
)
values = st.one_of(dates, zones, statuses, words, st.text(max_size=600))
PLAUSIBLE: dict[str, st.SearchStrategy[str]] = {
    "chairs": dates,
    "org": org_names,
    "next": org_names,
    "summits": st.builds("{} {}".format, org_names | st.just(""), dates),
    "event": event_keys,
    "calendar": event_keys,
    "search": words,
    "subscribe": st.one_of(everything, org_names, event_keys),
    "unsubscribe": st.one_of(everything, org_names, event_keys),
    "lang": st.sampled_from(["en", "ru", "kk", "zh", "ar", "zh-hans", "ru-RU", "de", "EN"]),
    "tz": zones,
    "digest": st.sampled_from(["weekly", "daily", "off", "WEEKLY", "monthly"]),
    "editevent": st.builds("{} {} {}".format, event_keys, fields, values),
    "postpone": st.builds("{} {} {}".format, event_keys, dates, dates | st.just("")),
    "cancel": st.builds("{} {}".format, event_keys, words | st.just("")),
    "setstatus": st.builds("{} {}".format, event_keys, statuses),
    "announce": st.builds("{} {}".format, event_keys, channels_named),
}
PLAUSIBLE["upcoming"] = PLAUSIBLE["past"] = PLAUSIBLE["summits"]
Arguments = Callable[[str], st.SearchStrategy[str]]  # a command's name -> its arguments


@st.composite
def command_texts(
    draw: st.DrawFn, commands: list[str], args: Arguments | None = None
) -> tuple[str, int]:
    """``/name[@bot] arguments`` and the length of the command word. Arguments: ``args``
    for the command, or nothing, what the command expects, hostile text, or both."""
    name = draw(st.sampled_from(commands))
    mentions = (
        [""] * 6 + ["@SUMMIT_TEST_BOT", "@bot2"] if args is None else ["", "@summit_test_bot"]
    )
    head = f"/{name}{draw(st.sampled_from(mentions))}"
    plausible = PLAUSIBLE.get(name, st.just(""))
    if args is None:
        text = draw(
            st.one_of(
                st.just(""), plausible, st.builds("{} {}".format, plausible, hostile), hostile
            )
        )
    else:
        text = draw(args(name))
    separator = draw(st.sampled_from([" ", " ", "  ", "\n", "\t"]))
    return (head + separator + text if text else head)[:4096], len(head)


def fitting(name: str) -> st.SearchStrategy[str]:
    """Arguments for the command ``name``: mostly what it expects."""
    return _mostly(PLAUSIBLE.get(name, st.just("")))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
entities = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.one_of(
                st.sampled_from(["bot_command", "bold", "mention", "url", "text_link", "hashtag"]),
                st.text(max_size=8),
            ),
            "offset": st.integers(-3, 5000),
            "length": st.integers(-3, 5000),
        }
    ),
    max_size=3,
)
CONTENTS = ["command"] * 12 + ["text"] * 4 + ["none", "caption", "location", "document",
                                              "forward", "members"]  # fmt: skip
PLACES = ["private"] * 3 + ["group", "supergroup"] * 2


@st.composite
def messages(
    draw: st.DrawFn,
    commands: list[str] = COMMANDS,
    user: dict[str, Any] | None = None,
    where: str | None = None,
    content: str | None = None,
    texts: st.SearchStrategy[str] = hostile,
    args: Arguments | None = None,
) -> dict[str, Any]:
    """A message-like update: a message, an edit or a channel post, from anyone (or ``user``),
    in any chat (or ``where``), with any content (or ``content``: then a new message as a
    client sends it, with ``args`` after a command or ``texts`` as its text)."""
    kind = draw(st.sampled_from(["message"] * 6 + ["edited_message"] * 2 + ["channel_post"]))
    as_sent = content is not None
    if as_sent:
        kind = "message"
    if kind == "channel_post":
        kind = draw(st.sampled_from(["channel_post", "edited_channel_post"]))
        where = "channel"
    elif where is None or where == "channel":
        where = draw(st.sampled_from(PLACES))
    if user is None:
        user = draw(users())
    chat = chat_json(where, user, draw(titles))
    message: dict[str, Any] = {
        "message_id": draw(st.integers(1, 2**31 - 1)),
        "date": NOW_TS,
        "chat": chat,
    }
    if where == "channel":
        message["sender_chat"] = chat
    else:
        # In a private chat the person is always there; in groups "from" may be missing.
        senders = ["user"] * 6 + (["none", "anonymous", "linked"] if where != "private" else [])
        match draw(st.sampled_from(senders)):
            case "user":
                message["from"] = user
            case "anonymous":  # an anonymous admin writes as the group
                message["from"], message["sender_chat"] = ANONYMOUS_ADMIN, chat
            case "linked":  # a linked channel's post, forwarded into the group
                message["from"] = TELEGRAM_SERVICE
                message["sender_chat"] = chat_json("channel", user, "Linked")
                message["is_automatic_forward"] = True
    if content is None:
        content = draw(st.sampled_from(CONTENTS))
    if content in ("location", "document", "forward") and where != "private":
        content = "text"
    if content == "document" and message.get("from", {}).get("id") == OPERATOR:
        content = "caption"  # an operator's file would be downloaded: not emulated
    match content:
        case "command":
            message["text"], length = draw(command_texts(commands, args))
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        case "text" | "forward":
            message["text"] = draw(texts)
        case "caption":
            message["caption"] = draw(hostile)
        case "location":
            message["location"] = {
                "latitude": draw(st.floats(-90, 90)),
                "longitude": draw(st.floats(-180, 180)),
            }
        case "document":
            document: dict[str, Any] = {
                "file_id": "file1",
                "file_unique_id": "ufile1",
                "file_size": draw(st.integers(0, 10**9)),
            }
            name = draw(st.one_of(st.none(), st.sampled_from(["a.yaml", "b.YML", "c.txt"]), names))
            if name is not None:
                document["file_name"] = name
            message["document"] = document
        case "members":
            message["new_chat_members"] = [user, BOT_USER]
    if content == "forward":
        message["forward_origin"] = {
            "type": "channel",
            "chat": chat_json("channel", user, "Forwarded"),
            "message_id": 5,
            "date": NOW_TS,
        }
    if where == "supergroup" and draw(st.booleans()):
        message["is_topic_message"] = True
        message["message_thread_id"] = draw(st.integers(1, 10**6))
    if kind.startswith("edited"):
        message["edit_date"] = NOW_TS
    if as_sent:
        return {kind: message}
    if draw(st.integers(0, 5)) == 0:  # entities at odd offsets, or none at all
        message["entities"] = draw(entities)
    if draw(st.integers(0, 9)) == 0:  # a field from a later Bot API
        message["field_from_the_future"] = draw(json_values)
    return {kind: message}


@dataclass(frozen=True)
class Press:
    """A button press: one the bot showed in this example (``shown`` picks it), or forged
    ``data`` under a message in ``where``, under an inline message, or an inaccessible one."""

    where: str
    user: dict[str, Any]
    title: str
    shown: int | None
    data: str | None
    placement: str


ANYWHERE = st.sampled_from(["private", "group", "supergroup", "channel"])
ANYONE = users()


def presses(
    where: st.SearchStrategy[str] = ANYWHERE, user: st.SearchStrategy[dict[str, Any]] = ANYONE
) -> st.SearchStrategy[Press]:
    return st.builds(
        Press,
        where=where,
        user=user,
        title=titles,
        shown=st.one_of(st.none(), st.integers(0, 100), st.integers(0, 100)),
        data=st.one_of(callback_payloads(), st.none() | callback_payloads()),
        placement=st.sampled_from(["message"] * 4 + ["inline", "inaccessible"]),
    )


@st.composite
def inline_queries(draw: st.DrawFn) -> dict[str, Any]:
    query: dict[str, Any] = {
        "id": str(draw(st.integers(1, 2**63))),
        "from": draw(users()),
        "query": draw(st.one_of(words, hostile.map(lambda t: t[:256]), st.text(max_size=300))),
        "offset": draw(st.one_of(st.just(""), st.text(max_size=10))),
    }
    if draw(st.booleans()):
        query["chat_type"] = draw(
            st.sampled_from(["sender", "private", "group", "supergroup", "channel"])
        )
    return {"inline_query": query}


ADMIN_RIGHTS = [
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories", "can_edit_messages", "can_post_messages",
]  # fmt: skip


def _bot_member(status: str) -> dict[str, Any]:
    if status == "administrator":
        return {
            "status": status,
            "user": BOT_USER,
            "can_be_edited": False,
            "is_anonymous": False,
            **dict.fromkeys(ADMIN_RIGHTS, True),
        }
    if status == "kicked":
        return {"status": status, "user": BOT_USER, "until_date": 0}
    return {"status": status, "user": BOT_USER}


@st.composite
def membership_changes(draw: st.DrawFn) -> dict[str, Any]:
    """The bot added, promoted, removed or blocked."""
    user = draw(users())
    where = draw(st.sampled_from(["private", "group", "supergroup", "channel"]))
    statuses = st.sampled_from(["member", "left", "kicked", "administrator"])
    old_status, new_status = draw(statuses), draw(statuses)
    return {
        "my_chat_member": {
            "chat": chat_json(where, user, draw(titles)),
            "from": user,
            "date": NOW_TS,
            "old_chat_member": _bot_member(old_status),
            "new_chat_member": _bot_member(new_status),
        }
    }


@st.composite
def other_updates(draw: st.DrawFn) -> dict[str, Any]:
    """Update kinds no handler is for, known to PTB or not."""
    user = draw(users())
    match draw(st.sampled_from(["unknown", "join_request", "poll_answer"])):
        case "unknown":
            kind = draw(st.sampled_from(["kind_from_the_future", "x", "business_update_v9"]))
            return {kind: draw(json_values)}
        case "join_request":
            return {
                "chat_join_request": {
                    "chat": chat_json("supergroup", user, draw(titles)),
                    "from": user,
                    "user_chat_id": user["id"],
                    "date": NOW_TS,
                }
            }
        case _:
            answer = {"poll_id": "1", "option_ids": [0], "option_persistent_ids": ["0"]}
            return {"poll_answer": {**answer, "user": user}}


@st.composite
def conversations(draw: st.DrawFn) -> list[Any]:
    """A few messages, often from one person in one chat (so a dialogue can go on)."""
    user, where = draw(users()), draw(st.sampled_from(PLACES))
    result = []
    for _ in range(draw(st.integers(1, 4))):
        same = draw(st.booleans())
        result.append(draw(messages(COMMANDS, user if same else None, where if same else None)))
    return result


# Commands whose replies carry buttons (the ones with more of them weigh more).
BUTTON_COMMANDS = [
    "subscribe", "subscribe", "mysubs", "mysubs", "leadtimes", "leadtimes", "lang", "lang",
    "channels", "channels", "forgetme", "org", "org", "event", "event", "summits", "upcoming",
    "past", "unsubscribe", "next", "search", "postpone", "setstatus", "editevent", "cancel",
]  # fmt: skip
session_users = users(st.one_of(st.sampled_from([ADMIN, ADMIN, STRANGER, OPERATOR]), user_ids))
follow_ups = st.one_of(channels_named, zones, hostile)


@st.composite
def button_sessions(draw: st.DrawFn) -> list[Any]:
    """A command that shows buttons, then presses (of those buttons, by the same person or
    anyone else, or forged) and answers to what the bot asked."""
    user = draw(session_users)
    where = draw(st.sampled_from(["private", "private", "group", "supergroup"]))
    steps: list[Any] = [
        draw(messages(BUTTON_COMMANDS, user, where, content="command", args=fitting))
    ]
    anyone = st.one_of(st.just(user), st.just(user), users())
    for _ in range(draw(st.integers(1, 4))):
        match draw(st.sampled_from(["press"] * 4 + ["command", "answer"])):
            case "press":
                steps.append(draw(presses(st.just(where), anyone)))
            case "command":
                steps.append(
                    draw(messages(BUTTON_COMMANDS, user, where, content="command", args=fitting))
                )
            case _:
                content = draw(st.sampled_from(["text", "text", "forward"]))
                steps.append(
                    draw(messages(user=user, where=where, content=content, texts=follow_ups))
                )
    return steps


def _mostly(
    fits: st.SearchStrategy[str], near_miss: st.SearchStrategy[str] = hostile
) -> st.SearchStrategy[str]:
    """What fits, nine times in ten; else a near miss or hostile text."""
    return st.sampled_from(range(20)).flatmap(
        lambda n: fits if n < 18 else near_miss if n == 18 else hostile
    )


def _one(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


@st.composite
def dialogue_answers(draw: st.DrawFn) -> list[str]:
    """Answers to the /addevent questions, in order (no city: a country and a zone too)."""
    answers = [
        draw(_mostly(_one("sco", "csto", "ШОС", "上合", "cis", "none"), _one("nato", "-1"))),
        draw(_mostly(_one(*EVENT_KINDS, "informal summit"), _one("party", ""))),
        draw(_mostly(st.one_of(names, _one("<b>Summit</b> & co", "x" * 200)), _one("x" * 201))),
    ]
    cities = _one("astana", "Astana", "Астана", "bishkek", "Бишкек", "ashgabat", "none")
    city = draw(_mostly(cities, _one("Atlantis", "")))
    answers.append(city)
    if city == "none":
        answers.append(draw(_mostly(_one("KZ", "kz", "Kazakhstan", "Казахстан"), _one("XX"))))
    days = _one(
        "2027", "2027-03", "2027-03-15", "2027-03-15 2027-03-17", "2027-03-15 – 2027-03-17",
        "2027-03-15T10:00", "2026-12-01", "2024-07-04",
    )  # fmt: skip
    answers.append(draw(_mostly(days, _one("2027-02-30", "2027-03-17 2027-03-15", "1899"))))
    if city == "none":
        answers.append(draw(_mostly(st.one_of(zones, st.just("none")))))
    answers.append(draw(_mostly(_one("planned", "proposed", "confirmed", "held"), statuses)))
    sources = _one("https://example.org/a?b=1&c=2", "none", "<i>src</i> & co", "x" * 300)
    answers.append(draw(_mostly(sources, _one("x" * 301))))
    return answers


SWEEP = "sweep"  # a step: the dispatcher sends what is due
EDITS = ["editevent", "postpone", "cancel", "setstatus", "announce"]


@st.composite
def operator_sessions(draw: st.DrawFn) -> list[Any]:
    """An operator at work in a private chat: the /addevent dialogue or an edit, then Save
    (or Cancel), then anyone reading the catalogue as it is now."""
    operator = draw(users(st.just(OPERATOR)))
    if draw(st.sampled_from([True, False, False])):  # a dialogue is ten updates long
        opener = messages(["addevent"], operator, "private", content="command", args=fitting)
        steps: list[Any] = [draw(opener)]
        for answer in draw(dialogue_answers()):
            steps.append(
                draw(
                    messages(user=operator, where="private", content="text", texts=st.just(answer))
                )
            )
    else:
        steps = [draw(messages(EDITS, operator, "private", content="command", args=fitting))]
    # Save (the second-last button shown) three times in four, else Cancel (the last).
    save_or_cancel = draw(presses(st.just("private"), st.just(operator)))
    steps.append(replace(save_or_cancel, shown=draw(st.sampled_from([-2, -2, -2, -1]))))
    if draw(st.sampled_from([True, False, False])):  # what is due waits for the next sweep
        steps.append(SWEEP)  # followers get change notices, new-event notices, …
    steps += draw(st.lists(st.one_of(messages(), inline_queries()), max_size=1))
    return steps


mixed = st.lists(
    st.one_of(inline_queries(), membership_changes(), other_updates(), messages(), presses()),
    min_size=1,
    max_size=4,
)


# --- the bot under test -----------------------------------------------------------------


@dataclass
class RecordingEmulator(BotApiEmulator):
    """The emulator, remembering every call it refused."""

    refusals: list[tuple[str, dict[str, Any], ApiError]] = field(default_factory=list)

    def call(
        self,
        method: str,
        raw_parameters: Mapping[str, Any],
        files: Mapping[str, UploadedFile] | None = None,
    ) -> Any:
        try:
            return super().call(method, raw_parameters, files)
        except ApiError as error:
            self.refusals.append((method, decode_parameters(raw_parameters), error))
            raise


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Misbehaved(AssertionError):
    """The bot broke a property; the message has the update and what happened."""


class HandlerCrashed(Misbehaved):
    pass


class TelegramRefused(Misbehaved):
    pass


class UnexpectedChange(Misbehaved):
    pass


class WrongChat(Misbehaved):
    pass


class UnansweredButton(Misbehaved):
    pass


@dataclass
class Snapshot:
    catalogue: tuple[Any, ...]
    chats: dict[int, tuple[Any, ...]]
    subscriptions: dict[int, list[Any]]


class FuzzedBot:
    """The real application on one event loop of its own, fed update JSON in process."""

    def __init__(self, database_url: str) -> None:
        self.emulator = RecordingEmulator()
        self.emulator.add_channel(CHANNEL_ID, "Summit news", CHANNEL_USERNAME, admins={ADMIN})
        for chat_id in (GROUP_ID, SUPERGROUP_ID):
            self.emulator.admins[chat_id] = {ADMIN}
        self.calls: list[tuple[str, dict[str, Any], Any]] = []
        settings_ = make_settings(
            database_url,
            "http://emulated.invalid/bot",
            requests_per_minute=1_000_000,  # examples come faster than any person types
            reply_cache_seconds=0,  # each update is handled, not answered from a cache
        )
        self.application: BotApplication = build_application(
            settings_,
            clock=FixedClock(NOW),
            request=EmulatedRequest(self.emulator, self._observe),
            with_updater=False,
            rate_limit=False,
        )
        self.application.add_error_handler(self._record_error)
        self.errors: list[BaseException] = []
        self.error_log = _ErrorLog()
        self.loop = asyncio.new_event_loop()
        self._running: Any = None
        self._snapshot: Snapshot | None = None
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self.shown: list[tuple[int, int, str]] = []  # (chat, message, data) of this example
        self.fed = 0  # updates handed to the application
        self.refused_by_ptb: list[str] = []

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> FuzzedBot:
        self.loop.run_until_complete(self._start())
        logging.getLogger().addHandler(self.error_log)
        self.play(seed())
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger().removeHandler(self.error_log)
        try:
            self.loop.run_until_complete(self._running.__aexit__(None, None, None))
        finally:
            self.loop.close()

    async def _start(self) -> None:
        self._running = running(self.application, polling=False)
        await self._running.__aenter__()
        # Reminder sweeps wait: the examples are about handlers, and a sweep running now
        # and then would make an example's outcome depend on timing. (/announce still
        # sweeps when it is asked to.)
        job_queue = self.application.job_queue
        assert job_queue is not None
        job_queue.scheduler.pause()
        self._snapshot = await self._take_snapshot()

    async def _record_error(self, update: object, context: BotContext) -> None:
        if context.error is not None:
            self.errors.append(context.error)

    def _observe(self, method: str, parameters: dict[str, Any], result: Any) -> None:
        self.calls.append((method, parameters, result))
        if method in ("sendMessage", "editMessageText") and isinstance(result, dict):
            keyboard = (result.get("reply_markup") or {}).get("inline_keyboard") or []
            for row in keyboard:
                for button in row:
                    if "callback_data" in button:
                        chat_id = int(result["chat"]["id"])
                        self.shown.append(
                            (chat_id, int(result["message_id"]), button["callback_data"])
                        )

    # --- one example ----------------------------------------------------------------------

    def play(self, actions: list[Any]) -> None:
        self.shown = []
        for action in actions:
            if action == SWEEP:
                self.loop.run_until_complete(self._sweep())
                continue
            update = self._materialise(action)
            self.loop.run_until_complete(self._feed(update))

    def _materialise(self, action: Any) -> dict[str, Any]:
        if not isinstance(action, Press):
            return {"update_id": next(self._update_ids), **action}
        query: dict[str, Any] = {"id": str(next(self._query_ids)), "chat_instance": "fuzz"}
        if action.shown is not None and self.shown:  # negative: counted from the last
            chat_id, message_id, data = self.shown[action.shown % len(self.shown)]
            chat = self.emulator.chat(chat_id)
            user = action.user
            if chat["type"] == "private":
                user = {**user, "id": chat_id}
            query["from"] = user
            query["message"] = self.emulator.messages[(chat_id, message_id)].payload(chat)
            query["data"] = data
        else:
            chat = chat_json(action.where, action.user, action.title)
            query["from"] = action.user
            if action.data is not None:
                query["data"] = action.data
            else:
                query["game_short_name"] = "game"
            if action.placement == "inline":
                query["inline_message_id"] = "AgAAAFuzzedInlineMessage"
            elif action.placement == "inaccessible":
                query["message"] = {"chat": chat, "message_id": 1, "date": 0}
            else:
                message_id = self.emulator.next_message_id()
                stored = StoredMessage(chat["id"], message_id, "Pick one:", None, NOW_TS)
                self.emulator.messages[(chat["id"], message_id)] = stored
                query["message"] = stored.payload(chat)
        return {"update_id": next(self._update_ids), "callback_query": query}

    async def _feed(self, data: dict[str, Any]) -> None:
        _note(f"update: {json.dumps(data, ensure_ascii=False)[:2000]}")
        for chat in _chats_in(data):
            self.emulator.register_chat(chat)
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # PTB itself would not build it: Telegram never sends it
            _note(f"PTB refused the update: {exc!r}")
            self.refused_by_ptb.append(repr(exc)[:200])
            return
        self.fed += 1
        calls_before, refusals_before = len(self.calls), len(self.emulator.refusals)
        self.errors.clear()
        self.error_log.records.clear()
        escaped: BaseException | None = None
        try:
            await asyncio.wait_for(self.application.process_update(update), 60)
        except Exception as exc:
            escaped = exc
        calls = self.calls[calls_before:]
        refusals = self.emulator.refusals[refusals_before:]
        before = self._snapshot
        assert before is not None
        after = self._snapshot = await self._take_snapshot()
        self._check(data, escaped, calls, refusals, before, after)

    # --- the properties -------------------------------------------------------------------

    def _check(
        self,
        data: dict[str, Any],
        escaped: BaseException | None,
        calls: list[tuple[str, dict[str, Any], Any]],
        refusals: list[tuple[str, dict[str, Any], ApiError]],
        before: Snapshot,
        after: Snapshot,
    ) -> None:
        shown = json.dumps(data, ensure_ascii=False)[:3000]
        query = data.get("callback_query")
        inaccessible = isinstance(query, dict) and (query.get("message") or {}).get("date") == 0
        self._check_sent(f"update: {shown}", escaped, refusals, pressed_inaccessible=inaccessible)
        # (c) the catalogue changes only for operators; a chat only for who may change it
        sender = _sender(data)
        if before.catalogue != after.catalogue and sender != OPERATOR:
            raise UnexpectedChange(f"the catalogue changed (sender {sender})\nupdate: {shown}")
        allowed = self._privileged(data)
        for chat_id, settings_before in before.chats.items():
            if chat_id in allowed:
                continue
            if after.chats.get(chat_id) != settings_before or after.subscriptions.get(
                chat_id
            ) != before.subscriptions.get(chat_id):
                raise UnexpectedChange(
                    f"chat {chat_id} changed (sender {sender}, who may change {allowed}):\n"
                    f"  settings {settings_before} → {after.chats.get(chat_id)}\n"
                    f"  subscriptions {before.subscriptions.get(chat_id)} → "
                    f"{after.subscriptions.get(chat_id)}\nupdate: {shown}"
                )
        # (d) a button press is answered once
        if query is not None:
            answers = [
                c
                for c in [*calls, *((m, p, None) for m, p, _ in refusals)]
                if c[0] == "answerCallbackQuery"
                and str(c[1].get("callback_query_id")) == query["id"]
            ]
            if len(answers) != 1:
                raise UnansweredButton(f"answered {len(answers)} times\nupdate: {shown}")
        # (e) replies go to the chat (and topic) the update came from
        if sender == OPERATOR or "my_chat_member" in data:
            return
        home = _chat_of(data)
        topic = _topic_of(data)
        for method, parameters, _ in [*calls, *refusals]:
            if "chat_id" not in parameters or method not in OUTPUT_METHODS:
                continue
            chat_id = int(parameters["chat_id"])
            if chat_id != home:
                raise WrongChat(f"{method} to chat {chat_id}, not {home}\nupdate: {shown}")
            thread = parameters.get("message_thread_id")
            if topic is not None and method == "sendMessage" and thread != topic:
                raise WrongChat(f"reply outside topic {topic} (in {thread})\nupdate: {shown}")

    def _check_sent(
        self,
        what: str,
        escaped: BaseException | None,
        refusals: list[tuple[str, dict[str, Any], ApiError]],
        *,
        pressed_inaccessible: bool = False,
    ) -> None:
        """(a) nothing escaped, the error handler was not reached, nothing was logged as an
        error; (b) Telegram took everything the bot sent."""
        problems = []
        for method, parameters, error in refusals:
            if method not in OUTPUT_METHODS:
                continue  # e.g. getChat of an unknown @channel: the bot says so
            description = error.description
            if method == "editMessageText" and (
                "message is not modified" in description  # a page shown again: handled
                or ("message to edit not found" in description and pressed_inaccessible)
            ):
                continue
            sent = json.dumps(parameters, ensure_ascii=False)[:3000]
            problems.append(f"{method} → {description}\nsent: {sent}")
        crashes = [escaped] if escaped is not None else []
        crashes += self.errors
        if crashes:
            details = "".join(traceback.format_exception(crashes[0]))
            try:
                raise crashes[0]
            except BaseException as original:  # so Hypothesis tells crash sites apart
                raise HandlerCrashed("\n".join([details, *problems, what])) from original
        if self.error_log.records:
            text = logging.Formatter().format(self.error_log.records[0])
            raise HandlerCrashed("\n".join([f"logged as an error: {text}", *problems, what]))
        if problems:
            raise TelegramRefused("\n".join([*problems, what]))

    async def _sweep(self) -> None:
        """The dispatcher sends what is due now (e.g. change notices after an operator's
        edit), held to (a) and (b) like a reply."""
        _note("the dispatcher sweeps")
        refusals_before = len(self.emulator.refusals)
        self.errors.clear()
        self.error_log.records.clear()
        escaped: BaseException | None = None
        try:
            await asyncio.wait_for(self.application.bot_data.services.dispatcher.sweep(), 60)
        except Exception as exc:
            escaped = exc
        self._snapshot = await self._take_snapshot()
        self._check_sent("during a sweep", escaped, self.emulator.refusals[refusals_before:])

    def _privileged(self, data: dict[str, Any]) -> set[int]:
        """The chats whose settings this update's sender may change."""
        body = _body(data)
        user = body.get("from") or body.get("user")
        allowed: set[int] = set()
        if isinstance(user, dict) and "id" in user:
            allowed.add(int(user["id"]))  # their private chat
            allowed |= {c for c, admins in self.emulator.admins.items() if user["id"] in admins}
        chat, sender_chat = body.get("chat"), body.get("sender_chat")
        if (
            "callback_query" not in data
            and chat
            and sender_chat
            and chat["id"] == sender_chat["id"]
        ):
            allowed.add(int(chat["id"]))  # an anonymous admin, or the channel itself
        return allowed

    async def _take_snapshot(self) -> Snapshot:
        database = self.application.bot_data.services.database
        # Any write to an event or organisation moves its updated_at; the other tables
        # only grow (and only imports, an operator's, touch chairmanships and places).
        fingerprint = select(
            *(
                statement.scalar_subquery()
                for statement in (
                    select(func.count(Event.id)),
                    select(func.max(Event.updated_at)),
                    select(func.count(Organisation.id)),
                    select(func.max(Organisation.updated_at)),
                    select(func.count(Chairmanship.id)),
                    select(func.max(Chairmanship.id)),
                    select(func.count(Place.id)),
                    select(func.count(EventChange.id)),
                    select(func.max(EventChange.id)),
                )
            )
        )
        async with database.sessions() as session:
            catalogue = tuple((await session.execute(fingerprint)).one())
            watched = Chat.id.in_(WATCHED)
            chat_rows = await session.execute(
                select(
                    Chat.id,
                    Chat.language,
                    Chat.timezone,
                    Chat.lead_times,
                    Chat.paused,
                    Chat.digest,
                    Chat.linked_by,
                    Chat.migrated_to_id,
                ).where(watched)
            )
            chats = {row[0]: tuple(row[1:]) for row in chat_rows.all()}
            subscriptions: dict[int, list[Any]] = {}
            rows = await session.execute(
                select(Subscription.__table__).where(Subscription.chat_id.in_(WATCHED))
            )
            for row in rows.all():
                subscriptions.setdefault(row.chat_id, []).append(tuple(row))
        for listed in subscriptions.values():
            listed.sort(key=repr)
        return Snapshot(catalogue, chats, subscriptions)


def _note(text: str) -> None:
    if currently_in_test_context():  # also usable by hand, outside a Hypothesis test
        note(text)


def _body(data: dict[str, Any]) -> dict[str, Any]:
    for key, value in data.items():
        if key != "update_id" and isinstance(value, dict):
            return value
    return {}


def _sender(data: dict[str, Any]) -> int | None:
    user = _body(data).get("from") or _body(data).get("user")
    return int(user["id"]) if isinstance(user, dict) and "id" in user else None


def _chat_of(data: dict[str, Any]) -> int | None:
    body = _body(data)
    message = body.get("message") if "callback_query" in data else body
    chat = (message or {}).get("chat")
    return int(chat["id"]) if isinstance(chat, dict) else None


def _topic_of(data: dict[str, Any]) -> int | None:
    for kind in MESSAGE_KINDS:
        message = data.get(kind)
        if isinstance(message, dict) and message.get("is_topic_message"):
            return int(message["message_thread_id"])
    return None


def _chats_in(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The chats an update names, for the emulator to know them as Telegram does."""
    body = _body(data)
    message = body.get("message") if "callback_query" in data else body
    if isinstance(message, dict) and isinstance(message.get("chat"), dict):
        yield message["chat"]
        if isinstance(message.get("sender_chat"), dict):
            yield message["sender_chat"]


def _person(user_id: int, language: str = "en") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "Seed", "language_code": language}


def _says(user: dict[str, Any], where: str, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": 1,
        "date": NOW_TS,
        "chat": chat_json(where, user, "Summit watchers"),
        "from": user,
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"message": message}


def seed() -> list[Any]:
    """What the fuzz starts from: a linked channel, chats that follow things, settings."""
    admin, stranger = _person(ADMIN), _person(STRANGER, "ru")
    return [
        _says(admin, "private", "/channels"),
        Press("private", admin, "", None, callbacks.channel_action(0, "link"), "message"),
        _says(admin, "private", f"@{CHANNEL_USERNAME}"),
        Press("private", admin, "", None, callbacks.channel_action(CHANNEL_ID, "all"), "message"),
        _says(admin, "group", "/subscribe all"),
        _says(admin, "supergroup", "/subscribe sco"),
        _says(admin, "supergroup", "/lang kk"),
        _says(admin, "private", "/subscribe sco-2026-bishkek"),
        _says(stranger, "private", "/subscribe csto"),
        _says(stranger, "private", "/digest weekly"),
        _says(stranger, "private", "/tz UTC+5"),
    ]


@pytest.fixture
def fuzzed_bot(database_url: str) -> Iterator[FuzzedBot]:
    with FuzzedBot(database_url) as bot:
        yield bot
        # Updates PTB will not build are skipped; if many were, the generator has drifted
        # from what Telegram sends (e.g. a field a newer Bot API requires) and fuzzes little.
        refused = bot.refused_by_ptb
        assert len(refused) <= max(5, bot.fed // 20), f"PTB refused {len(refused)}: {refused[:3]}"


# --- updates through the application ----------------------------------------------------


@FUZZ
@given(conversations())
def test_messages_from_anyone_anywhere(fuzzed_bot: FuzzedBot, updates: list[Any]) -> None:
    fuzzed_bot.play(updates)


@FUZZ
@given(button_sessions())
def test_button_presses_shown_or_forged(fuzzed_bot: FuzzedBot, updates: list[Any]) -> None:
    fuzzed_bot.play(updates)


@FUZZ
@given(operator_sessions())
def test_operators_at_work(fuzzed_bot: FuzzedBot, updates: list[Any]) -> None:
    fuzzed_bot.play(updates)


@FUZZ
@given(mixed)
def test_inline_queries_membership_and_unknown_updates(
    fuzzed_bot: FuzzedBot, updates: list[Any]
) -> None:
    fuzzed_bot.play(updates)
