"""A chat's settings as menus and answers: what it follows and how long before,
its language and time zone, linked channels and what they post, calendar feeds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.lists import format_list
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from bot.presentation import callbacks
from bot.presentation.i18n import Translator, translator
from bot.presentation.text import Reply, bold, esc, localised, organisation_short
from config.languages import SUPPORTED_LANGUAGES
from storage.followers import DEFAULT_LEAD_TIMES, LEAD_TIME_CHOICES
from storage.models import DeliveryStatus, DigestFrequency, SubscriptionScope
from storage.subscriptions import SubscriptionView
from storage.timezones import City, ZoneChoice, offset_label
from storage.views import (
    ChatView,
    OrganisationRef,
)

# --- subscriptions and reminders ------------------------------------------


def lead_time_label(minutes: int, tr: Translator) -> str:
    """ "7 days", "3 hours", "15 minutes"."""
    if minutes % 1440 == 0:
        return tr.ngettext("{count} day", "{count} days", minutes // 1440)
    if minutes % 60 == 0:
        return tr.ngettext("{count} hour", "{count} hours", minutes // 60)
    return tr.ngettext("{count} minute", "{count} minutes", minutes)


def lead_times_text(minutes: Sequence[int], tr: Translator) -> str:
    """ "7 days, 1 day and 1 hour", longest first, in the reader's language."""
    labels = [lead_time_label(m, tr) for m in sorted(minutes, reverse=True)]
    return str(format_list(labels, locale=tr.locale)) if labels else ""


def subscription_target(subscription: SubscriptionView, tr: Translator) -> str:
    _ = tr.gettext
    if subscription.scope is SubscriptionScope.ALL:
        return _("all summits and meetings")
    if subscription.organisation is not None:
        return organisation_short(subscription.organisation, tr)
    if subscription.event_title is not None:
        return localised(subscription.event_title, tr.language)
    return subscription.event_key or "?"


def _subscription_buttons(
    subscription: SubscriptionView, tr: Translator
) -> list[InlineKeyboardButton]:
    _ = tr.gettext
    return [
        InlineKeyboardButton(_("⏱ Lead times"), callback_data=callbacks.lead_menu(subscription.id)),
        InlineKeyboardButton(_("✖ Unfollow"), callback_data=callbacks.unfollow(subscription.id)),
    ]


def followed(subscription: SubscriptionView, created: bool, tr: Translator) -> Reply:
    _ = tr.gettext
    target = esc(subscription_target(subscription, tr))
    leads = esc(lead_times_text(subscription.lead_times, tr))
    if created:
        text = _("✅ You now follow <b>{target}</b>.", target=target)
    else:
        text = _("You already follow <b>{target}</b>.", target=target)
    text += "\n" + _("Reminders come {leads} before each event.", leads=leads)
    text += "\n" + esc(
        _(
            "Events known only to the month get one notice at the start of that month; "
            "events known only to the year get none until their dates are announced."
        )
    )
    return Reply(text, InlineKeyboardMarkup([_subscription_buttons(subscription, tr)]))


def unfollowed(subscription: SubscriptionView, tr: Translator) -> Reply:
    _ = tr.gettext
    target = esc(subscription_target(subscription, tr))
    return Reply(_("You no longer follow <b>{target}</b>.", target=target))


def subscribe_menu(orgs: Sequence[OrganisationRef], tr: Translator) -> Reply:
    _ = tr.gettext
    text = "\n".join(
        [
            bold(_("What would you like to follow?")),
            esc(
                _(
                    "Everything, one organisation, or one event (the 🔔 button on an event's "
                    "card, or /subscribe EVENT_ID)."
                )
            ),
        ]
    )
    buttons = [
        InlineKeyboardButton(
            organisation_short(org, tr), callback_data=callbacks.follow_org(org.key)
        )
        for org in orgs
    ]
    rows = [[InlineKeyboardButton(_("Everything"), callback_data=callbacks.follow_all())]]
    rows.extend(buttons[i : i + 4] for i in range(0, len(buttons), 4))
    return Reply(text, InlineKeyboardMarkup(rows))


