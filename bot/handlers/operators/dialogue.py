"""/addevent: a guided dialogue, one question at a time, each answer checked; its
state is in the database (storage.dialogues), so any replica takes the next answer.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError
from telegram import (
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatType as TelegramChatType
from telegram.ext import ApplicationHandlerStop, CommandHandler, filters

from bot.context import BotContext
from bot.handlers import channels
from bot.handlers.operators.pending import allowed, ask_to_save
from bot.handlers.operators.previews import _card_text
from bot.handlers.operators.reading import (
    _Invalid,
    _is_none,
    _parse_country,
    _parse_dates,
    _parse_kind,
    _parse_place,
    _parse_status,
    _parse_text,
)
from bot.presentation import render
from bot.presentation.messaging import answer
from bot.presentation.text import Reply, bold, esc
from storage.datafile import (
    EVENT_KINDS,
    EventRow,
)
from storage.dates import PartialDate, Precision
from storage.dialogues import (
    DialogueKind,
    DialogueState,
    advance_dialogue,
    current_dialogue,
    end_dialogue,
    start_dialogue,
)
from storage.models import EventStatus
from storage.operations import (
    MAX_SOURCE,
    MAX_TITLE,
    check_event,
    free_event_id,
    preview,
    proposed_event_id,
)
from storage.timezones import city_suggestions, resolve_timezone

DIALOGUE_TIMEOUT = dt.timedelta(minutes=30)


class Question(enum.StrEnum):
    """The /addevent questions; the dialogue's step is the one to answer next."""

    ORGANISATION = "organisation"
    KIND = "kind"
    TITLE = "title"
    PLACE = "place"
    COUNTRY = "country"
    DATES = "dates"
    ZONE = "zone"
    STATUS = "status"
    SOURCE = "source"
    DONE = "done"  # not asked: the answers are complete, show the preview


@dataclass
class Draft:
    """The answers of an /addevent dialogue so far."""

    organisation: str | None = None  # an organisation's key
    kind: str = "summit"
    title: str = ""
    place: str | None = None  # a known place's key
    country: str | None = None
    start: PartialDate | None = None
    end: PartialDate | None = None
    timezone: str | None = None
    status: EventStatus = EventStatus.PLANNED
    sources: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """As stored with the dialogue (dates as they are written in data files)."""
        return {
            **asdict(self),
            "start": self.start.literal if self.start else None,
            "end": self.end.literal if self.end else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Draft:
        start, end = data.get("start"), data.get("end")
        return cls(
            **{
                **data,
                "start": PartialDate.parse(start) if start else None,
                "end": PartialDate.parse(end) if end else None,
                "status": EventStatus(data.get("status", EventStatus.PLANNED)),
            }
        )


# --- /addevent --------------------------------------------------------------------------


def _keyboard(options: Sequence[str], columns: int = 3) -> ReplyKeyboardMarkup:
    buttons = [KeyboardButton(option) for option in options]
    rows = [buttons[i : i + columns] for i in range(0, len(buttons), columns)]
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)


async def _prompt(
    update: Update, context: BotContext, state: Question, draft: Draft, error: str | None = None
) -> None:
    """Ask the question of ``state`` (after what was wrong with the last answer)."""
    tr = context.tr
    _ = tr.gettext
    none = _("none")
    options: list[str] = []
    if state == Question.ORGANISATION:
        text = _(
            "Which organisation holds it? Send its key or name (sco, ШОС), or “{none}”.",
            none=none,
        )
        orgs = await context.catalogue.organisations()
        options = [render.organisation_short(org, tr) for org in orgs] + [none]
    elif state == Question.KIND:
        text = _("What kind of event is it?")
        options = [render.kind_label(kind, tr) for kind in EVENT_KINDS]
    elif state == Question.TITLE:
        text = _("Its title in English (up to {limit} characters)?", limit=MAX_TITLE)
    elif state == Question.PLACE:
        text = _(
            "In which city? Send a city I know (Astana, Baku) or its key, or “{none}” "
            "when there is no city (online, or not known yet).",
            none=none,
        )
        options = [none]
    elif state == Question.COUNTRY:
        text = _("Which country? Send its ISO code (KZ) or its name, or “{none}”.", none=none)
        options = [none]
    elif state == Question.DATES:
        text = _(
            "When? Send the start, and the end after a space if it lasts longer: "
            "2026-10-12 2026-10-14. A month (2026-10), a year (2026) or a time of day "
            "at the venue (2026-10-12T10:00) work too."
        )
    elif state == Question.ZONE:
        if draft.start is not None and draft.start.precision is Precision.TIME:
            text = _("Which time zone is the venue in? Send a zone (Asia/Almaty) or a city.")
        else:
            text = _(
                "Which time zone is the venue in? Send a zone (Asia/Almaty) or a city, or "
                "“{none}” for a date that is the same day everywhere.",
                none=none,
            )
            options = [none]
    elif state == Question.STATUS:
        text = _("What is its status?")
        options = [render.status_label(status, tr) for status in EventStatus]
    else:  # Question.SOURCE
        text = _(
            "Where is this from? Send a source (a link or a short reference, up to "
            "{limit} characters), or “{none}”.",
            limit=MAX_SOURCE,
            none=none,
        )
        options = [none]
    body = esc(text)
    if error:
        body = f"{error}\n\n{body}"
    keyboard = _keyboard(options) if options else ReplyKeyboardRemove()
    await answer(update, context, Reply(body, keyboard))


