"""Finding organisations and events by any name, abbreviation or alias, in any language.

Matching is tolerant to case, Arabic diacritics, ё/е and small typos (RapidFuzz),
and to Chinese written without spaces (a query inside a name counts).
"""

from __future__ import annotations

import bisect
import heapq
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_TOKEN = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ARABIC_ARTICLE = "ال"

# Words that ask for the next event rather than name one, in the five languages.
NEXT_WORDS = frozenset(
    {"next", "upcoming", "следующий", "следующая", "ближайший", "ближайшая", "келесі",
     "下一", "下次", "下届", "القادم", "القادمة", "المقبل", "المقبلة"}
)  # fmt: skip

EXACT = 1.0
PREFIX = 0.9
CONTAINED = 0.85
FUZZY_WEIGHT = 0.85
MIN_SCORE = 0.5


def normalise(text: str) -> str:
    """Case-, width- and diacritic-insensitive form of a name."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _ARABIC_MARKS.sub("", text)
    return text.replace("ё", "е").replace("أ", "ا").replace("إ", "ا").replace("آ", "ا").strip()


def tokens(text: str) -> list[str]:
    found = _TOKEN.findall(normalise(text))
    # Arabic names are often searched without the article: المنظمة ~ منظمة.
    return [t[2:] if t.startswith(_ARABIC_ARTICLE) and len(t) > 4 else t for t in found]


def _is_cjk(token: str) -> bool:
    return bool(_CJK.search(token))


@dataclass(frozen=True)
class SearchDocument:
    """One searchable thing: ``kind`` is ``organisation`` or ``event``."""

    kind: str
    key: str
    phrases: tuple[str, ...]  # full names, abbreviations, aliases
    extra_terms: tuple[str, ...] = ()  # searchable words that are not names (years, places)


@dataclass(frozen=True)
class SearchHit:
    kind: str
    key: str
    score: float
    exact: bool


class SearchIndex:
    """An in-memory index over the documents; build a new one when the data change."""

    def __init__(self, documents: Iterable[SearchDocument]) -> None:
        self.documents = list(documents)
        self._phrases: dict[str, set[int]] = defaultdict(set)
        postings: dict[str, set[int]] = defaultdict(set)
        for index, document in enumerate(self.documents):
            for phrase in document.phrases:
                normal = normalise(phrase)
                if not normal:
                    continue
                self._phrases[normal].add(index)
                for token in tokens(phrase):
                    postings[token].add(index)
            for term in document.extra_terms:
                for token in tokens(term):
                    postings[token].add(index)
        # Tuples of numbers, which the garbage collector stops tracking: sets would be
        # traversed by every full collection (hundreds of thousands of entries, about a
        # tenth of a second a time with 10,000 events).
        self._postings: dict[str, tuple[int, ...]] = {
            word: tuple(found) for word, found in postings.items()
        }
        self._vocabulary = list(self._postings)
        # Sorted, words that start with a token are one run, found by bisection.
        self._sorted_vocabulary = sorted(self._vocabulary)
        self._rank = {word: rank for rank, word in enumerate(self._vocabulary)}
        self._phrase_list = list(self._phrases)

    def _token_scores(self, token: str) -> dict[int, float]:
        scores: dict[int, float] = {}

        def offer(word: str, score: float) -> None:
            for index in self._postings[word]:
                if scores.get(index, 0.0) < score:
                    scores[index] = score

        if token in self._postings:
            offer(token, EXACT)
        if _is_cjk(token):
            for word in self._vocabulary:
                if word == token:
                    continue
                if len(token) >= 2 and word.startswith(token):
                    offer(word, PREFIX)
                elif len(token) >= 2 and (token in word or (len(word) >= 2 and word in token)):
                    offer(word, CONTAINED)
        elif len(token) >= 2:
            # Only prefixes count for other scripts: the words after ``token`` in order,
            # up to the first that does not start with it.
            # Offered in the vocabulary's own order, as a scan would: ties keep their order.
            words = self._sorted_vocabulary
            matches = []
            for position in range(bisect.bisect_right(words, token), len(words)):
                word = words[position]
                if not word.startswith(token):
                    break
                matches.append(word)
            for word in sorted(matches, key=self._rank.__getitem__):
                offer(word, PREFIX)
        if len(token) >= 4 and not token.isdigit():
            for word, ratio, _ in process.extract(
                token, self._vocabulary, scorer=fuzz.ratio, score_cutoff=75, limit=25
            ):
                offer(word, FUZZY_WEIGHT * ratio / 100)
        return scores

    def search(self, text: str, limit: int = 10) -> list[SearchHit]:
        """The best matches for ``text``, best first; organisations before events on ties."""
        normal = normalise(text)
        if not normal:
            return []
        totals: dict[int, float] = defaultdict(float)
        exact = self._phrases.get(normal, set())
        query_tokens = [t for t in tokens(text) if t not in NEXT_WORDS] or tokens(text)
        for token in query_tokens:
            for index, score in self._token_scores(token).items():
                totals[index] += score / len(query_tokens)
        for index in exact:
            totals[index] = EXACT
        documents = self.documents

        def rank(item: tuple[int, float]) -> tuple[bool, float, bool]:
            index, score = item
            return (index not in exact, -score, documents[index].kind != "organisation")

        # Only the best ``limit`` are kept, and a common word matches thousands of events:
        # what cannot reach them (scored below the best ``limit`` others) is left out before
        # sorting. Exact matches come first whatever their score; ties keep their order.
        candidates = [(i, score) for i, score in totals.items() if score >= MIN_SCORE]
        if len(candidates) > limit:
            others = [score for i, score in candidates if i not in exact]
            wanted = limit - (len(candidates) - len(others))
            threshold = heapq.nlargest(wanted, others)[-1] if wanted > 0 else math.inf
            candidates = [(i, score) for i, score in candidates if i in exact or score >= threshold]
        best = sorted(candidates, key=rank)[:limit]
        return [
            SearchHit(documents[i].kind, documents[i].key, score, i in exact) for i, score in best
        ]

    def suggestions(
        self, text: str, limit: int = 3, kind: str | None = None
    ) -> list[tuple[str, str]]:
        """(kind, key) of documents whose names look like ``text``, for "did you mean"."""
        normal = normalise(text)
        if not normal:
            return []
        found = process.extract(
            normal, self._phrase_list, scorer=fuzz.WRatio, score_cutoff=55, limit=limit * 10
        )
        documents: list[tuple[str, str]] = []
        for phrase, _, _ in found:
            for index in sorted(self._phrases[phrase]):
                document = self.documents[index]
                wanted = kind is None or document.kind == kind
                if wanted and (document.kind, document.key) not in documents:
                    documents.append((document.kind, document.key))
        return documents[:limit]


def asks_for_next(text: str) -> bool:
    """Whether a plain-text question asks for the next event ("next CSTO summit")."""
    normal = normalise(text)
    return any(token in NEXT_WORDS for token in tokens(text)) or any(
        word in normal for word in ("下一", "下次", "下届")
    )