def subscriptions_list(
    subscriptions: Sequence[SubscriptionView], default: Sequence[int], tr: Translator
) -> Reply:
    _ = tr.gettext
    if not subscriptions:
        text = esc(_("This chat follows nothing yet. Use /subscribe to choose."))
        return Reply(
            text,
            InlineKeyboardMarkup(
                [[InlineKeyboardButton(_("Follow…"), callback_data=callbacks.subscribe_menu())]]
            ),
        )
    lines = [bold(_("This chat follows:"))]
    rows = []
    for number, subscription in enumerate(subscriptions, start=1):
        target = subscription_target(subscription, tr)
        leads = lead_times_text(subscription.lead_times, tr)
        lines.append(f"{number}. {esc(target)} — {esc(leads)}")
        rows.append(
            [
                InlineKeyboardButton(
                    f"⏱ {number}", callback_data=callbacks.lead_menu(subscription.id)
                ),
                InlineKeyboardButton(
                    f"✖ {number}", callback_data=callbacks.unfollow(subscription.id)
                ),
            ]
        )
    lines.append("")
    lines.append(esc(_("Default lead times: {leads}", leads=lead_times_text(default, tr))))
    rows.append(
        [InlineKeyboardButton(_("⏱ Default lead times"), callback_data=callbacks.lead_menu(0))]
    )
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows))


