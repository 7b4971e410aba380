"""The JSON the Mini App reads (docs/webapp.md), made from the same views and the same
presentation functions as the chat's messages: a date, a status, a chair's period or a
lead time reads in the app as it reads in chat.

The presentation functions give HTML-escaped text for messages; the app gets it plain
(unescaped here), and the page escapes it as it draws.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
from collections.abc import Iterable, Sequence
from typing import Any

from bot.presentation.chairs import chair_period, projection_text
from bot.presentation.dates import (
    countdown,
    event_when,
    standing_text,
    zone_label,
)
from bot.presentation.i18n import Translator
from bot.presentation.settings import (
    digest_label,
    language_name,
    lead_time_label,
    lead_times_text,
    subscription_target,
)
from bot.presentation.text import (
    country_name,
    event_title,
    kind_label,
    localised,
    organisation_name,
    organisation_short,
    place_label,
    status_label,
)
from config.languages import SUPPORTED_LANGUAGES
from storage.aging import Standing, standing
from storage.dates import PartialDate, Precision
from storage.followers import DEFAULT_LEAD_TIMES, LEAD_TIME_CHOICES
from storage.models import DigestFrequency, EventStatus, SubscriptionScope
from storage.rotation import OrganisationChairs, ProjectedChair
from storage.subscriptions import FollowedTarget, SubscriptionView
from storage.timezones import offset_label
from storage.views import ChairView, ChatView, EventView, OrganisationRef

JSON = dict[str, Any]
PASSED = "passed"
_EXACT = (Precision.TIME, Precision.DAY)


def _plain(html_text: str) -> str:
    return html.unescape(html_text)


# --- the chat and its settings ------------------------------------------------


def timezone_label(zone: str, now: dt.datetime) -> str:
    """ "Almaty (UTC+05:00)"; a fixed offset once ("UTC+05:00")."""
    name, offset = zone_label(zone, now), offset_label(zone, now)
    return name if name == offset else f"{name} ({offset})"


def chat_shape(chat: ChatView, now: dt.datetime, *, can_edit: bool) -> JSON:
    return {
        "id": chat.id,
        "type": chat.type.value,
        "title": chat.title,
        "language": chat.language,
        "timezone": chat.timezone,
        "timezone_label": timezone_label(chat.timezone, now),
        "digest": chat.digest.value,
        "lead_times": list(chat.lead_times or DEFAULT_LEAD_TIMES),
        "paused": chat.paused,
        "can_edit": can_edit,
    }


def choices(tr: Translator) -> JSON:
    """What the settings offer, labelled in the reader's language."""
    return {
        "languages": [{"code": code, "name": language_name(code)} for code in SUPPORTED_LANGUAGES],
        "digests": [{"value": f.value, "label": digest_label(f, tr)} for f in DigestFrequency],
        "lead_times": [
            {"minutes": minutes, "label": lead_time_label(minutes, tr)}
            for minutes in LEAD_TIME_CHOICES
        ],
    }


def organisation_shape(org: OrganisationRef, tr: Translator) -> JSON:
    return {
        "key": org.key,
        "name": organisation_name(org, tr),
        "abbreviation": organisation_short(org, tr),
    }


def subscription_key(subscription: SubscriptionView) -> str | None:
    if subscription.organisation is not None:
        return subscription.organisation.key
    return subscription.event_key


def subscription_shape(subscription: SubscriptionView, tr: Translator) -> JSON:
    return {
        "id": subscription.id,
        "scope": subscription.scope.value,
        "key": subscription_key(subscription),
        "label": subscription_target(subscription, tr),
        "lead_times": list(subscription.lead_times),
        "lead_times_label": lead_times_text(subscription.lead_times, tr),
    }


class Following:
    """What a chat follows, to mark events in the calendar (as ``followed_events`` reads
    a chat's subscriptions: everything, an organisation's events, or one event)."""

    def __init__(self, targets: Iterable[FollowedTarget]) -> None:
        self.everything = False
        self.organisations: set[str] = set()
        self.events: dict[str, int] = {}
        for target in targets:
            if target.scope is SubscriptionScope.ALL:
                self.everything = True
            elif target.organisation_key is not None:
                self.organisations.add(target.organisation_key)
            elif target.event_key is not None:
                self.events[target.event_key] = target.subscription_id

    def follows(self, event: EventView) -> bool:
        return (
            self.everything
            or event.key in self.events
            or (event.organisation is not None and event.organisation.key in self.organisations)
        )


# --- events ---------------------------------------------------------------------


def _status_label(status: str, event: EventView, tr: Translator) -> str:
    if status == PASSED:
        return tr.gettext("dates passed — outcome not recorded")
    return _labels(tr)[event.status]


@functools.lru_cache(maxsize=256)
def _kind_label(kind: str, tr: Translator) -> str:
    return kind_label(kind, tr)


@functools.cache
def _labels(tr: Translator) -> dict[EventStatus, str]:
    # Translators live as long as the process; a calendar labels hundreds of events.
    return {status: status_label(status, tr) for status in EventStatus}


def event_item(
    event: EventView, chat: ChatView, now: dt.datetime, tr: Translator, following: Following
) -> JSON:
    """An event (or an occurrence) as the calendar lists it."""
    return dated_item(
        listed_item(event, chat, tr), event, when_text(event, chat, tr), now, tr, following
    )


