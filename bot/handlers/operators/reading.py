"""Reading what operators type: dates at their precision, statuses, kinds, places,
countries and bounded text, each refused with a message that says what to write.
"""

from __future__ import annotations

import re

from babel import Locale
from telegram import (
    Update,
)

from bot.context import BotContext
from bot.presentation import render
from bot.presentation.i18n import Translator
from bot.presentation.text import esc
from storage.datafile import (
    EVENT_KINDS,
)
from storage.dates import InvalidDate, PartialDate, Span
from storage.models import EventStatus
from storage.operations import (
    find_place,
    place_suggestions,
)
from storage.search import normalise
from storage.views import PlaceView

_DATE_SEPARATORS = re.compile(r"\s+|\s*[–—]\s*|\.\.")


class _Invalid(ValueError):
    """Input to correct; ``text`` (HTML) says what is wrong."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


# --- reading what operators type --------------------------------------------------------


def _arguments(update: Update, count: int) -> list[str]:
    """Up to ``count`` words after the command, the last one with the rest of the text."""
    message = update.effective_message
    text = message.text if message is not None and message.text else ""
    return text.split(None, count)[1:]


def _none_words(tr: Translator) -> set[str]:
    return {"none", "-", "—", normalise(tr.gettext("none"))}


def _is_none(text: str, tr: Translator) -> bool:
    return normalise(text) in _none_words(tr)


def _parse_date(text: str, tr: Translator) -> PartialDate:
    try:
        return PartialDate.parse(text)
    except InvalidDate as exc:
        _ = tr.gettext
        raise _Invalid(
            _(
                "“{value}” is not a date; write 2026-10-12, 2026-10, 2026 or 2026-10-12T10:00.",
                value=esc(text[:40]),
            )
        ) from exc


def _parse_dates(text: str, tr: Translator) -> tuple[PartialDate, PartialDate | None]:
    """A start and an optional end: ``2026-10-12 2026-10-14``, ``2026-10-12 – 2026-10-14``."""
    _ = tr.gettext
    words = [w for w in _DATE_SEPARATORS.split(text.strip()) if w and w not in ("-", "to")]
    if not 1 <= len(words) <= 2:
        raise _Invalid(esc(_("Send one date, or a start and an end separated by a space.")))
    start = _parse_date(words[0], tr)
    end = _parse_date(words[1], tr) if len(words) == 2 else None
    _check_span(start, end, tr)
    return start, end


def _check_span(start: PartialDate, end: PartialDate | None, tr: Translator) -> None:
    try:
        Span(start, end, None).check()
    except InvalidDate as exc:
        raise _Invalid(esc(tr.gettext("The end comes before the start."))) from exc


def _parse_status(text: str, tr: Translator) -> EventStatus:
    wanted = normalise(text)
    for status in EventStatus:
        if wanted in (status.value, normalise(render.status_label(status, tr))):
            return status
    _ = tr.gettext
    names = ", ".join(status.value for status in EventStatus)
    raise _Invalid(esc(_("Choose a status: {statuses}.", statuses=names)))


def _parse_kind(text: str, tr: Translator) -> str:
    wanted = normalise(text)
    for kind in EVENT_KINDS:
        if wanted in (kind, kind.replace("_", " "), normalise(render.kind_label(kind, tr))):
            return kind
    _ = tr.gettext
    raise _Invalid(esc(_("Choose a kind: {kinds}.", kinds=", ".join(EVENT_KINDS))))


def _parse_text(text: str, limit: int, tr: Translator, *, one_line: bool = True) -> str:
    """Text of 1 to ``limit`` characters; titles and sources on one line."""
    text = " ".join(text.split()) if one_line else text.strip()
    if not 1 <= len(text) <= limit:
        _ = tr.gettext
        raise _Invalid(
            esc(
                _(
                    "Send 1 to {limit} characters; this has {count}.",
                    limit=limit,
                    count=len(text),
                )
            )
        )
    return text


def _parse_country(text: str, tr: Translator) -> str:
    code = text.strip().upper()
    english = Locale("en").territories
    if len(code) == 2 and code.isalpha() and code in english:
        return code
    wanted = normalise(text)
    for names in (tr.locale.territories, english):
        for candidate, name in names.items():
            if len(candidate) == 2 and candidate.isalpha() and normalise(str(name)) == wanted:
                return str(candidate)
    _ = tr.gettext
    raise _Invalid(
        esc(_("“{value}” is not a country I know; send an ISO code such as KZ.", value=text[:40]))
    )


async def _parse_place(context: BotContext, text: str) -> PlaceView | None:
    """A known place by key or name; None for "none"."""
    tr = context.tr
    if _is_none(text, tr):
        return None
    async with context.services.database.sessions() as session:
        place = await find_place(session, text)
        if place is not None:
            return place
        suggestions = await place_suggestions(session, text, tr.language)
    _ = tr.gettext
    message = _("I don't know the city “{name}”.", name=esc(text[:100]))
    if suggestions:
        names = ", ".join(f"<b>{esc(name)}</b>" for name in suggestions)
        message += "\n" + _("Did you mean: {names}?", names=names)
    message += "\n" + esc(_("A new city comes with a data file (its places section)."))
    raise _Invalid(message)
