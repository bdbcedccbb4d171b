"""What the enrichment of shared/enrich.py costs per post, and how right it is on labelled sets that packages ship.

    python -m bench.enrichment [--cache DIR] [--limit N]

In one run, on this machine:

(a) Cost. The one-off import and model load of py3langid's identifier and of VADER's analyser (the first call of
    shared.enrich._identifier / _analyzer in this process), then the cost per call (time.perf_counter around each
    call, after a warm-up of WARMUP calls, over CALLS calls cycling through the texts) of detect_language and of
    sentiment on a mix of short texts: the tweets of (b) (English), Django messages of (c) of at most
    MIX_MAX_CHARS characters (MIX_PER_LANGUAGE per language, every covered language alike), and POSTS below
    (links, @mentions, #tags, emoji, one-word replies: what a firehose also carries), shuffled with SEED.
    sentiment is timed three ways: with the languages a source declares (English tweets ('en',), each Django
    message its language, POSTS as written: non-English posts end before VADER), with ('en',) on the English
    texts only (VADER itself), and with no language declared (detection first, VADER for English).
(b) Sentiment. The ground truth the VADER authors published with their paper (Hutto & Gilbert, ICWSM 2014), as
    the vaderSentiment 3.3.2 source distribution on PyPI ships it (additional_resources/hutto_ICWSM_2014.tar.gz):
    tweets, movie-review, Amazon-review and New York Times editorial snippets, each line id, mean human rating in
    [-4, 4] (about 20 raters each), text. Each text is scored as-is (HTML entities such as &amp; left in) with
    sentiment(text, ('en',)). Classes: human mean > 0 positive, < 0 negative, == 0 neutral; ours compound ≥ 0.05
    positive, ≤ -0.05 negative, else neutral. Reported per file: 3-class accuracy (and the majority class's share
    of the file, what always answering it would score), 2-class sign agreement on the items whose human mean is
    not 0 (ours neutral counts as wrong), Pearson's r of compound against the human mean, and the share flagged
    negative (is_negative) against the human negative share. These are the texts VADER's lexicon was tuned with
    (its authors' own test set): an upper bound of what it does on today's posts, not an unbiased estimate.
(c) Language. Django's translation catalogues (django/conf/locale/<code>/LC_MESSAGES/django.po in the Django 5.x
    wheel on PyPI): every translated message (msgstr) that is not fuzzy, not a plural form and not empty, with
    %(name)s / %s / {name} placeholders and HTML tags taken out, kept when at least MIN_TEXT_LETTERS letters
    remain. A locale is labelled with its ISO 639-1 code (pt_BR → pt, zh_Hans → zh, sr_Latn → sr, nb → no, the
    code py3langid knows); locales whose language py3langid does not know are skipped (and counted). Per language,
    --limit distinct messages drawn with SEED; reported: accuracy (detect_language == label), abstained (None),
    the most frequent wrong answers and, for the abstentions, py3langid's best guess below the threshold; micro and
    macro accuracy over the covered languages, and for short (20–60 letters) against long (> 60 letters) messages;
    then the same figures had MIN_LANGUAGE_PROBABILITY been another value (from the same classifications).
    Interface messages are short, formal and full of technical words, and they are not posts: a narrower test than
    conversational text, and one per language of unequal size (a catalogue has about 330 messages, fewer translated).

Both packages are fetched with `python -m pip download` into --cache (default ~/.cache/streampulse/
bench-enrichment, reused when present) and read in place with tarfile / zipfile; nothing is installed or extracted
into the repository. Progress goes to stderr; the figures to stdout, with the command that produced them.
"""

from __future__ import annotations

import argparse
import html
import importlib
import io
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from shared import enrich
from shared.enrich import detect_language, is_negative, sentiment

