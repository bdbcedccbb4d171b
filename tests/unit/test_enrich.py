"""Language and sentiment of a post's text (shared/enrich.py), on labelled examples written for these tests."""

from __future__ import annotations

import pytest

from shared import enrich
from shared.enrich import (
    MIN_LETTERS,
    NEGATIVE_AT_MOST,
    detect_language,
    is_negative,
    languages,
    scores_sentiment,
    sentiment,
)

CLEAR_SENTENCES = {
    "en": ["The train to the city was late again this morning, so I walked to work instead.",
           "We are planning a small garden party for the neighbours next weekend if the weather holds."],
    "fr": ["Le train pour la ville était encore en retard ce matin, alors je suis allé au travail à pied.",
           "Nous organisons une petite fête dans le jardin avec les voisins le week-end prochain."],
    "de": ["Der Zug in die Stadt hatte heute Morgen wieder Verspätung, also bin ich zu Fuß zur Arbeit gegangen.",
           "Wir planen am nächsten Wochenende ein kleines Gartenfest mit den Nachbarn, wenn das Wetter hält."],
    "es": ["El tren a la ciudad llegó otra vez tarde esta mañana, así que fui caminando al trabajo.",
           "Estamos preparando una pequeña fiesta en el jardín con los vecinos para el próximo fin de semana."],
    "pt": ["O comboio para a cidade voltou a atrasar esta manhã, por isso fui a pé para o trabalho.",
           "Estamos a preparar uma pequena festa no jardim com os vizinhos para o próximo fim de semana."],
    "it": ["Il treno per la città era di nuovo in ritardo stamattina, quindi sono andato al lavoro a piedi.",
           "Stiamo organizzando una piccola festa in giardino con i vicini per il prossimo fine settimana."],
    "nl": ["De trein naar de stad had vanochtend weer vertraging, dus ben ik naar mijn werk gelopen.",
           "We organiseren volgend weekend een klein tuinfeest met de buren als het weer goed blijft."],
}
LABELLED = [(lang, text) for lang, texts in CLEAR_SENTENCES.items() for text in texts]

POSITIVE = "I love this new album, it is absolutely wonderful and the band sounds amazing!"
NEGATIVE = "This is the worst service ever, I hate waiting and the staff were awful."
NEUTRAL = "The meeting starts at ten in room four."
FRENCH_POSITIVE = "J'adore ce nouvel album, il est absolument magnifique et le groupe est génial !"


def letters(text: str) -> int:
    return sum(c.isalpha() for c in text)


# --- language ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expected", "text"), LABELLED, ids=[f"{lang}{i % 2}" for i, (lang, _) in
                                                               enumerate(LABELLED)])
def test_clear_sentences_get_their_language(expected, text):
    assert detect_language(text) == expected


def test_empty_and_blank_text_have_no_language():
    assert detect_language("") is None
    assert detect_language("   \n\t ") is None


def test_emoji_alone_have_no_language():
    assert detect_language("😀😀🔥") is None
    assert detect_language("😢😭💔🎉🎉🎉🙏🙏") is None


def test_links_mentions_and_tags_alone_have_no_language():
    assert detect_language("https://example.com/articles/2026/03/some-long-english-headline-slug") is None
    assert detect_language("@alice.bsky.social @bob.example.org @carol") is None
    assert detect_language("#breakingnews #elections #weatherupdate") is None
    assert detect_language("www.example.org/news @alice.bsky.social #breakingnews https://t.co/abcdefghij") is None


def test_links_mentions_and_tags_do_not_decide_the_language():
    german = CLEAR_SENTENCES["de"][0]
    noisy = f"@english.speaker.bsky.social {german} https://example.com/the-english-words-here #BreakingNews #Weather"
    assert detect_language(noisy) == "de"


@pytest.mark.parametrize(("text", "pair"), [
    ("Je pense que ce film est vraiment excellent but the ending was a bit too long for me honestly", {"fr", "en"}),
    ("Ich gehe heute Abend ins Kino und danach essen wir zusammen. See you all at the cinema tonight then!",
     {"de", "en"}),
])
def test_a_mixed_language_text_gets_one_of_its_languages(text, pair):
    assert detect_language(text) in pair


def test_text_below_min_letters_has_no_language():
    assert letters("Good morning") < MIN_LETTERS
    assert detect_language("Good morning") is None
    clear = CLEAR_SENTENCES["fr"][0]
    cut = next(i for i in range(len(clear)) if letters(clear[:i]) == MIN_LETTERS - 1)
    assert detect_language(clear[:cut]) is None  # French, but too short to guess
    assert detect_language(clear) == "fr"


def test_languages_keeps_what_the_source_declared():
    french = CLEAR_SENTENCES["fr"][0]
    assert languages(("en",), french) == ("en",)  # the source's word wins over the text
    assert languages(["pt-BR", "en"], french) == ("pt-BR", "en")


