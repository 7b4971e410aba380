"""Message text's basics: a reply (HTML and buttons), escaping, text in the reader's
language, the names of organisations, countries, events and statuses, and splitting
under Telegram's length limit.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from telegram import (
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.presentation.i18n import Translator
from storage.models import EventStatus
from storage.views import (
    EventView,
    OrganisationRef,
)

MAX_MESSAGE = 4096


@dataclass(frozen=True)
class Reply:
    """A message to send: HTML text and optional inline buttons."""

    text: str
    keyboard: InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None = None

    @property
    def inline_keyboard(self) -> InlineKeyboardMarkup | None:
        """The buttons where only inline ones may go (edits, inline results)."""
        return self.keyboard if isinstance(self.keyboard, InlineKeyboardMarkup) else None


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def bold(text: str) -> str:
    # Not an f-string around _(): gettext extraction cannot see inside f-strings.
    return f"<b>{esc(text)}</b>"


def localised(value: dict[str, str], language: str) -> str:
    """A data field in ``language``, else English, else any language; never empty if any."""
    return value.get(language) or value.get("en") or next(iter(value.values()), "")


# --- names ---------------------------------------------------------------


def organisation_name(org: OrganisationRef, tr: Translator) -> str:
    return localised(org.names, tr.language)


def organisation_short(org: OrganisationRef, tr: Translator) -> str:
    """The abbreviation in the reader's language, else the full name."""
    return org.abbreviations.get(tr.language) or organisation_name(org, tr)


def organisation_heading(org: OrganisationRef, tr: Translator) -> str:
    """ "<b>SCO</b> — Shanghai Cooperation Organisation" (the name once if no abbreviation)."""
    short, name = organisation_short(org, tr), organisation_name(org, tr)
    return bold(short) if short == name else f"{bold(short)} — {esc(name)}"


def organisation_title(org: OrganisationRef, tr: Translator) -> str:
    name, short = organisation_name(org, tr), org.abbreviations.get(tr.language)
    return f"{name} ({short})" if short and short != name else name


def country_name(code: str | None, tr: Translator) -> str:
    if not code:
        return ""
    territories = tr.locale.territories
    return str(territories.get(code) or code)


def event_title(event: EventView, tr: Translator) -> str:
    return localised(event.title, tr.language)


def place_label(event: EventView, tr: Translator) -> str:
    """Where an event is: its known place, else its location in words (a feed's
    LOCATION), else its country; online, or hosted from there."""
    _ = tr.gettext
    country = country_name(event.country, tr)
    if event.place is not None:
        where = f"{localised(event.place.names, tr.language)}, {country}"
    elif event.location:
        where = location_text(event.location, country)
    elif event.online:
        return _("online")
    else:
        return country
    return _("online, hosted from {place}", place=where) if event.online else where


def location_text(location: str, country: str) -> str:
    """A location in words with its country, unless the words name it already."""
    if not country or country.casefold() in location.casefold():
        return location
    return f"{location}, {country}"


def status_label(status: EventStatus, tr: Translator) -> str:
    _ = tr.gettext
    labels = {
        EventStatus.PLANNED: _("planned"),
        EventStatus.PROPOSED: _("proposed, not confirmed"),
        EventStatus.CONFIRMED: _("confirmed"),
        EventStatus.HELD: _("held"),
        EventStatus.POSTPONED: _("postponed"),
        EventStatus.CANCELLED: _("cancelled"),
    }
    return labels[status]


def kind_label(kind: str, tr: Translator) -> str:
    _ = tr.gettext
    labels = {
        "summit": _("summit"),
        "informal_summit": _("informal summit"),
        "ministerial": _("ministerial meeting"),
        "assembly": _("general assembly"),
        "congress": _("congress"),
        "forum": _("forum"),
        "session": _("session"),
        "meeting": _("meeting"),
        "observance": _("international day"),
    }
    return labels.get(kind, kind)


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Split HTML text at line breaks into messages under Telegram's limit.

    Rendering never lets a tag span lines, so a split between lines keeps tags whole.
    A single line longer than the limit is cut at the limit, outside any entity.
    """
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if "&" in line[max(0, cut - 8) : cut]:
                cut = line.rfind("&", 0, cut)
            parts.append(line[:cut])
            line = line[cut:].lstrip()
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return parts