DEFAULT_CACHE = Path.home() / ".cache" / "streampulse" / "bench-enrichment"
VADER_VERSION = "3.3.2"
DJANGO_VERSION = "5.2.8"
VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_FILES = ("tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets")
SEED = 7
CALLS = 10_000  # timed calls per measurement
WARMUP = 500
MIN_TEXT_LETTERS = 20
SHORT_AT_MOST = 60  # letters: short texts have MIN_TEXT_LETTERS..SHORT_AT_MOST letters, long ones more
MIX_MAX_CHARS = 300
MIX_PER_LANGUAGE = 40
POSITIVE_AT_LEAST = 0.05  # VADER's cut-off for a positive compound score
# Django locales whose base code is not the one py3langid uses for the language.
LOCALE_TO_ISO = {"nb": "no"}

# Short posts as a firehose carries them besides sentences: (text, languages the source declared).
POSTS: list[tuple[str, tuple[str, ...]]] = [
    ("😀😀🔥", ()), ("😭😭😭", ("en",)), ("🎉🎉", ()), ("lol", ("en",)), ("same", ("en",)), ("ok 👍", ()),
    ("https://example.com/2026/03/01/storm-warning", ()), ("@alice.bsky.social 💯", ()),
    ("#photography #sunset #nofilter", ()), ("Good morning everyone ☀️", ("en",)),
    ("This is the best news I've heard all week!! 🎉 https://example.com/a", ("en",)),
    ("Honestly the worst customer service I have ever dealt with. Never again.", ("en",)),
    ("@bob.bsky.social did you see the match last night? what a comeback", ()),
    ("New blog post: how we cut our build times in half https://blog.example.org/builds #devops", ("en",)),
    ("Bom dia! Hoje o dia está lindo aqui no Rio ☀️", ("pt",)), ("que saudade de vocês", ()),
    ("Guten Morgen! Der Kaffee ist fertig und die Sonne scheint.", ("de",)),
    ("Quelle journée… le train a encore une heure de retard.", ()),
    ("¡Qué partidazo! No me lo puedo creer 😱", ("es",)),
    ("今日はとても暑いですね。水をたくさん飲みましょう。", ("ja",)),
    ("오늘 날씨 정말 좋네요", ()), ("Ik ben zo blij dat het eindelijk weekend is!", ()),
    ("Che bella giornata oggi al mare con gli amici 🌊", ("it",)), ("RT if you agree", ("en",)),
    ("I can't believe it's already March. Where did February go?", ()), ("nope", ()), ("👀", ()),
]


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def table(header: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> str:
    """A markdown table; the columns in `right` (numbers) right-aligned."""
    right = set(right)
    widths = [max(3, *(len(row[i]) for row in [header, *rows])) for i in range(len(header))]
    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


# --- downloads ----------------------------------------------------------------------------------------------------

class DownloadFailed(RuntimeError):
    pass


def pip_download(requirement: str, cache: Path, *options: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", *options,
           requirement, "-d", str(cache)]
    log(f"$ {shlex.join(cmd)}")
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = " / ".join(line.strip()[:200] for line in done.stdout.strip().splitlines()[-3:])
        raise DownloadFailed(f"pip download {requirement} failed (exit {done.returncode}): {tail}")


def vader_sdist(cache: Path) -> Path:
    path = cache / f"vaderSentiment-{VADER_VERSION}.tar.gz"
    if path.exists():
        log(f"reusing {path}")
    else:
        pip_download(f"vaderSentiment=={VADER_VERSION}", cache, "--no-binary", ":all:")
    if not path.exists():
        raise DownloadFailed(f"pip download did not leave {path.name} in {cache}")
    return path


def django_version(path: Path) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in path.name.split("-")[1].split("."))


