"""The `synthetic` source: seeded, deterministic social posts whose ground truth is known.

Every job test and benchmark stands on it. The same `SyntheticConfig` always yields the same events:

- a Zipf-distributed vocabulary per language (en, es, pt, de, fr with their stop words, and ja,
  written without spaces, whose only keywords are hashtags), hashtags, mentions, links, replies;
- a daily rhythm and optional busy periods (everything louder: a decoy for trend detectors);
- scheduled keyword bursts (`Burst`: intensity × the keyword's baseline, linear ramp) and volume
  events per language or community (`VolumeEvent`: 0 = outage, 5 = spike), listed with their
  expected counts by `labels()`;
- exact numbers of malformed events (raw bytes that `parse_post` rejects, each with the reason it
  should get) and duplicates (a post re-sent later with the same uid), and fractions of posts
  whose created_at lies before their emission: out-of-order (within a watermark) or late (past it).

The schedule is drawn per second of event time from a Poisson process (numpy, seeded), so that
it is fast to compute and identical run to run; post contents come from `random.Random(seed)`.
"""

from __future__ import annotations

import json
import math
import random
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np

from shared.post import MAX_TEXT_CHARS, SOURCES, RejectReason

SOURCE = "synthetic"
DAY_S = 86_400

# Common words per language, stop words first: the head of each Zipf distribution. The long tail is
# made of seeded pseudo-words, so that rare keywords exist in any number.
WORDS = {
    "en": "the of and to a in is it that for on you with this was are be at have not but all just so my "
          "what about like people time today new good great love game news world music city night team "
          "weather coffee movie book school work music election market phone video photo",
    "es": "de la que el en y a los se del las un por con no una su para es al lo como más pero sus le "
          "hoy gente tiempo nuevo bueno mundo música ciudad noche equipo partido noticias trabajo fútbol",
    "pt": "de a o que e do da em um para é com não uma os no se na por mais as dos como mas ao ele "
          "hoje gente tempo novo bom mundo música cidade noite time jogo notícias trabalho futebol",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an "
          "heute leute zeit neu gut welt musik stadt nacht mannschaft spiel nachrichten arbeit wetter straße",
    "fr": "de la le et les des en un une du est que pour dans qui pas sur au avec il elle ce se ne plus "
          "aujourd'hui gens temps nouveau bon monde musique ville nuit équipe match nouvelles travail météo",
    "ja": "今日 東京 天気 仕事 音楽 映画 写真 電車 ご飯 友達 ニュース 試合 週末 桜 猫 ラーメン 会社 学校",
}
SYLLABLES = ["ka", "lo", "mi", "ta", "ren", "sol", "vi", "dor", "pa", "ne", "qua", "zel", "bri", "tom", "sa", "ul"]
MALFORMED_KINDS = (
    ("truncated_json", RejectReason.INVALID_JSON),
    ("invalid_utf8", RejectReason.INVALID_UTF8),
    ("missing_uid", RejectReason.MISSING_FIELD),
    ("epoch_1970", RejectReason.TIMESTAMP_OUT_OF_RANGE),
    ("huge_text", RejectReason.TEXT_TOO_LONG),
    ("wrong_type", RejectReason.INVALID_FIELD),
)


@dataclass(frozen=True)
class Burst:
    """`keyword` (a word, or `#tag` for a hashtag) at `intensity` × its baseline rate, from start_s for length_s."""

    keyword: str
    start_s: float
    length_s: float
    intensity: float
    ramp_s: float = 60.0
    lang: str = "en"
    baseline_per_min: float | None = None  # required when the keyword is not a vocabulary word

    def __post_init__(self):
        _check(bool(self.keyword.strip("#")), "burst keyword", "a non-empty word or #tag", self.keyword)
        _check(self.start_s >= 0, "burst start_s", "seconds ≥ 0", self.start_s)
        _check(self.length_s > 0, "burst length_s", "seconds > 0", self.length_s)
        _check(self.intensity > 1, "burst intensity", "a multiple of the baseline > 1", self.intensity)
        _check(0 <= self.ramp_s <= self.length_s, "burst ramp_s", "seconds between 0 and length_s", self.ramp_s)
        _check(self.lang in WORDS, "burst lang", f"one of {sorted(WORDS)}", self.lang)

    @classmethod
    def parse(cls, spec: str) -> Burst:
        """KEYWORD:START_S:LENGTH_S:INTENSITY[:RAMP_S[:BASELINE_PER_MIN]], e.g. `#aurora:900:600:8`."""
        parts = spec.split(":")
        if not 4 <= len(parts) <= 6:
            raise ValueError(f"burst {spec!r}: expected KEYWORD:START_S:LENGTH_S:INTENSITY[:RAMP_S[:BASELINE_PER_MIN]]")
        try:
            numbers = [float(p) for p in parts[1:]]
        except ValueError:
            raise ValueError(f"burst {spec!r}: START_S, LENGTH_S, INTENSITY and RAMP_S must be numbers") from None
        ramp = numbers[3] if len(numbers) > 3 else min(60.0, numbers[1])
        baseline = numbers[4] if len(numbers) > 4 else None
        return cls(parts[0], numbers[0], numbers[1], numbers[2], ramp, baseline_per_min=baseline)


