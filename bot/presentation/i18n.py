"""Translations of the bot's own words, through gettext catalogues managed with Babel.

Every user-visible string is written as ``_("…")`` (or ``ngettext``) on a
:class:`Translator`, so ``pybabel extract`` finds it. Placeholders are named
(``{name}``) and filled by the translator after translation, so a catalogue
can reorder them. A language without a catalogue speaks English.
"""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from config.languages import SUPPORTED_LANGUAGES

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
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


def catalogue_path(language: str) -> Path:
    return LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def _load(language: str) -> NullTranslations:
    # Catalogues ship as .po only: compiled here, in memory, so there is no build step
    # and no generated binary in the repository.
    path = catalogue_path(language)
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


@functools.cache
def translator(language: str) -> Translator:
    """The (cached) translator for a supported language; others get English."""
    if language not in SUPPORTED_LANGUAGES:
        language = "en"
    return Translator(language, _load(language))


# Right-to-left scripts: a line that starts with a date, a number or a Latin name would
# otherwise be laid out left to right, and "3–4" may read "4–3" inside Arabic text.
RLM = "\u200f"
LRI, PDI = "\u2066", "\u2069"
_NUMERIC_RUN = re.compile(r"\d[\d:.,/]*(?:\s?[–\-−]\s?\d[\d:.,/]*)+")


def directional(text: str, tr: Translator) -> str:
    """Text laid out for the reader: in RTL languages every line starts right to left and
    number ranges are isolated left to right. Other languages are unchanged."""
    if not tr.is_rtl:
        return text
    lines = []
    for line in text.split("\n"):
        line = _NUMERIC_RUN.sub(lambda m: f"{LRI}{m.group(0)}{PDI}", line)
        lines.append(f"{RLM}{line}" if line else line)
    return "\n".join(lines)
