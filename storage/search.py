"""Finding organisations and events by any name, abbreviation or alias, in any language.

Matching is tolerant to case, Arabic diacritics, ё/е and small typos (RapidFuzz),
and to Chinese written without spaces (a query inside a name counts).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
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


def _digits(word: str) -> int:
    return sum(character.isdigit() for character in word)


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
        # Typo candidates by shape (length, digits): a word can only be a close typo of a
        # word of about its length and mix of digits. Most of the vocabulary is numbers
        # from event ids, which a word of letters never comes close to.
        shapes: dict[tuple[int, int], list[int]] = defaultdict(list)
        for rank, word in enumerate(self._vocabulary):
            shapes[len(word), _digits(word)].append(rank)
        self._shapes = {shape: tuple(ranks) for shape, ranks in shapes.items()}  # untracked
        self._typo_choices: dict[tuple[int, int], tuple[str, ...]] = {}
        self._organisations = frozenset(
            index
            for index, document in enumerate(self.documents)
            if document.kind == "organisation"
        )

    def _token_scores(self, token: str) -> dict[int, float]:
        """Each document's best score for ``token``, in the order documents were first
        offered (ties among hits keep it)."""
        if _is_cjk(token):
            return self._cjk_token_scores(token)
        # Exact, then prefixes, then typos by falling ratio: every word is offered at most
        # the score of any before it, so a document keeps its first score and place.
        scores: dict[int, float] = (
            dict.fromkeys(self._postings[token], EXACT) if token in self._postings else {}
        )

        def offer(word: str, score: float) -> None:
            keep = scores.setdefault
            for index in self._postings[word]:
                keep(index, score)

        if len(token) >= 2:
            # Only prefixes count outside CJK: the words after ``token`` in order, up to the
            # first that does not start with it, offered in the vocabulary's own order (as a
            # scan would: ties keep their order).
            words = self._sorted_vocabulary
            matches = []
            for position in range(bisect.bisect_right(words, token), len(words)):
                word = words[position]
                if not word.startswith(token):
                    break
                matches.append(word)
            for word in sorted(matches, key=self._rank.__getitem__):
                offer(word, PREFIX)
        for word, score in self._typos(token):
            offer(word, score)
        return scores

    def _cjk_token_scores(self, token: str) -> dict[int, float]:
        # Prefixes and words contained either way, in the vocabulary's order: scores do
        # not fall along it, so each document keeps its best.
        scores: dict[int, float] = {}

        def offer(word: str, score: float) -> None:
            for index in self._postings[word]:
                if scores.get(index, 0.0) < score:
                    scores[index] = score

        if token in self._postings:
            offer(token, EXACT)
        for word in self._vocabulary:
            if word == token:
                continue
            if len(token) >= 2 and word.startswith(token):
                offer(word, PREFIX)
            elif len(token) >= 2 and (token in word or (len(word) >= 2 and word in token)):
                offer(word, CONTAINED)
        for word, score in self._typos(token):
            offer(word, score)
        return scores

    def _typos(self, token: str) -> list[tuple[str, float]]:
        """Words ``token`` may be a typo of, with their scores, best first."""
        if len(token) < 4 or token.isdigit():
            return []
        return [
            (word, FUZZY_WEIGHT * ratio / 100)
            for word, ratio, _ in process.extract(
                token, self._typo_candidates(token), scorer=fuzz.ratio, score_cutoff=75, limit=25
            )
        ]

    def _typo_candidates(self, token: str) -> tuple[str, ...]:
        """The words that can reach the typo cutoff against ``token``, in vocabulary order
        (RapidFuzz breaks ties by position, so the same ones win as over all words).

        ``fuzz.ratio`` is 200 × the longest common subsequence / both lengths, and a digit
        only matches a digit: a word of W characters, D of them digits, shares at most
        min(d, D) + min(L − d, W − D) with a token of L and d. Below 75 % it cannot match.
        """
        shape = (len(token), _digits(token))
        found = self._typo_choices.get(shape)
        if found is None:
            length, digits = shape
            ranks = [
                rank
                for (width, numerals), members in self._shapes.items()
                if 8 * (min(digits, numerals) + min(length - digits, width - numerals))
                >= 3 * (length + width)
                for rank in members
            ]
            vocabulary = self._vocabulary
            found = tuple(vocabulary[rank] for rank in sorted(ranks))
            self._typo_choices[shape] = found
        return found

    def search(self, text: str, limit: int = 10) -> list[SearchHit]:
        """The best matches for ``text``, best first; organisations before events on ties."""
        normal = normalise(text)
        if not normal:
            return []
        exact = self._phrases.get(normal, set())
        query_tokens = [t for t in tokens(text) if t not in NEXT_WORDS] or tokens(text)
        share = len(query_tokens)
        totals: dict[int, float] = {}
        for token in query_tokens:
            scores = self._token_scores(token)
            if not totals:  # 0.0 + x is x: the sums as adding to zero gives them
                totals = scores if share == 1 else {i: s / share for i, s in scores.items()}
                continue
            add = totals.get
            for index, score in scores.items():
                totals[index] = add(index, 0.0) + score / share
        for index in exact:
            totals[index] = EXACT
        documents = self.documents

        def rank(item: tuple[int, float]) -> tuple[bool, float, bool]:
            index, score = item
            return (index not in exact, -score, documents[index].kind != "organisation")

        # Only the best ``limit`` are kept, and a common word matches thousands of events,
        # most of them tied: what cannot reach the best ``limit`` is left out before sorting.
        # Exact matches come first whatever their score; ties keep their order.
        candidates = {i: score for i, score in totals.items() if score >= MIN_SCORE}
        reachable = (
            self._reachable(candidates, exact, limit)
            if len(candidates) > limit
            else list(candidates.items())
        )
        best = sorted(reachable, key=rank)[:limit]
        return [
            SearchHit(documents[i].kind, documents[i].key, score, i in exact) for i, score in best
        ]

    def _reachable(
        self, candidates: dict[int, float], exact: set[int], limit: int
    ) -> list[tuple[int, float]]:
        """The candidates that can be among the best ``limit``: the exact ones, those
        scored above the ``limit``-th best other, and of those tied with it only as many
        organisations, and as many others, as places are left (the first ones). Candidates
        that rank alike stay in their order, which is all the stable sort after keeps."""
        exact_found = [(i, candidates[i]) for i in exact if i in candidates]
        others = sorted(candidates.values())
        for _, score in exact_found:
            del others[bisect.bisect_left(others, score)]
        wanted = limit - len(exact_found)
        if wanted <= 0:  # only exact matches are shown (in their order)
            return [(i, score) for i, score in candidates.items() if i in exact]
        threshold = others[-wanted]
        places = wanted - (len(others) - bisect.bisect_right(others, threshold))
        kept = [(i, score) for i, score in candidates.items() if score > threshold or i in exact]
        organisations = self._organisations
        left = {True: places, False: places}  # for organisations, for the rest
        for i, score in candidates.items():
            if score == threshold and i not in exact:
                organisation = i in organisations
                if left[organisation] > 0:
                    left[organisation] -= 1
                    kept.append((i, score))
                    if not left[True] and not left[False]:
                        break
        return kept

    def suggestions(
        self, text: str, limit: int = 3, kind: str | None = None
    ) -> list[tuple[str, str]]:
        """(kind, key) of documents whose names look like ``text``, for "did you mean".

        Every name is scored (RapidFuzz's WRatio), 40–70 ms with 10,000 events. It runs in
        C++ with the GIL let go, so ``Catalogue.suggestions`` runs it in a thread and the
        bot answers everyone else meanwhile; the names come best first, ties in index
        order, as ``process.extract`` gives them.
        """
        normal = normalise(text)
        if not normal:
            return []
        scores = process.cdist(
            [normal], self._phrase_list, scorer=fuzz.WRatio, score_cutoff=55, dtype=np.float64
        )[0]
        passing = np.flatnonzero(scores)  # below the cut-off a name scores 0
        best = passing[np.argsort(-scores[passing], kind="stable")][: limit * 10]
        documents: list[tuple[str, str]] = []
        for position in best.tolist():
            for index in sorted(self._phrases[self._phrase_list[position]]):
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
