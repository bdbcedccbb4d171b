"""Each service of the local stack, used for real the way the jobs will use it."""

from __future__ import annotations

import io
import uuid

import psycopg
import pytest
import redis as redis_lib
from kafka import KafkaConsumer, KafkaProducer

from runtime import clients


def _read_all(settings, topic: str, isolation: str) -> list[bytes]:
    consumer = KafkaConsumer(
        topic, **settings.kafka.client_options("admin"), isolation_level=isolation,
        auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000,
    )
    try:
        return sorted(record.value for record in consumer)
    finally:
        consumer.close()


def test_kafka_transaction_commit_is_seen_and_abort_is_not(settings, kafka_topic):
    producer = KafkaProducer(**settings.kafka.client_options("admin"),
                             transactional_id=f"test-{uuid.uuid4().hex}", acks="all")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(kafka_topic, key=b"k1", value=b"committed-1")
    producer.send(kafka_topic, key=b"k2", value=b"committed-2")
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(kafka_topic, key=b"k3", value=b"aborted")
    producer.flush()
    producer.abort_transaction()
    producer.close()

    assert _read_all(settings, kafka_topic, "read_committed") == [b"committed-1", b"committed-2"]
    # The aborted record did reach the log: only the isolation level hides it.
    assert _read_all(settings, kafka_topic, "read_uncommitted") == [b"aborted", b"committed-1", b"committed-2"]


def test_postgres_writer_writes_reader_reads_and_reader_cannot_write(settings):
    key = f"test-{uuid.uuid4().hex}"
    with clients.postgres(settings, "writer") as writer:
        writer.execute("INSERT INTO stack_smoke (smoke_key, events, total) VALUES (%s, 1, 42)", (key,))
    try:
        with clients.postgres(settings, "reader") as reader:
            assert reader.execute("SELECT events, total FROM stack_smoke WHERE smoke_key = %s",
                                  (key,)).fetchone() == (1, 42)
            # Its sessions are read-only by default; in one that turns that off, the grants still hold.
            reader.execute("SET default_transaction_read_only = off")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("INSERT INTO stack_smoke (smoke_key, events, total) VALUES (%s, 1, 1)", (key + "x",))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("CREATE TABLE reader_may_not (x int)")
    finally:
        with clients.postgres(settings, "writer") as writer:
            writer.execute("DELETE FROM stack_smoke WHERE smoke_key = %s", (key,))


def test_postgres_writer_cannot_change_the_schema(settings):
    with clients.postgres(settings, "writer") as writer, pytest.raises(psycopg.errors.InsufficientPrivilege):
        writer.execute("CREATE TABLE writer_may_not (x int)")


def test_redis_needs_the_password(settings):
    key = f"test:{uuid.uuid4().hex}"
    client = clients.redis(settings)
    client.set(key, "value", ex=60)
    assert client.get(key) == "value"
    anonymous = clients.redis(settings, password=False)
    with pytest.raises(redis_lib.AuthenticationError):
        anonymous.get(key)
    wrong = redis_lib.Redis(host=settings.redis.host, port=settings.redis.port, password="wrong-password")
    with pytest.raises(redis_lib.AuthenticationError):
        wrong.get(key)
    client.delete(key)


def test_minio_put_and_get_with_generated_keys(settings):
    client = clients.minio(settings)
    bucket = settings.minio.bucket
    name = f"tests/{uuid.uuid4().hex}.bin"
    payload = bytes(range(256)) * 100
    client.put_object(bucket, name, io.BytesIO(payload), len(payload))
    try:
        response = client.get_object(bucket, name)
        assert response.read() == payload
        response.close()
    finally:
        client.remove_object(bucket, name)
    assert settings.minio.access_key.get_secret_value() != "minioadmin"


def test_a_service_that_is_down_is_reported_with_its_address_and_the_fix(settings):
    moved = settings.model_copy(update={"redis": settings.redis.model_copy(update={"port": 1})})
    with pytest.raises(clients.ServiceUnavailable) as info:
        clients.redis(moved)
    assert "127.0.0.1:1" in str(info.value) and "streampulse stack up" in str(info.value)


def test_only_the_producers_may_write_the_posts_topic(settings):
    """SASL/SCRAM and ACLs: a client without credentials is not let in, the jobs' login cannot write
    social.posts, the producers' can (tests write there only through this probe: nothing is sent for real)."""
    from kafka.errors import KafkaError, TopicAuthorizationFailedError

    with pytest.raises(KafkaError):  # the broker speaks SASL only: no connection, no metadata, no send
        anonymous = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, max_block_ms=5000,
                                  bootstrap_timeout_ms=5000, retries=0)
        anonymous.send("social.posts", b"not allowed").get(timeout=10)
    jobs = KafkaProducer(**settings.kafka.client_options("jobs"), max_block_ms=10_000, retries=0)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            jobs.send("social.posts", key=b"x", value=b"refused").get(timeout=30)
    finally:
        jobs.close(timeout=5)
    producer = KafkaProducer(**settings.kafka.client_options("producer"), max_block_ms=10_000)
    try:
        assert producer.partitions_for("social.posts")  # described: the producers may write here
    finally:
        producer.close(timeout=5)


def test_every_configured_topic_keeps_records_for_its_retention(settings):
    from kafka.admin import ConfigResource, ConfigResourceType

    retention = settings.kafka.retention_hours
    assert retention["social.posts.dlq"] <= 24  # the dead-letter topic bounds how long a deleted post's payload lives
    admin = clients.kafka_admin(settings)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in retention])
    finally:
        admin.close()
    for name, hours in retention.items():
        configs = described["topic"][name]
        assert int(configs["retention.ms"]["value"]) == int(hours * 3_600_000), name
        # Only closed segments are deleted: a segment spans at most a 24th of the retention (an hour at least).
        assert int(configs["segment.ms"]["value"]) <= max(3_600_000, int(hours * 3_600_000) // 24), name


def test_the_lake_expires_each_prefix_after_its_retention(settings):
    lifecycle = clients.minio(settings).get_bucket_lifecycle(settings.minio.bucket)
    rules = {rule.rule_filter.prefix: (rule.status, rule.expiration.days) for rule in lifecycle.rules}
    assert rules == {prefix: ("Enabled", days) for prefix, days in settings.minio.retention_days.items()}
    assert set(rules) == {"posts/", "keyword_counts/"}  # the archive job's and the trending job's outputs