@dataclass(frozen=True)
class VolumeEvent:
    """All posts of one series (`lang:es`, `community:synthetic-b`, `source:reddit`) × `multiplier` for a while:
    0 is an outage."""

    series: str
    start_s: float
    length_s: float
    multiplier: float

    def __post_init__(self):
        kind, _, value = self.series.partition(":")
        _check(kind in ("lang", "community", "source") and bool(value), "volume event series",
               "lang:<code>, community:<name> or source:<name>", self.series)
        _check(self.start_s >= 0 and self.length_s > 0, "volume event window", "start ≥ 0 and length > 0",
               (self.start_s, self.length_s))
        _check(self.multiplier >= 0 and self.multiplier != 1, "volume event multiplier", "≥ 0 and not 1",
               self.multiplier)

    @classmethod
    def parse(cls, spec: str) -> VolumeEvent:
        """SERIES:START_S:LENGTH_S:MULTIPLIER, e.g. `community:synthetic-b:600:300:0`."""
        parts = spec.rsplit(":", 3)
        try:
            numbers = [float(p) for p in parts[1:]]
        except ValueError:
            numbers = []
        if len(numbers) != 3:
            raise ValueError(f"volume event {spec!r}: expected SERIES:START_S:LENGTH_S:MULTIPLIER")
        return cls(parts[0], *numbers)


@dataclass(frozen=True)
class BusyPeriod:
    start_s: float
    length_s: float
    multiplier: float


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = 42
    start_ms: int = 1_793_534_400_000  # 2026-11-01T12:00:00Z
    duration_s: float | None = 600.0
    count: int | None = None
    rate: float = 100.0
    languages: Mapping[str, float] = field(default_factory=lambda: {"en": 0.5, "es": 0.15, "pt": 0.12, "de": 0.1,
                                                                    "fr": 0.08, "ja": 0.05})
    communities: Mapping[str, float] = field(default_factory=lambda: {"synthetic-a": 0.6, "synthetic-b": 0.3,
                                                                      "synthetic-c": 0.1})
    # Which `source` the posts claim: a mix such as {"bluesky": 0.5, "reddit": 0.3, "mastodon": 0.2} imitates
    # several producers at once (the uids still say synthetic:).
    sources: Mapping[str, float] = field(default_factory=lambda: {SOURCE: 1.0})
    vocab_size: int = 2000
    zipf_s: float = 1.07
    hashtag_vocab: int = 300
    hashtag_rate: float = 0.35  # share of posts with at least one hashtag
    authors: int = 5000
    daily_amplitude: float = 0.3
    daily_peak_hour: float = 18.0
    busy: tuple[BusyPeriod, ...] = ()
    bursts: tuple[Burst, ...] = ()
    volume_events: tuple[VolumeEvent, ...] = ()
    out_of_order: float = 0.0
    out_of_order_max_s: float = 20.0
    late: float = 0.0
    late_min_s: float = 120.0
    late_max_s: float = 300.0
    duplicate: float = 0.0
    malformed: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "bursts", tuple(self.bursts))
        object.__setattr__(self, "volume_events", tuple(self.volume_events))
        object.__setattr__(self, "busy", tuple(self.busy))
        _check(self.duration_s is not None or self.count is not None, "duration_s/count", "at least one of them",
               None)
        _check(self.duration_s is None or self.duration_s > 0, "duration_s", "seconds > 0", self.duration_s)
        _check(self.count is None or self.count > 0, "count", "a whole number > 0", self.count)
        _check(self.rate > 0, "rate", "posts per second > 0", self.rate)
        _check(bool(self.languages) and set(self.languages) <= set(WORDS) and min(self.languages.values()) > 0,
               "languages", f"positive weights for languages among {sorted(WORDS)}", self.languages)
        _check(bool(self.communities) and min(self.communities.values()) > 0, "communities", "positive weights",
               self.communities)
        _check(bool(self.sources) and set(self.sources) <= SOURCES and min(self.sources.values()) > 0, "sources",
               f"positive weights for sources among {sorted(SOURCES)}", self.sources)
        _check(self.vocab_size >= 100, "vocab_size", "a whole number ≥ 100", self.vocab_size)
        _check(self.zipf_s > 0, "zipf_s", "a positive exponent", self.zipf_s)
        _check(0 <= self.daily_amplitude < 1, "daily_amplitude", "a number in [0, 1)", self.daily_amplitude)
        for name in ("out_of_order", "late", "duplicate", "malformed", "hashtag_rate"):
            _check(0 <= getattr(self, name) <= 1, name, "a fraction between 0 and 1", getattr(self, name))
        _check(self.out_of_order + self.late <= 1, "out_of_order + late", "at most 1", self.out_of_order + self.late)
        _check(0 < self.late_min_s <= self.late_max_s, "late_min_s/late_max_s", "0 < min ≤ max",
               (self.late_min_s, self.late_max_s))


