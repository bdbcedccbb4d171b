"""The Reddit source against a local fake of Reddit's API: every submission and comment reaches Kafka
exactly once through a 429, a 503 and a restart from the saved cursor; real-shaped items (deleted, removed,
edited, crossposts, markdown around links, long usernames, no author_fullname) as the real API sends them."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from connectors.producer import CursorStore, PostProducer, run_source
from connectors.reddit import RedditError, RedditSource, check_settings
from shared.post import decode
from shared.settings import RedditSettings
from tests.fakes.reddit import (
    FakeReddit,
    comment,
    crosspost,
    deleted,
    edited,
    older,
    real_comment,
    real_submission,
    removed,
    submission,
)
from tests.integration.conftest import read_topic

USER_AGENT = "linux:streampulse-test:0.1 (by /u/streampulse_ci)"


@pytest.fixture
def fake_reddit():
    now = time.time() - 3600
    listings = {"/r/python/new": [submission(n, "python", now + n) for n in range(700)],
                "/r/python/comments": [comment(n, "python", now + n + 0.5) for n in range(500)]}
    # Listing requests 3 and 6 answer 429 and 503: the source waits and asks again.
    fake = FakeReddit(listings, reveal_per_request=150, fail={3: 429, 6: 503})
    url = fake.start()
    yield fake, url
    fake.stop()


def settings_for(url: str, **extra) -> RedditSettings:
    return RedditSettings(base_url=url, oauth_url=url, user_agent=USER_AGENT, subreddits=["python"],
                          poll_interval_s=0.01, **extra)


def produce(settings, reddit_settings, topic, dlq, cursor_store, polls) -> int:
    source = RedditSource(reddit_settings, cursor=cursor_store.load(), polls=polls)
    producer = PostProducer(settings, "reddit", topic=topic, dlq_topic=dlq)
    summary = run_source(producer, source.items(), cursor_store=cursor_store)
    producer.close()
    assert summary.errors == 0 and summary.rejected_total == 0
    return summary.sent


def test_every_item_arrives_once_through_429_503_and_a_restart(settings, kafka_topic, dlq_topic, fake_reddit,
                                                               tmp_path):
    fake, url = fake_reddit
    reddit = settings_for(url, client_id="fake-client", client_secret="fake-secret")
    cursor_store = CursorStore(tmp_path / "reddit.json")
    first = produce(settings, reddit, kafka_topic, dlq_topic, cursor_store, polls=2)
    assert 0 < first < 1200
    # A new process from the saved cursor: it pages back past what arrived meanwhile and sends nothing twice.
    second = produce(settings, reddit, kafka_topic, dlq_topic, cursor_store, polls=6)
    assert first + second == 1200

    posts = [decode(r.value) for r in read_topic(settings, kafka_topic)]
    assert Counter(p.uid for p in posts) == Counter({f"t3_s{n}": 1 for n in range(700)} |
                                                    {f"t1_c{n}": 1 for n in range(500)})
    by_uid = {p.uid: p for p in posts}
    link_post, comment_post = by_uid["t3_s3"], by_uid["t1_c4"]
    assert link_post.text == "Post 3 about #python & u/guido\n\nbody 3" and link_post.mentions == ("guido",)
    assert link_post.links == ("https://example.com/article/3",) and link_post.community == "r/python"
    assert (comment_post.reply_parent, comment_post.reply_root) == ("t1_c3", "t3_s2")
    assert comment_post.links == ("https://docs.python.org/3/",) and comment_post.author_id == "t2_u4"

    listing_requests = [r for r in fake.requests if r["path"].startswith("/r/")]
    assert all(r["user_agent"] == USER_AGENT for r in fake.requests)
    assert all(r["authorization"] == "bearer fake-app-only-token" for r in listing_requests)
    assert any("after" in r["params"] for r in listing_requests)  # a poll paged back past 100 new items
    # The failed requests were asked again: 3 → 4 and 6 → 7 are the same listing and page.
    for failed in (3, 6):
        assert listing_requests[failed - 1]["path"] == listing_requests[failed]["path"]
        assert listing_requests[failed - 1]["params"] == listing_requests[failed]["params"]


def test_public_json_listings_without_credentials(settings, kafka_topic, dlq_topic, fake_reddit, tmp_path):
    fake, url = fake_reddit
    fake.fail.clear()
    sent = produce(settings, settings_for(url), kafka_topic, dlq_topic, CursorStore(tmp_path / "c.json"), polls=8)
    assert sent == 1200
    assert all(r["path"].endswith(".json") and r["authorization"] is None for r in fake.requests)


def test_missing_or_malformed_credentials_are_named():
    with pytest.raises(RedditError, match=r"reddit.user_agent is required in Reddit's form"):
        check_settings(RedditSettings(user_agent=""))
    with pytest.raises(RedditError, match=r"reddit.client_secret is not set"):
        check_settings(RedditSettings(user_agent=USER_AGENT, client_id="id-only"))
    check_settings(RedditSettings(user_agent=USER_AGENT))  # public listings need no token


def test_a_garbage_answer_and_a_nan_timestamp_do_not_stop_the_source(settings, kafka_topic, dlq_topic, tmp_path):
    now = time.time() - 3600
    items = [submission(n, "python", now + n) for n in range(20)]
    items[7]["data"]["created_utc"] = float("nan")  # json.dumps writes NaN, which Python's json reads back
    items[9]["data"]["created_utc"] = "yesterday"
    fake = FakeReddit({"/r/python/new": items}, initial_reveal=20, fail={1: "garbage"})
    url = fake.start()
    try:
        source = RedditSource(settings_for(url), kinds=("new",), polls=1)
        producer = PostProducer(settings, "reddit", topic=kafka_topic, dlq_topic=dlq_topic)
        summary = run_source(producer, source.items(), cursor_store=CursorStore(tmp_path / "reddit.json"))
        producer.close()
    finally:
        fake.stop()
    assert len(fake.requests) == 2  # the HTML page was retried
    assert (summary.sent, dict(summary.rejected)) == (18, {"invalid_field": 2})
    posts = {decode(r.value).uid for r in read_topic(settings, kafka_topic)}
    assert len(posts) == 18 and items[7]["data"]["name"] not in posts


def test_real_shaped_items_deletions_and_edits_reach_kafka_once(settings, kafka_topic, dlq_topic, deletes_topic,
                                                                tmp_path):
    now = time.time() - 3600
    parent = real_submission("p0", "pics", now - 600, selftext="the original")
    subs = [real_submission(f"s{n}", "python", now + n, author=f"poster{n % 3}", selftext=f"body {n}")
            for n in range(10)]
    subs[2] = crosspost("s2", "python", now + 2, parent)
    subs[3] = real_submission("s3", "python", now + 3, selftext="Apply at https://www.reddit.com/jobs. "
                              "or https://github.com/x/keeping\\_reddit")
    subs[4] = removed(subs[4])
    comments = [real_comment(f"c{n}", "python", now + n + 0.5, link="t3_s1", author=f"talker{n % 4}",
                             body=f"comment {n}") for n in range(10)]
    comments[1] = deleted(comments[1])
    comments[2] = real_comment("c2", "python", now + 2.5, link="t3_s1", parent="t1_c0",
                               author="a_poem_for_your_sprog", body="ode to u/a_poem_for_your_sprog")
    comments[3] = older(comments[3])
    comments[4] = real_comment("c4", "python", now + 4.5, link="t3_s1", author="talker0",
                               body="Ich habe heute endlich verstanden, wie die Generatoren in Python funktionieren.")
    comments[5] = real_comment("c5", "python", now + 5.5, link="t3_s1", body="[removed]", author="[deleted]")
    fake = FakeReddit({"/r/python/new": subs, "/r/python/comments": comments}, initial_reveal=100)
    url = fake.start()
    cursor_store = CursorStore(tmp_path / "reddit.json")

    def run(polls: int) -> RedditSource:
        source = RedditSource(settings_for(url), cursor=cursor_store.load(), polls=polls)
        producer = PostProducer(settings, "reddit", topic=kafka_topic, dlq_topic=dlq_topic,
                                deletes_topic=deletes_topic)
        summary = run_source(producer, source.items(), cursor_store=cursor_store)
        producer.close()
        assert summary.errors == 0 and summary.rejected_total == 0
        return source

    try:
        first = run(polls=2)
        with fake.lock:  # between the runs: one comment edited (then seen on three polls), one submission deleted
            comments[6] = edited(comments[6], "comment 6, corrected", now + 900)
            subs[7] = deleted(subs[7])
        run(polls=3)
    finally:
        fake.stop()

    posts = [decode(r.value) for r in read_topic(settings, kafka_topic)]
    gone = {"t3_s4", "t1_c1", "t1_c5"}
    expected = Counter({f"t3_s{n}": 1 for n in range(10)} | {f"t1_c{n}": 1 for n in range(10)})
    expected = Counter({uid: 1 for uid in expected if uid not in gone}) + Counter({"t1_c6": 1})  # + the edit
    assert Counter(p.uid for p in posts) == expected
    notices = [(r.key.decode(), json.loads(r.value)) for r in read_topic(settings, deletes_topic)]
    assert sorted((key, n["uid"], n["reason"]) for key, n in notices) == [
        ("t1_c1", "t1_c1", "deleted"), ("t1_c5", "t1_c5", "removed"), ("t3_s4", "t3_s4", "removed"),
        ("t3_s7", "t3_s7", "deleted")]
    assert all(p.text.strip() not in ("[deleted]", "[removed]") and p.author_id != "[deleted]" for p in posts)
    by_uid = {p.uid: p for p in posts}  # the last version of each
    assert by_uid["t1_c6"].text == "comment 6, corrected"
    assert [p.text for p in posts if p.uid == "t1_c6"] == ["comment 6", "comment 6, corrected"]
    assert by_uid["t3_s2"].links == () and by_uid["t3_s2"].text == "A title"  # the crosspost's /r/… url
    assert by_uid["t3_s3"].links == ("https://www.reddit.com/jobs", "https://github.com/x/keeping_reddit")
    assert by_uid["t1_c2"].mentions == ("a_poem_for_your_sprog",)
    assert by_uid["t1_c3"].author_id == "u/talker3" and first.author_fallbacks == 1
    # Reddit gives no language: the producer detects it where the text says enough (shared/enrich.py)
    assert by_uid["t1_c4"].langs == ("de",)
    assert by_uid["t1_c6"].langs == () and by_uid["t3_s2"].langs == ()  # too few letters to tell
    assert all(p.author_id.startswith("t2_") for uid, p in by_uid.items() if uid != "t1_c3")


def test_an_item_deleted_after_it_left_the_first_pages_becomes_one_notice(settings, kafka_topic, dlq_topic,
                                                                           deletes_topic, tmp_path):
    now = time.time() - 3600
    subs = [real_submission(f"s{n}", "python", now + n, selftext=f"body {n}") for n in range(400)]
    # The first poll reads the newest page (s0-s99 revealed); then 150 more posts arrive per look.
    fake = FakeReddit({"/r/python/new": subs}, initial_reveal=100, reveal_per_request=150)
    url = fake.start()
    cursor_store = CursorStore(tmp_path / "reddit.json")

    def run(polls: int, **extra) -> None:
        source = RedditSource(settings_for(url, **extra), kinds=("new",), cursor=cursor_store.load(), polls=polls)
        producer = PostProducer(settings, "reddit", topic=kafka_topic, dlq_topic=dlq_topic,
                                deletes_topic=deletes_topic)
        summary = run_source(producer, source.items(), cursor_store=cursor_store)
        producer.close()
        assert summary.errors == 0 and summary.rejected_total == 0

    try:
        run(polls=2, recheck_batches_per_poll=0)  # s0-s249 seen; s0-s149 are past the pages a poll reads now
        with fake.lock:
            subs[3] = deleted(subs[3])
            subs[120] = removed(subs[120])
        assert not fake.info_requests
        # The first poll sees up to s399; 100 a batch, one batch a poll, newest first: the third poll reaches
        # s120, the fourth s3, the next two start over and must not announce them again.
        run(polls=6, recheck_batches_per_poll=1)
    finally:
        fake.stop()

    assert all(len(r["id"].split(",")) <= 100 for r in fake.info_requests) and len(fake.info_requests) == 6
    notices = [(r.key.decode(), json.loads(r.value)) for r in read_topic(settings, deletes_topic)]
    assert sorted((key, n["uid"], n["reason"]) for key, n in notices) == [
        ("t3_s120", "t3_s120", "removed"), ("t3_s3", "t3_s3", "deleted")]
