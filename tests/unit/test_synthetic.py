"""The synthetic source: determinism, exact fault counts, bursts where the labels say, valid output."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from connectors.synthetic import Burst, SyntheticConfig, VolumeEvent, generate, labels, write_labels
from shared.post import InvalidPost, parse_post

START = 1_793_534_400_000  # 2026-11-01T12:00:00Z
FAR_FUTURE = START + 10**11


def config(**overrides) -> SyntheticConfig:
    values = {"seed": 11, "start_ms": START, "duration_s": 1200, "rate": 20.0}
    return SyntheticConfig(**(values | overrides))


def digest(cfg: SyntheticConfig) -> list:
    return [(e.uid, e.payload if isinstance(e.payload, bytes) else json.dumps(e.payload, sort_keys=True))
            for e in generate(cfg)]


def test_same_seed_same_events_and_another_seed_differs():
    assert digest(config()) == digest(config())
    assert digest(config()) != digest(config(seed=12))


def test_exact_malformed_and_duplicate_counts_and_every_payload_classified():
    cfg = config(count=5000, duration_s=None, malformed=0.013, duplicate=0.02)
    events = list(generate(cfg))
    malformed = [e for e in events if e.expected_reject]
    duplicates = [e for e in events if e.is_duplicate]
    assert len(malformed) == 65 and len(duplicates) == 100
    assert len(events) == 5000 + 100
    for event in events:
        if event.expected_reject:
            with pytest.raises(InvalidPost) as info:
                parse_post(event.payload, now=FAR_FUTURE)
            assert info.value.reason is event.expected_reject
        else:
            assert parse_post(event.payload, now=FAR_FUTURE).uid == event.uid
    originals = {e.uid for e in events if not e.is_duplicate and not e.expected_reject}
    assert {e.uid for e in duplicates} <= originals
    assert len({e.expected_reject for e in malformed}) == 6  # every kind of fault appears


def test_burst_adds_the_expected_excess_in_its_window():
    burst = Burst("election", start_s=600, length_s=300, intensity=6, ramp_s=60)
    cfg = config(bursts=[burst])
    truth = labels(cfg)["bursts"][0]

    def mentions(lo_ms, hi_ms):
        return sum(1 for e in generate(cfg) if lo_ms <= e.payload["created_at"] < hi_ms
                   and "election" in e.payload["text"].split())

    during = mentions(truth["start_ms"], truth["end_ms"])
    before = mentions(truth["start_ms"] - 300_000, truth["start_ms"])
    expected_excess = truth["expected_burst_posts"]
    assert truth["scheduled_burst_posts"] > 0
    # Poisson noise on ~400 posts is ~20; 25% tolerance is > 4 standard deviations at this seed.
    assert abs((during - before) - expected_excess) < 0.25 * expected_excess
    assert during > 4 * before


def test_burst_on_a_word_outside_the_vocabulary_needs_a_baseline():
    with pytest.raises(ValueError, match="baseline_per_min"):
        labels(config(bursts=[Burst("zzzunknown", 10, 60, 5)]))
    assert labels(config(bursts=[Burst("#zzz", 10, 60, 5, baseline_per_min=2)]))["bursts"][0]["baseline_per_min"] == 2


def test_out_of_order_and_late_shifts_are_bounded_and_counted():
    cfg = config(count=4000, duration_s=None, out_of_order=0.05, late=0.02)
    events = [e.payload for e in generate(cfg)]
    running, shifts = 0, []  # a shifted post is older than the newest post emitted before it
    for p in events:
        if p["created_at"] < running:
            shifts.append(running - p["created_at"])
        running = max(running, p["created_at"])
    assert 0.06 * 4000 <= len(shifts) <= 0.075 * 4000  # a few shifted posts still land after their predecessor
    assert max(shifts) <= 300_000 + 1000
    assert sum(1 for s in shifts if s > 100_000) >= 0.9 * 0.02 * 4000
    counts = labels(cfg)["counts"]
    assert counts["late"] == 80 and counts["out_of_order"] == 200


def test_outage_silences_its_series_and_spike_multiplies_it():
    cfg = config(volume_events=[VolumeEvent("community:synthetic-b", 300, 300, 0),
                                VolumeEvent("lang:es", 700, 200, 5)])
    per_community, per_lang = Counter(), Counter()
    for e in generate(cfg):
        minute = (e.payload["created_at"] - START) // 60_000
        per_community[e.payload["community"], minute] += 1
        per_lang[e.payload["langs"][0], minute] += 1
    assert all(per_community["synthetic-b", m] == 0 for m in range(5, 10))
    assert per_community["synthetic-b", 4] > 0 and per_community["synthetic-b", 10] > 0
    spike = sum(per_lang["es", m] for m in range(12, 15))
    normal = sum(per_lang["es", m] for m in range(2, 5))
    assert spike > 3 * normal


def test_a_mix_of_sources_follows_its_weights_and_one_source_can_spike_or_go_silent():
    mix = {"bluesky": 5, "reddit": 3, "mastodon": 2}
    cfg = config(sources=mix, volume_events=[VolumeEvent("source:reddit", 300, 300, 0),
                                             VolumeEvent("source:mastodon", 700, 180, 4)])
    per_source = Counter()
    for e in generate(cfg):
        per_source[e.payload["source"], (e.payload["created_at"] - START) // 60_000] += 1
    totals = {s: sum(n for (source, _), n in per_source.items() if source == s and _ < 5) for s in mix}
    assert totals["bluesky"] > totals["reddit"] > totals["mastodon"] > 0
    assert all(per_source["reddit", m] == 0 for m in range(5, 10)) and per_source["reddit", 10] > 0
    assert sum(per_source["mastodon", m] for m in range(12, 14)) > 3 * sum(per_source["mastodon", m] for m in (2, 3))
    with pytest.raises(ValueError, match="sources: expected positive weights for sources among"):
        config(sources={"myspace": 1})


def test_daily_rhythm_peaks_at_the_configured_hour():
    cfg = SyntheticConfig(seed=3, start_ms=START - 12 * 3_600_000, duration_s=86_400, rate=0.5, daily_amplitude=0.5,
                          daily_peak_hour=18)
    per_hour = Counter((e.payload["created_at"] // 3_600_000) % 24 for e in generate(cfg))
    assert per_hour[18] > 2 * per_hour[6]


def test_vocabulary_is_zipf_and_japanese_has_no_spaces():
    words = Counter()
    for e in generate(config(languages={"en": 1.0})):
        words.update(e.payload["text"].split())
    ranked = [count for _, count in words.most_common()]
    assert ranked[0] > 20 * ranked[100]
    ja = [e.payload for e in generate(config(languages={"ja": 1.0}, hashtag_rate=0))]
    plain = [p for p in ja if not p["mentions"] and not p["links"]]  # those append " @user" / " https://..."
    assert len(plain) > 0.7 * len(ja) and all(" " not in p["text"] for p in plain)


def test_label_file_and_invalid_config_messages(tmp_path):
    cfg = config(bursts=[Burst.parse("#tagkalo0:60:120:5:30:2")], malformed=0.01)
    write_labels(cfg, tmp_path / "labels.json")
    written = json.loads((tmp_path / "labels.json").read_text())
    assert written["counts"]["malformed"] == round(written["counts"]["scheduled_posts"] * 0.01)
    assert written["bursts"][0]["keyword"] == "#tagkalo0" and written["bursts"][0]["start_ms"] == START + 60_000
    with pytest.raises(ValueError, match="rate: expected posts per second > 0"):
        config(rate=0)
    with pytest.raises(ValueError, match="KEYWORD:START_S"):
        Burst.parse("oops")
    with pytest.raises(ValueError, match="lang:<code>, community:<name> or source:<name>"):
        VolumeEvent.parse("planet:mars:1:2:0")


@pytest.mark.parametrize("hour", [0, 6, 12, 18])
def test_a_count_alone_is_always_met_whatever_the_hour_of_day(hour):
    # CI once started a run at the daily trough, where count / rate seconds held too few posts.
    trough = SyntheticConfig(seed=5, start_ms=START - 12 * 3_600_000 + hour * 3_600_000, duration_s=None,
                             count=20_000, rate=100.0, daily_amplitude=0.5, daily_peak_hour=18)
    posts = [e for e in generate(trough) if not e.is_duplicate and e.expected_reject is None]
    assert len(posts) == 20_000
