"""Telegram's signed ``initData``: who opened the Mini App, checked before anything else.

Telegram hands the page a query string (``Telegram.WebApp.initData``) signed with a key
derived from the bot's token; the page sends it back with every API call
(``Authorization: tma <initData>``). It is genuine when its ``hash`` is
HMAC-SHA256(key = HMAC-SHA256("WebAppData", token), the other fields sorted by name
as ``name=value`` lines), compared in constant time, and recent: ``auth_date`` no older
than ``WEBAPP_AUTH_MAX_AGE_SECONDS`` and not in the future
(https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app).

:func:`sign_init_data` builds such a string, for the tests and ``summitbot webapp``
in development: it does what Telegram does, with the token it is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

# Telegram's clock and ours may differ a little; a date further ahead was not made by it.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
# initData is a few hundred bytes; anything far larger is not Telegram's.
MAX_INIT_DATA_LENGTH = 8192
_KEY_SALT = b"WebAppData"


class InitDataError(Exception):
    """initData that is missing, malformed, forged or too old; ``reason`` says which
    (for the log: the caller answers 401 whatever it is)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WebAppUser:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False


@dataclass(frozen=True)
class InitData:
    """What a verified initData says."""

    user: WebAppUser
    auth_date: dt.datetime
    query_id: str | None = None
    start_param: str | None = None  # ``startapp`` of a t.me/<bot>/<app> link
    chat_type: str | None = None  # where it was opened: "private", "group", "supergroup"…
    chat_instance: str | None = None


def _secret_key(bot_token: str) -> bytes:
    return hmac.new(_KEY_SALT, bot_token.encode(), hashlib.sha256).digest()


def _data_check_string(fields: Mapping[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def _signature(fields: Mapping[str, str], bot_token: str) -> str:
    message = _data_check_string(fields).encode()
    return hmac.new(_secret_key(bot_token), message, hashlib.sha256).hexdigest()


def verify_init_data(raw: str, bot_token: str, now: dt.datetime, max_age: dt.timedelta) -> InitData:
    """The initData ``raw`` if Telegram signed it for ``bot_token`` within ``max_age``
    of ``now``; raises :class:`InitDataError` otherwise."""
    if not raw or len(raw) > MAX_INIT_DATA_LENGTH:
        raise InitDataError("missing" if not raw else "too_long")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError("malformed") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:  # a field given twice: which one was signed?
            raise InitDataError("malformed")
        fields[key] = value
    given = fields.get("hash")
    if not given:
        raise InitDataError("no_hash")
    expected = _signature(fields, bot_token)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise InitDataError("bad_hash")
    # Signed by Telegram from here on; still, only what is well formed is taken.
    try:
        auth_date = dt.datetime.fromtimestamp(int(fields["auth_date"]), dt.UTC)
    except (KeyError, ValueError, OverflowError, OSError):
        raise InitDataError("no_auth_date") from None
    if auth_date > now + FUTURE_TOLERANCE:
        raise InitDataError("from_the_future")
    if now - auth_date > max_age:
        raise InitDataError("expired")
    return InitData(
        user=_user(fields.get("user")),
        auth_date=auth_date,
        query_id=fields.get("query_id") or None,
        start_param=fields.get("start_param") or None,
        chat_type=fields.get("chat_type") or None,
        chat_instance=fields.get("chat_instance") or None,
    )


def _user(raw: str | None) -> WebAppUser:
    if raw is None:
        raise InitDataError("no_user")
    try:
        data = json.loads(raw)
    except ValueError:
        raise InitDataError("bad_user") from None
    if not isinstance(data, dict):
        raise InitDataError("bad_user")
    user_id = data.get("id")
    # bool is an int to Python, never to Telegram.
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        raise InitDataError("bad_user")

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) and value else None

    return WebAppUser(
        id=user_id,
        first_name=text("first_name") or "",
        last_name=text("last_name"),
        username=text("username"),
        language_code=text("language_code"),
        is_bot=data.get("is_bot") is True,
    )


def claimed_language(raw: str) -> str | None:
    """The ``language_code`` an initData's user claims, without checking the signature:
    only for choosing the words of a refusal."""
    try:
        fields = dict(parse_qsl(raw[:MAX_INIT_DATA_LENGTH], keep_blank_values=True))
        user = json.loads(fields.get("user", "null"))
    except ValueError:
        return None
    code = user.get("language_code") if isinstance(user, dict) else None
    return code if isinstance(code, str) else None


def sign_init_data(
    bot_token: str,
    *,
    user: Mapping[str, Any] | None,
    auth_date: dt.datetime,
    **fields: str,
) -> str:
    """An initData string as Telegram signs it for ``bot_token`` (tests, development).

    ``user`` is the user object (None leaves the field out); other fields
    (``start_param``, ``chat_type``, ``chat_instance``, ``query_id``…) are passed as is.
    """
    values: dict[str, str] = {"auth_date": str(int(auth_date.timestamp())), **fields}
    if user is not None:
        values["user"] = json.dumps(dict(user), ensure_ascii=False, separators=(",", ":"))
    values["hash"] = _signature(values, bot_token)
    return urlencode(values)
