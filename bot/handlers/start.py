"""/start and /help: what the bot does and the commands."""

from __future__ import annotations

from telegram import BotCommand, Update

from bot.context import BotContext
from bot.presentation.dates import format_day
from bot.presentation.i18n import Translator
from bot.presentation.messaging import answer
from bot.presentation.text import Reply, bold, esc
from storage.queries import DatasetCurrency


def command_descriptions(tr: Translator) -> list[tuple[str, str]]:
    """The command menu, in one language (also used for ``set_my_commands``)."""
    _ = tr.gettext
    return [
        ("chairs", _("Who chairs each organisation (now, or /chairs 2024)")),
        ("upcoming", _("Upcoming summits and meetings")),
        ("next", _("The next summit, with a countdown (/next sco)")),
        ("summits", _("Summits of an organisation (/summits sco 2024)")),
        ("past", _("Past summits and meetings")),
        ("org", _("An organisation's card (/org sco)")),
        ("event", _("An event's card (/event sco-2024-astana)")),
        ("search", _("Find an organisation or event by any name")),
        ("subscribe", _("Get reminders: everything, an organisation or an event")),
        ("mysubs", _("What this chat follows; change lead times or unfollow")),
        ("unsubscribe", _("Stop following something")),
        ("leadtimes", _("How long before an event reminders come")),
        ("calendar", _("Everything this chat follows as a calendar file")),
        ("lang", _("The language of this chat")),
        ("tz", _("The time zone of this chat (/tz Almaty)")),
        ("digest", _("A digest of coming events: /digest weekly, daily or off")),
        ("channels", _("Link a channel and choose what it posts")),
        ("forgetme", _("Delete everything stored about this chat")),
        ("help", _("What this bot does")),
    ]


def bot_commands(tr: Translator) -> list[BotCommand]:
    return [BotCommand(name, description) for name, description in command_descriptions(tr)]


def help_text(tr: Translator, currency: DatasetCurrency | None = None) -> str:
    """/help: what the bot does, its commands, and how current its data are."""
    _ = tr.gettext
    lines = [
        bold(_("Summit tracker")),
        esc(
            _(
                "I know who chairs which international organisation, and when and where "
                "their summits are. Dates are shown only as precisely as they are known, "
                "with their sources."
            )
        ),
        "",
    ]
    lines.extend(f"/{name} — {esc(description)}" for name, description in command_descriptions(tr))
    lines.append("")
    lines.append(esc(_("In a private chat you can also just type a name: SCO, ШОС, 上合, CSTO.")))
    if currency is not None and currency.latest is not None:
        lines.append("")
        text = _("The data were last checked on {date}.", date=format_day(currency.latest, tr))
        if currency.oldest is not None and currency.oldest != currency.latest:
            text += " " + _(
                "The oldest fact was checked on {date}.", date=format_day(currency.oldest, tr)
            )
        lines.append(esc(text))
    return "\n".join(lines)


async def _help(context: BotContext) -> Reply:
    return Reply(help_text(context.tr, await context.catalogue.currency()))


async def start(update: Update, context: BotContext) -> None:
    """/start, also with a deep link from a channel post: /start e_<event id>."""
    payload = context.args[0] if context.args else ""
    if payload.startswith("e_") and len(payload) <= 42:
        from bot.handlers.events import show_event

        await show_event(update, context, payload[2:].casefold())
        return
    await answer(update, context, await _help(context))


async def help_command(update: Update, context: BotContext) -> None:
    await answer(update, context, await _help(context))
