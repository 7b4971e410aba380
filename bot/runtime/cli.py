"""The ``summitbot`` command: run, webhook, webapp, console, db upgrade|backup, import,
export, sources add|list|remove|check."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from pythonjsonlogger.json import JsonFormatter

from bot.clock import Clock, FixedClock, SystemClock
from bot.context import BotApplication
from config.languages import SUPPORTED_LANGUAGES, normalise_language
from config.settings import Settings, load_settings
from storage.database import Database, DatabaseInUse
from storage.datafile import DatasetError
from storage.dataset import follow_up_import, import_files, prepare_database
from storage.export import export_dataset
from storage.models import SourceKind
from storage.planning import Planner
from storage.sources import (
    MIN_INTERVAL,
    SourceError,
    SourceView,
    UnknownOrganisation,
    add_source,
    list_sources,
    remove_source,
)

log = logging.getLogger("summitbot")

NO_TOKEN_MESSAGE = """\
BOT_TOKEN is not set, so the bot cannot connect to Telegram.

To get a token, open a chat with @BotFather in Telegram, send /newbot and follow
its questions; it answers with a token like 123456789:AAE-…. Then either
  export BOT_TOKEN=123456789:AAE-…
or put BOT_TOKEN=… in a .env file here, and run `summitbot run` again.