@dataclass(slots=True)
class SyntheticEvent:
    uid: str | None
    payload: Mapping[str, Any] | bytes  # a dict for parse_post, raw bytes for malformed events
    expected_reject: RejectReason | None = None
    is_duplicate: bool = False


def _check(ok: bool, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"synthetic {name}: expected {expected}, got {value!r}")


def _zipf_cum(n: int, s: float) -> list[float]:
    return list(accumulate(1.0 / (rank ** s) for rank in range(1, n + 1)))


class _Vocabulary:
    """Per-language word lists with Zipf weights; pseudo-words are seeded, so the same per config."""

    def __init__(self, config: SyntheticConfig):
        rng = random.Random(f"{config.seed}:vocab")
        self.words: dict[str, list[str]] = {}
        self.cum: dict[str, list[float]] = {}
        for lang in config.languages:
            head = WORDS[lang].split()
            seen = set(head)
            tail = []
            while len(head) + len(tail) < config.vocab_size:
                word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
                if lang == "ja":
                    word = "".join(rng.choice("アイウエオカキクケコサシスセソタチツテト") for _ in range(3))
                if word not in seen:
                    seen.add(word)
                    tail.append(word)
            self.words[lang] = head + tail
            self.cum[lang] = _zipf_cum(len(self.words[lang]), config.zipf_s)
        self.hashtags = [f"tag{''.join(rng.choice(SYLLABLES) for _ in range(2))}{i}" for i in range(
            config.hashtag_vocab)]
        self.hashtag_cum = _zipf_cum(len(self.hashtags), config.zipf_s)
        self.hashtag_rate = config.hashtag_rate

    def probability(self, lang: str, word: str) -> float:
        """P(a given word slot holds `word`), for a keyword's expected baseline."""
        words = self.words[lang]
        if word not in words:
            return 0.0
        rank = words.index(word)
        cum = self.cum[lang]
        return (cum[rank] - (cum[rank - 1] if rank else 0.0)) / cum[-1]


MEAN_WORDS = 15  # posts have 5-25 words, uniformly


def keyword_baselines(config: SyntheticConfig, lang: str = "en") -> dict[str, float]:
    """Every vocabulary word of `lang` and every hashtag (as #tag) with its expected posts per minute."""
    vocab = _Vocabulary(config)
    words = {word: _baseline_per_min(config, vocab, Burst(word, 0, 1, 2, 0, lang)) for word in vocab.words[lang]}
    tags = {f"#{tag}": _baseline_per_min(config, vocab, Burst(f"#{tag}", 0, 1, 2, 0, lang)) for tag in vocab.hashtags}
    return words | tags


