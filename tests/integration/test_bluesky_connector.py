"""The Bluesky source against a local relay and a local Jetstream speaking the real wire formats:
10,000 posts through two disconnects, a duplicate seq and a malformed frame arrive in Kafka exactly
once; the malformed frame lands in the DLQ; the cursor is right after a restart; facets come out of
real-shaped records."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from connectors.bluesky import FirehoseSource, JetstreamSource, facets, to_post
from connectors.producer import CursorStore, PostProducer, StopFlag, run_source
from shared.post import decode
from shared.settings import BlueskySettings
from stack.processes import wait_until
from tests.fakes.bluesky import POST, FakeRelay, facet, post_record
from tests.integration.conftest import read_topic

POSTS = 10_000


def created(n: int) -> str:
    return (datetime.now(UTC) - timedelta(hours=1) + timedelta(milliseconds=100 * n)).isoformat().replace(
        "+00:00", "Z")


def did(n: int) -> str:
    return f"did:plc:author{n % 97:04d}"


def script(posts: int) -> tuple[list[tuple], set[str]]:
    """Commits with one post each (every 10th with two, every 7th also liking something), a delete now and
    then, two disconnects, a duplicate seq and a malformed frame."""
    steps, uris, seq, n = [], set(), 1000, 0
    while n < posts:
        seq += 1
        repo = did(n)
        ops = [("create", f"{POST}/3k{n:010d}", post_record(f"post {n} #firehose", created(n)))]
        if n % 10 == 0 and n + 1 < posts:
            uris.add(f"at://{repo}/{POST}/3k{n:010d}")
            n += 1
            ops.append(("create", f"{POST}/3k{n:010d}", post_record(f"post {n}", created(n))))
        uris.add(f"at://{repo}/{POST}/3k{n:010d}")
        if n % 7 == 0:
            ops.append(("create", f"app.bsky.feed.like/3l{n:010d}", {"$type": "app.bsky.feed.like",
                                                                    "createdAt": created(n)}))
        if n % 500 == 499:
            ops.append(("delete", f"{POST}/3k{n - 400:010d}"))
        steps.append(("commit", seq, repo, ops))
        n += 1
        for at, fault in ((2500, "drop"), (5200, "duplicate"), (6000, "malformed"), (8000, "close1011")):
            if n == at:
                steps.append((fault,))
    return steps, uris


def run(source, producer, cursor_store, until) -> None:
    worker = threading.Thread(target=run_source, args=(producer, source.items()),
                              kwargs={"cursor_store": cursor_store, "stop": source.stop}, daemon=True)
    worker.start()
    wait_until(until, 180, interval=0.1, what="the posts through the source")
    source.stop.stopping = True
    worker.join(60)
    assert not worker.is_alive()


def test_ten_thousand_posts_arrive_once_through_disconnects_a_duplicate_and_a_malformed_frame(
        settings, kafka_topic, dlq_topic, tmp_path):
    steps, uris = script(POSTS)
    relay = FakeRelay(steps)
    url = relay.start()
    bluesky = BlueskySettings(firehose_url=url, reconnect_backoff_s=0.05)
    cursor_store = CursorStore(tmp_path / "bluesky.json")
    producer = PostProducer(settings, "bluesky", topic=kafka_topic, dlq_topic=dlq_topic, deletes_topic=dlq_topic)
    try:
        first = FirehoseSource(bluesky, stop=StopFlag())
        run(first, producer, cursor_store, lambda: producer.summary.sent >= 4000)
        saved = cursor_store.load()["seq"]
        # The saved seq is that of the last acknowledged commit: at most the one the source had read.
        assert first.seq - 1 <= saved <= first.seq
        second = FirehoseSource(bluesky, cursor=cursor_store.load(), stop=StopFlag())
        run(second, producer, cursor_store, lambda: producer.summary.sent >= POSTS)
    finally:
        relay.stop()
    producer.close()

    assert relay.connections[0].endswith("subscribeRepos")
    assert relay.connections[-1].endswith(f"?cursor={second.seq}") or f"?cursor={saved}" in relay.connections[2]
    assert len(relay.connections) == 4  # 1st source: one drop; 2nd: resumed at the cursor, one close 1011
    assert second.skipped_replays >= 1  # the duplicate seq and the inclusive replays
    posts = [decode(r.value) for r in read_topic(settings, kafka_topic)]
    assert Counter(p.uid for p in posts) == Counter({uri: 1 for uri in uris})
    assert producer.summary.rejected == {"invalid_frame": 1}
    other = [json.loads(r.value) for r in read_topic(settings, dlq_topic)]
    rejects = [r for r in other if "reason" in r]
    assert [r["reason"] for r in rejects] == ["invalid_frame"] and rejects[0]["raw_encoding"] == "base64"
    deletes = [r for r in other if "deleted_at" in r]
    assert len(deletes) == POSTS // 500 and all(d["uid"].startswith("at://did:plc:author") for d in deletes)
    sample = next(p for p in posts if p.uid.endswith("3k0000000042"))
    assert (sample.text, sample.langs, sample.author_id) == ("post 42 #firehose", ("en",), did(42))


def test_a_stop_in_the_middle_of_a_commit_resumes_after_what_was_sent():
    from tests.fakes.bluesky import commit_frame

    three = commit_frame(7, "did:plc:x", [("create", f"{POST}/3k{n}", post_record(f"p{n}", created(n)))
                                         for n in range(3)])
    for sent in (1, 2):
        for previous in (None, 6):
            source = FirehoseSource(BlueskySettings(), cursor={"seq": previous} if previous else None)
            cursor = list(source.read(three))[sent - 1].cursor  # the last item acknowledged before the stop
            resumed = FirehoseSource(BlueskySettings(), cursor=cursor)
            assert resumed.url().endswith(f"?cursor={previous or 7}")  # the cut commit is replayed
            assert [i.payload["uid"][-3:] for i in resumed.read(three)] == [f"3k{n}" for n in range(sent, 3)]
    whole = list(FirehoseSource(BlueskySettings()).read(three))[-1].cursor
    assert whole == {"seq": 7} and not list(FirehoseSource(BlueskySettings(), cursor=whole).read(three))


def test_an_outdated_cursor_is_logged_with_the_size_of_the_gap(settings, caplog):
    steps = [("commit", seq, "did:plc:x", [("create", f"{POST}/3k{seq:010d}", post_record(f"p{seq}", created(seq)))])
             for seq in range(100, 110)]
    relay = FakeRelay(steps, retained_from=104)
    url = relay.start()
    for step in steps:  # already in the relay's history
        relay.history.append(relay._encode(step))
    relay.position = len(steps)
    source = FirehoseSource(BlueskySettings(firehose_url=url), cursor={"seq": 101}, idle_exit_s=1.0)
    with caplog.at_level(logging.WARNING, logger="streampulse.bluesky"):
        items = list(source.items())
    relay.stop()
    assert [i.payload["uid"].rsplit("/", 1)[1] for i in items] == [f"3k{s:010d}" for s in range(104, 110)]
    assert "cursor 101 was too old: resumed at seq 104, 2 events lost" in caplog.text


def test_jetstream_posts_and_deletes_arrive_once_across_a_reconnect(settings, kafka_topic, dlq_topic, tmp_path):
    base_us = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp() * 1_000_000)
    steps = []
    for n in range(300):
        record = post_record(f"jet {n}", created(n))
        steps.append(("event", base_us + n * 1000, {
            "did": did(n), "time_us": base_us + n * 1000, "kind": "commit",
            "commit": {"rev": f"3k{n}", "operation": "create", "collection": POST, "rkey": f"3j{n:08d}",
                       "record": record, "cid": f"bafyfake{n}"}}))
        if n == 150:
            steps.append(("drop",))
        if n == 200:
            steps.append(("malformed",))
    steps.append(("event", base_us + 400_000, {"did": did(3), "time_us": base_us + 400_000, "kind": "commit",
                                               "commit": {"rev": "3kx", "operation": "delete", "collection": POST,
                                                          "rkey": f"3j{3:08d}"}}))
    relay = FakeRelay(steps, jetstream=True)
    url = relay.start()
    producer = PostProducer(settings, "bluesky", topic=kafka_topic, dlq_topic=dlq_topic, deletes_topic=dlq_topic)
    source = JetstreamSource(BlueskySettings(jetstream_url=url, reconnect_backoff_s=0.05), stop=StopFlag())
    try:
        run(source, producer, CursorStore(tmp_path / "jet.json"),
            lambda: producer.summary.sent >= 300 and producer.summary.deleted == 1)
    finally:
        relay.stop()
    producer.close()
    assert "wantedCollections=app.bsky.feed.post" in relay.connections[0]
    assert "cursor=" in relay.connections[1]  # rewound by jetstream_rewind_s: overlaps are dropped
    posts = [decode(r.value) for r in read_topic(settings, kafka_topic)]
    assert Counter(p.uid for p in posts) == Counter({f"at://{did(n)}/{POST}/3j{n:08d}": 1 for n in range(300)})
    assert producer.summary.rejected == {"invalid_event": 1}


def test_facets_over_multibyte_text_give_hashtags_mentions_and_links():
    text = "Café ☕ con @alice.bsky.social y #日本語 — más en https://example.com/a/b?c=d 🎉 #Ünïcode"
    record = post_record(text, "2026-11-26T07:00:00.000Z", langs=("es",), tags=("extra",), facets=[
        facet(text, "@alice.bsky.social", {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:alice"}),
        facet(text, "#日本語", {"$type": "app.bsky.richtext.facet#tag", "tag": "日本語"}),
        facet(text, "https://example.com/a/b?c=d", {"$type": "app.bsky.richtext.facet#link",
                                                     "uri": "https://example.com/a/b?c=d"}),
        facet(text, "#Ünïcode", {"$type": "app.bsky.richtext.facet#tag", "tag": "Ünïcode"}),
    ], reply={"root": {"uri": "at://did:plc:r/app.bsky.feed.post/1", "cid": "bafyroot"},
              "parent": {"uri": "at://did:plc:p/app.bsky.feed.post/2", "cid": "bafyparent"}})
    assert facets(record) == (["日本語", "Ünïcode", "extra"], ["alice.bsky.social"], ["https://example.com/a/b?c=d"])
    # A mention whose byte range does not fall on the text is named by its DID.
    broken = dict(record, facets=[{"index": {"byteStart": 500, "byteEnd": 510},
                                   "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:b"}]}])
    assert facets(broken)[1] == ["did:plc:b"]
    post = to_post("at://did:plc:me/app.bsky.feed.post/3k", "did:plc:me", record)
    assert (post["reply_parent"], post["reply_root"], post["langs"], post["community"]) == (
        "at://did:plc:p/app.bsky.feed.post/2", "at://did:plc:r/app.bsky.feed.post/1", ["es"], "")


@pytest.fixture(autouse=True)
def _quiet_websockets(caplog):
    logging.getLogger("websockets").setLevel(logging.WARNING)


def test_wrongly_typed_records_and_error_frames_never_stop_the_firehose(settings, kafka_topic, dlq_topic, tmp_path):
    """Relays pass records on unvalidated, and anyone running a PDS can send them: each of these once killed
    the producer (or, for error frames, ended the stream), and the cursor pointed before it, so every restart
    died on the same frame."""
    hostile = {
        "langs_number": dict(post_record("langs is a number", created(1)), langs=5),
        "text_number": dict(post_record("x", created(2)), text=12345),
        "facet_not_a_map": dict(post_record("facet is a string", created(3)), facets=["#tag"]),
        "reply_string": dict(post_record("reply is a string", created(4)), reply="at://nope"),
        "langs_string": dict(post_record("langs is a string", created(5)), langs="en"),
    }
    good = [(f"3g{n:04d}", post_record(f"fine post {n}", created(n))) for n in range(6)]
    commits = [*good[:2], *((f"3h{name}", record) for name, record in hostile.items())]
    steps = [("commit", 500 + n, did(n), [("create", f"{POST}/{rkey}", record)]) for n, (rkey, record) in
             enumerate(commits)]
    steps += [("error", "ConsumerTooSlow"), ("commit", 510, did(2), [("create", f"{POST}/{good[2][0]}", good[2][1])]),
              ("commit", 511, did(3), [("create", f"{POST}/{good[3][0]}", good[3][1])]), ("error", "FutureCursor"),
              ("commit", 512, did(4), [("create", f"{POST}/{good[4][0]}", good[4][1])]),
              ("commit", 513, did(5), [("create", f"{POST}/{good[5][0]}", good[5][1])])]
    relay = FakeRelay(steps)
    url = relay.start()
    producer = PostProducer(settings, "bluesky", topic=kafka_topic, dlq_topic=dlq_topic, deletes_topic=dlq_topic)
    source = FirehoseSource(BlueskySettings(firehose_url=url, reconnect_backoff_s=0.05), stop=StopFlag())
    try:
        run(source, producer, CursorStore(tmp_path / "bluesky.json"), lambda: producer.summary.sent >= 7)
    finally:
        relay.stop()
    producer.close()
    posts = {decode(r.value).uid.rsplit("/", 1)[1]: decode(r.value) for r in read_topic(settings, kafka_topic)}
    assert {f"3g{n:04d}" for n in range(6)} <= set(posts)  # every good post, across both error frames
    # A facet that is not a map or a reply that is not a map is ignored; the post itself is fine.
    assert posts["3hfacet_not_a_map"].hashtags == () and posts["3hreply_string"].reply_parent is None
    envelopes = [json.loads(r.value) for r in read_topic(settings, dlq_topic)]
    rejects = {json.loads(e["raw"])["uid"].rsplit("/", 1)[1]: e["reason"] for e in envelopes if "reason" in e}
    assert rejects == {"3hlangs_number": "invalid_field", "3htext_number": "invalid_field",
                       "3hlangs_string": "invalid_field"}  # a string is not ['e', 'n']
    assert len(relay.connections) == 3  # reconnected after each error frame
    assert "cursor=" in relay.connections[1] and "cursor=" not in relay.connections[2]  # FutureCursor: live


def test_jetstream_survives_deeply_nested_json(settings):
    source = JetstreamSource(BlueskySettings())
    items = list(source.read("[" * 100_000 + "]" * 100_000))
    assert [i.rejected[0] for i in items] == ["invalid_event"]
    record = dict(post_record("ok", created(1)), langs=["en"], facets=[[[[]]]])
    event = {"did": did(1), "time_us": 1, "kind": "commit",
             "commit": {"operation": "create", "collection": POST, "rkey": "3x", "record": record, "cid": "c"}}
    (item,) = source.read(json.dumps(event))
    assert item.payload["text"] == "ok" and item.payload["hashtags"] == []
