"""Conversations job: event-time session windows over threads, written to PostgreSQL.

    social.posts (Avro) ─► on time? ─► minute batches (sql/flink/posts_by_minute.sql) ─┐
                           └ late ───────────────────────────────────────────────────┤
        ┌─────────────────────────────────────────────────────────────────────────────┘
        └► Sessions (Python, one stage): each post joins its thread (reply_root, or itself) and the session its
           time falls in (shared/conversations.py) ─► Postgres conversations (upserts, and deletes of sessions
           a late reply merged into another)

A session closes when the watermark passes its last post + `conversations.gap_s`: its row is written then with
is_open false. While open, it is written once a minute that it grew (is_open true, for "hot conversations now").
A late post (behind the watermark) still joins its thread: it may extend a closed session or join two — the row is
rewritten, the one merged away deleted — as long as it is at most `allowed_lateness_s` behind; a later one is
counted in `tooLatePosts` and left out. Closed sessions are kept in state for that long, then dropped.

    streampulse run conversations -- [--bounded] [--topic social.posts]
    flink run -py jobs/conversations.py -- [same options]
"""

from __future__ import annotations

import sys

if __package__ in (None, ""):  # `flink run -py jobs/conversations.py`: make the project importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from pyflink.common import Row, RowKind, Types
from pyflink.datastream import RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from runtime.backfill import add_posts_by_minute
from runtime.flink import add_outputs, interval, jdbc_options, posts_source_values, stream_env
from runtime.job import job_main, run_script
from runtime.minute_stage import QUARANTINE, MinuteStage
from shared.conversations import Conversation, ConversationSettings, Thread, thread_root, too_late
from shared.keywords import extract_keywords
from shared.names import POSTS_TOPIC
from shared.settings import Settings

TUMBLE_S = 60  # the minute batches: sessions are advanced, closed and written once a minute of event time
CONVERSATION_ROW = Types.ROW_NAMED(
    ["root_uid", "session_start_ms", "session_end_ms", "posts", "authors", "sources", "top_keywords",
     "root_in_session", "is_open"],
    [Types.STRING(), Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG(), Types.STRING(), Types.STRING(),
     Types.BOOLEAN(), Types.BOOLEAN()])