def _baseline_per_min(config: SyntheticConfig, vocab: _Vocabulary, burst: Burst) -> float:
    if burst.baseline_per_min is not None:
        return burst.baseline_per_min
    lang_share = config.languages.get(burst.lang, 0) / sum(config.languages.values())
    word = burst.keyword.lstrip("#")
    if burst.keyword.startswith("#"):
        per_post = 0.0
        if word in vocab.hashtags:  # a tagged post draws 2 tags on average
            rank, cum = vocab.hashtags.index(word), vocab.hashtag_cum
            per_post = config.hashtag_rate * 2 * (cum[rank] - (cum[rank - 1] if rank else 0)) / cum[-1]
        lang_share = 1.0  # hashtags are drawn whatever the language
    else:
        per_post = 1 - (1 - vocab.probability(burst.lang, word)) ** MEAN_WORDS
    if per_post <= 0:
        raise ValueError(f"synthetic burst {burst.keyword!r}: not in the {burst.lang} vocabulary; "
                         "give baseline_per_min (the 6th field of --burst)")
    return config.rate * 60 * lang_share * per_post


def _rate_multiplier(config: SyntheticConfig, seconds: np.ndarray) -> np.ndarray:
    absolute_s = config.start_ms / 1000 + seconds
    hour_phase = 2 * np.pi * ((absolute_s % DAY_S) / 3600 - config.daily_peak_hour) / 24
    mult = 1 + config.daily_amplitude * np.cos(hour_phase)
    for busy in config.busy:
        mult = np.where((seconds >= busy.start_s) & (seconds < busy.start_s + busy.length_s),
                        mult * busy.multiplier, mult)
    return mult


def _ramp(burst: Burst, seconds: np.ndarray) -> np.ndarray:
    into = seconds - burst.start_s
    active = (into >= 0) & (into < burst.length_s)
    level = np.minimum(1.0, (into + 1) / burst.ramp_s) if burst.ramp_s > 0 else np.ones_like(into)
    return np.where(active, level, 0.0)


@dataclass
class _Schedule:
    times_ms: np.ndarray  # emission (scheduled) time of every post, ascending
    kinds: np.ndarray  # -1 = ordinary post, i ≥ 0 = extra post of burst i, -2 - j = extra post of volume event j
    expected_burst_posts: list[float]
    expected_volume_posts: list[float]


def count_horizon_s(config: SyntheticConfig) -> float:
    """Seconds of event time that surely hold `count` posts: the daily rhythm's trough sets the slowest rate."""
    return config.count / (config.rate * (1 - config.daily_amplitude)) * 1.2 + 60


def _schedule(config: SyntheticConfig, vocab: _Vocabulary) -> _Schedule:
    rng = np.random.default_rng(config.seed)
    horizon = config.duration_s if config.duration_s is not None else count_horizon_s(config)
    seconds = np.arange(math.ceil(horizon), dtype=np.float64)
    base = config.rate * _rate_multiplier(config, seconds)
    lambdas = [base]
    kinds = [-1]
    expected_bursts = []
    for i, burst in enumerate(config.bursts):
        extra = (burst.intensity - 1) * _baseline_per_min(config, vocab, burst) / 60 * _ramp(burst, seconds)
        lambdas.append(extra)
        kinds.append(i)
        expected_bursts.append(float(extra.sum()))
    expected_volume = []
    for j, event in enumerate(config.volume_events):
        share = _series_share(config, event.series)
        active = (seconds >= event.start_s) & (seconds < event.start_s + event.length_s)
        extra = np.where(active, base * share * max(0.0, event.multiplier - 1), 0.0)
        lambdas.append(extra)
        kinds.append(-2 - j)
        expected_volume.append(float((np.where(active, base * share * event.multiplier, 0.0)).sum()))
    times, kind_of = [], []
    for lam, kind in zip(lambdas, kinds, strict=True):
        counts = rng.poisson(lam)
        second_of = np.repeat(seconds, counts)
        times.append((second_of + rng.random(second_of.size)) * 1000)
        kind_of.append(np.full(second_of.size, kind))
    all_times = np.concatenate(times)
    all_kinds = np.concatenate(kind_of)
    order = np.argsort(all_times, kind="stable")
    all_times, all_kinds = all_times[order], all_kinds[order]
    if config.count is not None:
        if all_times.size < config.count:
            raise ValueError(f"synthetic count {config.count} does not fit in duration_s {config.duration_s} "
                             f"at rate {config.rate}; raise duration_s or rate")
        all_times, all_kinds = all_times[: config.count], all_kinds[: config.count]
    return _Schedule((config.start_ms + all_times).astype(np.int64), all_kinds, expected_bursts, expected_volume)


