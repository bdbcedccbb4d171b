"""The smoke job on the local Flink mini-cluster: Kafka connector in, Python UDF, JDBC upsert out.

Proof that the jar manifest's versions (Kafka 5.0.0-2.2, JDBC 4.0.0-2.0 on Flink 2.2) work together.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections import Counter, defaultdict

from kafka import KafkaProducer

from runtime import clients
from shared.settings import PROJECT_ROOT


def test_smoke_job_counts_kafka_events_into_postgres(settings, kafka_topic):
    rng = random.Random(20261123)
    run = uuid.uuid4().hex[:8]
    events = [{"smoke_key": f"  Smoke-{run}-{rng.randrange(5)} ", "amount": rng.randrange(1000)}
              for _ in range(500)]
    producer = KafkaProducer(**settings.kafka.client_options("admin"), acks="all")
    for event in events:
        producer.send(kafka_topic, json.dumps(event).encode())
    producer.flush()
    producer.close()

    # Independent expectation: the UDF strips and lower-cases the key.
    expected_counts, expected_totals = Counter(), defaultdict(int)
    for event in events:
        key = event["smoke_key"].strip().lower()
        expected_counts[key] += 1
        expected_totals[key] += event["amount"]

    result = subprocess.run([sys.executable, "-m", "stack.cli", "run", "smoke", "--", "--topic", kafka_topic],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT smoke_key, events, total FROM stack_smoke WHERE smoke_key LIKE %s",
                            (f"smoke-{run}-%",)).fetchall()
    assert {k: (n, t) for k, n, t in rows} == {k: (expected_counts[k], expected_totals[k]) for k in expected_counts}
    with clients.postgres(settings, "writer") as conn:
        conn.execute("DELETE FROM stack_smoke WHERE smoke_key LIKE %s", (f"smoke-{run}-%",))
