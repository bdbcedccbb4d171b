"""Conversations: event-time session windows over the posts of one thread (DESIGN.md's session windows).

A thread is keyed by its root: a post's `reply_root`, or the post's own uid when it starts a thread (a reply to a
root never seen is keyed by that root all the same). A session is a maximal run of the thread's posts in which
each post follows the previous one by at most `gap_s` (Flink's session-window rule: each post opens
[t, t + gap), and windows that overlap or touch merge — TimeWindow.intersects is inclusive). Because a session
is defined by the set of its posts' times alone, adding posts in any order and merging whatever a post bridges
gives the same sessions as a batch split of the sorted times; so a late reply can extend a session or join two.

`Thread` holds one root's sessions and `add` applies one post; `Conversation.closed(clock)` says when no on-time
post can change it any more. jobs/conversations.py keeps the threads in state and writes each session when it
closes (and, while open, once a minute that it grew); what happens to a session already written is its job.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ConversationSettings(BaseModel):
    """config/streampulse.yaml section `conversations`."""

    model_config = ConfigDict(extra="forbid")

    gap_s: Annotated[int, Field(ge=1, description="seconds without a post that close a session, a whole number ≥ 1")] \
        = 600
    # How long (event time) after a session closed a late reply may still extend it or join it to another; a reply
    # later than that is counted (tooLatePosts) and left out, as Flink's allowed lateness does.
    allowed_lateness_s: Annotated[int, Field(ge=0, description="seconds, a whole number ≥ 0")] = 3600
    min_posts: Annotated[int, Field(ge=1, description="posts a session needs to be written, a whole number ≥ 1")] = 2
    top_keywords: Annotated[int, Field(ge=0, description="keywords kept per session, a whole number ≥ 0")] = 5
    watermark_s: Annotated[int, Field(ge=0, description="seconds of allowed out-of-orderness, a whole number ≥ 0")] \
        = 30


def thread_root(uid: str, reply_root: str | None) -> str:
    return reply_root or uid


@dataclass(slots=True)
class Conversation:
    """One session of a thread."""

    start_ms: int
    end_ms: int  # the last post's event time
    uids: set[str] = field(default_factory=set)
    authors: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    keywords: Counter = field(default_factory=Counter)
    root_in_session: bool = False
    written_start_ms: int | None = None  # the start under which the session's row is in the sink, if any
    written_closed: bool = False  # whether that row says closed
    dirty: bool = True  # changed since its row was written

    def closed(self, clock_ms: int, gap_ms: int) -> bool:
        """No on-time post (event time ≥ clock) can extend it: a post extends it up to end + gap, inclusive."""
        return self.end_ms + gap_ms < clock_ms

    def absorb(self, other: Conversation) -> None:
        self.start_ms, self.end_ms = min(self.start_ms, other.start_ms), max(self.end_ms, other.end_ms)
        self.uids |= other.uids
        self.authors |= other.authors
        self.sources |= other.sources
        self.keywords.update(other.keywords)
        self.root_in_session = self.root_in_session or other.root_in_session
        self.dirty = True

    def top_keywords(self, n: int) -> list[list]:
        """The n most frequent keywords with their posts (ties: alphabetical)."""
        return [[k, c] for k, c in sorted(self.keywords.items(), key=lambda kc: (-kc[1], kc[0]))[:n]]

    def row_fields(self, n_keywords: int) -> tuple:
        """(posts, authors, sources, top keywords JSON, root in session), as the sink stores them."""
        return (len(self.uids), len(self.authors), ",".join(sorted(self.sources)),
                json.dumps(self.top_keywords(n_keywords), ensure_ascii=False), self.root_in_session)


@dataclass
class Thread:
    """The sessions of one root, in start order."""

    sessions: list[Conversation] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)  # starts of written sessions merged away: rows to delete

    def add(self, root: str, uid: str, author: str, source: str, time_ms: int, keywords, gap_ms: int
            ) -> tuple[Conversation, list[Conversation]] | None:
        """Apply one post: the session that now holds it and the sessions it absorbed (merged away); None when the
        post (same uid) is already in the session its time falls in."""
        touching = [s for s in self.sessions if s.start_ms - gap_ms <= time_ms <= s.end_ms + gap_ms]
        if any(uid in s.uids for s in touching):
            return None
        post = Conversation(time_ms, time_ms, {uid}, {author}, {source}, Counter(set(keywords)), uid == root)
        if not touching:
            self.sessions.append(post)
            self.sessions.sort(key=lambda s: s.start_ms)
            return post, []
        # Keep the session written under the earliest start (its row stays); the others merge into it.
        keeper = min(touching, key=lambda s: (s.written_start_ms is None, s.start_ms))
        absorbed = [s for s in touching if s is not keeper]
        for other in absorbed:
            keeper.absorb(other)
            if other.written_start_ms is not None:
                self.stale.append(other.written_start_ms)
        keeper.absorb(post)
        self.sessions = sorted((s for s in self.sessions if all(s is not a for a in absorbed)),
                               key=lambda s: s.start_ms)
        return keeper, absorbed

    def review(self, clock_ms: int, gap_ms: int, keep_ms: int, min_posts: int) -> tuple[list, list[int]]:
        """What to write now and when to look again, at `clock_ms` (every on-time post before it is in).

        Writes, in order: ("delete", start) for a row that no longer holds a session (merged away, or its session
        now starts earlier), ("upsert", session, closed) for a session with min_posts posts that changed or has just
        closed. Wake-ups: look again once the clock is past each time returned — an open session's end + gap (it
        closes then), a closed one's end + keep_ms (it leaves the thread then: keep_ms = 2·gap + allowed lateness,
        as a late post accepted while its time + gap + allowed lateness ≥ clock can only join a session that ends
        at or after its time − gap)."""
        writes: list = [("delete", start) for start in self.stale]
        self.stale.clear()
        wake, kept = [], []
        for session in self.sessions:
            closed = session.closed(clock_ms, gap_ms)
            if session.dirty or (closed and not session.written_closed):
                if len(session.uids) >= min_posts:
                    if session.written_start_ms is not None and session.written_start_ms != session.start_ms:
                        writes.append(("delete", session.written_start_ms))
                    writes.append(("upsert", session, closed))
                    session.written_start_ms, session.written_closed = session.start_ms, closed
                session.dirty = False
            if not closed:
                wake.append(session.end_ms + gap_ms)
            elif session.end_ms + keep_ms >= clock_ms:
                wake.append(session.end_ms + keep_ms)
            else:
                continue  # past its allowed lateness: dropped (its row stays)
            kept.append(session)
        self.sessions = kept
        return writes, wake


def too_late(time_ms: int, clock_ms: int, settings: ConversationSettings) -> bool:
    """A post that no session may take any more: the latest post it could join or extend a session with (its time
    + gap) was due more than allowed_lateness_s before the clock (Flink's allowed lateness, on our clock: every
    on-time post before `clock_ms` is in)."""
    return time_ms + (settings.gap_s + settings.allowed_lateness_s) * 1000 < clock_ms

