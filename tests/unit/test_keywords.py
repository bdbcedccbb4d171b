"""Keyword extraction (shared/keywords.py): what counts as a keyword of a post."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.keywords import MAX_KEYWORDS_PER_POST, extract_keywords, keywords_vectorised


def test_hashtags_words_urls_mentions_and_stop_words():
    text = "The Election results are IN! See https://x.com/a?b=1 and www.example.org @bob.bsky.social #Vote2026"
    assert extract_keywords(text, ["Vote2026"], ["en"]) == ["#vote2026", "election", "results"]


def test_a_post_counts_once_per_keyword():
    assert extract_keywords("rain rain RAIN Rain! #rain", ["rain", "Rain"], ["en"]) == ["#rain", "rain"]


def test_inner_apostrophes_and_hyphens_survive_digits_and_short_tokens_do_not():
    assert extract_keywords("covid-19 rock'n'roll 2026 42 ok go", [], ["en"]) == ["covid-19", "rock'n'roll"]


def test_stop_words_per_language_and_all_lists_when_unknown():
    assert extract_keywords("los partidos de fútbol", [], ["es"]) == ["partidos", "fútbol"]
    assert extract_keywords("o jogo de futebol", [], ["pt-BR"]) == ["jogo", "futebol"]
    assert extract_keywords("der Zug und die Bahn", [], ["de"]) == ["zug", "bahn"]
    assert extract_keywords("les trains sont en retard", [], ["fr"]) == ["trains", "retard"]
    assert extract_keywords("the trains und les retards", [], []) == ["trains", "retards"]


def test_german_casefold_and_spanish_accents():
    assert extract_keywords("Grüße aus KÖLN, Straße", [], ["de"]) == ["grüsse", "köln", "strasse"]
    assert extract_keywords("Canción ÁRBOL", [], ["es"]) == ["canción", "árbol"]


def test_cjk_and_thai_posts_give_hashtags_only_korean_splits():
    assert extract_keywords("東京で桜が咲いた #桜", ["桜"], ["ja"]) == ["#桜"]
    assert extract_keywords("今天天气很好", [], ["zh"]) == []
    assert extract_keywords("สวัสดีครับ", [], ["th"]) == []
    assert extract_keywords("서울시 날씨가 좋습니다", [], ["ko"]) == ["서울시", "날씨가", "좋습니다"]


def test_emoji_and_right_to_left_text():
    assert extract_keywords("🎉🔥 party 🎉", [], ["en"]) == ["party"]
    assert extract_keywords("مرحبا بالعالم الجميل", [], ["ar"]) == ["مرحبا", "بالعالم", "الجميل"]
    assert extract_keywords("שלום עולם", [], ["he"]) == ["שלום", "עולם"]


def test_keywords_per_post_are_capped():
    text = " ".join(f"word{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(100))
    assert len(extract_keywords(text, [], ["en"])) == MAX_KEYWORDS_PER_POST


def test_vectorised_equals_scalar_including_none_and_numpy_arrays():
    texts = pd.Series(["Hello world #Hi", None, "Grüße aus Köln", "東京 #桜"])
    tags = pd.Series([np.array(["Hi"]), None, np.array([], dtype=object), ["桜"]])
    langs = pd.Series([np.array(["en"]), np.array(["en"]), None, ["ja"]])
    result = keywords_vectorised(texts, tags, langs)
    assert list(result) == [extract_keywords("Hello world #Hi", ["Hi"], ["en"]), [],
                            extract_keywords("Grüße aus Köln", [], []), ["#桜"]]


def test_keywords_are_bounded_in_length():
    # An 8,000-character token once became a keyword and a PostgreSQL index key (2,704 bytes at most).
    flood = "a" * 8000
    assert extract_keywords(f"{flood} harbour", [flood[:65], "ok"], ["en"]) == ["#ok", "harbour"]
    assert extract_keywords("b" * 64, [], ["en"]) == ["b" * 64]