async def addevent(update: Update, context: BotContext) -> None:
    """/addevent: start the dialogue that adds an event (again, if one was under way)."""
    if not await allowed(update, context, "/addevent"):
        return
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None and user is not None
    draft, now = Draft(), context.clock.now()
    async with context.services.database.transaction() as session:
        await start_dialogue(
            session,
            user.id,
            chat.id,
            DialogueKind.ADD_EVENT,
            Question.ORGANISATION,
            draft.to_json(),
            now + DIALOGUE_TIMEOUT,
            now,
        )
    _ = context.tr.gettext
    intro = "➕ " + bold(_("New event")) + "\n" + esc(_("Answer a few questions; /cancel stops."))
    await answer(update, context, Reply(intro))
    await _prompt(update, context, Question.ORGANISATION, draft)


async def _organisation_step(context: BotContext, draft: Draft, text: str) -> Question:
    tr = context.tr
    if _is_none(text, tr):
        draft.organisation = None
        return Question.KIND
    org = await context.catalogue.find_organisation(text)
    if org is None:
        _ = tr.gettext
        message = _("I don't know the organisation “{name}”.", name=esc(text[:100]))
        suggestions = await context.catalogue.suggestions(text, "organisation")
        if suggestions:
            names = ", ".join(render.suggestion_label(s, tr) for s in suggestions)
            message += "\n" + _("Did you mean: {names}?", names=names)
        raise _Invalid(message)
    draft.organisation = org.key
    return Question.KIND


async def _kind_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.kind = _parse_kind(text, context.tr)
    return Question.TITLE


async def _title_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.title = _parse_text(text, MAX_TITLE, context.tr)
    return Question.PLACE


async def _place_step(context: BotContext, draft: Draft, text: str) -> Question:
    place = await _parse_place(context, text)
    if place is None:
        draft.place = None
        return Question.COUNTRY
    draft.place, draft.country, draft.timezone = place.key, place.country, place.timezone
    return Question.DATES


async def _country_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.country = None if _is_none(text, context.tr) else _parse_country(text, context.tr)
    return Question.DATES


async def _dates_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.start, draft.end = _parse_dates(text, context.tr)
    return Question.ZONE if draft.place is None else Question.STATUS


async def _zone_step(context: BotContext, draft: Draft, text: str) -> Question:
    tr = context.tr
    _ = tr.gettext
    timed = draft.start is not None and draft.start.precision is Precision.TIME
    if _is_none(text, tr):
        if timed:
            raise _Invalid(esc(_("An event with a time of day needs a time zone.")))
        draft.timezone = None
        return Question.STATUS
    choice = resolve_timezone(text, context.clock.now())
    if choice is None:
        suggestions = city_suggestions(text, tr.language)
        raise _Invalid(render.timezone_unknown(text, suggestions, tr).text)
    draft.timezone = choice.zone
    return Question.STATUS


async def _status_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.status = _parse_status(text, context.tr)
    return Question.SOURCE


async def _source_step(context: BotContext, draft: Draft, text: str) -> Question:
    tr = context.tr
    draft.sources = [] if _is_none(text, tr) else [_parse_text(text, MAX_SOURCE, tr)]
    return Question.DONE


Step = Callable[[BotContext, Draft, str], Awaitable[Question]]
_STEPS: dict[Question, Step] = {
    Question.ORGANISATION: _organisation_step,
    Question.KIND: _kind_step,
    Question.TITLE: _title_step,
    Question.PLACE: _place_step,
    Question.COUNTRY: _country_step,
    Question.DATES: _dates_step,
    Question.ZONE: _zone_step,
    Question.STATUS: _status_step,
    Question.SOURCE: _source_step,
}
_ANSWERS = filters.TEXT & ~filters.COMMAND


