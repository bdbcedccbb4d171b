"""The Mastodon source against a local fake instance: a dropped stream, statuses posted while nobody
listened (backfilled from the timeline), overlaps, an edit, a boost and a delete, every status in Kafka
exactly once; HTML to text; a missing token named; real-shaped statuses (an edit arriving both ways, replies,
deletes of unseen statuses, quotes, custom emoji, other servers' mentions, a status that cannot be read)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from connectors.mastodon import MastodonError, MastodonSource, html_to_text, to_post
from connectors.producer import CursorStore, PostProducer, StopFlag, run_source
from shared.post import decode
from shared.settings import MastodonSettings
from stack.processes import wait_until
from tests.fakes.mastodon import (
    OTHER_SERVER_MENTIONS,
    TOKEN,
    FakeMastodon,
    custom_emoji,
    edit,
    quote,
    reply,
    status,
)
from tests.integration.conftest import read_topic


def uri(n: int) -> str:
    return status(n)["uri"]


def test_statuses_arrive_once_across_a_drop_a_backfill_and_a_restart(settings, kafka_topic, dlq_topic, tmp_path):
    edited = status(5, edited_at="2026-11-26T07:00:00.000Z", content="<p>Status 5, edited</p>")
    boost = status(900, id=str(100_000 + 10 * 199 + 5), reblog=status(901))  # boosted right after 199
    sessions = [
        # 1: 0-199 live, an edit of 5, a boost (skipped), 200-249 posted but not streamed, then the line drops.
        [("update", status(n)) for n in range(200)] + [("status.update", edited), ("update", boost),
                                                       ("heartbeat",)]
        + [("publish", status(n)) for n in range(200, 250)] + [("drop",)],
        # 2: 250-299 posted before the stream is up again; 240-349 streamed (240-299 overlap the backfill),
        # a delete of 7, then the server ends the stream cleanly.
        [("publish", status(n)) for n in range(250, 300)] + [("update", status(n)) for n in range(240, 350)]
        + [("delete", status(7)["id"])],
        # 3: 350-399 live, then the stream stays open.
        [("update", status(n)) for n in range(350, 400)] + [("hold",)],
    ]
    fake = FakeMastodon(sessions)
    instance = fake.start()
    mastodon = MastodonSettings(instance=instance, access_token=TOKEN, reconnect_backoff_s=0.05)
    cursor_store = CursorStore(tmp_path / "mastodon.json")
    producer = PostProducer(settings, "mastodon", topic=kafka_topic, dlq_topic=dlq_topic, deletes_topic=dlq_topic)
    try:
        stop = StopFlag()
        source = MastodonSource(mastodon, cursor=cursor_store.load(), stop=stop)
        done = threading.Thread(target=run_source, args=(producer, source.items()),
                                kwargs={"cursor_store": cursor_store, "stop": stop}, daemon=True)
        done.start()
        wait_until(lambda: producer.summary.sent >= 401 and producer.summary.deleted == 1, 120,
                   what="400 statuses, an edit and a delete through the source")
        stop.stopping = True
        done.join(60)
        assert not done.is_alive()
    finally:
        fake.stop()
    producer.close()

    assert source.connections == 3 and cursor_store.load() == {"last_id": status(399)["id"]}
    records = read_topic(settings, kafka_topic)
    posts = [decode(r.value) for r in records]
    assert Counter(p.uid for p in posts) == Counter({uri(n): 1 for n in range(400)} | {uri(5): 2})  # + the edit
    assert uri(900) not in {p.uid for p in posts} and uri(901) not in {p.uid for p in posts}
    assert [p.text for p in posts if p.uid == uri(5)][-1] == "Status 5, edited"
    deletes = [json.loads(r.value) for r in read_topic(settings, dlq_topic) if r.key == uri(7).encode()]
    assert deletes and deletes[0]["uid"] == uri(7) and deletes[0]["local_id"] == status(7)["id"]
    sample = next(p for p in posts if p.uid == uri(42))
    assert (sample.text, sample.hashtags, sample.langs) == ("Status 42 about #fediverse", ("fediverse",), ("en",))
    assert sample.community == instance.removeprefix("http://") and sample.author_id == "https://remote.example/@u6"
    assert any("min_id" in params for params in fake.timeline_requests)

    # A restart from the cursor backfills only what came after the last status it sent.
    late = FakeMastodon([[("publish", status(n)) for n in range(400, 430)] + [("hold",)]])
    late.timeline = {int(status(n)["id"]): status(n) for n in range(430)}
    restarted = MastodonSource(mastodon.model_copy(update={"instance": late.start()}), cursor=cursor_store.load(),
                               idle_exit_s=1.5)
    try:
        items = list(restarted.items())
    finally:
        late.stop()
    assert [item.payload["uid"] for item in items] == [uri(n) for n in range(400, 430)]


@pytest.mark.parametrize(("html", "text", "links"), [
    ("<p>Hello <a href=\"https://example.com/a/very/long/path\" rel=\"nofollow\"><span class=\"invisible\">https://"
     "</span><span class=\"ellipsis\">example.com/a/very/lon</span><span class=\"invisible\">g/path</span></a></p>",
     "Hello https://example.com/a/very/long/path", ["https://example.com/a/very/long/path"]),
    ("<p>First line<br>second &amp; third &lt;b&gt; 🎉</p><p>New paragraph</p>",
     "First line\nsecond & third <b> 🎉\n\nNew paragraph", []),
    ("<p><span class=\"h-card\"><a href=\"https://m.example/@bob\" class=\"u-url mention\">@<span>bob</span></a>"
     "</span> hi <a href=\"https://m.example/tags/rust\" class=\"mention hashtag\" rel=\"tag\">#<span>Rust</span>"
     "</a></p>", "@bob hi #Rust", []),
    ("<p>مرحبا بالعالم&nbsp;&#128512;</p>", "مرحبا بالعالم 😀", []),
    ("", "", []),
])
def test_html_to_text(html, text, links):
    assert html_to_text(html) == (text, links)


def test_boosts_are_skipped_or_unwrapped_and_a_missing_token_is_named():
    boost = status(3, reblog=status(4, html="<p>original</p>"))
    assert to_post(boost, "fake.social", "skip") is None
    assert to_post(boost, "fake.social", "unwrap")["uid"] == uri(4)
    with pytest.raises(MastodonError, match=r"mastodon\.access_token is not set"):
        MastodonSource(MastodonSettings(instance="http://127.0.0.1:9"))


def test_html_beyond_any_status_is_refused_and_ids_of_other_servers_order():
    from connectors.mastodon import MAX_HTML_CHARS, html_to_text, status_id_key

    # 8,000 paragraphs are read once each (the parser used to rescan the text at every block tag).
    text, _ = html_to_text("<p>a</p>" * 8000)
    assert text.count("a") == 8000 and text.count("\n\n") == 7999
    with pytest.raises(ValueError, match="more than"):
        html_to_text("<p>" + "x" * MAX_HTML_CHARS + "</p>")
    # Mastodon's decimal ids, and GoToSocial's ULIDs / Pleroma's flake ids, which are not numbers at all.
    assert sorted(["100", "99", "1000"], key=status_id_key) == ["99", "100", "1000"]
    ulids = ["01HZX3Q8Y5", "01HZX3Q8Y6", "01HZX3Q8YA"]
    assert sorted(reversed(ulids), key=status_id_key) == ulids


def until(items, last):
    """The source's items up to and including the first for which `last(item)` holds."""
    for item in items:
        yield item
        if last(item):
            return


