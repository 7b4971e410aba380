"""Dialogue state that must outlive one process: what a person was asked and has not
answered yet, and operators' changes waiting behind a one-time token.

Several bot processes may serve one database, and a person's next update may reach any
of them, so nothing here lives in memory. Expired rows are never returned; they are
deleted whenever new state is written. None of these functions commits.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Dialogue, PendingOperation


class DialogueKind(enum.StrEnum):
    ADD_EVENT = "add_event"  # an operator's /addevent questions
    LINK_CHANNEL = "link_channel"  # a forwarded post or an @username comes next
    CHANNEL_TIMEZONE = "channel_timezone"  # a linked channel's time zone comes next


@dataclass(frozen=True)
class DialogueState:
    """The question a person is to answer in a chat, and what the dialogue holds so far."""

    kind: DialogueKind
    step: str
    data: dict[str, Any]
    expires_at: dt.datetime


def _state(row: Dialogue) -> DialogueState:
    return DialogueState(DialogueKind(row.kind), row.step, dict(row.data), row.expires_at)


async def start_dialogue(
    session: AsyncSession,
    user_id: int,
    chat_id: int,
    kind: DialogueKind,
    step: str,
    data: dict[str, Any],
    expires_at: dt.datetime,
    now: dt.datetime,
) -> None:
    """Begin a dialogue, in place of any the person had in this chat."""
    await session.execute(delete(Dialogue).where(Dialogue.expires_at < now))
    await session.execute(
        delete(Dialogue).where(Dialogue.user_id == user_id, Dialogue.chat_id == chat_id)
    )
    session.add(
        Dialogue(
            user_id=user_id,
            chat_id=chat_id,
            kind=kind.value,
            step=step,
            data=data,
            expires_at=expires_at,
        )
    )
    await session.flush()


async def current_dialogue(
    session: AsyncSession, user_id: int, chat_id: int, now: dt.datetime
) -> DialogueState | None:
    """The person's dialogue in this chat, unless there is none or it has expired."""
    row = await session.scalar(
        select(Dialogue).where(
            Dialogue.user_id == user_id, Dialogue.chat_id == chat_id, Dialogue.expires_at >= now
        )
    )
    return None if row is None else _state(row)


async def advance_dialogue(
    session: AsyncSession,
    user_id: int,
    chat_id: int,
    kind: DialogueKind,
    step: str,
    data: dict[str, Any],
    expires_at: dt.datetime,
) -> bool:
    """Move the person's dialogue of ``kind`` on to ``step``; False if it has ended
    meanwhile (left, or replaced by another), which is then not brought back."""
    advanced = await session.scalar(
        update(Dialogue)
        .where(Dialogue.user_id == user_id, Dialogue.chat_id == chat_id, Dialogue.kind == kind)
        .values(step=step, data=data, expires_at=expires_at)
        .returning(Dialogue.user_id)
    )
    return advanced is not None


async def end_dialogue(
    session: AsyncSession,
    user_id: int,
    chat_id: int,
    now: dt.datetime,
    kind: DialogueKind | None = None,
) -> DialogueState | None:
    """End the person's dialogue in this chat (only one of ``kind``, if given); what it
    held, unless it had already ended or expired. Of two processes ending it at once,
    only one gets it back."""
    query = delete(Dialogue).where(Dialogue.user_id == user_id, Dialogue.chat_id == chat_id)
    if kind is not None:
        query = query.where(Dialogue.kind == kind)
    ended = (await session.execute(query.returning(Dialogue))).scalars().first()
    return None if ended is None or ended.expires_at < now else _state(ended)


async def add_pending_operation(
    session: AsyncSession,
    user_id: int,
    chat_id: int,
    payload: dict[str, Any],
    now: dt.datetime,
    expires_at: dt.datetime,
    keep: int,
) -> str:
    """Keep an operator's change until ``expires_at``; its new one-time token (8 hex
    digits). The operator's oldest waiting changes go beyond ``keep``."""
    await session.execute(delete(PendingOperation).where(PendingOperation.expires_at < now))
    older = (
        select(PendingOperation.token)
        .where(PendingOperation.user_id == user_id)
        .order_by(PendingOperation.created_at.desc(), PendingOperation.token)
        .offset(keep - 1)
    )
    await session.execute(delete(PendingOperation).where(PendingOperation.token.in_(older)))
    token = secrets.token_hex(4)
    while await session.get(PendingOperation, token) is not None:
        token = secrets.token_hex(4)
    session.add(
        PendingOperation(
            token=token,
            user_id=user_id,
            chat_id=chat_id,
            payload=payload,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return token


async def claim_pending_operation(
    session: AsyncSession, token: str, user_id: int, chat_id: int, now: dt.datetime
) -> dict[str, Any] | None:
    """Take the change waiting behind ``token`` for this operator in this chat, once: it
    is deleted as it is read, so of two presses (on any processes) only one gets it.
    None when there is none (forged, used, expired, or someone else's)."""
    claimed = await session.scalar(
        delete(PendingOperation)
        .where(
            PendingOperation.token == token,
            PendingOperation.user_id == user_id,
            PendingOperation.chat_id == chat_id,
            PendingOperation.expires_at >= now,
        )
        .returning(PendingOperation.payload)
    )
    return None if claimed is None else dict(claimed)


async def forget_person(session: AsyncSession, user_id: int) -> None:
    """Delete the person's dialogues and waiting changes (/forgetme)."""
    await session.execute(delete(Dialogue).where(Dialogue.user_id == user_id))
    await session.execute(delete(PendingOperation).where(PendingOperation.user_id == user_id))