To try the bot without a token or a network, run `summitbot console`
(or `make console`): a chat with the bot in this terminal.
"""


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[REDACTED]")
    return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then blots out secrets wherever they appear (URLs, tracebacks)."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self.secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        return _redact(super().format(record), self.secrets)


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per line (``LOG_FORMAT=json``): time, level, logger, message and
    the fields a line carries (update_id, chat_id, duration_ms…), secrets blotted out."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            json_ensure_ascii=False,
        )
        self.secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        return _redact(super().format(record), self.secrets)


def configure_logging(level: str, secrets: Sequence[str] = (), log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    # Libraries log request URLs, and Bot API URLs contain the token.
    handler.setFormatter(
        RedactingJsonFormatter(secrets)
        if log_format == "json"
        else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # httpx logs every request URL at INFO, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # APScheduler logs each job run at INFO; the sweep runs every few seconds.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # aiosqlite logs every statement and row fetch at DEBUG: noise, not insight.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    # Uvicorn's own lines go through the same handler (no access log: one line per update
    # is logged by the application itself).
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise SystemExit(f"The settings are not valid:\n{problems}") from None


def _has_token(settings: Settings) -> bool:
    if settings.bot_token is None or not settings.bot_token.get_secret_value().strip():
        sys.stderr.write(NO_TOKEN_MESSAGE)
        return False
    return True


def command_run(settings: Settings) -> int:
    if not _has_token(settings):
        return 2
    from bot.app import build_application
    from bot.runtime.serve import serve_polling

    application = build_application(settings)
    if not _hold_database(application):
        return 2
    asyncio.run(serve_polling(application, settings))
    return 0


WEBHOOK_SETTINGS_MESSAGE = """\
Webhook mode needs WEBHOOK_URL (the public HTTPS address Telegram posts updates to,
e.g. https://bot.example.org/telegram) and WEBHOOK_SECRET (1-256 letters, digits,
_ or -; Telegram sends it back with every update so others cannot post fake ones).
Missing: {missing}.
"""


def command_webhook(settings: Settings) -> int:
    if not _has_token(settings):
        return 2
    missing = [
        name
        for name, value in (
            ("WEBHOOK_URL", settings.webhook_url),
            ("WEBHOOK_SECRET", settings.webhook_secret),
        )
        if not value
    ]
    if missing:
        sys.stderr.write(WEBHOOK_SETTINGS_MESSAGE.format(missing=", ".join(missing)))
        return 2
    from bot.app import build_application
    from bot.runtime.serve import serve_webhook

    application = build_application(settings, with_updater=False)
    if not _hold_database(application):
        return 2
    asyncio.run(serve_webhook(application, settings))
    return 0


def command_webapp(settings: Settings) -> int:
    """The Mini App alone over HTTP (development, tests); BOT_TOKEN checks its initData."""
    if not _has_token(settings):
        return 2
    from bot.runtime.serve import serve_webapp

    asyncio.run(serve_webapp(settings))
    return 0


def _hold_database(application: BotApplication) -> bool:
    """One process per SQLite file; tell the dispatcher it is alone."""
    services = application.bot_data.services
    try:
        services.dispatcher.sole_process = services.database.lock_exclusively()
    except DatabaseInUse as exc:
        sys.stderr.write(f"{exc}\n")
        return False
    return True


def command_console(settings: Settings, language: str | None, now: str | None) -> int:
    from bot.runtime.console import run_console

    clock: Clock | None = None
    if now:
        try:
            moment = dt.datetime.fromisoformat(now)
        except ValueError:
            sys.stderr.write(f"--now {now!r} is not a date-time such as 2024-07-01T09:00Z\n")
            return 2
        clock = FixedClock(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC))
    chosen = normalise_language(language or os.environ.get("LANG"), settings.default_language)
    try:
        asyncio.run(run_console(settings, language=chosen, clock=clock))
    except DatabaseInUse as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    return 0


async def _backup(settings: Settings, target: Path) -> int:
    database = Database(settings.database_url)
    try:
        if not database.is_sqlite:
            sys.stderr.write(
                "`summitbot db backup` copies a SQLite database. For PostgreSQL use pg_dump, "
                'e.g.: pg_dump --format=custom --file=summitbot.dump "$DATABASE_URL" '
                "(with the URL in libpq form, without +asyncpg).\n"
            )
            return 2
        pages = await database.backup_to(target)
    except FileExistsError:
        sys.stderr.write(f"{target} exists already; choose a new file name.\n")
        return 1
    except FileNotFoundError as exc:
        sys.stderr.write(f"There is no database at {exc}; check DATABASE_URL.\n")
        return 1
    finally:
        await database.dispose()
    sys.stdout.write(f"Backed up the database to {target} ({pages} pages).\n")
    return 0


async def _upgrade(settings: Settings) -> None:
    database = Database(settings.database_url)
    try:
        await prepare_database(database, settings.dataset_dir)
    finally:
        await database.dispose()


async def _import(settings: Settings, paths: Sequence[Path]) -> int:
    database = Database(settings.database_url)
    try:
        await prepare_database(database, settings.dataset_dir)
        async with database.transaction() as session:
            report = await import_files(session, paths, changed_by="summitbot import")
            # Followers hear about changed events; reminders move with them.
            await follow_up_import(session, report, dt.datetime.now(dt.UTC), Planner())
    except DatasetError as exc:
        sys.stderr.write(f"Nothing was imported: {len(exc.problems)} problem(s).\n")
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        return 1
    finally:
        await database.dispose()
    sys.stdout.write(f"Imported: {report.summary()}\n")
    return 0


async def _export(settings: Settings, output: Path | None) -> int:
    database = Database(settings.database_url)
    try:
        await prepare_database(database, settings.dataset_dir)
        async with database.sessions() as session:
            text = await export_dataset(session)
    finally:
        await database.dispose()
    if output is None:
        sys.stdout.write(text)
    else:
        await asyncio.to_thread(output.write_text, text, encoding="utf-8")
        sys.stderr.write(f"Wrote {output}\n")
    return 0


def _source_line(source: SourceView) -> str:
    polled = source.last_polled_at.isoformat(timespec="minutes") if source.last_polled_at else "-"
    parts = [
        f"#{source.id}",
        source.url,
        source.kind.value,
        source.organisation or "-",
        f"every {int(source.interval.total_seconds() // 60)} min",
        "on" if source.enabled else "off",
        f"last poll {polled} {source.last_status or 'not polled yet'}",
    ]
    if source.last_error:
        parts.append(f"error: {source.last_error}" if source.failures else source.last_error)
    return " | ".join(parts)


async def _sources(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.handlers.operators.sources import kind_for, parse_interval
    from bot.sources.fetch import SourceUrlError, check_source_url
    from bot.sources.poller import SourcePoller

    database = Database(settings.database_url)
    try:
        await prepare_database(database, settings.dataset_dir)
        match arguments.sources_command:
            case "list":
                async with database.sessions() as session:
                    found = await list_sources(session)
                for source in found:
                    sys.stdout.write(_source_line(source) + "\n")
                if not found:
                    sys.stdout.write("No sources yet.\n")
                return 0
            case "add":
                try:
                    url = check_source_url(arguments.url, allow_local=settings.sources_allow_local)
                except SourceUrlError as exc:
                    sys.stderr.write(f"This address cannot be followed ({exc.code}): {exc}\n")
                    return 2
                interval = parse_interval(arguments.interval)
                if interval is None or interval < MIN_INTERVAL:
                    sys.stderr.write("The interval must be at least 5 minutes (e.g. 30m, 2h).\n")
                    return 2
                kind = SourceKind(arguments.kind) if arguments.kind else kind_for(url)
                if kind is SourceKind.ICAL and not arguments.organisation:
                    sys.stderr.write("A calendar feed needs an organisation (--organisation).\n")
                    return 2
                try:
                    async with database.transaction() as session:
                        source = await add_source(
                            session,
                            url=url,
                            kind=kind,
                            organisation=arguments.organisation,
                            language=arguments.language,
                            interval=interval,
                            added_by="summitbot sources add",
                            now=dt.datetime.now(dt.UTC),
                        )
                except UnknownOrganisation as exc:
                    sys.stderr.write(f"Unknown organisation: {exc}\n")
                    return 2
                except SourceError as exc:
                    sys.stderr.write(f"Not added ({exc.reason}): {exc}\n")
                    return 2
                sys.stdout.write(f"Added source #{source.id}: {url}\n")
                return 0
            case "remove":
                async with database.transaction() as session:
                    removed = await remove_source(session, arguments.id)
                if not removed:
                    sys.stderr.write(f"There is no source #{arguments.id}.\n")
                    return 1
                sys.stdout.write(f"Removed source #{arguments.id}; the events it created stay.\n")
                return 0
        # check: poll now, as /sources check does (the running bot sends the notices).
        poller = SourcePoller(database, SystemClock(), settings, Planner())
        try:
            outcome = await poller.poll_now(arguments.id)
        finally:
            await poller.fetcher.close()
        if outcome is None:
            sys.stderr.write(f"There is no source #{arguments.id}.\n")
            return 1
        if outcome.report is None:
            detail = f": {outcome.error}" if outcome.error else ""
            sys.stdout.write(f"Source #{arguments.id}: {outcome.status}{detail}\n")
            return 1 if outcome.failed else 0
        report = outcome.report
        sys.stdout.write(
            f"Source #{arguments.id}: {len(report.added)} new, {len(report.changed)} changed, "
            f"{len(report.gone)} gone, {len(report.kept_edits)} kept as edited, "
            f"{len(outcome.skipped)} skipped\n"
        )
        for line in outcome.skipped:
            sys.stdout.write(f"  skipped: {line}\n")
        return 0
    finally:
        await database.dispose()


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="summitbot",
        description="A Telegram bot about international organisations, chairs and summits.",
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the bot with long polling (needs BOT_TOKEN)")
    commands.add_parser(
        "webhook",
        help="serve Telegram's webhook, /healthz, /readyz and /metrics (needs BOT_TOKEN, "
        "WEBHOOK_URL, WEBHOOK_SECRET)",
    )
    commands.add_parser(
        "webapp",
        help="serve the Mini App alone over HTTP on WEBAPP_HOST:WEBAPP_PORT against the "
        "bot's database (needs BOT_TOKEN, which signs its initData)",
    )
    console = commands.add_parser("console", help="chat with the bot in this terminal")
    console.add_argument(
        "--language", choices=SUPPORTED_LANGUAGES, help="your language (default: from $LANG)"
    )
    console.add_argument("--now", help="pretend it is this UTC time, e.g. 2024-07-01T09:00")
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply the schema migrations")
    backup = db_commands.add_parser(
        "backup", help="copy the SQLite database to a file while the bot runs"
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="the new backup file")
    importer = commands.add_parser("import", help="import data files (all or nothing)")
    importer.add_argument("files", nargs="+", type=Path, metavar="FILE")
    exporter = commands.add_parser("export", help="write all data as a data file")
    exporter.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    sources = commands.add_parser("sources", help="feeds and data files the bot follows")
    source_commands = sources.add_subparsers(dest="sources_command", required=True)
    source_commands.add_parser("list", help="every source with its last poll")
    adding = source_commands.add_parser("add", help="follow an .ics feed or a data file")
    adding.add_argument("url", metavar="URL")
    adding.add_argument("-o", "--organisation", help="the organisation's key (feeds need one)")
    adding.add_argument("-i", "--interval", default="1h", help="how often: 30m, 2h… (≥ 5 min)")
    adding.add_argument("-l", "--language", default="en", choices=SUPPORTED_LANGUAGES)
    adding.add_argument("-k", "--kind", choices=[kind.value for kind in SourceKind])
    removing = source_commands.add_parser("remove", help="stop following (events stay)")
    removing.add_argument("id", type=int, metavar="ID")
    checking = source_commands.add_parser("check", help="poll a source now")
    checking.add_argument("id", type=int, metavar="ID")
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    settings = _settings()
    secrets = [
        settings.bot_token.get_secret_value() if settings.bot_token else "",
        settings.webhook_secret.get_secret_value() if settings.webhook_secret else "",
    ]
    serving = arguments.command in {"run", "webhook", "webapp"}
    configure_logging(settings.log_level if serving else "WARNING", secrets, settings.log_format)
    match arguments.command:
        case "run":
            return command_run(settings)
        case "webhook":
            return command_webhook(settings)
        case "webapp":
            return command_webapp(settings)
        case "console":
            return command_console(settings, arguments.language, arguments.now)
        case "db" if arguments.db_command == "backup":
            return asyncio.run(_backup(settings, arguments.file))
        case "db":
            asyncio.run(_upgrade(settings))
            sys.stdout.write("The database schema and the bundled dataset are up to date.\n")
            return 0
        case "import":
            return asyncio.run(_import(settings, arguments.files))
        case "export":
            return asyncio.run(_export(settings, arguments.output))
        case "sources":
            return asyncio.run(_sources(settings, arguments))
    return 2


if __name__ == "__main__":
    sys.exit(main())
