"""/sources: the feeds and data files the bot follows by itself (``bot.sources.poller``).

``/sources`` lists them with their state; ``add URL [ORGANISATION] [INTERVAL]``,
``remove ID``, ``on ID``, ``off ID``, ``check ID`` (poll now, and say what changed) and
``seen EVENT_ID`` (an operator's edit kept over a feed's change has been seen). Operators
only, in a private chat, like the other operator commands. What /review and /stats show
of sources is written here too, so that every line about a source reads alike.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from telegram import Update

from bot.context import BotContext
from bot.handlers.operators.pending import allowed
from bot.presentation.i18n import Translator
from bot.presentation.messaging import answer
from bot.presentation.text import Reply, bold, esc, localised
from bot.sources.fetch import SourceUrlError, check_source_url
from bot.sources.poller import PollOutcome
from config.languages import SUPPORTED_LANGUAGES
from storage.models import SourceKind
from storage.sources import (
    DEFAULT_INTERVAL,
    MIN_INTERVAL,
    SourceCounts,
    SourceError,
    SourceReview,
    SourceView,
    add_source,
    list_sources,
    mark_edit_seen,
    remove_source,
    set_enabled,
)

log = logging.getLogger(__name__)

_INTERVAL = re.compile(r"^(\d{1,6})(m|min|h|d)?$")
_UNITS = {None: 60, "m": 60, "min": 60, "h": 3600, "d": 86400}
MAX_INTERVAL = dt.timedelta(days=30)


def parse_interval(text: str) -> dt.timedelta | None:
    """``30m``, ``2h``, ``1d`` or minutes (``90``); None if it is not an interval."""
    match = _INTERVAL.fullmatch(text.strip().lower())
    if match is None or not match.group(1).isdecimal():
        return None
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def kind_for(url: str) -> SourceKind:
    """A URL whose path ends in .yaml or .yml is a data file; anything else a feed."""
    path = urlsplit(url).path.casefold()
    return SourceKind.DATAFILE if path.endswith((".yaml", ".yml")) else SourceKind.ICAL


# --- words ------------------------------------------------------------------------------


def status_text(status: str | None, tr: Translator) -> str:
    """A poll's status, or an error's code (bot.sources.fetch, the poller), in words."""
    _ = tr.gettext
    words = {
        None: _("not polled yet"),
        "ok": _("ok"),
        "not_modified": _("ok, not modified"),
        "not_https": _("the address must start with https://"),
        "not_a_url": _("this is not a web address"),
        "private_address": _("the address is on a local or private network"),
        "credentials": _("the address must not contain a user name or password"),
        "too_long": _("the address is too long"),
        "timeout": _("no answer in time"),
        "too_large": _("the file is too large"),
        "too_many_redirects": _("too many redirects"),
        "http_status": _("the server answered with an error"),
        "connection": _("the connection failed"),
        "dns": _("the host name is not known"),
        "invalid_feed": _("not an iCalendar feed"),
        "invalid_data": _("the data are not valid"),
        "internal": _("an error in the bot (see its log)"),
    }
    return words.get(status, status or "")


def interval_text(interval: dt.timedelta, tr: Translator) -> str:
    seconds = int(interval.total_seconds())
    if seconds % 86400 == 0:
        return tr.ngettext("every {count} day", "every {count} days", seconds // 86400)
    if seconds % 3600 == 0:
        return tr.ngettext("every {count} hour", "every {count} hours", seconds // 3600)
    return tr.ngettext("every {count} minute", "every {count} minutes", seconds // 60)


def moment_text(moment: dt.datetime, zone: str, tr: Translator) -> str:
    return format_datetime(moment.astimezone(ZoneInfo(zone)), "d MMM y, HH:mm", locale=tr.locale)


def source_lines(source: SourceView, zone: str, tr: Translator) -> list[str]:
    _ = tr.gettext
    kind = _("calendar feed") if source.kind is SourceKind.ICAL else _("data file")
    state = _("on") if source.enabled else _("off")
    facts = [kind, source.organisation or "—", interval_text(source.interval, tr), state]
    lines = [
        f"{bold(f'#{source.id}')} {esc(source.url)}",
        esc(" · ".join(facts)),
    ]
    if source.last_polled_at is None:
        lines.append(esc(_("Last poll: {status}", status=status_text(None, tr))))
    else:
        lines.append(
            esc(
                _(
                    "Last poll: {when}, {status}",
                    when=moment_text(source.last_polled_at, zone, tr),
                    status=status_text(source.last_status, tr),
                )
            )
        )
    if source.last_error:
        if source.failures:
            lines.append(esc(_("Error: {detail}", detail=source.last_error)))
        else:
            lines.append(esc(_("Not imported: {detail}", detail=source.last_error)))
    if source.failures:
        lines.append(
            esc(
                tr.ngettext(
                    "{count} failure in a row; next try {when}",
                    "{count} failures in a row; next try {when}",
                    source.failures,
                    when=moment_text(source.next_poll_at, zone, tr),
                )
            )
        )
    return lines


def sources_text(sources: list[SourceView], zone: str, tr: Translator) -> str:
    _ = tr.gettext
    lines = ["🔗 " + bold(_("Sources")) + " " + esc(_("(times in {zone})", zone=zone))]
    if not sources:
        lines.append(esc(_("No sources yet.")))
    for source in sources:
        lines += ["", *source_lines(source, zone, tr)]
    lines += ["", esc(usage_text(tr))]
    return "\n".join(lines)


def usage_text(tr: Translator) -> str:
    return tr.gettext(
        "/sources add URL [ORGANISATION] [INTERVAL] · /sources check ID · "
        "/sources on ID · /sources off ID · /sources remove ID"
    )


def outcome_text(outcome: PollOutcome, tr: Translator) -> str:
    _ = tr.gettext
    number = outcome.source_id
    if outcome.status == "busy":
        return _("Source #{id} is being polled right now; try again in a minute.", id=number)
    if outcome.status == "not_modified":
        return _("Source #{id} checked: not modified since the last poll.", id=number)
    if outcome.report is None:
        return _(
            "Source #{id} failed: {reason} ({detail}). Nothing was changed.",
            id=number,
            reason=status_text(outcome.status, tr),
            detail=outcome.error or "",
        )
    report = outcome.report
    lines = [
        _(
            "Source #{id} checked: {added} new, {changed} changed, {gone} gone.",
            id=number,
            added=len(report.added),
            changed=len(report.changed),
            gone=len(report.gone),
        )
    ]
    if report.kept_edits:
        lines.append(
            tr.ngettext(
                "{count} changed in the feed, kept the operator's edit (see /review).",
                "{count} changed in the feed, kept the operators' edits (see /review).",
                len(report.kept_edits),
            )
        )
    if outcome.skipped:
        lines.append(
            tr.ngettext(
                "{count} event of the feed was skipped:",
                "{count} events of the feed were skipped:",
                len(outcome.skipped),
            )
        )
        lines += [f"• {line}" for line in outcome.skipped[:5]]
    return "\n".join(lines)


def review_text(review: SourceReview, zone: str, tr: Translator) -> str:
    """The sources part of /review: failing sources, events gone or kept as edited."""
    _ = tr.gettext
    lines = ["🔗 " + bold(_("Sources that need a person"))]
    for source in review.failing:
        assert source.failing_since is not None
        failing = _(
            "Source #{id} has failed since {when}: {reason}. /sources",
            id=source.id,
            when=moment_text(source.failing_since, zone, tr),
            reason=status_text(source.last_status, tr),
        )
        lines.append("• " + esc(failing))
    for event in review.gone:
        gone = _(
            "{title} (/event {key}): gone from its feed since {when}",
            title=localised(event.title, tr.language),
            key=event.key,
            when=moment_text(event.since, zone, tr),
        )
        lines.append("• " + esc(gone))
    for event in review.kept_edits:
        kept = _(
            "{title} (/event {key}): changed in the feed, kept the operator's edit. "
            "Seen: /sources seen {key}",
            title=localised(event.title, tr.language),
            key=event.key,
        )
        lines.append("• " + esc(kept))
    return "\n".join(lines)


def stats_line(counts: SourceCounts, tr: Translator) -> str:
    return tr.ngettext(
        "Sources: {count} followed ({enabled} on, {failing} failing): /sources",
        "Sources: {count} followed ({enabled} on, {failing} failing): /sources",
        counts.total,
        enabled=counts.enabled,
        failing=counts.failing,
    )


# --- the command ------------------------------------------------------------------------


async def _say(update: Update, context: BotContext, text: str) -> None:
    await answer(update, context, Reply(esc(text)))


def _source_id(text: str) -> int | None:
    cleaned = text.removeprefix("#")
    return int(cleaned) if cleaned.isdecimal() and len(cleaned) <= 9 else None


async def sources(update: Update, context: BotContext) -> None:
    """/sources [add|remove|on|off|check|seen …]."""
    if not await allowed(update, context, "/sources"):
        return
    args = list(context.args or [])
    verb = args[0].casefold() if args else "list"
    _ = context.tr.gettext
    match verb:
        case "list":
            await _list(update, context)
        case "add" if len(args) >= 2:
            await _add(update, context, args[1], args[2:])
        case "remove" | "on" | "off" | "check" if len(args) == 2:
            source_id = _source_id(args[1])
            if source_id is None:
                await _say(update, context, _("{id} is not a source number.", id=args[1]))
            else:
                await _act(update, context, verb, source_id)
        case "seen" if len(args) == 2:
            async with context.services.database.transaction() as session:
                seen = await mark_edit_seen(session, args[1])
            if seen:
                await _say(update, context, _("Marked as seen: {key}.", key=args[1]))
            else:
                await _say(update, context, _("Nothing to mark for {key}.", key=args[1]))
        case _:
            await _say(update, context, usage_text(context.tr))


async def _list(update: Update, context: BotContext) -> None:
    async with context.services.database.sessions() as session:
        found = await list_sources(session)
    text = sources_text(found, context.chat_view.timezone, context.tr)
    await answer(update, context, Reply(text))


async def _add(update: Update, context: BotContext, url: str, rest: list[str]) -> None:
    _ = context.tr.gettext
    services = context.services
    try:
        checked = check_source_url(url, allow_local=services.settings.sources_allow_local)
    except SourceUrlError as exc:
        reason = status_text(exc.code, context.tr)
        await _say(update, context, _("This address cannot be followed: {reason}.", reason=reason))
        return
    interval = DEFAULT_INTERVAL
    language = "en"
    organisation: str | None = None
    for word in rest:
        if (parsed := parse_interval(word)) is not None:
            if parsed < MIN_INTERVAL:
                await _say(update, context, _("The interval must be at least 5 minutes."))
                return
            interval = min(parsed, MAX_INTERVAL)
        elif word.casefold() in SUPPORTED_LANGUAGES and organisation is not None:
            language = word.casefold()
        else:
            found = await context.catalogue.find_organisation(word)
            if found is None:
                await _say(update, context, _("Unknown organisation: {name}.", name=word))
                return
            organisation = found.key
    kind = kind_for(checked)
    if kind is SourceKind.ICAL and organisation is None:
        await _say(
            update,
            context,
            _("A calendar feed needs an organisation: /sources add URL ORGANISATION [INTERVAL]"),
        )
        return
    user_id = update.effective_user.id if update.effective_user else 0
    try:
        async with services.database.transaction() as session:
            source = await add_source(
                session,
                url=checked,
                kind=kind,
                organisation=organisation,
                language=language,
                interval=interval,
                added_by=f"operator {user_id}",
                now=context.clock.now(),
            )
    except SourceError as exc:
        # What the checks above let through only when something changed meanwhile.
        refusals = {
            "duplicate_url": _("This address is followed already: /sources"),
            "unknown_organisation": _("Unknown organisation: {name}.", name=organisation),
            "interval_too_short": _("The interval must be at least 5 minutes."),
        }
        await _say(update, context, refusals.get(exc.reason, usage_text(context.tr)))
        return
    log.info("user %s added source %s: %s", user_id, source.id, checked)
    text = _(
        "✅ Source #{id} added: {url}. It is polled within a minute, then {interval}.",
        id=source.id,
        url=checked,
        interval=interval_text(interval, context.tr),
    )
    await _say(update, context, text)


async def _act(update: Update, context: BotContext, verb: str, source_id: int) -> None:
    _ = context.tr.gettext
    services = context.services
    if verb == "check":
        outcome = await services.sources.poll_now(source_id)
        if outcome is None:
            await _say(update, context, _("There is no source #{id}.", id=source_id))
        else:
            await _say(update, context, outcome_text(outcome, context.tr))
        return
    async with services.database.transaction() as session:
        if verb == "remove":
            done = await remove_source(session, source_id)
        else:
            done = await set_enabled(session, source_id, verb == "on")
    if not done:
        await _say(update, context, _("There is no source #{id}.", id=source_id))
        return
    user = update.effective_user.id if update.effective_user else 0
    log.info("user %s: /sources %s %s", user, verb, source_id)
    texts = {
        "remove": _("Source #{id} removed; the events it created stay.", id=source_id),
        "on": _("Source #{id} is on.", id=source_id),
        "off": _("Source #{id} is off.", id=source_id),
    }
    await _say(update, context, texts[verb])
