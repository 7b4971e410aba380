"""The Mini App in a real browser: Debian's chromium, driven by Playwright, opens the page
the webhook server serves under /app, signed in with initData signed in the test.

Telegram's own script (telegram-web-app.js) cannot be fetched here: the browser's request
for it is answered with a stand-in that gives ``Telegram.WebApp`` what Telegram gives a
Mini App — the signed initData, the theme, ready/expand, events, the back button. The bot
runs as in production behind its webhook, against a database of its own with the bundled
dataset and a test summit, its Bot API calls recorded by the local server (tests/botapi.py).

One chromium process serves the whole module (each test connects to it over CDP in its
own event loop, with a fresh context at phone size). ``UPDATE_SCREENSHOTS=1`` writes the
README's screenshots to docs/screenshots/; otherwise they go to a temporary folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from bot.clock import FixedClock
from bot.context import BotApplication
from bot.presentation.i18n import translator
from bot.runtime.serve import WebhookServer
from bot.webapp.init_data import sign_init_data
from bot.webapp.strings import ui_strings
from storage.chats import chat_views
from storage.subscriptions import SubscriptionView
from tests.botapi import LocalBotApi
from tests.conftest import TEST_TOKEN, StartBot
from tests.factories import QUIET, TEST_EVENT, load, plain

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))),
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (apt-get install chromium; .ci/run installs it)",
)

SECRET = "browser-tests-secret-0123456789abcdef"
WEBHOOK_PATH = "/telegram"
TELEGRAM_SCRIPT = "https://telegram.org/js/telegram-web-app.js"
USER_ID = 5001
GROUP, ADMIN, MEMBER = -100_700_002, 6301, 6302
PHONE: ViewportSize = {"width": 360, "height": 740}
# The browser's own log line for an API call refused on purpose (the test then checks
# what the page said); any other console error fails the test.
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 40[013]\b")

# Beside the bundled dataset and the test summit: one of each status the dataset lacks.
DECEMBER = """
events:
  - id: cis-test-postponed
    organisation: cis
    title: {en: Postponed CIS meeting}
    place: astana
    start: 2026-12-15
    status: postponed
    sources: [test]
  - id: ots-test-cancelled
    organisation: ots
    title: {en: Cancelled OTS meeting}
    place: astana
    start: 2026-12-17
    end: 2026-12-18
    status: cancelled
    sources: [test]
"""

# Telegram's own default palettes (the themeParams a Mini App gets in each scheme).
LIGHT = {
    "bg_color": "#ffffff",
    "text_color": "#000000",
    "hint_color": "#999999",
    "link_color": "#2481cc",
    "button_color": "#2481cc",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#efeff3",
}
DARK = {
    "bg_color": "#212121",
    "text_color": "#ffffff",
    "hint_color": "#aaaaaa",
    "link_color": "#8774e1",
    "button_color": "#8774e1",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#181818",
}

# What telegram-web-app.js gives a Mini App, and a handle for the test (window.__telegram)
# to change the theme the way Telegram does: new themeParams, then "themeChanged".
STAND_IN = """
(() => {
  const config = %s;
  const listeners = {};
  const calls = [];
  const emit = (name) => (listeners[name] || []).forEach((listener) => listener.call(webApp));
  const webApp = {
    initData: config.initData,
    initDataUnsafe: config.initDataUnsafe,
    version: "8.0",
    platform: "android",
    colorScheme: config.colorScheme,
    themeParams: config.themeParams,
    isExpanded: false,
    isVersionAtLeast: (version) => parseFloat(version) <= 8.0,
    ready() { calls.push("ready"); },
    expand() { webApp.isExpanded = true; calls.push("expand"); },
    onEvent(name, listener) { (listeners[name] = listeners[name] || []).push(listener); },
    offEvent(name, listener) {
      listeners[name] = (listeners[name] || []).filter((known) => known !== listener);
    },
    openLink(url) { calls.push("openLink " + url); },
    BackButton: {
      isVisible: false,
      show() { this.isVisible = true; },
      hide() { this.isVisible = false; },
      onClick(listener) { webApp.onEvent("backButtonClicked", listener); },
    },
    HapticFeedback: {
      notificationOccurred(kind) { calls.push("haptic " + kind); },
      impactOccurred() {},
      selectionChanged() {},
    },
  };
  window.Telegram = { WebApp: webApp };
  window.__telegram = {
    calls,
    setTheme(colorScheme, themeParams) {
      webApp.colorScheme = colorScheme;
      webApp.themeParams = themeParams;
      emit("themeChanged");
    },
    pressBack() { emit("backButtonClicked"); },
  };
})();
"""


# --- one chromium for the module ------------------------------------------------------


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's chromium, headless, listening for DevTools on a free port: its address."""
    assert CHROMIUM is not None
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--disable-dev-shm-usage",
            # This machine has no network: without these chromium keeps trying to reach
            # Google's services.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{CHROMIUM} did not start (exit code {process.poll()})")
        time.sleep(0.05)
    port = int(port_file.read_text().split()[0])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        yield await playwright.chromium.connect_over_cdp(chromium)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


