"""The conversations job end to end: the bundled sample plus a crafted thread through a bounded run, and every
session in PostgreSQL equal to the batch oracle's — gaps split a thread, a late reply joins two written sessions
into one (the later row deleted), a reply to a root never seen is a conversation of its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from runtime import clients
from shared.settings import PROJECT_ROOT
from stack.processes import wait_until
from tests.integration.sinks import as_ms, produce
from tests.integration.test_trending_job import SAMPLE
from tests.oracle import expected_conversations

MINUTE = 60_000


def post(uid: str, at: int, author: str, text: str, root: str | None = None, source: str = "synthetic") -> dict:
    return {"uid": uid, "source": source, "author_id": author, "text": text, "langs": ["en"], "created_at": at,
            "ingested_at": at, "hashtags": [], "mentions": [], "links": [], "reply_parent": root,
            "reply_root": root, "community": "", "schema_version": 1}


def crafted_thread(start_ms: int) -> tuple[list[dict], dict]:
    """Posts after the sample, in the order they are produced (one partition), and the late reply."""
    t, root = start_ms, "test-conv:root"
    on_time = [
        post(root, t, "alice", "Launch day for the aurora camera #aurora"),
        post("test-conv:r1", t + 1 * MINUTE, "bob", "The aurora camera looks great", root),
        post("test-conv:r2", t + 3 * MINUTE, "carol", "Aurora camera preorders are sold out", root, "reddit"),
        post("test-conv:orphan1", t + 5 * MINUTE, "dave", "Replying to a thread we never saw", "test-conv:unseen"),
        post("test-conv:orphan2", t + 6 * MINUTE, "erin", "Same unseen thread, second reply", "test-conv:unseen"),
        # 15 minutes after r2: a new session of the same thread (the gap is 10 minutes)
        post("test-conv:r3", t + 18 * MINUTE, "bob", "Back to the aurora camera thread", root),
        post("test-conv:r4", t + 20 * MINUTE, "frank", "Aurora camera firmware update is out", root, "mastodon"),
        post("test-conv:later", t + 45 * MINUTE, "gina", "Something else entirely happening now"),
    ]
    # Far behind the watermark when it arrives (produced last), 7.5 minutes after r2 and before r3: it joins the
    # two sessions, both already closed by then or about to be.
    late = post("test-conv:late", t + 10 * MINUTE + 30_000, "hank", "Late reply bridging the aurora thread", root)
    return on_time, late


def test_sessions_equal_the_oracle_with_gaps_a_late_merge_and_an_unseen_root(settings, kafka_topic, dlq_topic):
    sample = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    start = max(p["created_at"] for p in sample) // MINUTE * MINUTE + 5 * MINUTE
    on_time, late = crafted_thread(start)
    # the late reply bridges the two sessions: less than the gap after r2 and before r3
    gap = settings.conversations.gap_s * 1000
    r2, r3 = on_time[2]["created_at"], on_time[5]["created_at"]
    assert late["created_at"] - r2 < gap and r3 - late["created_at"] < gap <= r3 - r2
    ordered = [*sample, *on_time, late]
    expected = expected_conversations(ordered, settings.conversations)
    without_late = expected_conversations([*sample, *on_time], settings.conversations)
    roots = sorted({p.get("reply_root") or p["uid"] for p in ordered})
    with clients.postgres(settings, "writer") as conn:  # these threads belong to this test
        conn.execute("DELETE FROM conversations WHERE root_uid = ANY(%s)", (roots,))

    produce(settings, dlq_topic, kafka_topic, ordered)  # one partition, in this order: the late reply last
    result = subprocess.run([sys.executable, "-m", "stack.cli", "run", "conversations", "--", "--bounded", "--topic",
                             dlq_topic, "--group-id", f"test-conversations-{dlq_topic}"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT root_uid, session_start, session_end, posts, authors, sources, top_keywords, "
                            "root_in_session, is_open FROM conversations WHERE root_uid = ANY(%s)", (roots,)
                            ).fetchall()
    stored = {(root, as_ms(start_at)): (as_ms(end_at), posts, authors, sources, json.loads(top), in_session)
              for root, start_at, end_at, posts, authors, sources, top, in_session, _ in rows}
    assert not [r for r in rows if r[-1]], "every session of a finished bounded run is closed"
    assert stored == expected, {k: (stored.get(k), expected.get(k)) for k in set(stored) ^ set(expected)
                                or [k for k in stored if stored[k] != expected.get(k)]}

    # What the crafted thread shows: without the late reply two sessions, with it one of six posts from 'start'.
    root = "test-conv:root"
    assert sorted(k[1] for k in without_late if k[0] == root) == [start, r3]
    assert [k[1] for k in stored if k[0] == root] == [start]
    assert stored[root, start][:3] == (on_time[6]["created_at"], 6, 5)
    assert stored[root, start][3] == "mastodon,reddit,synthetic" and stored[root, start][5] is True
    assert stored["test-conv:unseen", on_time[3]["created_at"]][1:3] == (2, 2)
    assert stored["test-conv:unseen", on_time[3]["created_at"]][5] is False
    assert sum(1 for root_uid, _ in stored if root_uid.startswith("synthetic:")) >= 10  # the sample's own threads


def test_late_replies_extend_and_join_written_sessions_and_one_past_the_allowed_lateness_is_left_out(
        settings, kafka_topic, dlq_topic):
    """A live (unbounded) run, fed in steps so that each late reply arrives when the job's clock is known."""
    t = 1_794_236_400_000  # 2026-11-09T15:00:00Z, an hour no other test writes
    gap, lateness = settings.conversations.gap_s * 1000, settings.conversations.allowed_lateness_s * 1000
    old, busy, split = "test-conv-live:old", "test-conv-live:busy", "test-conv-live:split"
    with clients.postgres(settings, "writer") as conn:
        conn.execute("DELETE FROM conversations WHERE root_uid = ANY(%s)", ([old, busy, split],))

    def sessions() -> dict:
        with clients.postgres(settings, "reader") as conn:
            return {(root, as_ms(start)): (posts, is_open) for root, start, posts, is_open in conn.execute(
                "SELECT root_uid, session_start, posts, is_open FROM conversations WHERE root_uid = ANY(%s)",
                ([old, busy, split],)).fetchall()}

    job = subprocess.Popen([sys.executable, "-m", "stack.cli", "run", "conversations", "--", "--topic", dlq_topic,
                            "--group-id", f"test-conversations-{dlq_topic}"], cwd=PROJECT_ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Three threads (the third in two sessions, 14 minutes apart), then a post two hours on: the watermark
        # passes the first thread's end + gap + allowed lateness, and every session closes.
        produce(settings, dlq_topic, kafka_topic, [
            post(old, t, "alice", "An old thread about the harbour ferry"),
            post("test-conv-live:o1", t + MINUTE, "bob", "The harbour ferry is late again", old),
            post(busy, t + 62 * MINUTE, "carol", "Ferry strike announced for tomorrow"),
            post("test-conv-live:b1", t + 63 * MINUTE, "dave", "Ferry strike is on the news", busy),
            post(split, t + 80 * MINUTE, "erin", "Bridge closure starts tonight"),
            post("test-conv-live:s1", t + 81 * MINUTE, "frank", "Which bridge is closing?", split),
            post("test-conv-live:s2", t + 95 * MINUTE, "gina", "Bridge closure moved to next week", split),
            post("test-conv-live:s3", t + 96 * MINUTE, "hank", "Good news on the bridge", split),
            post("test-conv-live:later", t + 120 * MINUTE, "erin", "Evening tide report")])
        # `split`'s second session closed means the clock passed t + 96 min + gap: past every earlier end too,
        # and past t + 30 s + gap + allowed lateness.
        assert t + 30_000 + gap + lateness < t + 96 * MINUTE + gap
        closed = {(old, t): (2, False), (busy, t + 62 * MINUTE): (2, False), (split, t + 80 * MINUTE): (2, False),
                  (split, t + 95 * MINUTE): (2, False)}
        wait_until(lambda: job.poll() is not None or sessions() == closed,
                   timeout=300, what="the four closed sessions in PostgreSQL")
        assert job.poll() is None, job.stderr.read()[-3000:]
        # All late: the first more than allowed_lateness_s behind (left out), the second within (it extends a
        # written session), the third joins split's two written sessions (the later row is deleted); then an
        # on-time post to move the watermark on. One partition: read in this order.
        produce(settings, dlq_topic, kafka_topic, [
            post("test-conv-live:too-late", t + 30_000, "frank", "Too late to join the ferry thread", old),
            post("test-conv-live:b2", t + 66 * MINUTE, "gina", "Late word on the ferry strike", busy),
            post("test-conv-live:s-late", t + 88 * MINUTE, "ivan", "Late: the bridge closure, again", split),
            post("test-conv-live:tide", t + 125 * MINUTE, "hank", "Morning tide report")])
        expected = {(old, t): (2, False), (busy, t + 62 * MINUTE): (3, False), (split, t + 80 * MINUTE): (5, False)}
        wait_until(lambda: job.poll() is not None or sessions() == expected,
                   timeout=300, what="the late replies to extend and to join written sessions")
        assert job.poll() is None, job.stderr.read()[-3000:]
    finally:
        job.send_signal(signal.SIGINT)
        try:
            job.wait(timeout=60)
        except subprocess.TimeoutExpired:
            job.kill()
            job.wait()

