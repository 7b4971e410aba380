"""The languages the bot speaks and how Telegram's language codes map to them."""

from __future__ import annotations

SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "ru", "kk", "zh", "ar")


def normalise_language(code: str | None, default: str) -> str:
    """Map a Telegram ``language_code`` (``zh-hans``, ``ru-RU``, ``pt-br``) to a supported one."""
    if not code:
        return default
    primary = code.replace("_", "-").split("-", 1)[0].casefold()
    return primary if primary in SUPPORTED_LANGUAGES else default
