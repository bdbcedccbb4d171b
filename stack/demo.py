"""`make demo` / `streampulse demo`: the main job on the local stack, end to end, with a readable result.

Until the trending job lands this runs the smoke job: seeded JSON events into Kafka, the Flink job
on the embedded mini-cluster, and the rows it upserted into PostgreSQL printed as a table.
"""

from __future__ import annotations

import json
import random
import sys
import uuid

from kafka import KafkaProducer
from kafka.admin import NewTopic

from shared import clients
from shared.settings import Settings

DEMO_KEYS = ["Flink", "Kafka", "Postgres", "Redis", "MinIO"]


def run(settings: Settings, events: int = 2000, seed: int = 42) -> int:
    from jobs import smoke

    topic = f"demo.smoke.{uuid.uuid4().hex[:8]}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 2, 1)])
    rng = random.Random(seed)
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", linger_ms=20)
    for _ in range(events):
        key = f"Demo {rng.choice(DEMO_KEYS)}"
        producer.send(topic, json.dumps({"smoke_key": key, "amount": rng.randrange(100)}).encode())
    producer.flush()
    producer.close()
    print(f"[demo] {events} events (seed {seed}) sent to Kafka topic {topic}", file=sys.stderr)
    try:
        smoke.main(["--topic", topic])
    finally:
        admin.delete_topics([topic])
        admin.close()
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT smoke_key, events, total FROM stack_smoke WHERE smoke_key LIKE 'demo %' "
                            "ORDER BY events DESC").fetchall()
    print(f"\n{'key':<16}{'events':>8}{'total':>10}")
    for key, count, total in rows:
        print(f"{key:<16}{count:>8}{total:>10}")
    pg = settings.postgres
    print(f"\nNext: psql 'host={pg.host} port={pg.port} dbname={pg.database} user={pg.reader_user}' "
          f"(password in {settings.credentials_file}); `streampulse stack status`; `streampulse stack logs kafka`.",
          file=sys.stderr)
    return 0
