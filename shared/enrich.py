"""What a post's text says beyond its words: its language when the source gave none, and its sentiment.

- Language: py3langid (langid.py's model, 97 languages, inside the wheel: nothing is downloaded). Links,
  @mentions and #tags are taken out first (they are not the post's language); a text with fewer than
  `MIN_LETTERS` letters, or whose best language is less likely than `MIN_LANGUAGE_PROBABILITY`, has no language
  (None): a two-word post or a row of emoji is not guessed.
- Sentiment: VADER (vaderSentiment; its lexicon and emoji lexicon inside the wheel), the compound score in
  [-1, 1]; ≤ -0.05 is negative, ≥ 0.05 positive (VADER's own cut-offs). VADER is an English lexicon: a post
  is scored only when English is one of its languages (declared by the source, or detected when it declared
  none); every other post is unscored (None), never guessed. A long post is scored on its first 280 characters
  (see MAX_SENTIMENT_CHARS).

The producers stamp a detected language into `langs` of a post that has none (connectors/producer.py), so the
lake, Kafka and every job see the same language; the trending job scores sentiment (jobs/trending.py), and
detects the language itself only for a post that still has none. bench/enrichment.py measures the cost per
post and the accuracy on labelled sets that packages ship.
"""

from __future__ import annotations

import functools
import re

SENTIMENT_LANGUAGES = frozenset({"en"})  # what VADER's lexicon covers
NEGATIVE_AT_MOST = -0.05  # VADER's threshold: a compound score at or below it is negative
MIN_LETTERS = 20  # fewer letters than this (after links, mentions and tags are gone) and no language is guessed
# Bounds on the text each model reads, so one hostile post cannot stall a job: VADER's cost grows with the square
# of the tokens (a 40,000-character post took 3.7 s, 280 emoji 24 ms, each emoji expanding to its description)
# and py3langid's with the length (0.7 s for 40,000 characters). VADER was built for tweet-length text: a longer
# post's sentiment is that of its first MAX_SENTIMENT_CHARS characters, with at most MAX_EMOJI emoji.
MAX_SENTIMENT_CHARS = 280
MAX_EMOJI = 32
MAX_LANGUAGE_CHARS = 1000
MIN_LANGUAGE_PROBABILITY = 0.5  # py3langid's normalised probability of its best language (bench/enrichment.py)

_NOT_LANGUAGE = re.compile(r"https?://\S+|www\.\S+|[@#]\w[\w.\-]*", re.UNICODE)
_URL = re.compile(r"https?://\S+|www\.\S+")


@functools.cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@functools.cache
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of the text's language, or None when there is too little text or no clear answer."""
    cleaned = _NOT_LANGUAGE.sub(" ", text[:MAX_LANGUAGE_CHARS])
    if sum(c.isalpha() for c in cleaned) < MIN_LETTERS:
        return None
    language, probability = _identifier().classify(cleaned)
    return language if probability >= MIN_LANGUAGE_PROBABILITY else None


def languages(langs: tuple[str, ...] | list[str], text: str) -> tuple[str, ...]:
    """The post's languages: as declared, else the detected one, else none."""
    if langs:
        return tuple(langs)
    detected = detect_language(text)
    return (detected,) if detected else ()


def scores_sentiment(langs: tuple[str, ...] | list[str]) -> bool:
    """Whether a post in these languages gets a sentiment score (English among them: 'en', 'en-gb', …)."""
    return any(lang.split("-", 1)[0] in SENTIMENT_LANGUAGES for lang in langs)


def sentiment(text: str, langs: tuple[str, ...] | list[str]) -> float | None:
    """VADER's compound score of an English post (links removed), None for any other post or an empty text."""
    if not scores_sentiment(languages(langs, text)):
        return None
    cleaned = _URL.sub(" ", text[:MAX_SENTIMENT_CHARS * 4]).strip()[:MAX_SENTIMENT_CHARS]
    if not cleaned:
        return None
    analyzer = _analyzer()
    if sum(1 for c in cleaned if c in analyzer.emojis) > MAX_EMOJI:
        cleaned = _first_emoji(cleaned, analyzer.emojis)
    return analyzer.polarity_scores(cleaned)["compound"]


def _first_emoji(text: str, emojis: dict) -> str:
    """The text with every emoji after the first MAX_EMOJI left out."""
    kept, seen = [], 0
    for c in text:
        if c in emojis:
            seen += 1
            if seen > MAX_EMOJI:
                continue
        kept.append(c)
    return "".join(kept)


def is_negative(score: float) -> bool:
    return score <= NEGATIVE_AT_MOST