def lead_menu(
    target: str | None, current: Sequence[int], subscription_id: int, tr: Translator
) -> Reply:
    """Toggle buttons for every lead time on offer; the current ones ticked."""
    _ = tr.gettext
    if target is None:
        text = _("Default lead times for new subscriptions of this chat:")
    else:
        text = _("Remind before <b>{target}</b>:", target=esc(target))
    text += "\n" + esc(_("Tap to switch a lead time on or off."))
    buttons = [
        InlineKeyboardButton(
            ("✓ " if minutes in current else "· ") + lead_time_label(minutes, tr),
            callback_data=callbacks.toggle_lead(subscription_id, minutes),
        )
        for minutes in LEAD_TIME_CHOICES
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    rows.append(
        [InlineKeyboardButton(_("Done"), callback_data=callbacks.lead_done(subscription_id))]
    )
    return Reply(text, InlineKeyboardMarkup(rows))


# --- language and time zone -------------------------------------------------


def language_name(language: str) -> str:
    """A language's name in itself (Babel): "Русский", "Қазақ тілі", "中文"."""
    locale = translator(language).locale
    name = str(locale.display_name or language)
    return name[:1].upper() + name[1:]


def language_menu(tr: Translator) -> Reply:
    _ = tr.gettext
    buttons = [
        InlineKeyboardButton(language_name(code), callback_data=callbacks.set_language(code))
        for code in SUPPORTED_LANGUAGES
    ]
    text = _(
        "Choose the language of this chat. Now: {language}.", language=language_name(tr.language)
    )
    return Reply(esc(text), InlineKeyboardMarkup([buttons[:3], buttons[3:]]))


def language_set(tr: Translator) -> Reply:
    _ = tr.gettext
    return Reply(esc(_("Done: I will speak {language} here.", language=language_name(tr.language))))


def timezone_help(zone: str, now: dt.datetime, tr: Translator) -> Reply:
    _ = tr.gettext
    local = format_datetime(now.astimezone(ZoneInfo(zone)), "HH:mm", locale=tr.locale)
    lines = [
        _(
            "This chat's time zone: <b>{zone}</b> ({offset}), now {time}.",
            zone=esc(zone),
            offset=offset_label(zone, now),
            time=local,
        ),
        esc(
            _(
                "Change it with /tz and a city (/tz Almaty, /tz Пекин), a time zone "
                "(/tz Europe/Berlin) or an offset (/tz UTC+5); in a private chat you can "
                "also share your location."
            )
        ),
    ]
    return Reply("\n".join(lines))


def timezone_unknown(text: str, suggestions: Sequence[str], tr: Translator) -> Reply:
    _ = tr.gettext
    lines = [_("I don't know the time zone of “{name}”.", name=esc(text[:100]))]
    if suggestions:
        names = ", ".join(f"<b>{esc(s)}</b>" for s in suggestions)
        lines.append(_("Did you mean: {names}?", names=names))
    lines.append(esc(_("Try a big city nearby, a zone such as Asia/Almaty, or UTC+5.")))
    return Reply("\n".join(lines))


def timezone_set(choice: ZoneChoice, now: dt.datetime, tr: Translator) -> Reply:
    if choice.city is not None:
        return timezone_set_by_city(choice.city, now, tr)
    _ = tr.gettext
    local = format_datetime(now.astimezone(ZoneInfo(choice.zone)), "HH:mm", locale=tr.locale)
    text = _(
        "Time zone set to <b>{zone}</b> ({offset}); it is {time} there now.",
        zone=esc(choice.zone),
        offset=offset_label(choice.zone, now),
        time=local,
    )
    return Reply(text)


def timezone_set_by_city(city: City, now: dt.datetime, tr: Translator) -> Reply:
    _ = tr.gettext
    local = format_datetime(now.astimezone(ZoneInfo(city.timezone)), "HH:mm", locale=tr.locale)
    text = _(
        "Time zone set to <b>{zone}</b> ({city}, {offset}); it is {time} there now.",
        zone=esc(city.timezone),
        city=esc(city.name(tr.language)),
        offset=offset_label(city.timezone, now),
        time=local,
    )
    return Reply(text)


def channel_keyboard(
    event_key: str | None, bot_username: str, tr: Translator
) -> InlineKeyboardMarkup | None:
    """Buttons under a channel post: links into a private chat with the bot."""
    _ = tr.gettext
    if not event_key or not bot_username:
        return None
    url = f"https://t.me/{bot_username}?start=e_{event_key}"
    return InlineKeyboardMarkup([[InlineKeyboardButton(_("🔔 Remind me"), url=url)]])


def digest_label(frequency: DigestFrequency, tr: Translator) -> str:
    _ = tr.gettext
    labels = {
        DigestFrequency.OFF: _("no digest"),
        DigestFrequency.DAILY: _("daily digest"),
        DigestFrequency.WEEKLY: _("weekly digest"),
    }
    return labels[frequency]


def channels_list(channels: Sequence[ChatView], tr: Translator) -> Reply:
    _ = tr.gettext
    lines = [bold(_("Your channels"))]
    if not channels:
        lines.append(esc(_("No channel is linked yet.")))
    rows = []
    for channel in channels:
        state = "" if channel.is_active and not channel.paused else " " + _("(paused)")
        lines.append(f"• {esc(channel.title or channel.id)}{esc(state)}")
        rows.append(
            [
                InlineKeyboardButton(
                    f"⚙ {channel.title or channel.id}"[:60],
                    callback_data=callbacks.channel_action(channel.id, "menu"),
                )
            ]
        )
    rows.append(
        [
            InlineKeyboardButton(
                _("➕ Link a channel"), callback_data=callbacks.channel_action(0, "link")
            )
        ]
    )
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows))


