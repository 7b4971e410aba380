"""The way into the Mini App from chat: "🗓 Open calendar" under /upcoming, /chairs and
event cards, and the menu button beside the message field.

Telegram allows ``web_app`` buttons in private chats only; in a group the button is a
link to ``t.me/<bot>/<WEBAPP_SHORT_NAME>?startapp=c<chat id>`` (the app then opens for
that group, ``bot.webapp.api``), and there is none without a short name. With no Mini
App address configured there is no button at all.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, MenuButtonWebApp, Update, WebAppInfo
from telegram.constants import ChatType

from bot.context import BotContext
from bot.presentation.i18n import Translator
from config.settings import Settings, webapp_url

_LINKED_CHATS = frozenset({ChatType.GROUP, ChatType.SUPERGROUP, ChatType.CHANNEL})


def open_calendar_button(
    tr: Translator,
    chat_type: str,
    chat_id: int,
    *,
    app_url: str | None,
    short_name: str | None,
    bot_username: str | None,
) -> InlineKeyboardButton | None:
    """The "🗓 Open calendar" button for a chat of ``chat_type``, or None where none fits."""
    if not app_url:
        return None
    text = tr.gettext("🗓 Open calendar")
    if chat_type == ChatType.PRIVATE:
        return InlineKeyboardButton(text, web_app=WebAppInfo(app_url))
    if chat_type in _LINKED_CHATS and short_name and bot_username:
        link = f"https://t.me/{bot_username}/{short_name}?startapp=c{chat_id}"
        return InlineKeyboardButton(text, url=link)
    return None


def calendar_button(update: Update | None, context: BotContext) -> InlineKeyboardButton | None:
    """The button for the chat ``update`` came from; None for messages sent through
    inline mode (no chat of the bot's: Telegram refuses ``web_app`` buttons there)."""
    chat = update.effective_chat if update is not None else None
    if chat is None:
        return None
    settings = context.services.settings
    try:
        username: str | None = context.bot.username
    except RuntimeError:  # a bot not initialised (never while updates are handled)
        username = None
    return open_calendar_button(
        context.tr,
        chat.type,
        chat.id,
        app_url=webapp_url(settings),
        short_name=settings.webapp_short_name,
        bot_username=username,
    )


def menu_button(settings: Settings, tr: Translator) -> MenuButtonWebApp | None:
    """The menu button that opens the Mini App in private chats, when its address is known."""
    url = webapp_url(settings)
    if url is None:
        return None
    return MenuButtonWebApp(tr.gettext("🗓 Calendar"), WebAppInfo(url))
