"""Keywords of a post (DESIGN.md §5): hashtags and normalised words, each counted once per post.

- hashtags: NFKC, case-folded, kept as `#tag` so that a tag and the same plain word stay distinct;
- words: NFKC, case-folded; URLs, @mentions and #hashtags removed from the word stream; edge
  punctuation stripped (inner apostrophes and hyphens kept: "don't", "covid-19"); tokens of
  digits only or shorter than 3 characters dropped; stop words removed for the post's languages
  (en, es, pt, de, fr; all lists together when the language is unknown);
- scripts written without spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) give no
  words — splitting them needs a dictionary — so those posts contribute hashtags only. Korean
  (Hangul) uses spaces and is split like Latin text.

`keywords_vectorised` is the body of the trending job's pandas UDF (DESIGN.md §3: per-post work
runs vectorised, a batch at a time).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

MAX_KEYWORDS_PER_POST = 32  # bounds window state per post; real posts rarely have more distinct words
MIN_WORD_CHARS = 3
MAX_KEYWORD_CHARS = 64  # a longer "word" is a URL fragment, a hash or a flood, never a trend (and a sink key)

# Common function words per language (hand-written): frequent everywhere, never a trend.
_STOP_TEXT = {
    "en": """a about above after again against all also am an and any are aren't as at be because been before
        being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
        don't down during each few for from further get got had hadn't has hasn't have haven't having he her
        here hers herself him himself his how i i'm if in into is isn't it it's its itself just let's like
        me more most my myself no nor not now of off on once one only or other our ours ourselves out over
        own same she should so some such than that that's the their theirs them themselves then there
        there's these they they're this those through to too under until up us very was wasn't we we're were
        weren't what when where which while who whom why will with won't would you you're your yours
        yourself yourselves yes yeah really still even much many way well back going want know think see
        make new""",
    "es": """a al algo algunos ante antes como con contra cual cuando de del desde donde durante e el ella ellas
        ellos en entre era eres es esa ese eso esta estaba estado estar este esto estos fue fueron ha había
        han hasta hay la las le les lo los mas más me mi mis mucho muy ni no nos nosotros o os otra otro
        para pero poco por porque que qué quien se sea ser si sí sin sobre son su sus también tanto te tiene
        tienen todo todos tu tus tú un una uno unos vosotros y ya yo él está están hoy""",
    "pt": """a ao aos aquela aquele aqueles as até com como da das de dela dele deles depois do dos e ela elas
        ele eles em entre era essa esse esta está estão eu foi foram há isso isto já lhe mais mas me mesmo
        meu minha muito na nas nem no nos nós não o os ou para pela pelas pelo pelos por quando que quem se
        sem ser seu seus sua suas só também te tem tinha tu tua um uma você vocês vai são hoje""",
    "de": """aber alle allem allen aller als also am an auch auf aus bei bin bis bist da damit dann das dass dein
        deine dem den der des dich die dies diese dieser dir doch dort du durch ein eine einem einen einer
        er es etwas für gegen hat hatte hier ich ihr ihre im in ist ja jetzt kann kein keine mich mir mit
        muss nach nicht noch nur ob oder ohne sehr sein seine sich sie sind so über um und uns unter vom von
        vor war was weil wenn wer wie wir wird wo zu zum zur heute""",
    "fr": """à au aux avec ce ces cette dans de des du elle elles en est et être eu il ils je la le les leur
        leurs lui ma mais me même mes moi mon ne nos notre nous on ou où par pas pour qu que qui sa se ses
        son sont sur ta te tes toi ton tu un une vos votre vous c'est j'ai n'est plus très tout tous aussi
        bien fait comme aujourd'hui""",
}
STOP_WORDS: dict[str, frozenset[str]] = {lang: frozenset(text.split()) for lang, text in _STOP_TEXT.items()}
ALL_STOP_WORDS = frozenset().union(*STOP_WORDS.values())

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION_OR_TAG = re.compile(r"[@#][^\s@#]+")
_TOKEN = re.compile(r"[^\W_](?:[\w'’-]*[^\W_])?")  # letters/digits, inner ' and - allowed
# Scripts written without spaces between words.
_NO_SPACE_SCRIPT = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
                              r"\uf900-\ufaff\uff66-\uff9f]")


def _normalise(value: str) -> str:
    return unicodedata.normalize("NFKC", value).casefold()


def stop_words_for(langs: Sequence[str]) -> frozenset[str]:
    return _stop_words_for(tuple(langs))


@functools.lru_cache(maxsize=1024)  # a post's languages are one of a few combinations
def _stop_words_for(langs: tuple[str, ...]) -> frozenset[str]:
    known = [STOP_WORDS[base] for lang in langs if (base := lang.split("-")[0].lower()) in STOP_WORDS]
    return frozenset().union(*known) if known else ALL_STOP_WORDS


def extract_keywords(text: str, hashtags: Sequence[str], langs: Sequence[str]) -> list[str]:
    """The distinct keywords of one post, hashtags first, in order of first appearance."""
    keywords: dict[str, None] = {}
    for tag in hashtags:
        tag = _normalise(tag.lstrip("#")).strip()
        if tag and len(tag) <= MAX_KEYWORD_CHARS:
            keywords["#" + tag] = None
    stop = stop_words_for(langs)
    text = _MENTION_OR_TAG.sub(" ", _URL.sub(" ", _normalise(text)))
    for token in _TOKEN.findall(text):
        token = token.replace("’", "'")
        if (not MIN_WORD_CHARS <= len(token) <= MAX_KEYWORD_CHARS or token in stop or token.isdigit()
                or _NO_SPACE_SCRIPT.search(token)):
            continue
        keywords[token] = None
        if len(keywords) >= MAX_KEYWORDS_PER_POST:
            break
    return list(keywords)[:MAX_KEYWORDS_PER_POST]


def normalise_keyword(value: str) -> str:
    """One keyword as a reader types it, spelled as the jobs count it: `#Tag` → `#tag`, `Café` → `café`.
    ValueError when nothing is left or it is longer than any keyword the jobs keep."""
    tag = value.strip().startswith("#")
    word = _normalise(value.strip().lstrip("#")).strip().replace("’", "'")
    if not word:
        raise ValueError("an empty keyword")
    if len(word) > MAX_KEYWORD_CHARS:
        raise ValueError(f"longer than {MAX_KEYWORD_CHARS} characters, the longest keyword the jobs count")
    return "#" + word if tag else word


def keywords_vectorised(texts, hashtags, langs):
    """pandas UDF body: Series of text, of hashtag arrays and of language arrays → Series of keyword lists.

    PyFlink hands ARRAY columns to pandas UDFs as numpy arrays (or None); both are accepted.
    """
    import pandas as pd

    return pd.Series([extract_keywords(text or "", [] if tags is None else list(tags),
                                       [] if codes is None else list(codes))
                      for text, tags, codes in zip(texts, hashtags, langs, strict=True)])
