"""Channels: linking one from a private chat, managing it with buttons, /announce.

A channel owner adds the bot to the channel as an administrator allowed to post,
then, in a private chat, presses /channels → "Link a channel" and forwards any
post from the channel (or sends its @username). The bot checks that it can post
there and that the person administers the channel. Linked channels then get
reminders, notices and digests like any chat.

What the person was asked (a channel to link, a channel's time zone) is kept in the
database, so whichever bot process gets the answer takes it (``handlers.operators``
routes it here).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re

from sqlalchemy import select
from telegram import Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import CommandHandler, filters

from bot.context import BotApplication, BotContext
from bot.handlers.arguments import joined
from bot.permissions import ADMIN_STATUSES, is_operator
from bot.presentation import callbacks, render
from bot.presentation.messaging import answer, edit
from config.languages import SUPPORTED_LANGUAGES
from storage.chats import link_channel, linked_channels
from storage.dialogues import DialogueKind, DialogueState, end_dialogue, start_dialogue
from storage.followers import LEAD_TIME_CHOICES
from storage.models import (
    Chat,
    Delivery,
    DeliveryStatus,
    DigestFrequency,
    Event,
    SubscriptionScope,
)
from storage.notices import announce
from storage.timezones import resolve_timezone
from storage.views import ChatView

log = logging.getLogger(__name__)

# How long /announce waits for its posts before it reports (the rest follow).
ANNOUNCE_WAIT_SECONDS = 20.0
WAIT = dt.timedelta(minutes=10)  # after this a pending question is forgotten
_USERNAME = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{3,31})$")
_TYPED = filters.TEXT & ~filters.COMMAND


class ChannelRefused(Exception):
    """Linking refused; ``reason`` is for the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- linking --------------------------------------------------------------------------


async def _check_channel(context: BotContext, target: int | str, user_id: int) -> tuple[int, str]:
    """(channel id, title) if the bot may post there and the user administers it."""
    _ = context.tr.gettext
    bot = context.bot
    try:
        chat = await bot.get_chat(target)
    except (BadRequest, Forbidden) as exc:
        raise ChannelRefused(
            _("I cannot see that channel. Add me to it as an administrator first.")
        ) from exc
    if chat.type != ChatType.CHANNEL:
        raise ChannelRefused(_("That is not a channel."))
    try:
        me = await bot.get_chat_member(chat.id, bot.id)
        member = await bot.get_chat_member(chat.id, user_id)
    except TelegramError as exc:
        raise ChannelRefused(
            _("I cannot see that channel. Add me to it as an administrator first.")
        ) from exc
    if me.status != ChatMemberStatus.ADMINISTRATOR or not getattr(me, "can_post_messages", False):
        raise ChannelRefused(
            _("Make me an administrator of the channel with the right to post messages.")
        )
    if member.status not in ADMIN_STATUSES:
        raise ChannelRefused(_("Only the channel's administrators can link it."))
    return chat.id, chat.title or str(chat.id)


async def _ask(
    update: Update, context: BotContext, kind: DialogueKind, channel_id: int | None = None
) -> None:
    """Remember that the person's next message answers ``kind`` (about ``channel_id``)."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    now = context.clock.now()
    data = {} if channel_id is None else {"channel_id": channel_id}
    async with context.services.database.transaction() as session:
        await start_dialogue(session, user.id, chat.id, kind, kind.value, data, now + WAIT, now)


async def _stop_asking(
    update: Update, context: BotContext, kind: DialogueKind
) -> DialogueState | None:
    """The question of ``kind`` is answered; what it was about, if it was still open."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    async with context.services.database.transaction() as session:
        return await end_dialogue(session, user.id, chat.id, context.clock.now(), kind)


async def _link(update: Update, context: BotContext, target: int | str) -> None:
    user = update.effective_user
    if user is None:
        return
    await _stop_asking(update, context, DialogueKind.LINK_CHANNEL)
    try:
        channel_id, title = await _check_channel(context, target, user.id)
    except ChannelRefused as exc:
        await answer(update, context, render.Reply(render.esc(exc.reason)))
        return
    me = context.chat_view
    async with context.services.database.transaction() as session:
        await link_channel(
            session, channel_id, title, user.id, me.language, me.timezone, context.clock.now()
        )
    # Reminders dropped while the channel could not be reached are planned again.
    await context.services.chats.set_active(channel_id, True, "linked", context.clock.now())
    log.info("user %s linked channel %s", user.id, channel_id)
    await answer(update, context, await _menu(context, channel_id, linked=True))


async def forwarded(update: Update, context: BotContext) -> None:
    """A post forwarded from a channel into a private chat: link that channel."""
    message = update.effective_message
    origin = message.forward_origin if message else None
    chat = getattr(origin, "chat", None)
    if chat is None:
        return
    await _link(update, context, chat.id)


