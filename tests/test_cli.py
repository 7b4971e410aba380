"""The ``summitbot`` command as people run it: in a subprocess, with a clean environment."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.botapi import LocalBotApi
from tests.conftest import TEST_TOKEN


def environment(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"BOT_TOKEN", "DATABASE_URL", "TELEGRAM_BASE_URL", "OPERATOR_IDS"}
    }
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    env.update(values)
    return env


async def summitbot(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.runtime.cli",
        *args,
        cwd=tmp_path,
        env=environment(tmp_path, **env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_run_without_a_token_says_how_to_get_one(tmp_path: Path) -> None:
    code, _, err = await summitbot(tmp_path, "run")
    assert code == 2
    assert "@BotFather" in err
    assert "summitbot console" in err


async def test_console_answers_a_script_and_presses_buttons(tmp_path: Path) -> None:
    script = "/chairs 2024\n7\n/org nosuchthing\n"
    code, out, err = await summitbot(
        tmp_path, "console", "--language", "en", "--now", "2026-11-22T09:00", stdin=script
    )
    assert code == 0, err
    assert "> /chairs 2024" in out
    assert "Who chaired what in 2024" in out
    assert "[7] SCO" in out
    # Button 7 is the SCO: its card follows.
    assert "Shanghai Cooperation Organisation (SCO)" in out
    assert "I don't know “nosuchthing”" in out
    assert "<b>" not in out  # HTML is rendered as text


async def test_the_console_on_2_january_2027_shows_the_calendar_year_chairs_moved_on(
    tmp_path: Path,
) -> None:
    script = "/chairs\n/help\n"
    code, out, err = await summitbot(
        tmp_path, "console", "--language", "en", "--now", "2027-01-02", stdin=script
    )
    assert code == 0, err
    assert "Who chairs what on 2 January 2027" in out
    assert "Russia's term ended on 31 December 2026; the successor is not recorded." in out
    assert "By rotation expected: Tajikistan for 2027 (a projection, unconfirmed)" in out
    assert "Turkmenistan's term ended on 31 December 2026" in out
    assert "By rotation expected: Uzbekistan for 2027 (a projection, unconfirmed)" in out
    assert "Russia: 1 Jan" not in out  # not shown as if it ran on
    assert "The data were last checked on 7 December 2026." in out


async def test_import_reports_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "events:\n"
        "  - id: good-one\n"
        "    title: A fine meeting\n"
        "    start: 2027-05-01\n"
        "  - id: bad-one\n"
        "    title: A bad meeting\n"
        "    start: 2027-13-01\n",
        encoding="utf-8",
    )
    code, _, err = await summitbot(tmp_path, "import", str(bad))
    assert code == 1
    assert f"{bad}:7: start: '2027-13-01': month 13 does not exist" in err
    code, out, _ = await summitbot(tmp_path, "export")
    assert code == 0
    assert "good-one" not in out
    assert "id: sco-2024-astana" in out


async def test_import_then_export_carries_the_new_event(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "events:\n"
        "  - id: sco-2027\n"
        "    organisation: sco\n"
        "    title: {en: 27th SCO summit, ru: 27-й саммит ШОС}\n"
        "    start: 2027-07\n",
        encoding="utf-8",
    )
    code, out, err = await summitbot(tmp_path, "import", str(good))
    assert code == 0, err
    assert "events: 1 added" in out
    code, out, _ = await summitbot(tmp_path, "export")
    assert "id: sco-2027" in out
    assert "start: 2027-07\n" in out


async def test_db_upgrade_is_repeatable(tmp_path: Path) -> None:
    for _ in range(2):
        code, out, err = await summitbot(tmp_path, "db", "upgrade")
        assert code == 0, err
        assert "up to date" in out


async def test_db_backup_copies_the_sqlite_database_and_never_overwrites(tmp_path: Path) -> None:
    import sqlite3

    assert (await summitbot(tmp_path, "db", "upgrade"))[0] == 0
    target = tmp_path / "backups" / "summitbot-copy.sqlite3"
    target.parent.mkdir()
    code, out, err = await summitbot(tmp_path, "db", "backup", str(target))
    assert code == 0, err
    assert f"Backed up the database to {target}" in out
    with sqlite3.connect(target) as copy:
        (events,) = copy.execute("SELECT count(*) FROM events").fetchone()
        (organisation,) = copy.execute("SELECT key FROM organisations WHERE key = 'sco'").fetchone()
    assert events > 40 and organisation == "sco"
    again = await summitbot(tmp_path, "db", "backup", str(target))
    assert again[0] == 1 and "exists already" in again[2]


async def test_db_backup_on_postgresql_points_to_pg_dump(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://summitbot@127.0.0.1:1/none"
    code, _, err = await summitbot(tmp_path, "db", "backup", "x.dump", DATABASE_URL=url)
    assert code == 2 and "pg_dump" in err


@pytest.mark.parametrize("setting", ["DEFAULT_TIMEZONE=Mars/Olympus", "OPERATOR_IDS=alice"])
async def test_bad_settings_are_named(tmp_path: Path, setting: str) -> None:
    name, value = setting.split("=")
    code, _, err = await summitbot(tmp_path, "db", "upgrade", **{name: value})
    assert code != 0
    assert name in err


async def test_run_serves_telegram_and_never_logs_the_token(
    tmp_path: Path, bot_api: LocalBotApi
) -> None:
    log_file = tmp_path / "bot.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.runtime.cli",
        "run",
        cwd=tmp_path,
        env=environment(
            tmp_path,
            BOT_TOKEN=TEST_TOKEN,
            TELEGRAM_BASE_URL=bot_api.base_url,
            LOG_LEVEL="DEBUG",
        ),
        # A file, not a pipe: DEBUG logs would fill a pipe nobody reads yet.
        stdout=log_file.open("wb"),
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        # A whole conversation, with a request Telegram fails, at DEBUG.
        reply = await bot_api.reply_to(bot_api.message("/chairs 2024"), timeout=60)
        assert "Who chaired what in 2024" in reply.text
        for text in ("/subscribe sco", "/mysubs", "/tz Berlin", "ШОС"):
            await bot_api.reply_to(bot_api.message(text))
        bot_api.fail("sendMessage", 500, "Internal Server Error")
        bot_api.message("/upcoming")
        await bot_api.wait_for(lambda c: "something went wrong" in c.text, timeout=30)
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)
    logs = log_file.read_text(encoding="utf-8")
    assert process.returncode == 0, logs[-2000:]
    assert "getUpdates" in logs  # DEBUG logging was on
    assert "Internal Server Error" in logs  # the failure was logged…
    assert TEST_TOKEN not in logs  # …and the token nowhere
    assert TEST_TOKEN.split(":")[1] not in logs


async def test_import_of_a_changed_event_notifies_its_followers(tmp_path: Path) -> None:
    from sqlalchemy import select

    from storage.database import Database
    from storage.models import Chat, ChatType, Delivery, DeliveryKind, SubscriptionScope
    from storage.planning import Planner
    from storage.subscriptions import Subscriptions

    event = (
        "events:\n  - id: future-summit\n    organisation: sco\n    title: Future summit\n"
        "    place: astana\n    start: 2099-06-01T10:00\n"
    )
    first, moved = tmp_path / "first.yaml", tmp_path / "moved.yaml"
    first.write_text(event, encoding="utf-8")
    moved.write_text(event.replace("2099-06-01", "2099-07-01"), encoding="utf-8")
    code, _, err = await summitbot(tmp_path, "import", str(first))
    assert code == 0, err
    database = Database(environment(tmp_path)["DATABASE_URL"])
    async with database.transaction() as session:
        session.add(Chat(id=42, type=ChatType.PRIVATE, language="en", timezone="UTC"))
    await Subscriptions(database, Planner()).follow(
        42, SubscriptionScope.EVENT, "future-summit", dt.datetime.now(dt.UTC)
    )
    code, _, err = await summitbot(tmp_path, "import", str(moved))
    assert code == 0, err
    async with database.sessions() as session:
        kinds = (await session.scalars(select(Delivery.kind).where(Delivery.chat_id == 42))).all()
    await database.dispose()
    assert list(kinds) == [DeliveryKind.CHANGE_NOTICE]


async def test_a_second_bot_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    from storage.database import Database

    holder = Database(environment(tmp_path)["DATABASE_URL"])
    assert holder.lock_exclusively()
    try:
        code, _, err = await summitbot(tmp_path, "run", BOT_TOKEN=TEST_TOKEN)
    finally:
        await holder.dispose()
    assert code == 2
    assert "Another summitbot process is using" in err
