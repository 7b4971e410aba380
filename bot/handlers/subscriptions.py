"""/subscribe, /unsubscribe, /mysubs, /leadtimes and their buttons."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from telegram import Update

from bot.context import BotContext, Services
from bot.handlers.arguments import joined
from bot.permissions import allowed_or_refused
from bot.presentation import callbacks, render
from bot.presentation.messaging import answer, edit
from storage.models import SubscriptionScope
from storage.search import normalise
from storage.subscriptions import Followed, SubscriptionError, SubscriptionView

# "/subscribe all" in the five languages.
ALL_WORDS = frozenset(
    {"all", "everything", "всё", "все", "барлығы", "бәрі", "全部", "所有", "الكل"}
)


async def _allowed(update: Update, context: BotContext) -> bool:
    refusal = context.tr.gettext("Only the admins of this group can change what it follows.")
    return await allowed_or_refused(update, context, refusal)


async def _resolve(
    update: Update, context: BotContext, text: str
) -> tuple[SubscriptionScope, str | None] | None:
    """What "/subscribe TEXT" names: everything, an organisation or an event id."""
    if normalise(text) in ALL_WORDS:
        return SubscriptionScope.ALL, None
    org = await context.catalogue.find_organisation(text)
    if org is not None:
        return SubscriptionScope.ORGANISATION, org.key
    event = await context.catalogue.event(text.casefold())
    if event is not None:
        return SubscriptionScope.EVENT, event.key
    suggestions = await context.catalogue.suggestions(text)
    await answer(update, context, render.not_found(text, suggestions, context.tr))
    return None


async def follow_target(
    services: Services, chat_id: int, scope: SubscriptionScope, key: str | None, now: dt.datetime
) -> Followed:
    """Follow a target for a chat (a command, a 🔔 button, the Mini App) and wake the
    dispatcher for a reminder that may now be due before the next sweep.

    Raises :class:`SubscriptionError` as :meth:`Subscriptions.follow` does.
    """
    followed = await services.subscriptions.follow(chat_id, scope, key, now)
    if followed.first_due is not None:
        services.dispatcher.wake_by(followed.first_due)
    elif followed.replanned:
        await services.dispatcher.poke()
    return followed


async def change_lead_times(
    services: Services,
    chat_id: int,
    subscription_id: int | None,
    minutes: Sequence[int],
    now: dt.datetime,
) -> tuple[int, ...]:
    """Set the lead times of a subscription, or the chat's default (``None``), as the
    Mini App chooses them (the chat toggles one at a time); its reminders are planned
    again in the same transaction, and the dispatcher looks at once."""
    chosen = await services.subscriptions.set_lead_times(chat_id, subscription_id, minutes, now)
    await services.dispatcher.poke()
    return chosen


async def follow(
    update: Update, context: BotContext, scope: SubscriptionScope, key: str | None
) -> None:
    """Follow a target for this chat and confirm (also used by 🔔 buttons)."""
    if not await _allowed(update, context):
        return
    chat_id = context.chat_view.id
    try:
        followed = await follow_target(context.services, chat_id, scope, key, context.clock.now())
    except SubscriptionError as exc:
        _ = context.tr.gettext
        if exc.reason == "too_many":
            text = _("This chat follows too many things already; unfollow some with /mysubs.")
        else:
            text = _("That no longer exists.")
        await answer(update, context, render.Reply(render.esc(text)))
        return
    await answer(
        update, context, render.followed(followed.subscription, followed.created, context.tr)
    )


async def subscribe(update: Update, context: BotContext) -> None:
    text = joined(context.args)
    if not text:
        if await _allowed(update, context):
            orgs = await context.catalogue.organisations()
            await answer(update, context, render.subscribe_menu(orgs, context.tr))
        return
    target = await _resolve(update, context, text)
    if target is not None:
        await follow(update, context, *target)


async def unfollow(update: Update, context: BotContext, subscription_id: int) -> None:
    if not await _allowed(update, context):
        return
    removed = await context.services.subscriptions.unfollow(
        context.chat_view.id, subscription_id, context.clock.now()
    )
    if removed is None:
        text = render.esc(context.tr.gettext("This chat does not follow that."))
        await answer(update, context, render.Reply(text))
        return
    await answer(update, context, render.unfollowed(removed, context.tr))


async def unsubscribe(update: Update, context: BotContext) -> None:
    text = joined(context.args)
    if not text:
        await mysubs(update, context)
        return
    target = await _resolve(update, context, text)
    if target is None:
        return
    scope, key = target
    for subscription in await context.services.subscriptions.of_chat(context.chat_view.id):
        if subscription.scope is scope and _key_of(subscription) == key:
            await unfollow(update, context, subscription.id)
            return
    text = render.esc(context.tr.gettext("This chat does not follow that."))
    await answer(update, context, render.Reply(text))


def _key_of(subscription: SubscriptionView) -> str | None:
    if subscription.organisation is not None:
        return subscription.organisation.key
    return subscription.event_key


async def mysubs(update: Update, context: BotContext) -> None:
    chat_id = context.chat_view.id
    subscriptions = await context.services.subscriptions.of_chat(chat_id)
    default = await context.services.subscriptions.default_lead_times(chat_id)
    await answer(update, context, render.subscriptions_list(subscriptions, default, context.tr))


async def leadtimes(update: Update, context: BotContext) -> None:
    if not await _allowed(update, context):
        return
    await _show_lead_menu(update, context, 0, in_place=False)


async def _show_lead_menu(
    update: Update, context: BotContext, subscription_id: int, *, in_place: bool
) -> None:
    state = await context.services.subscriptions.lead_times_of(
        context.chat_view.id, subscription_id or None
    )
    if state is None:
        text = render.esc(context.tr.gettext("This chat does not follow that."))
        await answer(update, context, render.Reply(text))
        return
    subscription, lead_times = state
    target = render.subscription_target(subscription, context.tr) if subscription else None
    reply = render.lead_menu(target, lead_times, subscription_id, context.tr)
    if in_place:
        await edit(update, context, reply)
        return
    await answer(update, context, reply)


async def button(update: Update, context: BotContext, action: callbacks.Action) -> None:
    """The subscription buttons (the router in ``handlers.buttons`` sends them here)."""
    query = update.callback_query
    assert query is not None
    _ = context.tr.gettext
    if not await _allowed(update, context):  # answers the query with the refusal
        return
    match action:
        case callbacks.ToggleLead(subscription_id, minutes):
            try:
                changed = await context.services.subscriptions.toggle_lead_time(
                    context.chat_view.id, subscription_id or None, minutes, context.clock.now()
                )
            except SubscriptionError as exc:
                if exc.reason == "no_lead_times":
                    await query.answer(_("Keep at least one lead time."), show_alert=True)
                else:
                    await query.answer(_("This button has expired."), show_alert=True)
                return
            await query.answer()
            if changed.first_due is not None:  # a reminder may be due before the next sweep
                context.services.dispatcher.wake_by(changed.first_due)
            target = (
                render.subscription_target(changed.subscription, context.tr)
                if changed.subscription
                else None
            )
            menu = render.lead_menu(target, changed.lead_times, subscription_id, context.tr)
            await edit(update, context, menu)
            return
    await query.answer()
    match action:
        case callbacks.Follow(scope, key):
            await follow(update, context, scope, key)
        case callbacks.SubscribeMenu():
            await subscribe(update, context)
        case callbacks.Unfollow(subscription_id):
            await unfollow(update, context, subscription_id)
        case callbacks.LeadMenu(subscription_id):
            await _show_lead_menu(update, context, subscription_id, in_place=False)
        case callbacks.LeadDone(subscription_id):
            state = await context.services.subscriptions.lead_times_of(
                context.chat_view.id, subscription_id or None
            )
            if state is not None:
                text = _(
                    "Reminders come {leads} before each event.",
                    leads=render.esc(render.lead_times_text(state[1], context.tr)),
                )
                await edit(update, context, render.Reply(text))