# --- the bot behind its webhook, with the Mini App mounted ----------------------------


@dataclass
class MiniApp:
    """The app as a person opens it from the bot: pages in one phone-sized context."""

    base: str
    context: BrowserContext
    clock: FixedClock
    http: aiohttp.ClientSession
    errors: list[str] = field(default_factory=list)

    def init_data(
        self,
        *,
        user_id: int = USER_ID,
        language_code: str = "en",
        age: dt.timedelta | None = None,
        start_param: str | None = None,
    ) -> str:
        """initData as Telegram signs it for the bot, ``age`` ago by the bot's clock."""
        signed_at = self.clock.now() - (age or dt.timedelta(minutes=1))
        user = {"id": user_id, "first_name": "Tester", "language_code": language_code}
        fields = {"start_param": start_param} if start_param else {}
        return sign_init_data(TEST_TOKEN, user=user, auth_date=signed_at, **fields)

    async def open(
        self,
        *,
        init_data: str | None = None,
        user_id: int = USER_ID,
        start_param: str | None = None,
        scheme: str = "light",
        wait_for_tabs: bool = True,
    ) -> Page:
        """A new page of the app, opened by ``user_id`` (from a t.me link's ``startapp``
        when ``start_param`` is given)."""
        raw = init_data or self.init_data(user_id=user_id, start_param=start_param)
        unsafe: dict[str, Any] = {"user": {"id": user_id, "first_name": "Tester"}}
        if start_param:
            unsafe["start_param"] = start_param
        config = {
            "initData": raw,
            "initDataUnsafe": unsafe,
            "colorScheme": scheme,
            "themeParams": DARK if scheme == "dark" else LIGHT,
        }
        page = await self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        script = STAND_IN % json.dumps(config)
        await page.route(
            TELEGRAM_SCRIPT,
            lambda route: route.fulfill(body=script, content_type="text/javascript"),
        )
        await page.goto(f"{self.base}/app/")
        if wait_for_tabs:
            await expect(page.get_by_role("tablist")).to_be_visible()
        return page

    def _console(self, message: ConsoleMessage) -> None:
        # A refused call is the browser's own log line: what the page made of it is tested.
        if message.type == "error" and not REFUSED.match(message.text):
            self.errors.append(message.text)

    async def chat(self, bot_api: LocalBotApi, text: str, **where: Any) -> str:
        """Send ``text`` to the bot (in the user's private chat unless ``where`` says
        otherwise, as for ``LocalBotApi.message``), as Telegram posts it to the webhook;
        the bot's answer as the user reads it."""
        update = bot_api.message(text, **({"chat_id": USER_ID} | where))
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with self.http.post(self.base + WEBHOOK_PATH, json=update, headers=headers) as r:
            assert r.status == 200, await r.text()
        return plain((await bot_api.reply_to(update)).text)

    async def api(self, path: str, init_data: str) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"tma {init_data}"}
        async with self.http.get(f"{self.base}/app/api/{path}", headers=headers) as response:
            return response.status, await response.json()


@pytest.fixture
async def app(
    start_bot: StartBot,
    database_url: str,
    clock: FixedClock,
    browser: Browser,
) -> AsyncIterator[tuple[MiniApp, BotApplication]]:
    await load(database_url, TEST_EVENT, clock.now())
    await load(database_url, DECEMBER, clock.now(), name="december.yaml")
    async with serving(start_bot, clock, browser) as served:
        yield served


