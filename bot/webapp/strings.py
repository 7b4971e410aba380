"""The Mini App page's own words, translated through the bot's gettext catalogues.

``/app/api/session`` sends them to the page, so the page has no catalogue of its own and
``make messages`` extracts these like every other string. The names of months and days
and the date patterns come from the reader's locale (CLDR, through Babel), as in chat.

A text may hold ``{name}`` placeholders (``{year}``): the page fills them, after
translation, so a catalogue can move them.
"""

from __future__ import annotations

from bot.presentation.i18n import Translator


def ui_strings(tr: Translator) -> dict[str, str]:
    """Every word the page shows that does not come with the data, by key."""
    _ = tr.gettext
    words = {
        # The three views.
        "calendar": _("Calendar"),
        "chairs": _("Chairs"),
        "reminders": _("My reminders"),
        # Calendar.
        "previous_month": _("Previous month"),
        "next_month": _("Next month"),
        "this_month": _("Back to this month"),
        "year": _("Year"),
        "view_grid": _("Month"),
        "view_agenda": _("Agenda"),
        "organisation": _("Organisation"),
        "all_organisations": _("All organisations"),
        "dates_not_announced": _("dates not announced"),
        "sometime_in": _("Sometime in {year}"),
        "nothing_this_month": _("Nothing this month."),
        "events_count": _("Events: {count}"),
        "followed": _("followed"),
        "show_month": _("Whole month"),
        # An event's card.
        "close": _("Close"),
        "sources": _("Sources"),
        "checked": _("Checked on {date}"),
        "follow_event": _("🔔 Follow"),
        "unfollow_event": _("🔕 Unfollow"),
        "followed_through": _("Reminders for this come through another subscription."),
        # Chairs timeline.
        "today": _("today"),
        "projected": _("projected"),
        "projected_note": _("Projected from the rotation rule; not a recorded fact."),
        "open_end": _("no end date set"),
        "approximate": _("dates approximate"),
        "current": _("current chair"),
        "no_chairs": _("No chairs recorded."),
        # My reminders.
        "following": _("What this chat follows"),
        "nothing_followed": _("Nothing followed yet. Tap 🔔 on an event to follow it."),
        "unfollow": _("Unfollow"),
        "lead_times": _("Reminders before"),
        "change_lead_times": _("Change lead times"),
        "follow_everything": _("Follow all events"),
        "follow_organisation": _("Follow an organisation"),
        "follow": _("Follow"),
        "settings": _("Settings"),
        "language": _("Language"),
        "timezone": _("Time zone"),
        "digest": _("Digest"),
        "default_lead_times": _("Default lead times"),
        "save": _("Save"),
        "saved": _("Saved."),
        "read_only": _("Only the chat's admins can change these settings."),
        "paused": _("Reminders are paused in this chat."),
        # Loading and errors.
        "loading": _("Loading…"),
        "retry": _("Try again"),
        "error_unauthorized": _(
            "This window is no longer signed in. Open the app from the bot again."
        ),
        "error_network": _("The bot cannot be reached. Check the connection and try again."),
        "error_generic": _("Something went wrong. Try again."),
    }
    return words | calendar_words(tr)


def calendar_words(tr: Translator) -> dict[str, str]:
    """Month and weekday names and date patterns of the reader's locale (Babel's CLDR data).

    Weekdays are numbered from Monday (0) as Babel does; ``first_weekday`` is the column
    the grid starts with. Patterns are CLDR's (``d MMM y``), filled in by the page.
    """
    locale = tr.locale
    words = {
        "first_weekday": str(locale.first_week_day),
        "date_pattern": locale.date_formats["medium"].pattern,
        "day_pattern": locale.date_formats["full"].pattern,
        "month_pattern": locale.datetime_skeletons["yMMMM"].pattern,
    }
    for month in range(1, 13):
        words[f"month_{month}"] = locale.months["format"]["wide"][month]
        words[f"month_short_{month}"] = locale.months["format"]["abbreviated"][month]
        words[f"month_alone_{month}"] = locale.months["stand-alone"]["wide"][month]
    for day in range(7):
        words[f"weekday_{day}"] = locale.days["format"]["wide"][day]
        words[f"weekday_short_{day}"] = locale.days["stand-alone"]["short"][day]
    return words