def django_wheel(cache: Path) -> tuple[Path, str]:
    """The Django wheel and a note on its version (DJANGO_VERSION, else the newest 5.x pip offers)."""
    path = cache / f"django-{DJANGO_VERSION}-py3-none-any.whl"
    if path.exists():
        log(f"reusing {path}")
        return path, f"django {DJANGO_VERSION}"
    try:
        pip_download(f"django=={DJANGO_VERSION}", cache, "--only-binary", ":all:")
        if path.exists():
            return path, f"django {DJANGO_VERSION}"
    except DownloadFailed as error:
        log(f"{error}; trying the newest Django 5.x")
    pip_download("django>=5,<6", cache, "--only-binary", ":all:")
    wheels = sorted(cache.glob("django-5.*-py3-none-any.whl"), key=django_version)
    if not wheels:
        raise DownloadFailed(f"no Django 5.x wheel in {cache} after pip download")
    version = wheels[-1].name.split("-")[1]
    return wheels[-1], f"django {version} (django=={DJANGO_VERSION} was not available)"


# --- (b) VADER's ground truth -------------------------------------------------------------------------------------

def vader_sets(sdist: Path) -> dict[str, list[tuple[float, str]]]:
    """Per file of the ICWSM 2014 ground truth: (mean human rating, text)."""
    with tarfile.open(sdist) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith(VADER_INNER))
        inner_bytes = outer.extractfile(member).read()
    sets: dict[str, list[tuple[float, str]]] = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for name in VADER_FILES:
            raw = inner.extractfile(f"hutto_ICWSM_2014/{name}_GroundTruth.txt").read().decode("utf-8")
            rows = []
            for line in raw.splitlines():
                if line.strip():
                    _, rating, text = line.split("\t", 2)
                    rows.append((float(rating), text))
            sets[name] = rows
    return sets


def sign(value: float, low: float, high: float) -> int:
    return 1 if value >= high else -1 if value <= low else 0


def human_class(rating: float) -> int:
    return 1 if rating > 0 else -1 if rating < 0 else 0


@dataclass
class SentimentResult:
    name: str
    n: int
    unscored: int
    accuracy3: float
    majority: float
    n2: int
    accuracy2: float
    pearson: float
    ours_negative: float
    human_negative: float


def score_sentiment(name: str, rows: list[tuple[float, str]]) -> SentimentResult:
    humans, scores, unscored = [], [], 0
    for rating, text in rows:
        score = sentiment(text, ("en",))
        if score is None:
            unscored += 1
            score = 0.0  # nothing to score: neutral
        humans.append(rating)
        scores.append(score)
    ours = [sign(s, enrich.NEGATIVE_AT_MOST, POSITIVE_AT_LEAST) for s in scores]
    truth = [human_class(h) for h in humans]
    n = len(rows)
    polar = [(o, t) for o, t in zip(ours, truth, strict=True) if t != 0]
    return SentimentResult(
        name=name, n=n, unscored=unscored,
        accuracy3=sum(o == t for o, t in zip(ours, truth, strict=True)) / n,
        majority=max(Counter(truth).values()) / n,
        n2=len(polar), accuracy2=sum(o == t for o, t in polar) / max(1, len(polar)),
        pearson=statistics.correlation(scores, humans),
        ours_negative=sum(is_negative(s) for s in scores) / n,
        human_negative=sum(t < 0 for t in truth) / n,
    )


# --- (c) Django's catalogues --------------------------------------------------------------------------------------

_ESCAPE = re.compile(r'\\(.)')
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
_PLACEHOLDER = re.compile(r"%\([^)]*\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]|%[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc]|\{[^{}]*\}")
_TAG = re.compile(r"<[^>]*>")


def po_string(quoted: str) -> str:
    """The value of one quoted .po line: "…" with \\" \\n \\t \\\\ unescaped."""
    quoted = quoted.strip()
    if len(quoted) < 2 or not (quoted.startswith('"') and quoted.endswith('"')):
        raise ValueError(f"not a quoted .po string: {quoted[:60]!r}")
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), quoted[1:-1])


