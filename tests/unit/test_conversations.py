"""Session windows over threads (shared/conversations.py): the sessions do not depend on the order posts arrive in,
equal a batch split of the sorted times, and what the job writes when a late reply extends or joins sessions."""

from __future__ import annotations

import random

from shared.conversations import ConversationSettings, Thread, too_late
from tests.oracle import expected_conversations

MIN = 60_000
GAP = 10 * MIN
KEEP = 2 * GAP + 60 * MIN


def add(thread: Thread, uid: str, at: int, root: str = "root", author: str | None = None, source: str = "bluesky"):
    return thread.add(root, uid, author or uid, source, at, ["word"], GAP)


def spans(thread: Thread) -> list[tuple[int, int, int]]:
    return [(s.start_ms, s.end_ms, len(s.uids)) for s in thread.sessions]


def test_sessions_do_not_depend_on_arrival_order_and_equal_the_batch_split():
    rng = random.Random(20)
    for trial in range(200):
        times = sorted(rng.randrange(0, 90 * MIN) for _ in range(rng.randrange(1, 25)))
        posts = [{"uid": f"p{i}", "reply_root": "root" if i else None, "author_id": f"a{i % 4}", "source": "bluesky",
                  "created_at": t, "text": "", "hashtags": [], "langs": []} for i, t in enumerate(times)]
        posts[0]["uid"] = "root"
        shuffled = posts[:]
        rng.shuffle(shuffled)
        thread = Thread()
        for post in shuffled:
            thread.add("root", post["uid"], post["author_id"], "bluesky", post["created_at"], [], GAP)
        batch = expected_conversations(posts, ConversationSettings(min_posts=1))
        assert {(s.start_ms, s.end_ms, len(s.uids), len(s.authors)) for s in thread.sessions} == {
            (start, end, n, authors) for (_, start), (end, n, authors, *_) in batch.items()}, trial


def test_a_gap_of_exactly_gap_s_joins_and_a_longer_one_splits():
    # Flink's rule: [t, t + gap) windows that touch merge (TimeWindow.intersects is inclusive)
    thread = Thread()
    add(thread, "root", 0)
    add(thread, "a", GAP)  # exactly the gap after the root: the same session
    add(thread, "b", 2 * GAP + 1)  # a millisecond more than the gap after a: a new session
    assert spans(thread) == [(0, GAP, 2), (2 * GAP + 1, 2 * GAP + 1, 1)]
    add(thread, "c", 2 * GAP - 1)  # within the gap of both: joins them
    assert spans(thread) == [(0, 2 * GAP + 1, 4)]


def test_a_resent_post_counts_once():
    thread = Thread()
    assert add(thread, "root", 0) is not None
    assert add(thread, "root", 0) is None
    assert spans(thread) == [(0, 0, 1)]


def test_a_late_reply_joining_two_written_sessions_rewrites_one_row_and_deletes_the_other():
    thread = Thread()
    for uid, at in (("root", 0), ("r1", 1 * MIN), ("r2", 15 * MIN), ("r3", 16 * MIN)):
        add(thread, uid, at)
    # clock 30 min: the first session closed after 11 min, the second after 26 min: both written, closed
    writes, wake = thread.review(30 * MIN, GAP, KEEP, min_posts=2)
    assert [(w[0], w[1].start_ms, w[2]) for w in writes] == [("upsert", 0, True), ("upsert", 15 * MIN, True)]
    assert wake == [1 * MIN + KEEP, 16 * MIN + KEEP]
    assert thread.review(31 * MIN, GAP, KEEP, min_posts=2)[0] == []  # nothing changed: nothing written

    add(thread, "late", 8 * MIN)  # 7 minutes after r1, 7 before r2
    writes, _ = thread.review(32 * MIN, GAP, KEEP, min_posts=2)
    assert writes[0] == ("delete", 15 * MIN)
    (_, merged, closed), = writes[1:]
    assert (merged.start_ms, merged.end_ms, len(merged.uids), closed) == (0, 16 * MIN, 5, True)
    assert merged.root_in_session


def test_a_late_reply_before_the_first_post_moves_the_row_to_the_new_start():
    thread = Thread()
    for uid, at in (("r1", 20 * MIN), ("r2", 21 * MIN)):
        add(thread, uid, at)
    thread.review(40 * MIN, GAP, KEEP, min_posts=2)
    add(thread, "root", 12 * MIN)
    writes, _ = thread.review(41 * MIN, GAP, KEEP, min_posts=2)
    assert writes[0] == ("delete", 20 * MIN) and writes[1][1].start_ms == 12 * MIN


def test_open_sessions_are_written_open_then_closed_and_small_ones_never():
    thread = Thread()
    add(thread, "root", 0)
    writes, wake = thread.review(1 * MIN, GAP, KEEP, min_posts=2)
    assert writes == [] and wake == [GAP]  # one post: below min_posts, looked at again once it closes
    add(thread, "r1", 1 * MIN)
    writes, _ = thread.review(2 * MIN, GAP, KEEP, min_posts=2)
    assert [(w[0], w[2]) for w in writes] == [("upsert", False)]
    assert thread.review(11 * MIN, GAP, KEEP, min_posts=2)[0] == []  # a post at 11:00 could still join it
    writes, _ = thread.review(11 * MIN + 1, GAP, KEEP, min_posts=2)
    assert [(w[0], w[2]) for w in writes] == [("upsert", True)]


def test_closed_sessions_leave_the_state_after_their_allowed_lateness():
    thread = Thread()
    add(thread, "root", 0)
    add(thread, "r1", 1 * MIN)
    thread.review(20 * MIN, GAP, KEEP, min_posts=2)
    thread.review(1 * MIN + KEEP, GAP, KEEP, min_posts=2)
    assert len(thread.sessions) == 1
    thread.review(1 * MIN + KEEP + 1, GAP, KEEP, min_posts=2)
    assert thread.sessions == []
    # the last post still accepted at that clock (not too late) could only have joined a session ending later
    settings = ConversationSettings(gap_s=GAP // 1000, allowed_lateness_s=3600)
    clock = 1 * MIN + KEEP + 1
    earliest_accepted = clock - (settings.gap_s + settings.allowed_lateness_s) * 1000
    assert not too_late(earliest_accepted, clock, settings) and too_late(earliest_accepted - 1, clock, settings)
    assert earliest_accepted - GAP > 1 * MIN


def test_too_late_is_past_the_gap_and_the_allowed_lateness():
    settings = ConversationSettings(gap_s=600, allowed_lateness_s=3600)
    assert not too_late(0, 70 * MIN, settings)
    assert too_late(0, 70 * MIN + 1, settings)


def test_top_keywords_are_the_most_frequent_then_alphabetical():
    thread = Thread()
    thread.add("root", "root", "a", "bluesky", 0, ["zeta", "alpha"], GAP)
    thread.add("root", "r1", "b", "reddit", MIN, ["zeta", "beta"], GAP)
    (session,) = thread.sessions
    assert session.top_keywords(2) == [["zeta", 2], ["alpha", 1]]
    assert session.row_fields(5)[:3] == (2, 2, "bluesky,reddit")
