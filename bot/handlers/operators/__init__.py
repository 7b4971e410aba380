"""Operators' commands: /addevent, /editevent, /postpone, /cancel, /setstatus, data
files sent as documents, /stats, /sources (and /review, in handlers.review).

Only the users in ``OPERATOR_IDS``, in a private chat, get through (``pending.allowed``).
Every change is shown as a preview under Save and Cancel and waits server-side under
a one-time token (``pending``); on Save it is written through ``storage.operations``,
which writes as an import does: the same checks, the change log, one notice per
follower, re-planned reminders. This package: ``dialogue`` (/addevent), ``edits``
(the one-line edits), ``imports`` (data files), ``stats``, ``sources`` (followed
feeds and data files), ``pending`` (who may, and
changes waiting for Save), ``reading`` (what operators type), ``previews``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import CommandHandler, MessageHandler, filters

from bot.context import BotApplication, BotContext
from bot.handlers.operators.dialogue import addevent, continue_dialogue
from bot.handlers.operators.edits import cancel_event, editevent, postpone, setstatus, show_change
from bot.handlers.operators.imports import data_file
from bot.handlers.operators.pending import (
    PendingOperation,
    allowed,
    ask_to_save,
    button,
    refuse,
)
from bot.handlers.operators.sources import sources
from bot.handlers.operators.stats import stats

# What other handlers use (the review queue, the button router, the app).
__all__ = [
    "PendingOperation",
    "allowed",
    "ask_to_save",
    "button",
    "continue_dialogue",
    "refuse",
    "register",
    "show_change",
]


# --- registration -----------------------------------------------------------------------


def register(application: BotApplication) -> None:
    """Add the operator handlers to ``application`` (group 0, before plain-text search).

    Answers within the /addevent dialogue, and /cancel there, are taken earlier, by
    :func:`continue_dialogue`; otherwise /cancel is the command that cancels an event.
    """
    commands: list[tuple[str, Callable[[Update, BotContext], Coroutine[Any, Any, None]]]] = [
        ("addevent", addevent),
        ("editevent", editevent),
        ("postpone", postpone),
        ("cancel", cancel_event),
        ("setstatus", setstatus),
        ("stats", stats),
        ("sources", sources),
    ]
    for name, callback in commands:
        application.add_handler(CommandHandler(name, callback))
    # Forwarded posts are how channels are linked (handlers.channels), not data files.
    documents = filters.ChatType.PRIVATE & filters.Document.ALL & ~filters.FORWARDED
    application.add_handler(MessageHandler(documents, data_file))