def po_translations(text: str) -> list[str]:
    """The msgstr of every entry that is translated, not fuzzy, not the header and not a plural form."""
    out: list[str] = []
    entry: dict[str, str] = {}  # msgctxt, msgid, msgid_plural, msgstr of the entry being read
    flags: set[str] = set()
    field: str | None = None  # where a continuation line ("…") goes

    def close() -> None:
        nonlocal entry, flags, field
        if entry.get("msgid") and entry.get("msgstr") and "msgid_plural" not in entry and "fuzzy" not in flags:
            out.append(entry["msgstr"])
        entry, flags, field = {}, set(), None

    for line in text.splitlines():
        line = line.strip()
        if not line:
            close()
        elif line.startswith("#"):
            if "msgstr" in entry or "msgid_plural" in entry:  # a comment opens the next entry
                close()
            if line.startswith("#,"):
                flags.update(flag.strip() for flag in line[2:].split(","))
            field = None  # obsolete entries (#~) and every other comment are not read
        elif line.startswith('"'):
            if field is not None:
                entry[field] += po_string(line)
        else:
            keyword, _, rest = line.partition(" ")
            if keyword in ("msgctxt", "msgid") and ("msgstr" in entry or "msgid_plural" in entry):
                close()
            if keyword.startswith("msgstr["):  # a plural form: skipped whole
                entry.setdefault("msgid_plural", "")
                field = None
            elif keyword in ("msgctxt", "msgid", "msgid_plural", "msgstr"):
                field = keyword
                entry[field] = po_string(rest)
            else:
                raise ValueError(f"unexpected .po line: {line[:60]!r}")
    close()
    return out


def clean_message(message: str) -> str:
    text = _TAG.sub(" ", _PLACEHOLDER.sub(" ", message.replace("%%", "%")))
    return " ".join(html.unescape(text).split())


def letters(text: str) -> int:
    return sum(c.isalpha() for c in text)


@dataclass
class Catalogues:
    texts: dict[str, list[str]]  # ISO code → distinct cleaned messages (sorted)
    locales: dict[str, list[str]]  # ISO code → Django locales
    skipped: dict[str, str]  # locale → why


def django_catalogues(wheel: Path, known: set[str]) -> Catalogues:
    pattern = re.compile(r"django/conf/locale/([^/]+)/LC_MESSAGES/django\.po$")
    texts: dict[str, set[str]] = {}
    locales: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            match = pattern.match(name)
            if not match:
                continue
            locale = match.group(1)
            iso = LOCALE_TO_ISO.get(locale, locale.split("_")[0].lower())
            if iso not in known:
                skipped[locale] = f"py3langid does not know '{iso}'"
                continue
            kept = {clean for message in po_translations(archive.read(name).decode("utf-8"))
                    if letters(clean := clean_message(message)) >= MIN_TEXT_LETTERS}
            locales.setdefault(iso, []).append(locale)
            texts.setdefault(iso, set()).update(kept)
    return Catalogues({iso: sorted(t) for iso, t in texts.items()}, locales, skipped)


def sample(texts: list[str], limit: int, iso: str) -> list[str]:
    rng = random.Random(f"{SEED}:{iso}")  # one stream per language: adding a language changes no other sample
    return rng.sample(texts, min(limit, len(texts)))


@dataclass
class Answer:
    iso: str  # the label
    text: str
    detected: str | None  # detect_language(text)
    best: str  # py3langid's best language, whatever its probability
    probability: float  # its normalised probability


@dataclass
class LanguageResult:
    iso: str
    locales: list[str]
    pool: int
    answers: list[Answer]


def answer(iso: str, text: str) -> Answer:
    detected = detect_language(text)
    # The identifier's own best guess on the text detect_language classifies (links, mentions, tags out), to show
    # what the MIN_LANGUAGE_PROBABILITY threshold turns into abstentions.
    best, probability = enrich._identifier().classify(enrich._NOT_LANGUAGE.sub(" ", text))
    return Answer(iso, text, detected, best, probability)


def score_languages(catalogues: Catalogues, limit: int) -> list[LanguageResult]:
    results = []
    for iso in sorted(catalogues.texts):
        chosen = sample(catalogues.texts[iso], limit, iso)
        results.append(LanguageResult(iso, catalogues.locales[iso], len(catalogues.texts[iso]),
                                      [answer(iso, text) for text in chosen]))
    return results