@asynccontextmanager
async def serving(
    start_bot: StartBot, clock: FixedClock, browser: Browser
) -> AsyncIterator[tuple[MiniApp, BotApplication]]:
    """The bot behind its webhook server with the Mini App mounted, and a phone's context."""
    settings = {
        "webhook_url": "https://bot.example.org/telegram",
        "webhook_secret": SECRET,
        "webhook_port": 0,
        "webhook_path": WEBHOOK_PATH,
        **QUIET,
    }
    async with start_bot(polling=False, **settings) as application:
        server = WebhookServer(application, application.bot_data.services.settings)
        await server.start()
        context = await browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        try:
            async with aiohttp.ClientSession() as http:
                mini_app = MiniApp(f"http://127.0.0.1:{server.port}", context, clock, http)
                yield mini_app, application
        finally:
            await context.close()
            await server.stop()
    assert not mini_app.errors, f"the page reported errors: {mini_app.errors}"


# --- the README's screenshots -------------------------------------------------------------


async def test_the_readme_screenshots_show_the_bundled_data_as_of_december_2026(
    start_bot: StartBot, clock: FixedClock, browser: Browser, screenshots: Path
) -> None:
    """The two screenshots in the README: the bundled dataset alone (no test events), on
    7 December 2026, so what they show is what a reader of the bot sees that day."""
    clock.set(dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC))
    async with serving(start_bot, clock, browser) as (mini_app, _):
        page = await mini_app.open()
        await expect(page.get_by_role("heading", name="December 2026", exact=True)).to_be_visible()
        # The SCO summit of 2026 is known only to the year and may already have been held.
        sometime = page.locator("#year-list")
        bishkek = sometime.get_by_role("button", name=re.compile("SCO Heads of State Council"))
        await expect(bishkek).to_contain_text("may already have taken place")
        # So may the OTS summit of July–December: never shown as simply still to come.
        ots = page.locator(".band", has_text="13th OTS Summit (Türkiye)")
        await expect(ots).to_contain_text("may already have taken place")
        await expect(page.get_by_role("tabpanel")).not_to_contain_text("Test summit")
        await page.screenshot(path=str(screenshots / "calendar.png"))

        await page.get_by_role("tab", name="Chairs").click()
        timeline = page.locator("#timeline")
        sco = timeline.locator(".row", has=page.locator(".row-label", has_text="SCO"))
        # Kyrgyzstan chairs until the Bishkek summit; Pakistan hosts the next one (2027),
        # so the rotation rule projects it, drawn dashed and labelled.
        await expect(sco.locator(".bar.current")).to_contain_text("KG")
        await expect(sco.locator(".bar.projected")).to_contain_text("PK")
        await page.screenshot(path=str(screenshots / "chairs.png"))


async def followed_by_the_chat(application: BotApplication, chat_id: int = USER_ID) -> list[str]:
    """What a chat follows, as stored: "event test-summit", "organisation sco"."""
    found = await application.bot_data.services.subscriptions.of_chat(chat_id)
    return [f"{s.scope.value} {_target(s)}".strip() for s in found]


def _target(subscription: SubscriptionView) -> str:
    if subscription.event_key:
        return subscription.event_key
    return subscription.organisation.key if subscription.organisation else ""