class Sessions(MinuteStage):
    """The job's Python stage (runtime/minute_stage.py decodes, quarantines and hands over each closed minute).

    State: `threads` (root → Thread, its sessions) and `due` (minute → roots to look at when that minute closes:
    to write a session that grew, close one, or drop one past its allowed lateness). Each due minute has an
    event-time timer, so sessions close even when no more posts come (and at the end of a bounded input)."""

    job = "conversations"

    def __init__(self, settings: ConversationSettings, topic: str):
        super().__init__(topic, TUMBLE_S)
        self.settings = settings
        self.gap_ms = settings.gap_s * 1000
        self.keep_ms = 2 * self.gap_ms + settings.allowed_lateness_s * 1000  # see Thread.review

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.threads = runtime_context.get_map_state(MapStateDescriptor("threads", Types.STRING(), pickled))
        self.due = runtime_context.get_map_state(MapStateDescriptor("due", Types.LONG(), pickled))
        metrics = runtime_context.get_metrics_group()
        self.sessions_written = metrics.counter("sessionsWritten")
        self.sessions_merged = metrics.counter("sessionsMerged")
        self.too_late = metrics.counter("tooLatePosts")

    # -- MinuteStage ------------------------------------------------------------------------------------------

    def count(self, index: int, posts) -> list[tuple]:
        """A batch as (time, uid, root, author, source, keywords) per post: what a session keeps of a post."""
        return [(p.created_at, p.uid, thread_root(p.uid, p.reply_root), p.author_id, p.source,
                 extract_keywords(p.text, p.hashtags, p.langs)) for p in posts]

    def merge(self, index: int, parts: list[list[tuple]]) -> list[tuple]:
        return sorted(item for part in parts for item in part)

    def close_minute(self, index: int, posts: list[tuple], ctx):
        touched: dict[str, Thread] = {}
        for time_ms, uid, root, author, source, keywords in posts:
            thread = touched.get(root) or self._thread(root)
            touched[root] = thread
            self._apply(thread, root, uid, author, source, time_ms, keywords)
        for root, thread in touched.items():
            self.threads.put(root, thread)
        self._schedule(index, touched, timer=False)  # this minute is closing: after_close looks at them
        return ()

    def late(self, window_start_ms: int, post):
        closed = self.closed_state.value()
        clock = -1 if closed is None else (closed + 1) * self.tumble_ms
        if too_late(post.created_at, clock, self.settings):
            self.too_late.inc()
            return ()
        root = thread_root(post.uid, post.reply_root)
        thread = self._thread(root)
        self._apply(thread, root, post.uid, post.author_id, post.source, post.created_at,
                    extract_keywords(post.text, post.hashtags, post.langs))
        self.threads.put(root, thread)
        next_minute = (closed if closed is not None else post.created_at // self.tumble_ms) + 1
        self._schedule(next_minute, [root])  # written when the next minute closes
        return ()

    def after_close(self, closed: int, ctx):
        """Look at every root due by the closed minute: write what grew, close what the clock passed, drop what is
        past its allowed lateness."""
        clock = (closed + 1) * self.tumble_ms
        due = sorted(minute for minute in list(self.due.keys()) if minute <= closed)
        roots = sorted({root for minute in due for root in self.due.get(minute)})
        for minute in due:
            self.due.remove(minute)
        later: dict[int, set[str]] = {}
        for root in roots:
            thread = self.threads.get(root)
            if thread is None:
                continue
            yield from self._look_at(root, thread, clock, later)
            if thread.sessions:
                self.threads.put(root, thread)
            else:
                self.threads.remove(root)
        for minute, waiting in later.items():
            self._schedule(minute, waiting)

    # -- sessions ---------------------------------------------------------------------------------------------

    def _thread(self, root: str) -> Thread:
        return self.threads.get(root) or Thread()

    def _apply(self, thread: Thread, root: str, uid: str, author: str, source: str, time_ms: int, keywords):
        applied = thread.add(root, uid, author, source, time_ms, keywords, self.gap_ms)
        if applied is not None and applied[1]:
            self.sessions_merged.inc(len(applied[1]))

    def _schedule(self, minute: int, roots, timer: bool = True) -> None:
        if not roots:
            return
        held = self.due.get(minute) or set()
        self.due.put(minute, held | set(roots))
        if timer:
            self.timer_service.register_event_time_timer((minute + 1) * self.tumble_ms - 1)

    def _look_at(self, root: str, thread: Thread, clock: int, later: dict[int, set[str]]):
        """Write the thread's changed sessions; look again at each minute in which one closes or leaves the state."""
        writes, wake = thread.review(clock, self.gap_ms, self.keep_ms, self.settings.min_posts)
        for write in writes:
            if write[0] == "delete":
                yield _delete(root, write[1])
            else:
                yield _row(root, write[1], write[2], self.settings.top_keywords)
                self.sessions_written.inc()
        for at in wake:  # the minute whose close takes the clock past `at`
            later.setdefault(at // self.tumble_ms, set()).add(root)

    def on_timer(self, timestamp: int, ctx):
        self.timer_service = ctx.timer_service()
        yield from super().on_timer(timestamp, ctx)

    def process_element(self, value, ctx):
        self.timer_service = ctx.timer_service()
        yield from super().process_element(value, ctx)


def _row(root: str, session: Conversation, closed: bool, top_keywords: int) -> Row:
    return Row(root, session.start_ms, session.end_ms, *session.row_fields(top_keywords), not closed)


def _delete(root: str, start_ms: int) -> Row:
    """The row of a session that no longer exists under this start (only the key matters to the upsert sink)."""
    row = Row(root, start_ms, start_ms, 1, 1, "", "[]", False, False)
    row.set_row_kind(RowKind.DELETE)
    return row


def build(settings: Settings, args) -> object:
    conversations = settings.conversations
    # The Sessions stage emits an upsert stream by (root, start) from one ordered operator. Without NONE the planner
    # puts a SinkUpsertMaterializer before the sink (it cannot see that key through the casts), and that drops a
    # delete whose row is not equal, field for field, to one it saw: a merged-away session's row stayed.
    env, t_env = stream_env(settings, "streampulse-conversations",
                            extra={"table.local-time-zone": "UTC", "table.exec.sink.upsert-materialize": "NONE"})
    values = {
        **posts_source_values(settings, topic=args.topic, group_id=args.group_id, bounded=args.bounded,
                              watermark_s=conversations.watermark_s),
        "tumble": interval(TUMBLE_S), "tumble_s": TUMBLE_S, "batch_shards": settings.flink.minute_batch_shards,
        **jdbc_options(settings),
    }
    statement_set = t_env.create_statement_set()
    add_posts_by_minute(t_env, statement_set, settings, args, values)
    sessions = (t_env.to_data_stream(t_env.from_path("posts_by_minute"))
                .key_by(lambda r: 0, key_type=Types.INT())
                .process(Sessions(conversations, args.topic), output_type=CONVERSATION_ROW)
                .uid("sessions").name("Session windows per thread (gap, late replies)"))
    # A changelog (upserts and deletes), not an append stream: a late reply can merge two written sessions.
    t_env.create_temporary_view("conversation_rows", t_env.from_changelog_stream(sessions))
    add_outputs(t_env, statement_set, {"quarantined_rows": sessions.get_side_output(QUARANTINE)},
                ("conversations_outputs", "quarantine_sink"), **values)
    return env


main = job_main("conversations", __doc__, build, topic=POSTS_TOPIC)

if __name__ == "__main__":
    run_script(main)
