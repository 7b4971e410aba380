"""Translations of the bot's own words, through gettext catalogues managed with Babel.

Every user-visible string is written as ``_("…")`` (or ``ngettext``) on a
:class:`Translator`, so ``pybabel extract`` finds it. Placeholders are named
(``{name}``) and filled by the translator after translation, so a catalogue
can reorder them. A language without a catalogue speaks English.
"""

from __future__ import annotations

import functools
from pathlib import Path

from babel import Locale
from babel.support import NullTranslations, Translations

from config.languages import SUPPORTED_LANGUAGES

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"

# Babel locale used for dates and country names of each language.
BABEL_LOCALES = {"en": "en_GB", "ru": "ru", "kk": "kk", "zh": "zh_Hans", "ar": "ar"}


class Translator:
    """The bot's words in one language, plus that language's Babel locale."""

    def __init__(self, language: str, translations: NullTranslations) -> None:
        self.language = language
        self.locale = Locale.parse(BABEL_LOCALES.get(language, language))
        self._translations = translations

    def gettext(self, message: str, /, **values: object) -> str:
        text = self._translations.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, count: int, /, **values: object) -> str:
        text = self._translations.ngettext(singular, plural, count)
        return text.format(count=count, **values)

    @property
    def is_rtl(self) -> bool:
        return self.locale.text_direction == "rtl"


@functools.cache
def translator(language: str) -> Translator:
    """The (cached) translator for a supported language; others get English."""
    if language not in SUPPORTED_LANGUAGES:
        language = "en"
    translations = Translations.load(str(LOCALES_DIR), [language], DOMAIN)
    return Translator(language, translations)
