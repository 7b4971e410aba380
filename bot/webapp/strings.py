"""The Mini App page's own words, translated through the bot's gettext catalogues.

``/app/api/session`` sends them to the page, so the page has no catalogue of its own and
``make messages`` extracts these like every other string.
"""

from __future__ import annotations

from bot.presentation.i18n import Translator


def ui_strings(tr: Translator) -> dict[str, str]:
    """Every word the page shows that does not come with the data, by key."""
    _ = tr.gettext
    return {
        "calendar": _("Calendar"),
        "chairs": _("Chairs"),
        "reminders": _("My reminders"),
    }