# --- (a) cost -----------------------------------------------------------------------------------------------------

@dataclass
class Cost:
    what: str
    texts: str
    calls: int
    mean_us: float
    p50_us: float
    p99_us: float


def load_time(module: str, loader: Callable[[], object]) -> tuple[float, float]:
    """Seconds to import `module` and to build the model (loader's first call), in this process."""
    started = time.perf_counter()
    importlib.import_module(module)
    imported = time.perf_counter()
    loader()
    return imported - started, time.perf_counter() - imported


def cost(what: str, description: str, call: Callable[[str, tuple[str, ...]], object],
         posts: list[tuple[str, tuple[str, ...]]]) -> Cost:
    for i in range(WARMUP):
        text, langs = posts[i % len(posts)]
        call(text, langs)
    timings = []
    clock = time.perf_counter
    for i in range(CALLS):
        text, langs = posts[i % len(posts)]
        started = clock()
        call(text, langs)
        timings.append(clock() - started)
    timings.sort()
    return Cost(what, description, CALLS, 1e6 * sum(timings) / CALLS, 1e6 * timings[CALLS // 2],
                1e6 * timings[int(CALLS * 0.99)])


# --- (d) the trending job's counting, with and without sentiment -------------------------------------------------

def stage_costs(count: int = 20_000, batch: int = 1_000, repeats: int = 3) -> tuple[float, float, float, str]:
    """µs per post of shared/keyword_windows.count_posts (the trending job's per-post Python work: keywords,
    counts, and now sentiment) over seeded synthetic posts, with sentiment and with it switched off; the share of
    posts scored. Best of `repeats` passes each, alternating."""
    from connectors import synthetic
    from shared import keyword_windows
    from shared.post import parse_post

    config = synthetic.SyntheticConfig(seed=SEED, count=count, duration_s=None, rate=30.0)
    posts = [parse_post(e.payload) for e in synthetic.generate(config) if isinstance(e.payload, dict)]
    batches = [posts[i:i + batch] for i in range(0, len(posts), batch)]

    def timed(with_sentiment: bool) -> float:
        start = time.perf_counter()
        for index, part in enumerate(batches):
            keyword_windows.count_posts(index, part, with_sentiment)
        return (time.perf_counter() - start) / len(posts) * 1e6

    with_sentiment, without = [], []
    for _ in range(repeats):
        with_sentiment.append(timed(True))
        without.append(timed(False))
    scored = sum(1 for p in posts if sentiment(p.text, p.langs) is not None) / len(posts)
    note = (f"{len(posts):,} synthetic posts (seed {SEED}; the languages of connectors/synthetic.py, "
            f"{scored:.0%} English), batches of {batch:,}, best of {repeats}")
    return min(with_sentiment), min(without), scored, note


# --- report -------------------------------------------------------------------------------------------------------

def print_costs(loads: dict[str, tuple[float, float]], costs: list[Cost], mix_note: str) -> None:
    print("\n## (a) cost")
    print(table(["model", "import s", "model load s", "one-off total s"],
                [[name, f"{a:.3f}", f"{b:.3f}", f"{a + b:.3f}"] for name, (a, b) in loads.items()], right=(1, 2, 3)))
    print(f"\nmix: {mix_note}")
    print(f"each row: {WARMUP} warm-up calls, then {CALLS:,} calls timed one by one with time.perf_counter\n")
    print(table(["call", "texts", "calls", "mean µs", "p50 µs", "p99 µs", "posts/s (1 core)"],
                [[c.what, c.texts, f"{c.calls:,}", f"{c.mean_us:,.1f}", f"{c.p50_us:,.1f}", f"{c.p99_us:,.1f}",
                  f"{1e6 / c.mean_us:,.0f}"] for c in costs], right=(2, 3, 4, 5, 6)))


def print_sentiment(results: list[SentimentResult], source: str) -> None:
    print(f"\n## (b) sentiment: VADER's ICWSM 2014 ground truth ({source})")
    print("classes: human mean > 0 pos, < 0 neg, = 0 neutral; ours compound ≥ 0.05 pos, ≤ -0.05 neg, else neutral\n")
    rows = [[r.name, f"{r.n:,}", f"{r.accuracy3:.3f}", f"{r.majority:.3f}", f"{r.n2:,}", f"{r.accuracy2:.3f}",
             f"{r.pearson:.3f}", pct(r.ours_negative, 1), pct(r.human_negative, 1), f"{r.unscored}"]
            for r in results]
    print(table(["file", "n", "3-class acc", "majority class", "n (human ≠ 0)", "2-class acc", "pearson r",
                 "flagged negative", "human negative", "unscored"], rows, right=range(1, 10)))


def print_languages(results: list[LanguageResult], catalogues: Catalogues, wheel_note: str, limit: int) -> None:
    print(f"\n## (c) language: Django's translation catalogues ({wheel_note})")
    print(f"locales: {sum(len(v) for v in catalogues.locales.values())} covered as {len(catalogues.locales)} "
          f"languages; {len(catalogues.skipped)} skipped (py3langid does not know them): "
          f"{', '.join(sorted(catalogues.skipped))}")
    empty = [r.iso for r in results if not r.answers]
    if empty:
        print(f"no message with ≥ {MIN_TEXT_LETTERS} letters (left out of the averages): {', '.join(empty)}")
    print(f"per language: up to --limit {limit} distinct messages of ≥ {MIN_TEXT_LETTERS} letters (pool: how many "
          f"there are), drawn with seed {SEED}; 'best guess when abstaining': py3langid's top language (below "
          f"probability {enrich.MIN_LANGUAGE_PROBABILITY}) on the abstained texts\n")
    scored = [r for r in results if r.answers]
    rows = []
    for r in sorted(scored, key=lambda r: (-sum(a.detected == r.iso for a in r.answers) / len(r.answers), r.iso)):
        n = len(r.answers)
        right = sum(a.detected == r.iso for a in r.answers)
        abstained = [a for a in r.answers if a.detected is None]
        wrong = Counter(a.detected for a in r.answers if a.detected not in (None, r.iso)).most_common(3)
        guesses = Counter(a.best for a in abstained).most_common(4)
        rows.append([r.iso, ",".join(r.locales), f"{r.pool:,}", f"{n}", f"{right / n:.3f}",
                     pct(len(abstained), n), pct(n - right - len(abstained), n),
                     " ".join(f"{d}:{k}" for d, k in wrong), " ".join(f"{d}:{k}" for d, k in guesses)])
    print(table(["lang", "locales", "pool", "n", "accuracy", "abstained", "wrong", "wrong answers",
                 "best guess when abstaining"], rows, right=(2, 3, 4, 5, 6)))

    answers = [a for r in scored for a in r.answers]

    def summary(name: str, chosen: list[Answer]) -> list[str]:
        n = len(chosen)
        right = sum(a.detected == a.iso for a in chosen)
        abstained = sum(a.detected is None for a in chosen)
        answered = n - abstained
        return [name, f"{n:,}", f"{right / n:.3f}" if n else "-", pct(abstained, n),
                f"{right / answered:.3f}" if answered else "-"]

    def short(chosen: list[Answer]) -> list[Answer]:
        return [a for a in chosen if letters(a.text) <= SHORT_AT_MOST]

    def long(chosen: list[Answer]) -> list[Answer]:
        return [a for a in chosen if letters(a.text) > SHORT_AT_MOST]

    macro = statistics.fmean(sum(a.detected == r.iso for a in r.answers) / len(r.answers) for r in scored)
    print()
    print(table(["texts", "n", "accuracy", "abstained", "accuracy when answered"], [
        summary(f"all, micro ({len(scored)} languages)", answers),
        [f"all, macro ({len(scored)} languages)", f"{len(answers):,}", f"{macro:.3f}", "", ""],
        summary(f"short ({MIN_TEXT_LETTERS}–{SHORT_AT_MOST} letters)", short(answers)),
        summary(f"long (> {SHORT_AT_MOST} letters)", long(answers)),
    ], right=(1, 2, 3, 4)))
    test_languages = ("en", "fr", "de", "es", "pt", "it", "nl")
    chosen = [a for a in answers if a.iso in test_languages]
    if chosen:
        print()
        print(table(["texts", "n", "accuracy", "abstained", "accuracy when answered"], [
            summary(f"{'/'.join(test_languages)} only", chosen),
            summary("  short", short(chosen)),
            summary("  long", long(chosen)),
        ], right=(1, 2, 3, 4)))

    # What other thresholds on py3langid's probability would give on the same texts (all have ≥ MIN_LETTERS).
    print(f"\nthreshold on py3langid's probability (shared/enrich.py: MIN_LANGUAGE_PROBABILITY = "
          f"{enrich.MIN_LANGUAGE_PROBABILITY}), same texts:\n")
    rows = []
    for threshold in sorted({0.0, 0.3, 0.5, 0.8, 0.9, 0.95, enrich.MIN_LANGUAGE_PROBABILITY}):
        def at(chosen: list[Answer], threshold: float = threshold) -> tuple[float, float, float]:
            given = [a for a in chosen if a.probability >= threshold]
            right = sum(a.best == a.iso for a in given)
            return (right / max(1, len(chosen)), 1 - len(given) / max(1, len(chosen)), right / max(1, len(given)))
        micro, abstained, precision = at(answers)
        macro = statistics.fmean(at(r.answers)[0] for r in scored)
        rows.append([f"{threshold:g}" + (" (current)" if threshold == enrich.MIN_LANGUAGE_PROBABILITY else ""),
                     f"{micro:.3f}", f"{macro:.3f}", pct(abstained, 1), f"{precision:.3f}",
                     f"{at(short(answers))[0]:.3f}", f"{at(long(answers))[0]:.3f}",
                     f"{at([a for a in answers if a.iso in test_languages])[0]:.3f}"])
    print(table(["probability ≥", "micro acc", "macro acc", "abstained", "accuracy when answered", "short acc",
                 "long acc", "en/fr/de/es/pt/it/nl acc"], rows, right=range(1, 8)))
    mismatched = sum(a.detected != (a.best if a.probability >= enrich.MIN_LANGUAGE_PROBABILITY else None)
                     for a in answers)
    if mismatched:
        print(f"note: {mismatched} texts where detect_language differs from the threshold applied here")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"where the downloaded packages are kept and reused (default {DEFAULT_CACHE})")
    parser.add_argument("--limit", type=int, default=200,
                        help="messages per language in (c), drawn with a fixed seed (default 200)")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be positive")
    command = shlex.join([".venv/bin/python", "-m", "bench.enrichment", *(sys.argv[1:] if argv is None else argv)])
    started = time.perf_counter()
    cache = args.cache.expanduser()
    cache.mkdir(parents=True, exist_ok=True)

    # Models first: their load is timed on the first use in this process.
    loads = {"py3langid 0.4.0 (language)": load_time("py3langid.langid", enrich._identifier),
             f"vaderSentiment {VADER_VERSION} (sentiment)": load_time("vaderSentiment.vaderSentiment",
                                                                       enrich._analyzer)}
    log("models loaded: " + ", ".join(f"{k} {a + b:.2f}s" for k, (a, b) in loads.items()))

    failures: list[str] = []
    vader: dict[str, list[tuple[float, str]]] = {}
    try:
        vader = vader_sets(vader_sdist(cache))
        log("VADER ground truth: " + ", ".join(f"{k} {len(v):,}" for k, v in vader.items()))
    except DownloadFailed as error:
        failures.append(f"(b) not measured, and no tweets in the mix of (a): {error}")
        log(failures[-1])
    catalogues: Catalogues | None = None
    wheel_note = ""
    try:
        wheel, wheel_note = django_wheel(cache)
        catalogues = django_catalogues(wheel, set(enrich._identifier().nb_classes))
        log(f"Django catalogues ({wheel.name}): {sum(map(len, catalogues.texts.values())):,} messages in "
            f"{len(catalogues.texts)} languages, {len(catalogues.skipped)} locales skipped")
    except DownloadFailed as error:
        failures.append(f"(c) not measured, and no Django messages in the mix of (a): {error}")
        log(failures[-1])

    # (a) the mix of short texts, and the cost per call.
    tweets = [(text, ("en",)) for _, text in vader.get("tweets", [])]
    english = tweets + [post for post in POSTS if post[1] == ("en",)]
    django = []
    if catalogues:
        for iso, texts in sorted(catalogues.texts.items()):
            short = [t for t in texts if len(t) <= MIX_MAX_CHARS]
            django += [(text, (iso,)) for text in sample(short, MIX_PER_LANGUAGE, iso)]
    posts = tweets + django + POSTS
    random.Random(SEED).shuffle(posts)
    mix_note = (f"{len(posts):,} texts: {len(tweets):,} English tweets of (b), {len(django):,} "
                f"Django messages of ≤ {MIX_MAX_CHARS} characters ({MIX_PER_LANGUAGE} per language), "
                f"{len(POSTS)} hand-written posts (links, mentions, tags, emoji, one-word replies); mean "
                f"{statistics.fmean(len(t) for t, _ in posts):.0f} characters")
    log(f"timing on {mix_note}")
    costs = [
        cost("detect_language(text)", "mix", lambda text, langs: detect_language(text), posts),
        cost("sentiment(text, declared)", "mix, languages as declared", sentiment, posts),
        cost("sentiment(text, ('en',))", f"English only ({len(english):,})", sentiment, english),
        cost("sentiment(text, ())", "mix, none declared", lambda text, langs: sentiment(text, ()), posts),
    ]
    log("timing done")

    sentiment_results: list[SentimentResult] = []
    if vader:
        for name, rows in vader.items():
            sentiment_results.append(score_sentiment(name, rows))
            log(f"sentiment: {name} scored")
        sentiment_results.append(score_sentiment("all four", [row for rows in vader.values() for row in rows]))
    language_results: list[LanguageResult] = []
    if catalogues:
        language_results = score_languages(catalogues, args.limit)
        log(f"language: {sum(len(r.answers) for r in language_results):,} messages detected")

    print("# enrichment benchmark (bench/enrichment.py)")
    print(f"command: {command}")
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"cache {cache}")
    print(f"shared/enrich.py: MIN_LETTERS {enrich.MIN_LETTERS}, MIN_LANGUAGE_PROBABILITY "
          f"{enrich.MIN_LANGUAGE_PROBABILITY}, NEGATIVE_AT_MOST {enrich.NEGATIVE_AT_MOST}, sentiment for "
          f"{sorted(enrich.SENTIMENT_LANGUAGES)}")
    for failure in failures:
        print(f"NOT MEASURED — {failure}")
    print_costs(loads, costs, mix_note)
    if sentiment_results:
        print_sentiment(sentiment_results, f"vaderSentiment-{VADER_VERSION}.tar.gz, {VADER_INNER}")
    if catalogues:
        print_languages(language_results, catalogues, wheel_note, args.limit)
    with_sentiment, without, _, note = stage_costs()
    print("\n## (d) the trending job's per-post counting (shared/keyword_windows.py count_posts)")
    print(f"{note}\n")
    print(table(["count_posts", "µs per post", "posts/s (1 core)"],
                [["with sentiment (the job's default)", f"{with_sentiment:.1f}", f"{1e6 / with_sentiment:,.0f}"],
                 ["sentiment switched off", f"{without:.1f}", f"{1e6 / without:,.0f}"],
                 ["sentiment's cost", f"{with_sentiment - without:.1f}", ""]], right=(1, 2)))
    print(f"\nrun time {time.perf_counter() - started:.1f} s")
    print(f"command: {command}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