async def typed(update: Update, context: BotContext, dialogue: DialogueState) -> None:
    """Text while linking a channel (its @username) or setting a channel's time zone."""
    message = update.effective_message
    text = (message.text or "").strip() if message else ""
    if dialogue.kind is DialogueKind.CHANNEL_TIMEZONE:
        asked = await _stop_asking(update, context, DialogueKind.CHANNEL_TIMEZONE)
        if asked is not None:
            await _set_zone(update, context, int(asked.data["channel_id"]), text)
        return
    match = _USERNAME.match(text)
    if not match:
        await _stop_asking(update, context, DialogueKind.LINK_CHANNEL)
        _ = context.tr.gettext
        await answer(
            update,
            context,
            render.Reply(render.esc(_("That is not a channel's @username. Try /channels again."))),
        )
        return
    await _link(update, context, "@" + match[1])


async def continue_dialogue(update: Update, context: BotContext, dialogue: DialogueState) -> bool:
    """A private message while the person is linking a channel or giving a channel's time
    zone: a forwarded post links its channel, text is an @username or the zone. False for
    anything else (a command, a sticker), which is handled as usual while the question waits.
    """
    message = update.effective_message
    if message is not None and message.forward_origin is not None:
        await forwarded(update, context)
        return True
    if not _TYPED.check_update(update):
        return False
    await typed(update, context, dialogue)
    return True


# --- /channels and its buttons ------------------------------------------------------------


async def channels(update: Update, context: BotContext) -> None:
    _ = context.tr.gettext
    chat = update.effective_chat
    user = update.effective_user
    if chat is None or user is None:
        return
    if chat.type != ChatType.PRIVATE:
        text = _("Link and manage channels in a private chat with me.")
        await answer(update, context, render.Reply(render.esc(text)))
        return
    async with context.services.database.sessions() as session:
        mine = [ChatView.of(c) for c in await linked_channels(session, user.id)]
    await answer(update, context, render.channels_list(mine, context.tr))


async def _menu(context: BotContext, channel_id: int, *, linked: bool = False) -> render.Reply:
    subscriptions = await context.services.subscriptions.of_chat(channel_id)
    async with context.services.database.sessions() as session:
        chat = await session.get(Chat, channel_id)
        view = ChatView.of(chat) if chat else None
    orgs = await context.catalogue.organisations()
    assert view is not None
    return render.channel_menu(view, subscriptions, orgs, context.tr, linked=linked)


async def _may_manage(update: Update, context: BotContext, channel_id: int) -> bool:
    """A current administrator of a linked channel (asked of Telegram every time, so a
    person removed as admin loses control at once, even the one who linked it)."""
    user = update.effective_user
    if user is None:
        return False
    async with context.services.database.sessions() as session:
        chat = await session.get(Chat, channel_id)
    if chat is None or chat.linked_by is None:
        return False
    try:
        member = await context.bot.get_chat_member(channel_id, user.id)
    except TelegramError:
        return False
    return member.status in ADMIN_STATUSES


async def button(update: Update, context: BotContext, action: callbacks.ChannelAction) -> None:
    query = update.callback_query
    assert query is not None
    _ = context.tr.gettext
    if action.action == "link":
        await _ask(update, context, DialogueKind.LINK_CHANNEL)
        await query.answer()
        text = _(
            "Add me to the channel as an administrator who may post, then forward any post "
            "from the channel here, or send its @username."
        )
        await answer(update, context, render.Reply(render.esc(text)))
        return
    channel_id = action.channel_id
    if not await _may_manage(update, context, channel_id):
        log.info("user %s refused managing channel %s", query.from_user.id, channel_id)
        await query.answer(_("This button has expired."), show_alert=True)
        return
    now = context.clock.now()
    services = context.services
    argument = action.argument or ""
    match action.action:
        case "menu":
            pass
        case "all" | "org":
            scope = (
                SubscriptionScope.ALL if action.action == "all" else SubscriptionScope.ORGANISATION
            )
            key = None if scope is SubscriptionScope.ALL else argument
            existing = [
                s
                for s in await services.subscriptions.of_chat(channel_id)
                if s.scope is scope and (s.organisation.key if s.organisation else None) == key
            ]
            if existing:
                await services.subscriptions.unfollow(channel_id, existing[0].id, now)
            else:
                await services.subscriptions.follow(channel_id, scope, key, now)
        case "lead":
            current = set(await services.subscriptions.default_lead_times(channel_id))
            chosen = current ^ {int(argument)} if argument.isdecimal() else current
            if chosen and chosen <= set(LEAD_TIME_CHOICES):
                await services.subscriptions.set_lead_times(channel_id, None, sorted(chosen), now)
        case "lang" if argument in SUPPORTED_LANGUAGES:
            await services.chats.set_language(channel_id, argument)
        case "digest" if argument in {f.value for f in DigestFrequency}:
            await services.chats.set_digest(channel_id, DigestFrequency(argument), now)
        case "pause" | "resume":
            await services.chats.set_paused(channel_id, action.action == "pause", now)
        case "tz":
            await _ask(update, context, DialogueKind.CHANNEL_TIMEZONE, channel_id)
            await query.answer()
            text = _("Send the channel's time zone: a city, a zone such as Asia/Almaty, or UTC+5.")
            await answer(update, context, render.Reply(render.esc(text)))
            return
        case "unlink":
            await services.chats.unlink_channel(channel_id, now)
            await query.answer()
            await edit(update, context, render.Reply(render.esc(_("The channel is unlinked."))))
            return
        case _:
            await query.answer(_("This button has expired."), show_alert=True)
            return
    await query.answer()
    await services.dispatcher.poke()
    await edit(update, context, await _menu(context, channel_id))


