"""A data file sent to the bot as a document: imported like ``summitbot import``,
all or nothing, with every problem as file:line.
"""

from __future__ import annotations

import logging

from telegram import (
    Update,
)

from bot.context import BotContext
from bot.handlers.operators.previews import _import_text, _problems_text
from bot.permissions import is_operator
from bot.presentation.messaging import answer
from bot.presentation.text import Reply, esc
from storage.datafile import (
    MAX_FILE_BYTES,
    DatasetError,
)
from storage.operations import (
    import_document,
)

# --- data files -------------------------------------------------------------------------


log = logging.getLogger(__name__)


async def data_file(update: Update, context: BotContext) -> None:
    """A YAML data file sent by an operator: imported like ``summitbot import``."""
    message = update.effective_message
    document = message.document if message is not None else None
    if document is None:
        return
    _ = context.tr.gettext
    if not is_operator(update, context):
        user = update.effective_user
        log.info("refused a data file from user %s (not an operator)", user.id if user else None)
        await answer(update, context, Reply(esc(_("Only operators can import data files."))))
        return
    name = document.file_name or "data.yaml"
    if not name.casefold().endswith((".yaml", ".yml")):
        text = _("Send a data file in YAML (.yaml or .yml).")
        await answer(update, context, Reply(esc(text)))
        return
    too_large = _(
        "The file is larger than {size} MB; nothing was imported.",
        size=MAX_FILE_BYTES // (1024 * 1024),
    )
    if document.file_size is not None and document.file_size > MAX_FILE_BYTES:
        await answer(update, context, Reply(esc(too_large)))
        return
    data = await (await context.bot.get_file(document.file_id)).download_as_bytearray()
    if len(data) > MAX_FILE_BYTES:
        await answer(update, context, Reply(esc(too_large)))
        return
    try:
        text = bytes(data).decode("utf-8-sig")  # editors on Windows write a BOM
    except UnicodeDecodeError:
        await answer(
            update, context, Reply(esc(_("The file is not UTF-8 text; nothing was imported.")))
        )
        return
    user_id = update.effective_user.id if update.effective_user else 0
    services = context.services
    try:
        async with services.database.transaction() as session:
            report = await import_document(
                session,
                text,
                name,
                changed_by=f"operator {user_id}",
                now=context.clock.now(),
                planner=services.dispatcher.planner,
            )
    except DatasetError as exc:
        log.info("data file %s from user %s refused: %d problems", name, user_id, len(exc.problems))
        await answer(update, context, Reply(_problems_text(exc.problems, context.tr)))
        return
    log.info("user %s imported %s: %s", user_id, name, report.summary())
    await services.dispatcher.poke()
    await answer(update, context, Reply(_import_text(name, report, context.tr)))