def _series_share(config: SyntheticConfig, series: str) -> float:
    kind, _, value = series.partition(":")
    weights = {"lang": config.languages, "community": config.communities, "source": config.sources}[kind]
    return weights.get(value, 0.0) / sum(weights.values())


def generate(config: SyntheticConfig) -> Iterator[SyntheticEvent]:
    """Events in emission order: posts (dicts), malformed raw bytes, and duplicates of earlier posts."""
    vocab = _Vocabulary(config)
    plan = _schedule(config, vocab)
    n = plan.times_ms.size
    rng = random.Random(config.seed)
    picks = rng.sample(range(n), round(n * config.malformed) + round(n * (config.out_of_order + config.late)))
    malformed = set(picks[: round(n * config.malformed)])
    shifted = picks[round(n * config.malformed):]
    out_of_order = set(shifted[: round(n * config.out_of_order)])
    late = set(shifted[round(n * config.out_of_order):])
    duplicates: dict[int, list[int]] = {}  # emit a copy of post i just after post j
    for i in rng.sample(range(n), round(n * config.duplicate)):
        duplicates.setdefault(min(n - 1, i + rng.randint(1, 50)), []).append(i)

    langs = list(config.languages)
    lang_cum = list(accumulate(config.languages.values()))
    communities = list(config.communities)
    community_cum = list(accumulate(config.communities.values()))
    sources = list(config.sources)
    source_cum = list(accumulate(config.sources.values()))
    author_cum = _zipf_cum(config.authors, 1.1)
    bursts, volume_events = config.bursts, config.volume_events
    payloads: dict[int, dict] = {}  # posts that will be duplicated later
    needed = {i for copies in duplicates.values() for i in copies}
    for index in range(n):
        created = int(plan.times_ms[index])
        kind = int(plan.kinds[index])
        uid = f"synthetic:{config.seed}:{index}"
        if index in malformed:
            kind_name, reason = MALFORMED_KINDS[index % len(MALFORMED_KINDS)]
            yield SyntheticEvent(uid, _malformed(kind_name, uid, created), reason)
        else:
            if index in out_of_order:
                created -= int(rng.uniform(1, config.out_of_order_max_s) * 1000)
            elif index in late:
                created -= int(rng.uniform(config.late_min_s, config.late_max_s) * 1000)
            lang = langs[bisect_right(lang_cum, rng.random() * lang_cum[-1])]
            community = communities[bisect_right(community_cum, rng.random() * community_cum[-1])]
            author = bisect_right(author_cum, rng.random() * author_cum[-1])
            # One source draws nothing: the default stream stays what it always was.
            source = sources[0] if len(sources) == 1 else sources[bisect_right(source_cum,
                                                                               rng.random() * source_cum[-1])]
            forced = None
            if kind >= 0:  # a burst post: its language, its keyword, any author (a real trend is many people)
                burst = bursts[kind]
                lang, forced, author = burst.lang, burst.keyword, rng.randrange(config.authors)
            elif kind <= -2:
                series_kind, _, value = volume_events[-2 - kind].series.partition(":")
                if series_kind == "lang":
                    lang = value
                elif series_kind == "source":
                    source = value
                else:
                    community = value
            elif _suppressed(volume_events, {"lang": lang, "community": community, "source": source},
                             created - config.start_ms, rng):
                continue  # an outage or dip of this post's series
            post = _post(rng, vocab, uid, source, lang, community, author, created, forced, index)
            if index in needed:
                payloads[index] = post
            yield SyntheticEvent(uid, post)
        for original in duplicates.get(index, ()):
            if original in payloads:
                yield SyntheticEvent(payloads[original]["uid"], dict(payloads.pop(original)), is_duplicate=True)


def _suppressed(events: tuple[VolumeEvent, ...], series: dict[str, str], offset_ms: int,
                rng: random.Random) -> bool:
    for event in events:
        if event.multiplier >= 1:
            continue
        kind, _, value = event.series.partition(":")
        if series[kind] != value:
            continue
        if event.start_s * 1000 <= offset_ms < (event.start_s + event.length_s) * 1000:
            return rng.random() >= event.multiplier
    return False


