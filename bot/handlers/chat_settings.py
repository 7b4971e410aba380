"""/lang and /tz: the chat's language and time zone (admins only in groups)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatType

from bot.context import BotContext, Services
from bot.handlers.arguments import joined
from bot.permissions import allowed_or_refused
from bot.presentation import callbacks, render
from bot.presentation.i18n import translator
from bot.presentation.messaging import answer, edit
from config.languages import SUPPORTED_LANGUAGES, normalise_language
from storage.chats import forget_chat
from storage.dialogues import forget_person
from storage.models import DigestFrequency
from storage.timezones import city_suggestions, nearest_city, resolve_timezone


async def _allowed(update: Update, context: BotContext) -> bool:
    refusal = context.tr.gettext("Only the admins of this group can change its settings.")
    return await allowed_or_refused(update, context, refusal)


async def lang(update: Update, context: BotContext) -> None:
    wanted = joined(context.args)
    if not wanted:
        await answer(update, context, render.language_menu(context.tr))
        return
    language = normalise_language(wanted, "")
    if not language:
        names = ", ".join(SUPPORTED_LANGUAGES)
        text = context.tr.gettext("I speak these languages: {names}.", names=names)
        await answer(update, context, render.Reply(render.esc(text)))
        return
    await set_language(update, context, language)


async def change_language(services: Services, chat_id: int, language: str) -> None:
    """A chat's new language (/lang, its buttons, the Mini App); cached replies go."""
    await services.chats.set_language(chat_id, language)
    services.reply_cache.clear_chat(chat_id)


async def change_timezone(services: Services, chat_id: int, zone: str, now: dt.datetime) -> None:
    """A chat's new time zone (/tz, a location, the Mini App): its reminders are planned
    again for it, and the dispatcher wakes by the earliest one re-planned."""
    first_due = await services.chats.set_timezone(chat_id, zone, now)
    services.reply_cache.clear_chat(chat_id)
    if first_due is not None:
        services.dispatcher.wake_by(first_due)


async def change_digest(
    services: Services, chat_id: int, frequency: DigestFrequency, now: dt.datetime
) -> None:
    """A chat's digest (/digest, the Mini App); its digests are planned again."""
    await services.chats.set_digest(chat_id, frequency, now)


async def set_language(update: Update, context: BotContext, language: str) -> None:
    """Change the chat's language and confirm in the new one (also for the buttons)."""
    if not await _allowed(update, context):
        return
    await change_language(context.services, context.chat_view.id, language)
    context.chat_view = replace(context.chat_view, language=language)  # confirm in it
    reply = render.language_set(translator(language))
    query = update.callback_query
    if query is not None:
        await query.answer()
        await edit(update, context, reply)
        return
    await answer(update, context, reply)


async def language_button(
    update: Update, context: BotContext, action: callbacks.SetLanguage
) -> None:
    await set_language(update, context, action.language)


async def tz(update: Update, context: BotContext) -> None:
    text = joined(context.args)
    now = context.clock.now()
    if not text:
        chat = update.effective_chat
        keyboard = None
        if chat is not None and chat.type == ChatType.PRIVATE:
            button = KeyboardButton(
                context.tr.gettext("📍 Send my location"), request_location=True
            )
            keyboard = ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
        reply = render.timezone_help(context.chat_view.timezone, now, context.tr)
        await answer(update, context, replace(reply, keyboard=keyboard))
        return
    if not await _allowed(update, context):
        return
    choice = resolve_timezone(text, now)
    if choice is None:
        suggestions = city_suggestions(text, context.tr.language)
        await answer(update, context, render.timezone_unknown(text, suggestions, context.tr))
        return
    await change_timezone(context.services, context.chat_view.id, choice.zone, now)
    await answer(update, context, render.timezone_set(choice, now, context.tr))


async def location(update: Update, context: BotContext) -> None:
    """A shared location (private chats): the nearest bundled city's time zone."""
    message = update.effective_message
    if message is None or message.location is None:
        return
    now = context.clock.now()
    city = nearest_city(message.location.latitude, message.location.longitude)
    await change_timezone(context.services, context.chat_view.id, city.timezone, now)
    reply = render.timezone_set_by_city(city, now, context.tr)
    await answer(update, context, replace(reply, keyboard=ReplyKeyboardRemove()))


async def digest(update: Update, context: BotContext) -> None:
    """/digest weekly|daily|off: a summary of the coming events this chat follows."""
    _ = context.tr.gettext
    wanted = joined(context.args).casefold()
    try:
        frequency = DigestFrequency(wanted)
    except ValueError:
        text = _(
            "Write /digest weekly (Mondays at 09:00), /digest daily (every day at 09:00) "
            "or /digest off. Now: {frequency}.",
            frequency=render.digest_label(context.chat_view.digest, context.tr),
        )
        await answer(update, context, render.Reply(render.esc(text)))
        return
    if not await _allowed(update, context):
        return
    await change_digest(context.services, context.chat_view.id, frequency, context.clock.now())
    if frequency is DigestFrequency.OFF:
        text = _("No more digests here.")
    else:
        text = _(
            "Done: a digest of the coming events this chat follows, {frequency} at 09:00 "
            "({zone}). An empty one is not sent.",
            frequency=_("every Monday") if frequency is DigestFrequency.WEEKLY else _("every day"),
            zone=context.chat_view.timezone,
        )
    await answer(update, context, render.Reply(render.esc(text)))


async def forgetme(update: Update, context: BotContext) -> None:
    """/forgetme: what would be deleted, with Delete / Keep buttons."""
    if not await _allowed(update, context):
        return
    _ = context.tr.gettext
    text = _(
        "This deletes everything I store about this chat: its language, time zone and "
        "digest setting, what it follows and the record of reminders sent. Delete it?"
    )
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_("🗑 Delete"), callback_data=callbacks.forget_me(True)),
                InlineKeyboardButton(_("Keep"), callback_data=callbacks.forget_me(False)),
            ]
        ]
    )
    await answer(update, context, render.Reply(render.esc(text), keyboard))


async def forget_me_button(update: Update, context: BotContext, confirmed: bool) -> None:
    query = update.callback_query
    assert query is not None
    if not await _allowed(update, context):
        return
    _ = context.tr.gettext
    await query.answer()
    if not confirmed:
        await edit(update, context, render.Reply(render.esc(_("Nothing was deleted."))))
        return
    chat_id = context.chat_view.id
    private = update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE
    async with context.services.database.transaction() as session:
        await forget_chat(session, chat_id)
        if private:  # the person's pending questions and operations
            await forget_person(session, query.from_user.id)
    context.services.reply_cache.clear_chat(chat_id)
    text = _("Done: everything about this chat is deleted. Writing to me again starts afresh.")
    await edit(update, context, render.Reply(render.esc(text)))