def channel_menu(
    channel: ChatView,
    subscriptions: Sequence[SubscriptionView],
    orgs: Sequence[OrganisationRef],
    tr: Translator,
    *,
    linked: bool = False,
) -> Reply:
    """Everything about a linked channel on one message, each button a toggle or a choice."""
    _ = tr.gettext
    title = esc(channel.title or channel.id)
    lines = [
        _("✅ Linked <b>{channel}</b>.", channel=title)
        if linked
        else bold(channel.title or str(channel.id))
    ]
    followed = ", ".join(subscription_target(s, tr) for s in subscriptions) or _("nothing yet")
    leads = channel.lead_times or DEFAULT_LEAD_TIMES
    lines.append(esc(_("Follows: {targets}", targets=followed)))
    lines.append(esc(_("Reminders: {leads} before", leads=lead_times_text(leads, tr))))
    lines.append(
        esc(
            _(
                "Language: {language}; time zone: {zone}",
                language=language_name(channel.language),
                zone=channel.timezone,
            )
        )
    )
    lines.append(esc(digest_label(channel.digest, tr)))
    if channel.paused:
        lines.append(esc(_("Paused: nothing is posted until you resume.")))
    if not channel.is_active:
        lines.append(esc(_("I cannot post there now: make me an administrator who may post.")))

    def button(label: str, action: str, argument: str | None = None) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            label[:60], callback_data=callbacks.channel_action(channel.id, action, argument)
        )

    followed_orgs = {s.organisation.key for s in subscriptions if s.organisation}
    follows_all = any(s.scope is SubscriptionScope.ALL for s in subscriptions)
    targets = [button(("✓ " if follows_all else "· ") + _("Everything"), "all")]
    targets += [
        button(
            ("✓ " if org.key in followed_orgs else "· ") + organisation_short(org, tr),
            "org",
            org.key,
        )
        for org in orgs
    ]
    rows = [targets[i : i + 4] for i in range(0, len(targets), 4)]
    lead_buttons = [
        button(("✓ " if m in leads else "· ") + lead_time_label(m, tr), "lead", str(m))
        for m in LEAD_TIME_CHOICES
    ]
    rows += [lead_buttons[i : i + 4] for i in range(0, len(lead_buttons), 4)]
    rows.append([button(language_name(code), "lang", code) for code in SUPPORTED_LANGUAGES])
    rows.append(
        [
            button(("✓ " if channel.digest is f else "") + digest_label(f, tr), "digest", f.value)
            for f in DigestFrequency
        ]
    )
    rows.append(
        [
            button(_("🕑 Time zone"), "tz"),
            button(
                _("▶ Resume") if channel.paused else _("⏸ Pause"),
                "resume" if channel.paused else "pause",
            ),
            button(_("✖ Unlink"), "unlink"),
        ]
    )
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows))


def announce_summary(outcome: dict[str, Any], fresh: set[str], tr: Translator) -> Reply:
    """Where an announcement went: posted now, posted before, or failed and why."""
    _ = tr.gettext
    if not outcome:
        return Reply(esc(_("No linked channel to post to.")))
    lines = [bold(_("Announcement"))]
    for name, row in sorted(outcome.items()):
        status = DeliveryStatus(row.status) if row is not None else None
        if status is DeliveryStatus.SENT and name in fresh:
            state = _("posted")
        elif status is DeliveryStatus.SENT:
            state = _("already posted before")
        elif status is DeliveryStatus.FAILED:
            state = _("failed: {reason}", reason=row.error or "?")
        else:
            state = _("not posted yet ({status})", status=status.value if status else "?")
        lines.append(f"• {esc(name)} — {esc(state)}")
    return Reply("\n".join(lines))


def calendar_feed(url: str, tr: Translator, *, new: bool = False) -> Reply:
    """The chat's calendar feed address, with a button that replaces it."""
    _ = tr.gettext
    lines = [
        "📅 " + bold(_("Calendar feed")),
        esc(
            _(
                "Add this address to your calendar app (in Google Calendar: "
                "“From URL”; in Apple Calendar: “New Calendar Subscription”) and it "
                "stays up to date with what this chat follows:"
            )
        ),
        f"<code>{esc(url)}</code>",
        esc(_("Anyone with the address can read the list: share it with care.")),
    ]
    if new:
        lines.append(esc(_("The old link no longer works.")))
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(_("🔄 New link"), callback_data=callbacks.new_feed_address())]]
    )
    return Reply("\n".join(lines), keyboard)
