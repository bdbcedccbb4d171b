"""The dashboards' views answer their questions for the read-only role, which can read and not write."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from runtime import clients

T0 = datetime(2031, 1, 1, 12, 0)  # later than anything else the tests write: "now" for trending_now


def minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
def rows(settings):
    tables = {"trends": "window_end", "keyword_window_counts": "window_start", "volume_windows": "window_start",
              "volume_anomalies": "window_start", "late_posts": "window_start", "rejected_posts": "window_start"}

    def clean(conn):
        for table, column in tables.items():
            conn.execute(f"DELETE FROM {table} WHERE {column} >= %s", (T0,))

    with clients.postgres(settings, "writer") as conn:
        clean(conn)
        for n, (keyword, z) in enumerate([("aurora", 9.5), ("eclipse", 6.1)], start=1):
            for end in (minute(5), minute(6)):
                conn.execute("INSERT INTO trends VALUES (%s, %s, %s, %s, 40, 30, 2.0, 1.5, %s, '[]')",
                             (end - timedelta(minutes=5), end, keyword, n, z + (end == minute(6))))
        for m in range(6):
            conn.execute("INSERT INTO keyword_window_counts VALUES ('tumble', %s, %s, '*', 'aurora', %s, %s)",
                         (minute(m), minute(m + 1), 10 + m, 8 + m))
            conn.execute("INSERT INTO volume_windows VALUES ('source', 'reddit', %s, %s, 100)",
                         (minute(m), minute(m + 1)))
        conn.execute("DELETE FROM volume_windows WHERE series = 'reddit' AND window_start = %s", (minute(3),))
        conn.execute("INSERT INTO volume_anomalies VALUES ('source', 'reddit', %s, %s, 0, 100, 3, -9.9, 'drop', "
                     "'critical')", (minute(3), minute(4)))
        conn.execute("INSERT INTO late_posts VALUES (%s, 'bluesky', 3)", (minute(1),))
        conn.execute("INSERT INTO rejected_posts VALUES (%s, %s, 'reddit', 'invalid_json', 2)", (minute(2), minute(3)))
    yield
    with clients.postgres(settings, "writer") as conn:
        clean(conn)


def test_each_view_answers_its_question_for_the_read_only_role(settings, rows):
    with clients.postgres(settings, "reader") as conn:
        now = conn.execute("SELECT trend_rank, keyword, z FROM trending_now ORDER BY trend_rank").fetchall()
        assert now == [(1, "aurora", 10.5), (2, "eclipse", 7.1)]  # only the latest window

        over_time = conn.execute("SELECT window_start, posts, trending, trend_z FROM keyword_over_time "
                                 "WHERE keyword = 'aurora' AND window_start >= %s ORDER BY window_start",
                                 (T0,)).fetchall()
        assert [(w, p) for w, p, _, _ in over_time] == [(minute(m), 10 + m) for m in range(6)]
        # the trend whose sliding window ended with the minute 4→5 and 5→6 marks those minutes
        assert [(t, z) for _, _, t, z in over_time] == [(False, None)] * 4 + [(True, 9.5), (True, 10.5)]

        volume = conn.execute("SELECT window_start, posts, direction, severity, source FROM volume_and_anomalies "
                              "WHERE series = 'reddit' AND window_start >= %s ORDER BY window_start", (T0,)).fetchall()
        assert [(w, p, d) for w, p, d, _, _ in volume] == [
            (minute(m), 0 if m == 3 else 100, "drop" if m == 3 else None) for m in range(6)]
        assert {s for *_, s in volume} == {"reddit"}

        health = conn.execute("SELECT window_start, source, kind, reason, posts FROM late_and_rejected "
                              "WHERE window_start >= %s ORDER BY window_start", (T0,)).fetchall()
        assert health == [(minute(1), "bluesky", "late", "behind the watermark", 3),
                          (minute(2), "reddit", "rejected", "invalid_json", 2)]

        # Read-only sessions by default; with that turned off, the grants still refuse a write.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM trends WHERE window_end >= %s", (T0,))
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM trends WHERE window_end >= %s", (T0,))