async def _answer_question(update: Update, context: BotContext, dialogue: DialogueState) -> None:
    """An answer to the question the dialogue is at: check it, then ask the next (or this
    one again, after what was wrong)."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    assert message is not None and chat is not None and user is not None
    asked, error = Question(dialogue.step), None
    draft = Draft.from_json(dialogue.data)
    try:
        following = await _STEPS[asked](context, draft, (message.text or "").strip())
    except _Invalid as exc:
        following, error = asked, exc.text
        draft = Draft.from_json(dialogue.data)  # as it was before the wrong answer
    now = context.clock.now()
    async with context.services.database.transaction() as session:
        if following is Question.DONE:
            ended = await end_dialogue(session, user.id, chat.id, now, DialogueKind.ADD_EVENT)
            going_on = ended is not None
        else:
            going_on = await advance_dialogue(
                session,
                user.id,
                chat.id,
                DialogueKind.ADD_EVENT,
                following,
                draft.to_json(),
                now + DIALOGUE_TIMEOUT,
            )
    if not going_on:  # left or started afresh meanwhile, through another process
        return
    if following is Question.DONE:
        await _show_new_event(update, context, draft)
    else:
        await _prompt(update, context, following, draft, error=error)


async def _show_new_event(update: Update, context: BotContext, draft: Draft) -> None:
    """The would-be card under Save and Cancel (the dialogue has ended)."""
    _ = context.tr.gettext
    assert draft.start is not None
    values = {
        "id": proposed_event_id(
            draft.organisation, draft.start, draft.place, draft.title, draft.kind
        ),
        "organisation": draft.organisation,
        "kind": draft.kind,
        "title": {"en": draft.title},
        "place": draft.place,
        "country": None if draft.place else draft.country,
        "timezone": None if draft.place else draft.timezone,
        "start": draft.start,
        "end": draft.end,
        "status": draft.status,
        "sources": draft.sources,
    }
    try:
        row = EventRow.model_validate(values)
    except ValidationError as exc:
        problems = [str(error["msg"]) for error in exc.errors()]
        await _cannot_save(update, context, problems)
        return
    async with context.services.database.sessions() as session:
        row = row.model_copy(update={"id": await free_event_id(session, row.id)})
        problems = await check_event(session, row)
        view = await preview(session, row, context.clock.now())
    if problems:
        await _cannot_save(update, context, problems)
        return
    heading = "🆕 " + bold(_("New event: check it, then save it"))
    await ask_to_save(update, context, f"{heading}\n\n{_card_text(view, context)}", row, None)


async def _cannot_save(update: Update, context: BotContext, problems: Sequence[str]) -> None:
    _ = context.tr.gettext
    text = _("This cannot be saved: {problems}", problems=esc("; ".join(problems)))
    await answer(update, context, Reply("⚠️ " + text, ReplyKeyboardRemove()))


async def cancel_dialogue(update: Update, context: BotContext) -> None:
    """/cancel inside the /addevent dialogue: leave it, nothing saved."""
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None and user is not None
    async with context.services.database.transaction() as session:
        await end_dialogue(session, user.id, chat.id, context.clock.now(), DialogueKind.ADD_EVENT)
    _ = context.tr.gettext
    text = esc(_("The new event is discarded; nothing was saved."))
    await answer(update, context, Reply(text, ReplyKeyboardRemove()))


_CANCEL = CommandHandler("cancel", cancel_dialogue)


async def _continue_addevent(update: Update, context: BotContext, dialogue: DialogueState) -> bool:
    """/cancel, or the answer to the question asked; False for anything else (another
    command, a sticker), which is handled as usual while the dialogue waits."""
    if _CANCEL.check_update(update):
        await cancel_dialogue(update, context)
        return True
    if not _ANSWERS.check_update(update):
        return False
    await _answer_question(update, context, dialogue)
    return True


async def continue_dialogue(update: Update, context: BotContext) -> None:
    """A person's new message in a private chat while they are in a dialogue: the answer to
    its question, whichever process asked it (the dialogue is kept in the database). An
    operator's /addevent is continued here, linking a channel in ``handlers.channels``; an
    answer goes no further (it is not taken for a search, or /cancel for the command).

    Registered by ``bot.app`` in a group of its own, after the chat is remembered.
    """
    message, chat, user = update.message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None or chat.type != TelegramChatType.PRIVATE:
        return  # an edit is no answer; dialogues are private
    if message.text is None and message.forward_origin is None:
        return
    if message.text and message.text.startswith("/") and not message.forward_origin:
        command = message.text.split()[0][1:].split("@")[0].casefold()
        if command != "cancel":
            return  # no dialogue takes another command as its answer: no lookup needed
    async with context.services.database.sessions() as session:
        dialogue = await current_dialogue(session, user.id, chat.id, context.clock.now())
    if dialogue is None:
        return
    if dialogue.kind is DialogueKind.ADD_EVENT:
        answered = await _continue_addevent(update, context, dialogue)
    else:
        answered = await channels.continue_dialogue(update, context, dialogue)
    if answered:
        raise ApplicationHandlerStop
