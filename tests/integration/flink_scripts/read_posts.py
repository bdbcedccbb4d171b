"""Test helper, run as a subprocess: read a topic of SocialPost records through Flink's Kafka connector
and `avro` format (sql/flink/social_posts_avro.sql) and print each row as one JSON line on stdout."""

from __future__ import annotations

import json
import sys
from datetime import UTC

from runtime.flink import interval, kafka_source, sql_statements, table_env
from shared.settings import load_settings


def main(topic: str) -> int:
    settings = load_settings()
    t_env = table_env(settings, "streampulse-contract-read", extra={"table.local-time-zone": "UTC"})
    source = kafka_source(settings, topic=topic, group_id="streampulse-contract-test", bounded=True)
    for statement in sql_statements("social_posts_avro", table_name="social_posts", kafka_source=source,
                                    watermark=interval(30)):
        t_env.execute_sql(statement)
    # TIMESTAMP_LTZ values (java.time.Instant) cannot cross to Python: read them as UTC wall-clock times.
    table = t_env.sql_query(
        "SELECT uid, source, author_id, `text`, langs, CAST(created_at AS TIMESTAMP(3)) AS created_at, "
        "CAST(ingested_at AS TIMESTAMP(3)) AS ingested_at, hashtags, mentions, links, reply_parent, "
        "reply_root, community, schema_version, kafka_partition, kafka_offset FROM social_posts")
    names = table.get_schema().get_field_names()
    with table.execute().collect() as rows:
        for row in rows:
            record = dict(zip(names, row, strict=True))
            for key in ("created_at", "ingested_at"):
                record[key] = int(record[key].replace(tzinfo=UTC).timestamp() * 1000)
            for key in ("langs", "hashtags", "mentions", "links"):
                record[key] = list(record[key])
            print(json.dumps(record, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