async def _set_zone(update: Update, context: BotContext, channel_id: int, text: str) -> None:
    _ = context.tr.gettext
    if not await _may_manage(update, context, channel_id):
        await answer(update, context, render.Reply(render.esc(_("This button has expired."))))
        return
    choice = resolve_timezone(text, context.clock.now())
    if choice is None:
        await answer(update, context, render.timezone_unknown(text, [], context.tr))
        return
    await context.services.chats.set_timezone(channel_id, choice.zone, context.clock.now())
    await answer(update, context, await _menu(context, channel_id))


# --- /announce -------------------------------------------------------------------------------


async def announce_command(update: Update, context: BotContext) -> None:
    """/announce EVENT_ID [@channel …]: post an event's card to linked channels, once each."""
    _ = context.tr.gettext
    if not is_operator(update, context):
        user = update.effective_user
        log.info("refused /announce from user %s", user.id if user else None)
        await answer(update, context, render.Reply(render.esc(_("Only operators can do that."))))
        return
    chat = update.effective_chat
    if chat is None or chat.type != ChatType.PRIVATE:
        # It would list the linked channels in a group: operators work in private.
        text = _("Operator commands work only in a private chat with me.")
        await answer(update, context, render.Reply(render.esc(text)))
        return
    words = joined(context.args).split()
    if not words:
        text = _("Which event? Write /announce EVENT_ID, optionally followed by @channels.")
        await answer(update, context, render.Reply(render.esc(text)))
        return
    key, chosen = words[0].casefold(), await _channel_ids(context, words[1:])
    if chosen is None:
        await answer(update, context, render.Reply(render.esc(_("Unknown channel."))))
        return
    services, now = context.services, context.clock.now()
    async with services.database.transaction() as session:
        event = await session.scalar(select(Event).where(Event.key == key))
        if event is None:
            await answer(update, context, render.not_found(key, [], context.tr))
            return
        channels_ = [
            c
            for c in await linked_channels(session)
            if c.is_active and not c.paused and (not chosen or c.id in chosen)
        ]
        rows = await announce(session, event, [c.id for c in channels_], now)
        fresh = {chat_id for chat_id, row in rows.items() if row.status == DeliveryStatus.PENDING}
    # The sweep sends whatever is due, which may take long: the reply waits a while, then
    # reports what is posted so far. The sweep goes on (and is never cut off half-way
    # by this update's end: the application waits for it when stopping).
    sweeping = context.application.create_task(services.dispatcher.sweep(), update=update)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(sweeping), ANNOUNCE_WAIT_SECONDS)
    async with services.database.sessions() as session:
        outcome = {
            c.title or str(c.id): await session.get(Delivery, rows[c.id].id)
            for c in channels_
            if c.id in rows
        }
    names = {c.title or str(c.id) for c in channels_ if c.id in fresh}
    await answer(update, context, render.announce_summary(outcome, names, context.tr))


async def _channel_ids(context: BotContext, names: list[str]) -> set[int] | None:
    """The ids of channels named as @username or id; None if one is unknown."""
    ids = set()
    for name in names:
        target: int | str = int(name) if name.lstrip("-").isdecimal() else "@" + name.lstrip("@")
        try:
            ids.add((await context.bot.get_chat(target)).id)
        except TelegramError:
            return None
    return ids


def register(application: BotApplication) -> None:
    """Add the channel handlers to ``application`` (answers to the bot's questions are
    taken earlier, by ``handlers.operators.continue_dialogue``)."""
    application.add_handler(CommandHandler("channels", channels))
    application.add_handler(CommandHandler("announce", announce_command))
