"""The search index's shortcuts (typo candidates by shape, scores offered best first,
only the hits that can reach the best ones ranked) find exactly what a full scan and a
full sort find: the same hits, scores and order, ties included."""

from __future__ import annotations

import random
from collections import defaultdict

from rapidfuzz import fuzz, process

from storage import search
from storage.search import SearchDocument, SearchHit, SearchIndex


def scanned_scores(index: SearchIndex, token: str) -> dict[int, float]:
    """A token's scores as a scan of the whole vocabulary gives them (the first version)."""
    scores: dict[int, float] = {}

    def offer(word: str, score: float) -> None:
        for position in index._postings[word]:
            if scores.get(position, 0.0) < score:
                scores[position] = score

    if token in index._postings:
        offer(token, search.EXACT)
    cjk = search._is_cjk(token)
    for word in index._vocabulary:
        if word == token:
            continue
        if len(token) >= 2 and word.startswith(token):
            offer(word, search.PREFIX)
        elif cjk and len(token) >= 2 and (token in word or (len(word) >= 2 and word in token)):
            offer(word, search.CONTAINED)
    if len(token) >= 4 and not token.isdigit():
        for word, ratio, _ in process.extract(
            token, index._vocabulary, scorer=fuzz.ratio, score_cutoff=75, limit=25
        ):
            offer(word, search.FUZZY_WEIGHT * ratio / 100)
    return scores


def sorted_in_full(index: SearchIndex, text: str, limit: int) -> list[SearchHit]:
    """Every hit scored from scanned scores and sorted (the first version)."""
    totals: dict[int, float] = defaultdict(float)
    exact = index._phrases.get(search.normalise(text), set())
    query_tokens = [t for t in search.tokens(text) if t not in search.NEXT_WORDS] or (
        search.tokens(text)
    )
    for token in query_tokens:
        for position, score in scanned_scores(index, token).items():
            totals[position] += score / len(query_tokens)
    for position in exact:
        totals[position] = search.EXACT
    hits = [
        SearchHit(index.documents[i].kind, index.documents[i].key, score, i in exact)
        for i, score in totals.items()
        if score >= search.MIN_SCORE
    ]
    hits.sort(key=lambda hit: (not hit.exact, -hit.score, hit.kind != "organisation"))
    return hits[:limit]


REGIONS = ("Caspian", "Arctic", "Nordic", "Silk Road", "Каспийский", "北极", "الخليج")
BODIES = ("Energy Union", "Water Commission", "Trade Organisation", "Forum", "Summit")


def catalogue_like_index(rng: random.Random) -> SearchIndex:
    """Organisations and events as the benchmark's catalogue has them: ids full of numbers,
    shared words and years, several documents under one name (exact ties)."""
    documents = []
    for number in range(60):
        name = f"{REGIONS[number % len(REGIONS)]} {BODIES[number % len(BODIES)]}"
        initials = "".join(word[0] for word in name.split()).upper()
        documents.append(SearchDocument("organisation", f"org-{number}", (name, initials)))
    for number in range(2_500):
        org = number % 60
        year = 2016 + rng.randrange(20)
        kind = ("summit", "forum", "ministerial", "session")[number % 4]
        title = f"{REGIONS[org % len(REGIONS)]} {BODIES[org % len(BODIES)]} {kind} {year}"
        documents.append(
            SearchDocument(
                "event",
                f"bench-{org:04d}-{year}-{number}",
                (f"bench-{org:04d}-{year}-{number}", title),
                (str(year), kind, f"{rng.randrange(10_000):04d}"),
            )
        )
        if number % 7 == 0:  # an organisation and events sharing one exact name
            documents.append(SearchDocument("organisation", f"twin-{number}", (title,)))
    rng.shuffle(documents)
    return SearchIndex(documents)


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 3:
        return word
    position = rng.randrange(len(word))
    change = rng.randrange(3)
    if change == 0:
        return word[:position] + word[position + 1 :]
    if change == 1:
        return word[:position] + rng.choice("ao0127e") + word[position + 1 :]
    return word[:position] + rng.choice("xs9") + word[position:]


def test_token_scores_are_those_of_a_full_scan() -> None:
    rng = random.Random(3)
    index = catalogue_like_index(rng)
    words = sorted(index._vocabulary)
    tokens = {rng.choice(words) for _ in range(150)}
    tokens |= {typo(rng, rng.choice(words)) for _ in range(150)}
    tokens |= {"2027", "2o27", "summt", "ministeral", "caspain", "каспийски", "北", "0045", "x"}
    for token in sorted(tokens):
        # The same scores in the same order (ties among hits keep it).
        assert list(index._token_scores(token).items()) == list(
            scanned_scores(index, token).items()
        ), token


def test_the_best_hits_are_those_of_a_full_scan_and_sort() -> None:
    rng = random.Random(5)
    index = catalogue_like_index(rng)
    words = index._vocabulary
    queries = [
        "summit 2027",
        "caspian energy union",
        "Caspian Energy Union summit 2020",  # an exact name that several documents share
        "arctic water commission",
        "silk road forum",
        "ministerial",
        "forum 2030 2031",
        "caspain",
        "nordic trade organisation 2028",
        "北极",
        "next forum",
    ]
    for _ in range(120):
        picked = [rng.choice(words) for _ in range(rng.randrange(1, 4))]
        queries.append(" ".join(typo(rng, word) if rng.random() < 0.4 else word for word in picked))
    for document in rng.sample(index.documents, 40):
        queries.append(document.phrases[-1])
    for text in queries:
        for limit in (1, 3, 10, 20, 300):
            assert index.search(text, limit) == sorted_in_full(index, text, limit), (text, limit)


def extracted_suggestions(
    index: SearchIndex, text: str, limit: int = 3, kind: str | None = None
) -> list[tuple[str, str]]:
    """ "Did you mean" as ``process.extract`` gave it (the first version)."""
    found = process.extract(
        search.normalise(text), index._phrase_list, scorer=fuzz.WRatio, score_cutoff=55,
        limit=limit * 10,
    )  # fmt: skip
    documents: list[tuple[str, str]] = []
    for phrase, _, _ in found:
        for position in sorted(index._phrases[phrase]):
            document = index.documents[position]
            if (kind is None or document.kind == kind) and (
                document.kind,
                document.key,
            ) not in documents:
                documents.append((document.kind, document.key))
    return documents[:limit]


def test_suggestions_are_those_process_extract_gives() -> None:
    """Scored by cdist in a thread now: the same names, best first, ties in order."""
    rng = random.Random(23)
    index = catalogue_like_index(rng)
    queries = ["Caspian Energy Union summit 2020", "xyzzy", "", "Mediterranean", "summit"]
    for document in rng.sample(index.documents, 60):
        name = document.phrases[0]
        queries.append(" ".join(typo(rng, word) for word in name.split()[:3]))
    suggested = 0
    for query in queries:
        for kind in (None, "organisation", "event"):
            expected = extracted_suggestions(index, query, kind=kind)
            assert index.suggestions(query, kind=kind) == expected, (query, kind)
            suggested += bool(expected)
    assert suggested > 60  # most typos do find names
