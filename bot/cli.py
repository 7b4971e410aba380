"""The ``summitbot`` command: run, console, db upgrade, import, export."""

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
from telegram import Update

from bot.clock import Clock, FixedClock
from bot.context import BotApplication
from config.languages import SUPPORTED_LANGUAGES, normalise_language
from config.settings import Settings, load_settings
from storage.database import Database, DatabaseInUse
from storage.dataset import (
    DatasetError,
    export_dataset,
    follow_up_import,
    import_files,
    prepare_database,
)
from storage.deliveries import Planner

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


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then blots out secrets wherever they appear (URLs, tracebacks)."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self.secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text


def configure_logging(level: str, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler()
    # Libraries log request URLs, and Bot API URLs contain the token.
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # httpx logs every request URL at INFO, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # APScheduler logs each job run at INFO; the sweep runs every few seconds.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # aiosqlite logs every statement and row fetch at DEBUG: noise, not insight.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)


def _settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise SystemExit(f"The settings are not valid:\n{problems}") from None


def command_run(settings: Settings) -> int:
    if settings.bot_token is None or not settings.bot_token.get_secret_value().strip():
        sys.stderr.write(NO_TOKEN_MESSAGE)
        return 2
    from bot.app import build_application

    application = build_application(settings)
    if not _hold_database(application):
        return 2
    log.info("starting long polling against %s", settings.telegram_base_url.split("/bot")[0])
    application.run_polling(allowed_updates=Update.ALL_TYPES)
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
    from bot.console import run_console

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


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="summitbot",
        description="A Telegram bot about international organisations, chairs and summits.",
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the bot with long polling (needs BOT_TOKEN)")
    console = commands.add_parser("console", help="chat with the bot in this terminal")
    console.add_argument(
        "--language", choices=SUPPORTED_LANGUAGES, help="your language (default: from $LANG)"
    )
    console.add_argument("--now", help="pretend it is this UTC time, e.g. 2024-07-01T09:00")
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply the schema migrations")
    importer = commands.add_parser("import", help="import data files (all or nothing)")
    importer.add_argument("files", nargs="+", type=Path, metavar="FILE")
    exporter = commands.add_parser("export", help="write all data as a data file")
    exporter.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    settings = _settings()
    token = settings.bot_token.get_secret_value() if settings.bot_token else ""
    configure_logging(settings.log_level if arguments.command == "run" else "WARNING", [token])
    match arguments.command:
        case "run":
            return command_run(settings)
        case "console":
            return command_console(settings, arguments.language, arguments.now)
        case "db":
            asyncio.run(_upgrade(settings))
            sys.stdout.write("The database schema and the bundled dataset are up to date.\n")
            return 0
        case "import":
            return asyncio.run(_import(settings, arguments.files))
        case "export":
            return asyncio.run(_export(settings, arguments.output))
    return 2


if __name__ == "__main__":
    sys.exit(main())
