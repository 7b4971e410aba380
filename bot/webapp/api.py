"""The Mini App over HTTP: the page, its assets and the JSON API under ``/app``.

The contract with the page is docs/webapp.md. Every API call carries Telegram's signed
initData (``Authorization: tma <initData>``, checked by :mod:`bot.webapp.init_data`)
and is answered for the caller's private chat, or for the group or channel named by
``?chat=<id>`` when the caller is a member there (an admin, to change anything), as
Telegram's ``getChatMember`` says. Reads ask the catalogue and the subscriptions what
the chat commands ask; writes go through the same service functions as /subscribe,
/lang, /tz, /digest and /leadtimes (``bot.handlers``), so the reminders are planned
again the same way and a change shows in chat at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import mimetypes
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from telegram import Bot
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError

from bot.context import Services
from bot.handlers.chat_settings import change_digest, change_language, change_timezone
from bot.handlers.subscriptions import change_lead_times, follow_target
from bot.permissions import ADMIN_STATUSES
from bot.presentation.i18n import Translator, translator
from bot.runtime.http_body import BodyTooLarge, read_body
from bot.webapp import shapes
from bot.webapp.calendar import FIRST_YEAR, LAST_YEAR, YearCalendar, keep_zones, occurrences_in
from bot.webapp.init_data import InitData, InitDataError, claimed_language, verify_init_data
from bot.webapp.strings import ui_strings
from config.languages import SUPPORTED_LANGUAGES, normalise_language
from storage.chats import chat_views
from storage.database import is_unavailable
from storage.dates import InvalidDate, PartialDate, Precision
from storage.followers import LEAD_TIME_CHOICES
from storage.models import ChatType, DigestFrequency, SubscriptionScope
from storage.queries import one_revision
from storage.subscriptions import SubscriptionError
from storage.timezones import resolve_timezone
from storage.views import ChatView, EventView

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/app"
MAX_BODY_BYTES = 16 * 1024
# How long a member's status in a group is trusted for reading (changes are checked anew).
MEMBER_CACHE_SECONDS = 30.0
MAX_CACHED_MEMBERS = 10_000
# The chairs timeline by default: two years either side of this one.
CHAIRS_YEARS_AROUND = 2
MAX_CHAIRS_YEARS = 30
MAX_KEY_LENGTH = 200
# Calendars kept rendered (a year, an organisation, a language).
MAX_CACHED_LISTINGS = 512
MAX_CACHED_WHENS = 50_000
MEMBER_STATUSES = ADMIN_STATUSES | {ChatMemberStatus.MEMBER}
_CHAT_ID = re.compile(r"-?\d{1,20}")
_START_PARAM = re.compile(r"c(-?\d{1,20})")
_ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# The page loads nothing but its own files and Telegram's script, and talks only to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' https://telegram.org; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'"
)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


class ApiError(Exception):
    """An answer other than 200: the status, a code for the page, a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who asks, for which chat, and what they may do there."""

    init: InitData
    chat: ChatView
    can_edit: bool
    now: dt.datetime

    @property
    def tr(self) -> Translator:
        return translator(self.chat.language)

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(ZoneInfo(self.chat.timezone)).date()


Handler = Callable[[Request, Caller], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class _Asset:
    body: bytes
    etag: str
    stamp: tuple[int, int]  # the file's mtime and size when read


class WebAppApi:
    """The Mini App's routes for one process, over its services and a bot to ask
    Telegram who is a member where."""

    def __init__(self, services: Services, bot: Bot, bot_token: str) -> None:
        self.services = services
        self.bot = bot
        self.bot_token = bot_token
        self.calendar = YearCalendar(services.catalogue)
        self._members: OrderedDict[tuple[int, int], tuple[float, str | None]] = OrderedDict()
        self._assets: dict[Path, _Asset] = {}
        # A year's listing by (year, organisation, language, month or 0 for the year).
        self._listed_cache: dict[
            tuple[int, str | None, str, int], tuple[tuple[EventView, dict[str, Any]], ...]
        ] = {}
        self._whens: dict[tuple[str, dt.datetime, str, str], str] = {}
        self._chairs_cache: dict[tuple[dt.date, dt.date, dt.date, str], dict[str, Any]] = {}
        self._chairs_revision: tuple[object, ...] | None = None
        self._listed_revision: tuple[object, ...] | None = None

    def routes(self) -> list[BaseRoute]:
        api: list[tuple[str, Handler, str, bool]] = [
            ("/session", self.session, "GET", False),
            ("/calendar", self.calendar_year, "GET", False),
            ("/events/{key}", self.event_card, "GET", False),
            ("/chairs", self.chairs, "GET", False),
            ("/me", self.me, "GET", False),
            ("/follow", self.follow, "POST", True),
            ("/unfollow", self.unfollow, "POST", True),
            ("/settings", self.settings, "POST", True),
            ("/subscriptions/{subscription_id}/lead_times", self.lead_times, "POST", True),
        ]
        return [
            Mount(
                PREFIX,
                routes=[
                    Route("/", self.page, methods=["GET", "HEAD"]),
                    Route("/static/{name}", self.asset, methods=["GET", "HEAD"]),
                    *(
                        Route(f"/api{path}", self._endpoint(handler, write), methods=[method])
                        for path, handler, method, write in api
                    ),
                    # Anything else under /api is answered in JSON, as the page reads it.
                    Route("/api/{path:path}", self.unknown, methods=["GET", "POST"]),
                ],
            )
        ]

    async def unknown(self, _: Request) -> Response:
        tr = translator(self.services.settings.default_language)
        return _error(ApiError(404, "not_found", tr.gettext("I can't read this request.")))

    # --- the page and its files ---------------------------------------------------

    async def page(self, request: Request) -> Response:
        """index.html; the page reads initData from Telegram itself."""
        return await self._file(request, STATIC_DIR / "index.html")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not _ASSET_NAME.fullmatch(name) or ".." in name:
            return _not_found()
        return await self._file(request, STATIC_DIR / name)

    async def _file(self, request: Request, path: Path) -> Response:
        found = await asyncio.to_thread(_static_file, path)
        if found is None:
            return _not_found()
        resolved, stamp = found
        asset = self._assets.get(resolved)
        if asset is None or asset.stamp != stamp:
            body = await asyncio.to_thread(resolved.read_bytes)
            asset = _Asset(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"', stamp)
            self._assets[resolved] = asset
        content_type = CONTENT_TYPES.get(resolved.suffix) or (
            mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
        )
        headers = {
            "ETag": asset.etag,
            # Revalidated every time: a new release is seen at once, an unchanged file is
            # a 304 without its body.
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if resolved.suffix == ".html":
            headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            headers["Referrer-Policy"] = "no-referrer"
        if asset.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        body = b"" if request.method == "HEAD" else asset.body
        return Response(body, media_type=content_type, headers=headers)

    # --- every API call -------------------------------------------------------------

    def _endpoint(self, handler: Handler, write: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            tr = translator(self.services.settings.default_language)
            try:
                with one_revision():  # the catalogue's revision read once per call
                    init = self._authenticate(request)
                    tr = translator(
                        normalise_language(
                            init.user.language_code, self.services.settings.default_language
                        )
                    )
                    if not self.services.flood_guard.allow(init.user.id):
                        raise ApiError(
                            429,
                            "too_many_requests",
                            tr.gettext("⏳ Too many requests; please wait a minute."),
                        )
                    caller = await self._caller(request, init, write=write)
                    tr = caller.tr
                    answer = await handler(request, caller)
            except ApiError as exc:
                return _error(exc)
            except _BadBody as exc:
                return _error(_bad_body(exc.status, tr))
            except Exception as exc:
                if not is_unavailable(exc):
                    raise  # a bug: logged by the server, a 500
                # As in chat (bot/handlers/errors.py): the database is away for a moment.
                log.warning("Mini App request while the database is unavailable: %r", exc)
                message = tr.gettext(
                    "The bot is temporarily unavailable. Please try again in a minute."
                )
                return _error(ApiError(503, "unavailable", message))
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})

        return endpoint

    def _authenticate(self, request: Request) -> InitData:
        header = request.headers.get("authorization", "")
        scheme, _, raw = header.partition(" ")
        try:
            if scheme.casefold() != "tma":
                raise InitDataError("no_authorization")
            return verify_init_data(
                raw.strip(),
                self.bot_token,
                self.services.clock.now(),
                dt.timedelta(seconds=self.services.settings.webapp_auth_max_age_seconds),
            )
        except InitDataError as exc:
            log.info("Mini App request refused (%s) from %s", exc.reason, _peer(request))
            # In the language the (unverified) user claims: it only picks the words.
            language = normalise_language(
                claimed_language(raw), self.services.settings.default_language
            )
            message = ui_strings(translator(language))["error_unauthorized"]
            raise ApiError(401, "unauthorized", message) from None

    async def _caller(self, request: Request, init: InitData, *, write: bool) -> Caller:
        """The chat asked about, stored on first contact as the bot stores it, and
        whether the caller may read it (a member) and change it (an admin)."""
        services = self.services
        now = services.clock.now()
        user = init.user
        user_tr = translator(normalise_language(user.language_code, "en"))
        chat_id = _chat_id(request, init, user.id, user_tr)
        language = normalise_language(user.language_code, services.settings.default_language)
        if chat_id == user.id:
            title = " ".join(filter(None, (user.first_name, user.last_name))) or user.username
            revision = services.catalogue.revision_columns()
            # Opening the app says nothing of whether the bot may write to the person.
            chat, along = await services.chats.ensure(
                user.id,
                ChatType.PRIVATE,
                title,
                language,
                now,
                reactivate=False,
                read_along=revision,
            )
            if along is not None:
                services.catalogue.use_revision(along)
            return Caller(init, chat, True, now)
        if chat_id > 0:  # someone else's private chat
            raise ApiError(403, "forbidden", _not_a_member(user_tr))
        status = await self._member_status(chat_id, user.id, fresh=write)
        if status not in MEMBER_STATUSES:
            raise ApiError(403, "forbidden", _not_a_member(user_tr))
        stored = (await chat_views(services.database, [chat_id])).get(chat_id)
        chat = stored or await self._first_contact(chat_id, language, now, user_tr)
        # A channel is managed as in chat (/channels): by its admins once it is linked, so
        # the bot is known to post there; a group by its admins.
        linked = chat.type is not ChatType.CHANNEL or chat.linked_by is not None
        can_edit = status in ADMIN_STATUSES and linked
        if write and not can_edit:
            _ = translator(chat.language).gettext
            message = (
                _("Only the admins of this group can change its settings.")
                if linked
                else _("Link the channel first: /channels in a private chat with me.")
            )
            raise ApiError(403, "forbidden", message)
        return Caller(init, chat, can_edit, now)

    async def _first_contact(
        self, chat_id: int, language: str, now: dt.datetime, tr: Translator
    ) -> ChatView:
        """A group the bot has not stored yet: stored as the bot stores a chat it hears
        from (its type and title from Telegram, the language of whoever came first)."""
        try:
            found = await self.bot.get_chat(chat_id)
        except TelegramError:
            raise ApiError(403, "forbidden", _not_a_member(tr)) from None
        try:
            chat_type = ChatType(found.type)
        except ValueError:
            raise ApiError(403, "forbidden", _not_a_member(tr)) from None
        title = found.title or found.full_name or found.username
        chat, _ = await self.services.chats.ensure(
            chat_id, chat_type, title, language, now, reactivate=False
        )
        return chat

    async def _member_status(self, chat_id: int, user_id: int, *, fresh: bool) -> str | None:
        """The caller's status in a group or channel (None: not known there), from
        getChatMember; a read may use an answer of the last MEMBER_CACHE_SECONDS."""
        key = (chat_id, user_id)
        moment = time.monotonic()
        cached = self._members.get(key)
        if cached is not None and not fresh and cached[0] > moment:
            return cached[1]
        try:
            member = await self.bot.get_chat_member(chat_id, user_id)
        except TelegramError as exc:
            log.info("getChatMember(%s, %s) failed: %s", chat_id, user_id, exc)
            status = None
        else:
            status = str(member.status)
            if status == ChatMemberStatus.RESTRICTED and getattr(member, "is_member", False):
                status = ChatMemberStatus.MEMBER
        self._members[key] = (moment + MEMBER_CACHE_SECONDS, status)
        self._members.move_to_end(key)
        while len(self._members) > MAX_CACHED_MEMBERS:
            self._members.popitem(last=False)
        return status

    # --- reads ------------------------------------------------------------------------

    async def session(self, _: Request, caller: Caller) -> dict[str, Any]:
        tr, now = caller.tr, caller.now
        today = caller.today
        span = await self.calendar.span(today)
        organisations = await self.services.catalogue.organisations()
        return {
            "chat": shapes.chat_shape(caller.chat, now, can_edit=caller.can_edit),
            "language": tr.language,
            "direction": "rtl" if tr.is_rtl else "ltr",
            "today": today.isoformat(),
            "now": now.isoformat(),
            "strings": ui_strings(tr),
            **shapes.choices(tr),
            "organisations": [shapes.organisation_shape(org, tr) for org in organisations],
            "years": list(range(span.first, span.last + 1)),
        }

    async def calendar_year(self, request: Request, caller: Caller) -> dict[str, Any]:
        tr = caller.tr
        year = _year(request.query_params.get("year"), caller.today.year, tr)
        month = _month(request.query_params.get("month"), tr)
        organisation = await self._organisation(request.query_params.get("org"), tr)
        listed = await self._listed(year, organisation, caller.chat, tr, month)
        following = await self._following(caller.chat.id)
        chat, now = caller.chat, caller.now
        return {
            "year": year,
            "events": [
                shapes.dated_item(item, e, self._when(e, item, chat, tr), now, tr, following)
                for e, item in listed
            ],
        }

    async def _listed(
        self,
        year: int,
        organisation: str | None,
        chat: ChatView,
        tr: Translator,
        month: int | None = None,
    ) -> tuple[tuple[EventView, dict[str, Any]], ...]:
        """A year's events with what the calendar says of them in one language, kept
        until the catalogue's revision changes (as the catalogue keeps its views); with
        ``month``, those touching that month and those known only to the year (the page
        shows a month at a time: a twelfth of the work and of the answer)."""
        if month is not None:
            everything = await self._listed(year, organisation, chat, tr)
            key = (year, organisation, tr.language, month)
            cache = self._listed_cache  # the revision's, as the year's just read
            found = cache.get(key)
            if found is None:
                found = tuple(pair for pair in everything if _touches_month(pair[0], year, month))
                if len(cache) >= MAX_CACHED_LISTINGS:
                    cache.clear()
                cache[key] = found
            return found
        revision = await self.services.catalogue.revision()
        if revision != self._listed_revision:
            self._listed_cache, self._whens = {}, {}
            self._listed_revision = revision
        cache = self._listed_cache  # this revision's
        key = (year, organisation, tr.language, 0)
        found = cache.get(key)
        if found is None:
            events = await self.calendar.events(year, organisation)
            keep_zones(events)
            found = tuple((e, shapes.listed_item(e, chat, tr)) for e in events)
            if len(cache) >= MAX_CACHED_LISTINGS:
                cache.clear()
            cache[key] = found
        return found

    def _when(
        self, event: EventView, listed: dict[str, Any], chat: ChatView, tr: Translator
    ) -> str:
        """When an event is for this reader; a time of day (in the reader's zone and
        the venue's) is formatted once per zone and language."""
        if not event.is_timed:  # the same for every reader: kept with the listing
            return str(listed["when"])
        key = (event.key, event.starts_at, tr.language, chat.timezone)
        found = self._whens.get(key)
        if found is None:
            if len(self._whens) >= MAX_CACHED_WHENS:
                self._whens.clear()
            found = self._whens[key] = shapes.when_text(event, chat, tr)
        return found

    async def event_card(self, request: Request, caller: Caller) -> dict[str, Any]:
        tr, now = caller.tr, caller.now
        key = str(request.path_params["key"]).casefold()
        found = await self.services.catalogue.event(key) if len(key) <= MAX_KEY_LENGTH else None
        if found is None:
            raise ApiError(404, "unknown_event", tr.gettext("I don't know “{name}”.", name=key))
        shown = found.next_occurrence(now) or found
        wanted = request.query_params.get("year")
        if wanted is not None and found.recurrence:
            year = _year(wanted, caller.today.year, tr)
            shown = next(occurrences_in(found, year), shown)
        following = await self._following(caller.chat.id)
        return shapes.event_card(shown, caller.chat, now, tr, following)

    async def chairs(self, request: Request, caller: Caller) -> dict[str, Any]:
        tr, today = caller.tr, caller.today
        first = _day(request.query_params.get("from"), tr, last=False) or dt.date(
            today.year - CHAIRS_YEARS_AROUND, 1, 1
        )
        last = _day(request.query_params.get("to"), tr, last=True) or dt.date(
            today.year + CHAIRS_YEARS_AROUND, 12, 31
        )
        if last < first or last.year - first.year >= MAX_CHAIRS_YEARS:
            raise ApiError(400, "bad_period", _bad_date(f"{first} – {last}", tr))
        catalogue = self.services.catalogue
        # The same for every reader of a language on a day, until the catalogue changes.
        revision = await catalogue.revision()
        if revision != self._chairs_revision:
            self._chairs_cache, self._chairs_revision = {}, revision
        cache = self._chairs_cache
        key = (first, last, today, tr.language)
        found = cache.get(key)
        if found is None:
            found = await self._timeline(first, last, today, tr)
            if len(cache) >= MAX_CACHED_LISTINGS:
                cache.clear()
            cache[key] = found
        return found

    async def _timeline(
        self, first: dt.date, last: dt.date, today: dt.date, tr: Translator
    ) -> dict[str, Any]:
        catalogue = self.services.catalogue
        groups = await catalogue.chairs_during(first, last)
        current = {g.organisation.key: g.chairs for g in await catalogue.chairs_on(today)}
        return {
            "today": today.isoformat(),
            "from": first.isoformat(),
            "to": last.isoformat(),
            "organisations": [
                {
                    **shapes.organisation_shape(group.organisation, tr),
                    "chairs": shapes.chair_bars(group, current.get(group.organisation.key, ()), tr),
                }
                for group in groups
            ],
        }

    async def me(self, _: Request, caller: Caller) -> dict[str, Any]:
        subscriptions = await self.services.subscriptions.of_chat(caller.chat.id)
        return {
            "chat": shapes.chat_shape(caller.chat, caller.now, can_edit=caller.can_edit),
            "subscriptions": [shapes.subscription_shape(s, caller.tr) for s in subscriptions],
        }

    # --- writes -----------------------------------------------------------------------

    async def follow(self, request: Request, caller: Caller) -> dict[str, Any]:
        tr = caller.tr
        body = await _body(request, {"scope", "key"})
        try:
            scope = SubscriptionScope(str(body.get("scope")))
        except ValueError:
            raise _bad_body(400, tr) from None
        key = body.get("key")
        if scope is SubscriptionScope.ALL:
            if key is not None:
                raise _bad_body(400, tr)
        elif not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
            raise _bad_body(400, tr)
        try:
            followed = await follow_target(self.services, caller.chat.id, scope, key, caller.now)
        except SubscriptionError as exc:
            if exc.reason == "too_many":
                message = tr.gettext(
                    "This chat follows too many things already; unfollow some with /mysubs."
                )
                raise ApiError(400, "too_many", message) from None
            raise ApiError(400, "unknown_target", tr.gettext("That no longer exists.")) from None
        return {
            "created": followed.created,
            "subscription": shapes.subscription_shape(followed.subscription, tr),
        }

    async def unfollow(self, request: Request, caller: Caller) -> dict[str, Any]:
        body = await _body(request, {"subscription_id"})
        subscription_id = _integer(body.get("subscription_id"), caller.tr)
        removed = await self.services.subscriptions.unfollow(
            caller.chat.id, subscription_id, caller.now
        )
        return {"removed": removed is not None}

    async def settings(self, request: Request, caller: Caller) -> dict[str, Any]:
        """Language, time zone, digest and default lead times: every value is checked
        before any is saved, so a bad one changes nothing."""
        tr, now, chat_id = caller.tr, caller.now, caller.chat.id
        body = await _body(request, {"language", "timezone", "digest", "lead_times"})
        language = body.get("language")
        if language is not None and language not in SUPPORTED_LANGUAGES:
            names = ", ".join(SUPPORTED_LANGUAGES)
            message = tr.gettext("I speak these languages: {names}.", names=names)
            raise ApiError(400, "unknown_language", message)
        zone: str | None = None
        if "timezone" in body:
            wanted = body["timezone"]
            choice = (
                resolve_timezone(wanted, now)
                if isinstance(wanted, str) and len(wanted) <= 100
                else None
            )
            if choice is None:
                name = wanted[:100] if isinstance(wanted, str) else str(wanted)[:100]
                message = tr.gettext("I don't know the time zone of “{name}”.", name=name)
                raise ApiError(400, "unknown_timezone", message)
            zone = choice.zone
        frequency: DigestFrequency | None = None
        if "digest" in body:
            try:
                frequency = DigestFrequency(body["digest"])
            except ValueError:
                raise ApiError(
                    400, "unknown_digest", tr.gettext("Choose weekly, daily or no digest.")
                ) from None
        lead_times = _lead_times(body["lead_times"], tr) if "lead_times" in body else None
        services = self.services
        if language is not None:
            await change_language(services, chat_id, language)
        if zone is not None:
            await change_timezone(services, chat_id, zone, now)
        if frequency is not None:
            await change_digest(services, chat_id, frequency, now)
        if lead_times is not None:
            await change_lead_times(services, chat_id, None, lead_times, now)
        chat = (await chat_views(services.database, [chat_id])).get(chat_id, caller.chat)
        return {"chat": shapes.chat_shape(chat, now, can_edit=caller.can_edit)}

    async def lead_times(self, request: Request, caller: Caller) -> dict[str, Any]:
        tr = caller.tr
        subscription_id = _integer(request.path_params["subscription_id"], tr, text=True)
        body = await _body(request, {"lead_times"})
        if "lead_times" not in body:
            raise _bad_body(400, tr)
        minutes = _lead_times(body["lead_times"], tr)
        services, chat_id = self.services, caller.chat.id
        try:
            await change_lead_times(services, chat_id, subscription_id, minutes, caller.now)
        except SubscriptionError:
            raise _no_such_subscription(tr) from None
        state = await services.subscriptions.lead_times_of(chat_id, subscription_id)
        if state is None or state[0] is None:
            raise _no_such_subscription(tr)
        return {"subscription": shapes.subscription_shape(state[0], tr)}

    # --- helpers ------------------------------------------------------------------------

    async def _following(self, chat_id: int) -> shapes.Following:
        return shapes.Following(await self.services.subscriptions.targets_of(chat_id))

    async def _organisation(self, key: str | None, tr: Translator) -> str | None:
        if key is None or key == "":
            return None
        known = {org.key for org in await self.services.catalogue.organisations()}
        if key not in known:
            message = tr.gettext("I don't know “{name}”.", name=key[:MAX_KEY_LENGTH])
            raise ApiError(400, "unknown_organisation", message)
        return key


class _BadBody(Exception):
    """A request body that is too large or not what the call takes."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _body(request: Request, allowed: set[str]) -> Mapping[str, Any]:
    """The JSON object of a POST (at most MAX_BODY_BYTES), with no key outside ``allowed``."""
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        raise _BadBody(413) from None
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _BadBody(400) from None
    if not isinstance(data, dict) or not set(data) <= allowed:
        raise _BadBody(400)
    return data


def _bad_body(status: int, tr: Translator) -> ApiError:
    if status == 413:
        return ApiError(413, "too_large", tr.gettext("This request is too large."))
    return ApiError(400, "bad_request", tr.gettext("I can't read this request."))


def _chat_id(request: Request, init: InitData, user_id: int, tr: Translator) -> int:
    """``?chat=<id>``; else the chat of a ``t.me/<bot>/<app>?startapp=c<id>`` link; else
    the caller's private chat."""
    given = request.query_params.get("chat")
    linked = _START_PARAM.fullmatch(init.start_param or "")
    if given is None and linked is not None:  # another start_param is not about a chat
        given = linked.group(1)
    if given is None or given == "":
        return user_id
    if not _CHAT_ID.fullmatch(given):
        raise ApiError(400, "bad_chat", tr.gettext("I can't read this request."))
    return int(given)


def _year(value: str | None, default: int, tr: Translator) -> int:
    if value is None:
        return default
    if not value.isdecimal() or not FIRST_YEAR <= int(value) <= LAST_YEAR:
        message = tr.gettext("“{value}” is not a year I know about.", value=value[:20])
        raise ApiError(400, "bad_year", message)
    return int(value)


def _month(value: str | None, tr: Translator) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdecimal() or not 1 <= int(value) <= 12:
        raise ApiError(400, "bad_month", _bad_date(value[:20], tr))
    return int(value)


def _touches_month(event: EventView, year: int, month: int) -> bool:
    """Whether a calendar of ``month`` shows the event: its venue-local days touch the
    month, or it is known only to the year (listed apart, "sometime in 2027")."""
    if event.start.precision is Precision.YEAR:
        return True
    first = dt.date(year, month, 1)
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return event.start.first_day <= last and first <= (event.end or event.start).last_day


def _day(value: str | None, tr: Translator, *, last: bool) -> dt.date | None:
    """A year, a month or a day: its first day (``from``) or its last (``to``)."""
    if value is None:
        return None
    try:
        found = PartialDate.parse(value[:20])
    except InvalidDate:
        raise ApiError(400, "bad_date", _bad_date(value, tr)) from None
    return found.last_day if last else found.first_day


def _bad_date(value: str, tr: Translator) -> str:
    return tr.gettext(
        "I can't read “{value}” as a date. Write a year (2024), a month (2024-07) "
        "or a day (2024-07-03).",
        value=value[:50],
    )


def _integer(value: Any, tr: Translator, *, text: bool = False) -> int:
    if text and isinstance(value, str) and value.isdecimal() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    raise _bad_body(400, tr)


def _lead_times(value: Any, tr: Translator) -> list[int]:
    if not isinstance(value, list) or len(value) > len(LEAD_TIME_CHOICES):
        raise ApiError(400, "bad_lead_times", _bad_lead_times(tr))
    if not value:
        raise ApiError(400, "bad_lead_times", tr.gettext("Keep at least one lead time."))
    for minutes in value:
        if isinstance(minutes, bool) or minutes not in LEAD_TIME_CHOICES:
            raise ApiError(400, "bad_lead_times", _bad_lead_times(tr))
    return [int(minutes) for minutes in value]


def _bad_lead_times(tr: Translator) -> str:
    return tr.gettext("Choose lead times from those offered.")


def _no_such_subscription(tr: Translator) -> ApiError:
    return ApiError(404, "unknown_subscription", tr.gettext("This chat does not follow that."))


def _not_a_member(tr: Translator) -> str:
    return tr.gettext("Only the members of that chat can open its calendar.")


def _error(error: ApiError) -> Response:
    return JSONResponse(
        {"error": error.code, "message": error.message},
        status_code=error.status,
        headers={"Cache-Control": "no-store"},
    )


def _static_file(path: Path) -> tuple[Path, tuple[int, int]] | None:
    """The file if it lies directly in static/ (no link out of it), with its mtime and
    size (assets are read again when these change)."""
    try:
        resolved = path.resolve(strict=True)
        if resolved.parent != STATIC_DIR or not resolved.is_file():
            return None
        stat = resolved.stat()
    except OSError:
        return None
    return resolved, (stat.st_mtime_ns, stat.st_size)


def _not_found() -> Response:
    return Response("not found", status_code=404, media_type="text/plain")


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _peer(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "?"