async def assert_fits_the_phone(page: Page) -> None:
    """Nothing wider than the phone's screen: no sideways scrolling of the page (the
    chairs timeline scrolls inside its own box)."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide"


@asynccontextmanager
async def card_of(page: Page, title: str) -> AsyncIterator[Any]:
    """Tap the event ``title`` and yield its card (a dialog), closed afterwards."""
    await page.get_by_role("button", name=re.compile(re.escape(title))).first.click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading", name=title)).to_be_visible()
    yield dialog
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()


# --- the calendar ---------------------------------------------------------------------


async def test_the_calendar_opens_on_this_month_with_each_event_at_its_own_precision(
    app: tuple[MiniApp, BotApplication],
) -> None:
    mini_app, _ = app
    page = await mini_app.open()
    calendar = page.get_by_role("tabpanel")
    # Today is 22 November 2026 in Almaty, the chat's zone.
    await expect(page.get_by_role("heading", name="November 2026", exact=True)).to_be_visible()
    await expect(page.get_by_role("tab", name="Calendar")).to_have_attribute(
        "aria-selected", "true"
    )
    # A summit known to the day sits on its day, in the grid and in the list; its dates
    # are over with no outcome recorded.
    day = calendar.get_by_role("button", name=re.compile(r"11 November 2026: Events: 1"))
    await expect(day).to_be_visible()
    summit = calendar.get_by_role("button", name=re.compile("CSTO Collective Security Council"))
    await expect(summit).to_contain_text("dates passed — outcome not recorded")
    # A forum known to the month is a band over the month, "dates not announced".
    forum = page.locator(".band", has_text="International Forum for Collective Security")
    await expect(forum).to_contain_text("dates not announced")
    await expect(forum).to_contain_text("November 2026")
    await expect(forum).to_contain_text("planned")
    # So is a summit known to lie somewhere in July–December.
    await expect(page.locator(".band", has_text="13th OTS Summit (Türkiye)")).to_contain_text(
        "dates not announced"
    )
    # A summit known only to the year is listed apart: "sometime in 2026".
    sometime = page.locator("#year-list")
    await expect(sometime.get_by_role("heading", name="Sometime in 2026")).to_be_visible()
    await expect(sometime).to_contain_text("26th SCO Heads of State Council (Bishkek)")
    await expect(calendar).not_to_contain_text("Test summit")
    await assert_fits_the_phone(page)

    # The Telegram side: the page told Telegram it is ready and asked for the full height.
    calls = await page.evaluate("window.__telegram.calls")
    assert "ready" in calls
    assert "expand" in calls


async def test_switching_months_and_filtering_by_organisation(
    app: tuple[MiniApp, BotApplication],
) -> None:
    mini_app, _ = app
    page = await mini_app.open()
    await page.get_by_role("button", name="Next month").click()
    await expect(page.get_by_role("heading", name="December 2026", exact=True)).to_be_visible()
    # The test summit, at 10:00 in Astana on 1 December: on its day in the grid.
    first = page.get_by_role("button", name=re.compile(r"1 December 2026: Events: 1"))
    await first.click()
    await expect(first).to_have_attribute("aria-pressed", "true")
    listed = page.locator("#month-list")
    await expect(listed.get_by_role("heading", name=re.compile("1 December 2026"))).to_be_visible()
    await expect(listed).to_contain_text("Test summit")
    await expect(listed).to_contain_text("confirmed")
    # Each status has its badge; a two-day meeting is on both its days.
    await page.get_by_role("button", name="Whole month").click()
    await expect(
        listed.get_by_role("button", name=re.compile("Postponed CIS meeting"))
    ).to_contain_text("postponed")
    cancelled = listed.get_by_role("button", name=re.compile("Cancelled OTS meeting"))
    await expect(cancelled).to_contain_text("cancelled")
    for day in ("17", "18"):
        await expect(
            page.get_by_role("button", name=re.compile(rf"\b{day} December 2026: Events: 1"))
        ).to_be_visible()
    # The OTS summit's band reaches into December too.
    await expect(page.locator(".band", has_text="13th OTS Summit")).to_be_visible()

    # Only the CSTO: the SCO's test summit and the OTS band go; the CSTO forum stays in
    # November.
    await page.get_by_label("Organisation", exact=True).select_option("csto")
    await expect(page.locator("#month-grid")).not_to_contain_text("Events")
    await expect(page.get_by_text("Test summit")).to_have_count(0)
    await expect(page.locator(".band")).to_have_count(0)
    await expect(page.get_by_text("Nothing this month.")).to_be_visible()
    await page.get_by_role("button", name="Previous month").click()
    await expect(page.get_by_role("heading", name="November 2026", exact=True)).to_be_visible()
    await expect(page.locator(".band")).to_have_count(1)
    await expect(page.locator(".band")).to_contain_text("International Forum")
    await expect(page.locator("#year-list")).not_to_contain_text("SCO")

    # Back to every organisation; a year away and back by the year list.
    await page.get_by_label("Organisation", exact=True).select_option(value="")
    await page.get_by_label("Year", exact=True).select_option("2024")
    await expect(page.get_by_role("heading", name="November 2024", exact=True)).to_be_visible()
    await expect(page.locator("#month-list")).to_contain_text("held")
    await page.get_by_role("button", name="Back to this month").click()
    await expect(page.get_by_role("heading", name="November 2026", exact=True)).to_be_visible()
    # The agenda: the month as a list of days.
    await page.get_by_role("button", name="Agenda").click()
    await expect(page.locator("#month-grid")).to_be_hidden()
    await expect(
        page.locator(".agenda-day", has_text="CSTO Collective Security Council").get_by_role(
            "heading"
        )
    ).to_have_text(re.compile("Wednesday, 11 November 2026"))


async def test_a_yearly_observance_is_on_its_day_each_year_and_its_card_is_that_years(
    app: tuple[MiniApp, BotApplication],
) -> None:
    mini_app, _ = app
    page = await mini_app.open()
    for _ in range(4):
        await page.get_by_role("button", name="Next month").click()
    await expect(page.get_by_role("heading", name="March 2027", exact=True)).to_be_visible()
    await expect(
        page.get_by_role("button", name=re.compile(r"22 March 2027: Events: 1"))
    ).to_be_visible()
    async with card_of(page, "World Water Day") as card:
        await expect(card.locator(".when")).to_contain_text("22 March 2027")
        await expect(card).to_contain_text("confirmed")

    # Another year, the same month.
    await page.get_by_label("Year", exact=True).select_option("2025")
    await expect(page.get_by_role("heading", name="March 2025", exact=True)).to_be_visible()
    async with card_of(page, "World Water Day") as card:
        await expect(card.locator(".when")).to_contain_text("22 March 2025")


# --- a card, 🔔, and the same follows in chat -----------------------------------------


async def test_following_an_event_from_its_card_shows_in_mysubs_and_back(
    app: tuple[MiniApp, BotApplication], bot_api: LocalBotApi
) -> None:
    mini_app, application = app
    page = await mini_app.open()
    await page.get_by_role("button", name="Next month").click()
    async with card_of(page, "Test summit") as card:
        await expect(card).to_contain_text("confirmed")
        await expect(card).to_contain_text("1 December 2026")
        await expect(card.get_by_role("heading", name="Sources")).to_be_visible()
        await expect(card.locator(".sources li")).to_have_text(["test"])
        await expect(card.locator(".countdown")).to_contain_text(re.compile(r"\d"))
        # Telegram's back button closes the card; it shows while the card is open.
        assert await page.evaluate("window.Telegram.WebApp.BackButton.isVisible")
        await card.get_by_role("button", name="🔔 Follow").click()
        await expect(card.get_by_role("button", name="🔕 Unfollow")).to_be_visible()
    assert "haptic success" in await page.evaluate("window.__telegram.calls")
    # The dialog's "close" event (which hides Telegram's back button) comes a task later.
    await page.wait_for_function("() => !window.Telegram.WebApp.BackButton.isVisible")
    assert await followed_by_the_chat(application) == ["event test-summit"]
    # The list marks it as followed now.
    await expect(page.get_by_role("button", name=re.compile("Test summit"))).to_contain_text(
        "followed"
    )

    # In chat, /mysubs lists what the app followed.
    answer = await mini_app.chat(bot_api, "/mysubs")
    assert "Test summit" in answer

    # And the other way round: what chat follows shows in the app.
    await mini_app.chat(bot_api, "/subscribe sco")
    await page.get_by_role("tab", name="My reminders").click()
    following = page.locator("#subscriptions")
    await expect(following.locator(".sub-label")).to_have_count(2)
    await expect(following).to_contain_text("Test summit")
    await assert_fits_the_phone(page)
    await expect(following.locator(".sub-label")).to_have_text(["Test summit", "SCO"])

    # Unfollowing the summit in the app; chat no longer lists it.
    await following.get_by_role("button", name="Unfollow: Test summit").click()
    await expect(following.locator(".sub-label")).to_have_count(1)
    assert await followed_by_the_chat(application) == ["organisation sco"]
    assert "Test summit" not in await mini_app.chat(bot_api, "/mysubs")

    # The SCO's reminders three days before only, set in the app, kept by the bot.
    sco = following.get_by_role("listitem").filter(has_text="SCO")
    await sco.get_by_text("Change lead times").click()
    for box in await sco.get_by_role("checkbox").all():
        await box.set_checked(await box.get_attribute("value") == str(3 * 24 * 60))
    await sco.get_by_role("button", name="Save").click()
    await expect(sco).to_contain_text("Reminders before: 3 days")
    [subscription] = await application.bot_data.services.subscriptions.of_chat(USER_ID)
    assert subscription.lead_times == (3 * 24 * 60,)


async def test_the_card_works_from_the_keyboard_and_telegrams_back_button_closes_it(
    app: tuple[MiniApp, BotApplication],
) -> None:
    mini_app, _ = app
    page = await mini_app.open()
    summit = page.get_by_role("button", name=re.compile("CSTO Collective Security Council"))
    await summit.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading", name=re.compile("CSTO"))).to_be_visible()
    # The card takes the focus, and gives it back where it came from.
    await expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(summit).to_be_focused()

    await page.keyboard.press("Enter")
    await expect(dialog).to_be_visible()
    await page.evaluate("window.__telegram.pressBack()")
    await expect(dialog).to_be_hidden()
    # The dialog's "close" event (which hides Telegram's back button) comes a task later.
    await page.wait_for_function("() => !window.Telegram.WebApp.BackButton.isVisible")

    # The views' tabs follow the arrow keys.
    await page.get_by_role("tab", name="Calendar").focus()
    await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("tab", name="Chairs")).to_be_focused()
    await expect(page.get_by_role("tab", name="Chairs")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#timeline .row").first).to_be_visible()


async def test_a_group_opened_from_its_link_is_read_by_members_and_changed_by_its_admins(
    app: tuple[MiniApp, BotApplication], bot_api: LocalBotApi
) -> None:
    mini_app, application = app
    bot_api.emulator.register_chat({"id": GROUP, "type": "supergroup", "title": "Summit watchers"})
    bot_api.emulator.admins[GROUP] = {ADMIN}
    link = f"c{GROUP}"  # t.me/<bot>/<app>?startapp=c<chat id>, under the group's /upcoming

    # A member reads the group's calendar and settings, and can change nothing.
    member = await mini_app.open(user_id=MEMBER, start_param=link)
    await expect(member.get_by_role("heading", name="Summit watchers")).to_be_visible()
    await member.get_by_role("button", name="Next month").click()
    async with card_of(member, "Test summit") as card:
        await expect(card.get_by_role("button", name="🔔 Follow")).to_be_disabled()
        await expect(card).to_contain_text("Only the chat's admins can change these settings.")
    await member.get_by_role("tab", name="My reminders").click()
    settings = member.get_by_role("tabpanel")
    await expect(settings).to_contain_text("Only the chat's admins can change these settings.")
    await expect(member.get_by_role("button", name="Save")).to_be_disabled()
    await expect(member.get_by_label("Language", exact=True)).to_be_disabled()
    await expect(member.get_by_role("button", name="Follow all events")).to_be_disabled()

    # An admin follows the summit for the group; the group's /mysubs lists it.
    admin = await mini_app.open(user_id=ADMIN, start_param=link)
    await admin.get_by_role("button", name="Next month").click()
    async with card_of(admin, "Test summit") as card:
        await card.get_by_role("button", name="🔔 Follow").click()
        await expect(card.get_by_role("button", name="🔕 Unfollow")).to_be_visible()
    assert await followed_by_the_chat(application, GROUP) == ["event test-summit"]
    assert await followed_by_the_chat(application) == []
    answer = await mini_app.chat(
        bot_api, "/mysubs", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup"
    )
    assert "Test summit" in answer


# --- chairs ---------------------------------------------------------------------------


async def test_the_chairs_timeline_has_a_row_per_organisation_and_todays_line(
    app: tuple[MiniApp, BotApplication],
) -> None:
    mini_app, _ = app
    page = await mini_app.open()
    status, chairs = await mini_app.api("chairs", mini_app.init_data())
    assert status == 200
    await page.get_by_role("tab", name="Chairs").click()
    timeline = page.locator("#timeline")
    labels = timeline.locator(".row:not(.axis) .row-label")
    expected = [o["abbreviation"] or o["name"] for o in chairs["organisations"]]
    await expect(labels).to_have_text(expected)
    await expect(timeline.locator(".today-line")).to_have_text("today")
    bars = [bar for o in chairs["organisations"] for bar in o["chairs"]]
    await expect(timeline.locator(".bar")).to_have_count(len(bars))

    # A projection from the rotation rule is dashed and says so.
    projected = [bar for bar in bars if bar["projected"]]
    assert projected, "the bundled dataset projects at least one chair"
    shown = timeline.locator(".bar.projected")
    await expect(shown).to_have_count(len(projected))
    await expect(shown.first).to_contain_text("projected")
    assert await shown.first.evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"
    open_ended = [bar for bar in bars if bar["open_end"] or not bar["end"]]
    await expect(timeline.locator(".bar.open-end")).to_have_count(len(open_ended))
    approximate = [bar for bar in bars if bar["end_approximate"]]
    await expect(timeline.locator(".bar.approx-end")).to_have_count(len(approximate))

    # The SCO's current chair, tapped: the chairmanship with its period and sources.
    sco = next(o for o in chairs["organisations"] if o["key"] == "sco")
    chair = next(bar for bar in sco["chairs"] if bar["current"])
    row = timeline.locator(".row", has=page.locator(".row-label", has_text=re.compile("^SCO$")))
    await row.get_by_role("button", name=re.compile(re.escape(chair["country_name"]))).click()
    card = page.get_by_role("dialog")
    await expect(card.get_by_role("heading", name=chair["country_name"])).to_be_visible()
    await expect(card).to_contain_text(chair["period"])
    await expect(card).to_contain_text("current chair")
    await expect(card).to_contain_text(sco["name"])
    await expect(card.locator(".sources li")).to_have_text(chair["sources"])
    await card.get_by_role("button", name="Close").click()
    await assert_fits_the_phone(page)


# --- language, theme, and what Telegram did not sign ----------------------------------


async def test_switching_to_arabic_turns_the_page_right_to_left(
    app: tuple[MiniApp, BotApplication], bot_api: LocalBotApi
) -> None:
    mini_app, _ = app
    page = await mini_app.open()
    html = page.locator("html")
    await expect(html).to_have_attribute("dir", "ltr")
    await page.get_by_role("tab", name="My reminders").click()
    await page.get_by_label("Language", exact=True).select_option("ar")
    await page.get_by_role("button", name="Save").click()

    arabic = ui_strings(translator("ar"))
    await expect(html).to_have_attribute("dir", "rtl")
    await expect(html).to_have_attribute("lang", "ar")
    await expect(page.get_by_role("tab", name=arabic["calendar"])).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text(arabic["saved"])
    assert await page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    # The data speaks Arabic too: the organisations in the filter.
    await page.get_by_role("tab", name=arabic["calendar"]).click()
    await expect(page.locator("#org-select")).to_contain_text("منظمة شنغهاي للتعاون")
    await assert_fits_the_phone(page)
    # Time runs right to left on the chairs timeline: a chair projected for later lies to
    # the left of the one that holds it now.
    await page.get_by_role("tab", name=arabic["chairs"]).click()
    row = page.locator("#timeline .row").filter(has=page.locator(".bar.projected")).first
    now = await row.locator(".bar.current").first.bounding_box()
    later = await row.locator(".bar.projected").first.bounding_box()
    assert now is not None and later is not None
    assert later["x"] + later["width"] <= now["x"] + now["width"] and later["x"] < now["x"]
    # The chat speaks Arabic from now on as well.
    answer = await mini_app.chat(bot_api, "/mysubs")
    assert re.search("[\u0600-\u06ff]", answer), answer


async def test_settings_saved_in_the_app_are_the_chats_and_a_refused_one_changes_nothing(
    app: tuple[MiniApp, BotApplication], bot_api: LocalBotApi
) -> None:
    mini_app, application = app
    page = await mini_app.open()
    await page.get_by_role("tab", name="My reminders").click()
    zone = page.get_by_label("Time zone", exact=True)
    await expect(zone).to_have_value("Asia/Almaty")
    await expect(page.locator("#timezone-label")).to_have_text(re.compile(r"Almaty.*UTC\+05"))
    await zone.fill("Atlantis/Nowhere")
    await page.get_by_role("button", name="Save").click()
    alert = page.get_by_role("alert").first
    await expect(alert.get_by_role("paragraph")).to_have_text(
        "I don't know the time zone of “Atlantis/Nowhere”."
    )
    assert "haptic error" in await page.evaluate("window.__telegram.calls")
    stored = await chat_views(application.bot_data.services.database, [USER_ID])
    assert stored[USER_ID].timezone == "Asia/Almaty"

    # A zone the bot knows is saved, and chat says so.
    await zone.fill("Europe/Berlin")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(alert).to_be_hidden()
    assert "Berlin" in await mini_app.chat(bot_api, "/tz")

    # The weekly digest and reminders an hour before, by default.
    await page.get_by_label("Digest", exact=True).select_option("weekly")
    defaults = page.get_by_role("group", name="Default lead times")
    for box in await defaults.get_by_role("checkbox").all():
        await box.set_checked(await box.get_attribute("value") == "60")
    async with page.expect_response(lambda r: r.url.endswith("/app/api/settings")) as saved:
        await page.get_by_role("button", name="Save").click()
    assert (await saved.value).status == 200
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    stored = await chat_views(application.bot_data.services.database, [USER_ID])
    assert stored[USER_ID].digest.value == "weekly"
    assert stored[USER_ID].lead_times == (60,)


async def test_the_page_takes_telegrams_dark_theme_when_it_changes(
    app: tuple[MiniApp, BotApplication],
) -> None:
    mini_app, _ = app
    page = await mini_app.open()
    colours = "(s => [s.backgroundColor, s.color])(getComputedStyle(document.body))"
    tab = page.get_by_role("tab", name="Calendar")
    assert await page.evaluate(colours) == ["rgb(255, 255, 255)", "rgb(0, 0, 0)"]
    assert await tab.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(36, 129, 204)"

    await page.evaluate(f"window.__telegram.setTheme('dark', {json.dumps(DARK)})")
    assert await page.evaluate(colours) == ["rgb(33, 33, 33)", "rgb(255, 255, 255)"]
    assert await tab.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(135, 116, 225)"
    assert await page.evaluate("document.documentElement.dataset.scheme") == "dark"

    # Opened in the dark already, it is dark from the start.
    dark = await mini_app.open(scheme="dark")
    assert await dark.evaluate(colours) == ["rgb(33, 33, 33)", "rgb(255, 255, 255)"]


async def test_expired_init_data_shows_the_error_and_changes_nothing(
    app: tuple[MiniApp, BotApplication], clock: FixedClock
) -> None:
    mini_app, application = app
    # Signed two days ago: too old (a day at most).
    expired = mini_app.init_data(age=dt.timedelta(days=2))
    status, refusal = await mini_app.api("session", expired)
    assert status == 401
    english = ui_strings(translator("en"))
    assert refusal["message"] == english["error_unauthorized"]
    page = await mini_app.open(init_data=expired, wait_for_tabs=False)
    alert = page.get_by_role("alert").first
    await expect(alert.get_by_role("paragraph")).to_have_text(english["error_unauthorized"])
    await expect(page.get_by_role("tablist")).to_be_hidden()
    await expect(page.get_by_role("button", name="Try again")).to_be_hidden()

    # A window left open past the limit: the follow it tries is refused, said in the
    # card, and nothing is followed.
    page = await mini_app.open()
    await page.get_by_role("button", name="Next month").click()
    await page.get_by_role("button", name=re.compile("Test summit")).first.click()
    card = page.get_by_role("dialog")
    await expect(card.get_by_role("button", name="🔔 Follow")).to_be_visible()
    clock.advance(dt.timedelta(days=2))
    await card.get_by_role("button", name="🔔 Follow").click()
    await expect(card.get_by_role("alert")).to_have_text(english["error_unauthorized"])
    await expect(card.get_by_role("button", name="🔔 Follow")).to_be_enabled()
    assert "haptic error" in await page.evaluate("window.__telegram.calls")
    assert await followed_by_the_chat(application) == []
