"""Remembers every chat the bot hears from, before any other handler runs."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from config.languages import normalise_language
from storage.models import ChatType


async def remember_chat(update: Update, context: BotContext) -> None:
    """Store the chat on first contact (language from the user's Telegram settings)."""
    chat = update.effective_chat
    user = update.effective_user
    settings = context.services.settings
    # A group's language is that of the person who first spoke to the bot there, and stays.
    language = normalise_language(user.language_code if user else None, settings.default_language)
    # The catalogue's revision is read in the same statement as the chat: one round trip.
    revision = context.services.catalogue.revision_columns()
    if chat is None:
        if user is not None:  # inline queries and buttons under inline messages
            context.chat_view, along = await context.services.chats.view_for_user(
                user.id, language, read_along=revision
            )
            if along is not None:
                context.services.catalogue.use_revision(along)
        return
    try:
        chat_type = ChatType(chat.type)
    except ValueError:
        chat_type = ChatType.PRIVATE
    title = chat.title or chat.full_name or chat.username
    context.chat_view, along = await context.services.chats.ensure(
        chat.id,
        chat_type,
        title,
        language,
        context.clock.now(),
        # A membership change says itself whether the bot can write there.
        # In a channel only the bot's rights say that (a post can come while it may not post).
        reactivate=update.my_chat_member is None and chat_type is not ChatType.CHANNEL,
        read_along=revision,
    )
    if along is not None:
        context.services.catalogue.use_revision(along)
