"""Calendar files (RFC 5545, built with the icalendar library).

Each event has a stable UID, so importing the file again updates the entry
instead of duplicating it. Dates keep their precision: a day is an all-day
entry, a month an all-day span over the month (marked "dates not announced"),
a time of day is timed in the venue's zone. Alarms follow the chat's lead times.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import icalendar

from bot.presentation.i18n import Translator
from bot.presentation.text import (
    country_name,
    event_title,
    localised,
    location_text,
    status_label,
)
from storage.dates import Precision
from storage.models import EventStatus
from storage.views import EventView

PRODUCT_ID = "-//summitbot//summitbot//EN"
DEFAULT_DURATION = dt.timedelta(hours=1)
ICS_STATUS = {
    EventStatus.CONFIRMED: "CONFIRMED",
    EventStatus.HELD: "CONFIRMED",
    EventStatus.CANCELLED: "CANCELLED",
}
UID_DOMAIN = "summitbot"


def can_export(event: EventView) -> bool:
    """Year-only dates have no calendar entry that would not be a guess."""
    return event.start.precision is not Precision.YEAR


def uid_of(event: EventView) -> str:
    return f"{event.key}@{UID_DOMAIN}"


def _location(event: EventView, tr: Translator) -> str:
    country = country_name(event.country, tr)
    if event.place is not None:  # a known place wins over the location in words
        name = localised(event.place.names, tr.language)
        location = f"{name}, {country}" if country else name
    elif event.location:
        location = location_text(event.location, country)
    else:
        location = country
    if event.online:
        online = tr.gettext("online")
        location = f"{online} ({location})" if location else online
    return location


def _description(event: EventView, tr: Translator) -> str:
    _ = tr.gettext
    lines = [_("Status: {status}", status=status_label(event.status, tr))]
    if event.start.precision is Precision.MONTH:
        lines.append(_("The exact dates are not announced yet."))
    note = localised(event.note, tr.language)
    if note:
        lines.append(note)
    if event.sources:
        lines.append(_("Sources: {sources}", sources="; ".join(event.sources)))
    return "\n".join(lines)


def _component(
    event: EventView, lead_times: Sequence[int], tr: Translator, stamp: dt.datetime
) -> icalendar.Event:
    entry = icalendar.Event()
    entry.add("uid", uid_of(event))
    entry.add("dtstamp", stamp)
    entry.add("last-modified", event.updated_at)
    entry.add("summary", event_title(event, tr))
    if event.start.precision is Precision.TIME and event.timezone:
        zone = ZoneInfo(event.timezone)
        start = event.start.local_start.replace(tzinfo=zone)
        if event.end is None:
            end = start + DEFAULT_DURATION  # a start without an end: a slot, not a guess of length
        elif event.end.precision is Precision.TIME:
            end = event.end.local_start.replace(tzinfo=zone)
        else:  # ends on a day: the end of that day at the venue
            end = event.end.local_end.replace(tzinfo=zone)
        entry.add("dtstart", start)
        entry.add("dtend", end)
    else:
        # All-day: DTEND is exclusive, the day after the last day.
        last = (event.end or event.start).last_day
        entry.add("dtstart", event.start.first_day)
        entry.add("dtend", last + dt.timedelta(days=1))
    location = _location(event, tr)
    if location:
        entry.add("location", location)
    entry.add("description", _description(event, tr))
    entry.add("status", ICS_STATUS.get(event.status, "TENTATIVE"))
    urls = [s for s in event.sources if s.startswith(("http://", "https://"))]
    if urls:
        entry.add("url", urls[0])
    if event.recurrence:
        entry.add("rrule", icalendar.vRecur.from_ical(event.recurrence))
    if event.start.precision in (Precision.TIME, Precision.DAY):
        for minutes in sorted(set(lead_times), reverse=True):
            alarm = icalendar.Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", event_title(event, tr))
            alarm.add("trigger", -dt.timedelta(minutes=minutes))
            entry.add_component(alarm)
    return entry


def calendar_file(
    events: Sequence[EventView], lead_times: Sequence[int], tr: Translator, now: dt.datetime
) -> bytes:
    """One .ics file with ``events`` (those with a year-only date are left out)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "summitbot")
    for event in events:
        if can_export(event):
            calendar.add_component(_component(event, lead_times, tr, now))
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())