def dated_item(
    listed: JSON,
    event: EventView,
    when: str,
    now: dt.datetime,
    tr: Translator,
    following: Following,
) -> JSON:
    """:func:`listed_item` with when it is for this reader (``when``, from
    :func:`when_text`), and what depends on the moment and the chat's subscriptions."""
    # Judged once: the status ("passed") and the words both come from it.
    found = standing(event, now)
    status = PASSED if found is Standing.LAPSED else event.status.value
    return {
        **listed,
        "when": when,
        "status": status,
        "status_label": _status_label(status, event, tr),
        # What the day makes of it whatever its status says, as chat says it: "expected
        # in 2026, dates not announced; may already have taken place".
        "standing": standing_text(found, event, now, tr),
        "followed": following.follows(event),
    }


def when_text(event: EventView, chat: ChatView, tr: Translator) -> str:
    """When the event is, as the card says it: the reader's time first, the venue's beside
    it when they differ; lines apart."""
    return _plain("\n".join(event_when(event, chat, tr)))


def listed_item(event: EventView, chat: ChatView, tr: Translator) -> JSON:
    """What the calendar says of an event whatever the moment: the same for every reader
    of one language until the catalogue changes (so it can be kept). Its ``when`` is the
    reader's only for an event at a time of day (:func:`dated_item` is given it)."""
    org = event.organisation
    return {
        "when": when_text(event, chat, tr),
        "key": event.key,
        "title": event_title(event, tr),
        "organisation": org.key if org else None,
        "organisation_label": organisation_short(org, tr) if org else None,
        "kind": event.kind,
        "kind_label": _kind_label(event.kind, tr),
        "precision": event.start.precision.value,
        "start": event.start.first_day.isoformat(),
        "end": (event.end or event.start).last_day.isoformat(),
        "place": place_label(event, tr) or None,
    }


def event_card(
    event: EventView, chat: ChatView, now: dt.datetime, tr: Translator, following: Following
) -> JSON:
    """What the card in chat says of an event, as data."""
    card = event_item(event, chat, now, tr, following)
    card.update(
        {
            "note": localised(event.note, tr.language) or None,
            "sources": list(event.sources),
            "checked": event.checked.isoformat() if event.checked else None,
            "countdown": countdown(event, chat, now, tr),
            "subscription_id": following.events.get(event.key),
            "recurring": bool(event.recurrence),
        }
    )
    return card


# --- chairs -----------------------------------------------------------------------


def _day(value: PartialDate | None, *, last: bool = False) -> str | None:
    if value is None:
        return None
    return (value.last_day if last else value.first_day).isoformat()


def _approximate(value: PartialDate | None) -> bool:
    return value is not None and value.precision not in _EXACT


def chair_bars(
    group: OrganisationChairs, current: Sequence[ChairView], tr: Translator
) -> list[JSON]:
    """One organisation's recorded chairs, then the rule's projections, as bars.

    A recorded term with no end of its own ends where the data say it did: at the next
    recorded chair's start, or (the newest) at the end its rule gives (``group.ended``);
    such an end is approximate. ``current``: today's chairs (``Catalogue.chairs_on``)."""
    bars = []
    chairs = group.chairs
    ended = group.ended
    for index, chair in enumerate(chairs):
        end = _day(chair.end, last=True)
        end_approximate = _approximate(chair.end)
        if chair.end is None:
            successor = chairs[index + 1] if index + 1 < len(chairs) else None
            if successor is not None and successor.start is not None:
                end, end_approximate = successor.start.first_day.isoformat(), True
            elif ended is not None and ended.chair == chair and ended.last_day is not None:
                end, end_approximate = ended.last_day.isoformat(), True
        bars.append(
            {
                "country": chair.country,
                "country_name": country_name(chair.country, tr),
                "start": _day(chair.start),
                "end": end,
                "start_approximate": _approximate(chair.start),
                "end_approximate": end_approximate,
                "open_end": end is None,
                "projected": False,
                "period": chair_period(chair, tr),
                "note": localised(chair.note, tr.language) or None,
                "sources": list(chair.sources),
                "current": chair in current,
            }
        )
    after = ended.last_day + dt.timedelta(days=1) if ended and ended.last_day else None
    bars.extend(_projected_bar(projected, after, tr) for projected in group.projected)
    return bars


def _projected_bar(projected: ProjectedChair, after: dt.date | None, tr: Translator) -> JSON:
    """Who the rule expects: never a stored fact, drawn dashed and labelled by the page."""
    start: str | None
    end: str | None = None
    start_approximate = False
    if projected.year is not None:
        start = dt.date(projected.year, 1, 1).isoformat()
        end = dt.date(projected.year, 12, 31).isoformat()
    elif projected.host_of is not None:
        summit = projected.host_of
        start = summit.start.first_day.isoformat()
        start_approximate = _approximate(summit.start)
    else:
        start = after.isoformat() if after else None
        start_approximate = True
    return {
        "country": projected.country,
        "country_name": country_name(projected.country, tr),
        "start": start,
        "end": end,
        "start_approximate": start_approximate,
        "end_approximate": end is None,
        "open_end": end is None,
        "projected": True,
        "period": projection_text(projected, tr),
        "note": None,
        "sources": [],
        "current": False,
    }