def test_languages_detects_only_when_none_declared():
    assert languages((), CLEAR_SENTENCES["nl"][0]) == ("nl",)
    assert languages([], CLEAR_SENTENCES["it"][1]) == ("it",)
    assert languages((), "😀😀🔥") == ()
    assert languages((), "") == ()


# --- sentiment --------------------------------------------------------------------------------------------------

def test_clearly_positive_english_is_positive():
    assert sentiment(POSITIVE, ("en",)) > 0.05
    assert sentiment(POSITIVE, ()) > 0.05  # English detected


def test_clearly_negative_english_is_negative():
    score = sentiment(NEGATIVE, ("en",))
    assert score <= NEGATIVE_AT_MOST
    assert is_negative(score)
    assert is_negative(sentiment(NEGATIVE, ()))


def test_neutral_factual_english_is_neutral():
    for text in (NEUTRAL, CLEAR_SENTENCES["en"][0]):
        score = sentiment(text, ("en",))
        assert score is not None
        assert -0.05 < score < 0.05
        assert not is_negative(score)


def test_is_negative_threshold():
    assert is_negative(NEGATIVE_AT_MOST)
    assert is_negative(-1.0)
    assert not is_negative(NEGATIVE_AT_MOST + 1e-9)
    assert not is_negative(0.0)


def test_empty_text_is_unscored():
    assert sentiment("", ("en",)) is None
    assert sentiment("", ()) is None
    assert sentiment("https://example.com/only-a-link", ("en",)) is None  # nothing left once the link is gone


def test_emoji_alone_are_unscored_without_a_declared_language():
    assert sentiment("😀😀🔥", ()) is None
    assert sentiment("😢😭", ()) is None


def test_emoji_of_a_declared_english_post_are_scored():
    assert sentiment("😀😀🎉", ("en",)) > 0.05
    assert is_negative(sentiment("😢😭", ("en",)))


def test_a_post_that_is_not_english_is_never_scored():
    assert sentiment(FRENCH_POSITIVE, ("fr",)) is None  # declared French
    assert detect_language(FRENCH_POSITIVE) == "fr"
    assert sentiment(FRENCH_POSITIVE, ()) is None  # detected French
    assert sentiment(POSITIVE, ("fr",)) is None  # declared French wins even over English words
    assert sentiment(NEGATIVE, ("de", "es")) is None


def test_english_among_the_languages_is_scored():
    assert scores_sentiment(("fr", "en"))
    assert sentiment(POSITIVE, ("fr", "en")) > 0.05


def test_en_gb_counts_as_english():
    assert scores_sentiment(("en-GB",))
    assert sentiment(POSITIVE, ("en-GB",)) == sentiment(POSITIVE, ("en",))
    assert is_negative(sentiment(NEGATIVE, ("en-GB",)))


def test_links_do_not_change_the_score():
    for text in (POSITIVE, NEGATIVE, NEUTRAL):
        with_links = f"{text} https://example.com/awful/terrible-horrible?bad=1 www.example.org/great-wonderful"
        assert sentiment(with_links, ("en",)) == sentiment(text, ("en",))


@pytest.mark.parametrize("shouted", ["GREAT NEWS FOR ALL OF US!", "I HATE MONDAYS"])
def test_a_lowercase_link_does_not_make_a_shouted_post_louder(shouted):
    # VADER boosts words in capitals when others are not: an all-caps post followed by a lowercase link would
    # score stronger than the same post alone, were the link not taken out first.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    with_link = f"{shouted} https://example.com/story"
    raw = SentimentIntensityAnalyzer()
    assert abs(raw.polarity_scores(with_link)["compound"]) > abs(raw.polarity_scores(shouted)["compound"])
    assert sentiment(with_link, ("en",)) == sentiment(shouted, ("en",)) == raw.polarity_scores(shouted)["compound"]


def test_a_long_post_is_scored_on_its_first_characters_and_an_emoji_flood_on_its_first_emoji():
    # Bounded work per post (VADER's cost grows with the square of the tokens): what is scored is defined.
    angry = "This is a terrible, awful, hateful day. " * 1000
    assert sentiment(angry, ("en",)) == sentiment(angry[:enrich.MAX_SENTIMENT_CHARS], ("en",)) < 0
    happy = "Happy news " + "love " * 10_000
    assert sentiment(happy, ("en",)) == sentiment(happy[:enrich.MAX_SENTIMENT_CHARS], ("en",)) > 0
    flood = "😢" * 5_000
    assert sentiment(flood, ("en",)) == sentiment("😢" * enrich.MAX_EMOJI, ("en",)) < 0
    assert detect_language("Das ist ein wirklich schöner Tag in Berlin. " * 2_000) == "de"