def _post(rng: random.Random, vocab: _Vocabulary, uid: str, source: str, lang: str, community: str, author: int,
          created: int, forced: str | None, index: int) -> dict[str, Any]:
    words = rng.choices(vocab.words[lang], cum_weights=vocab.cum[lang], k=rng.randint(5, 25))
    hashtags = []
    if rng.random() < vocab.hashtag_rate:
        hashtags = list(dict.fromkeys(rng.choices(vocab.hashtags, cum_weights=vocab.hashtag_cum, k=rng.randint(1, 3))))
    if forced:
        if forced.startswith("#"):
            hashtags.append(forced[1:])
        else:
            words.insert(rng.randrange(len(words) + 1), forced)
    mentions = [f"user{rng.randrange(1000)}.example"] if rng.random() < 0.1 else []
    links = [f"https://example.com/p/{rng.randrange(10**6)}"] if rng.random() < 0.1 else []
    text = ("" if lang == "ja" else " ").join(words)
    text += "".join(f" #{tag}" for tag in hashtags) + "".join(f" @{m}" for m in mentions)
    text += "".join(f" {link}" for link in links)
    post = {"uid": uid, "source": source, "author_id": f"synthetic-author-{author}", "text": text,
            "langs": [lang], "created_at": created, "hashtags": hashtags, "mentions": mentions, "links": links,
            "community": community}
    if index > 0 and rng.random() < 0.1:
        parent = rng.randrange(max(0, index - 500), index)
        post["reply_parent"] = post["reply_root"] = uid.rsplit(":", 1)[0] + f":{parent}"
    return post


def _malformed(kind: str, uid: str, created: int) -> bytes:
    good = {"uid": uid, "source": SOURCE, "author_id": "synthetic-author-0", "text": "malformed on purpose",
            "created_at": created, "langs": ["en"]}
    if kind == "truncated_json":
        return json.dumps(good).encode()[:40]
    if kind == "invalid_utf8":
        return json.dumps(good).encode().replace(b"malformed", b"malf\xc3\x28rmed")
    if kind == "missing_uid":
        return json.dumps({k: v for k, v in good.items() if k != "uid"}).encode()
    if kind == "epoch_1970":
        return json.dumps(good | {"created_at": 86_400_000}).encode()
    if kind == "huge_text":
        return json.dumps(good | {"text": "x" * (MAX_TEXT_CHARS + 1)}).encode()
    return json.dumps(good | {"author_id": 12345}).encode()


def labels(config: SyntheticConfig) -> dict[str, Any]:
    """Ground truth for a config: what `generate` will emit, computed from the same schedule."""
    vocab = _Vocabulary(config)
    plan = _schedule(config, vocab)
    n = int(plan.times_ms.size)
    start = config.start_ms
    malformed = round(n * config.malformed)
    counts = {"scheduled_posts": n, "events": n + round(n * config.duplicate), "malformed": malformed,
              "duplicates": round(n * config.duplicate), "out_of_order": round(n * config.out_of_order),
              "late": round(n * config.late)}
    return {
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "counts": counts,
        "bursts": [{
            "keyword": b.keyword, "lang": b.lang, "intensity": b.intensity,
            "start_ms": start + int(b.start_s * 1000), "full_intensity_ms": start + int((b.start_s + b.ramp_s) * 1000),
            "end_ms": start + int((b.start_s + b.length_s) * 1000),
            "baseline_per_min": _baseline_per_min(config, vocab, b),
            "expected_burst_posts": round(plan.expected_burst_posts[i], 1),
            "scheduled_burst_posts": int((plan.kinds == i).sum()),
        } for i, b in enumerate(config.bursts)],
        "volume_events": [{
            "series": e.series, "multiplier": e.multiplier, "start_ms": start + int(e.start_s * 1000),
            "end_ms": start + int((e.start_s + e.length_s) * 1000),
            "expected_posts": round(plan.expected_volume_posts[j], 1),
        } for j, e in enumerate(config.volume_events)],
    }


def write_labels(config: SyntheticConfig, path: Path) -> None:
    Path(path).write_text(json.dumps(labels(config), indent=2, ensure_ascii=False) + "\n")