def test_real_shaped_backfill_and_stream_edits_replies_deletes_and_a_broken_status(settings, kafka_topic,
                                                                                   dlq_topic, deletes_topic):
    edited5 = edit(status(5), "<p>Status 5, edited</p>", datetime.now(UTC) - timedelta(minutes=5))
    broken = status(8, uri={"id": "https://bridge.example/objects/8", "type": "Note"})  # a JSON-LD object
    backfilled = [edited5, reply(6, status(5)), reply(7, status(77)), broken, status(9),
                  custom_emoji(11), quote(12, status(5)),
                  status(13, html=OTHER_SERVER_MENTIONS["misskey"][0], mentions=OTHER_SERVER_MENTIONS["misskey"][1])]
    unseen_id = "109999999999"
    # Posted and edited while nobody listened (the backfill reads it, Mastodon.py gives datetimes), then the same
    # edit arrives as a status.update event (an ISO string); a delete of a status this process never saw.
    sessions = [[("status.update", edited5), ("delete", unseen_id), ("update", status(10)),
                 ("delete", status(9)["id"]), ("hold",)]]
    fake = FakeMastodon(sessions)
    fake.timeline = {int(s["id"]): s for s in [status(n) for n in range(5)] + backfilled}
    instance = fake.start()
    try:
        mastodon = MastodonSettings(instance=instance, access_token=TOKEN, reconnect_backoff_s=0.05)
        source = MastodonSource(mastodon, cursor={"last_id": status(4)["id"]})
        producer = PostProducer(settings, "mastodon", topic=kafka_topic, dlq_topic=dlq_topic,
                                deletes_topic=deletes_topic)
        items = until(source.items(), lambda item: item.deleted and item.payload["local_id"] == status(9)["id"])
        summary = run_source(producer, items)
        producer.close()
        posts = [decode(r.value) for r in read_topic(settings, kafka_topic)]
        letters = [json.loads(r.value) for r in read_topic(settings, dlq_topic)]
        notices = [(r.key, json.loads(r.value)) for r in read_topic(settings, deletes_topic)]
    finally:
        fake.stop()

    host = instance.removeprefix("http://")
    uids = [uri(n) for n in (5, 6, 7, 9, 11, 12, 13, 10)]
    assert Counter(p.uid for p in posts) == Counter(uids)  # the edit once; the broken status alone is missing
    assert [letter["reason"] for letter in letters] == ["invalid_field"] and summary.rejected_total == 1
    assert json.loads(letters[0]["raw"])["uid"] == broken["uri"]  # this status alone; the page went on
    by_uid = {p.uid: p for p in posts}
    assert by_uid[uri(5)].text == "Status 5, edited"
    assert (by_uid[uri(6)].reply_parent, by_uid[uri(6)].reply_root) == (uri(5), uri(5))
    unseen_parent = f"{instance}/api/v1/statuses/{status(77)['id']}"
    assert (by_uid[uri(7)].reply_parent, by_uid[uri(7)].reply_root) == (unseen_parent, unseen_parent)
    assert by_uid[uri(11)].text == "feelings\n\nHappy pride everyone"
    assert by_uid[uri(12)].text == "My take on this" and by_uid[uri(12)].links == ()
    assert by_uid[uri(13)].links == () and by_uid[uri(13)].mentions == ("alice@misskey.io",)
    assert [(key, n["uid"], n["local_id"], n["community"]) for key, n in notices] == [
        (f"{instance}/api/v1/statuses/{unseen_id}".encode(), f"{instance}/api/v1/statuses/{unseen_id}", unseen_id,
         host),
        (uri(9).encode(), uri(9), status(9)["id"], host)]
