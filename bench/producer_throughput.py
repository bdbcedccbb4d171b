"""Producer throughput into the local broker, and where the time goes.

    python -m bench.producer_throughput [--count 200000] [--seed 1]

Stages, measured in one run so their ratios compare: synthetic generation alone; validation +
Avro encoding alone; kafka-python sends of pre-encoded records; the whole producer
(validate, encode, send, DLQ) over pre-generated events; and the real CLI process end to end
(`streampulse produce synthetic`), whose peak RSS is the producer's memory figure.
Needs the local stack (`streampulse stack up`); uses a throw-away topic.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import time
import uuid

from connectors.producer import PostProducer
from connectors.synthetic import SyntheticConfig, generate
from runtime import clients
from shared.post import encode, now_ms, parse_post
from shared.settings import PROJECT_ROOT, load_settings


def report(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:,.1f} {unit}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settings = load_settings()
    from kafka.admin import NewTopic

    topic, dlq = f"bench.posts.{uuid.uuid4().hex[:8]}", f"bench.dlq.{uuid.uuid4().hex[:8]}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 4, 1), NewTopic(dlq, 1, 1)])
    print(f"command: python -m bench.producer_throughput --count {args.count} --seed {args.seed}")
    print(f"input: synthetic seed {args.seed}, {args.count} posts at 1% malformed, topic {topic} (4 partitions)")
    try:
        config = SyntheticConfig(seed=args.seed, count=args.count, duration_s=None, rate=1000,
                                 start_ms=now_ms() - args.count, malformed=0.01)
        started = time.perf_counter()
        events = list(generate(config))
        report("generate", len(events) / (time.perf_counter() - started), "events/s")

        now, buffer = now_ms(), io.BytesIO()
        started = time.perf_counter()
        encoded = []
        for event in events:
            if event.expected_reject is None:
                post = parse_post(event.payload, now=now)
                encoded.append((post.uid.encode(), encode(post, buffer)))
        elapsed = time.perf_counter() - started
        report("validate_encode", len(encoded) / elapsed, "posts/s")
        report("validate_encode_cost", elapsed / len(encoded) * 1e6, "us/post")

        producer = PostProducer(settings, "synthetic", topic=topic, dlq_topic=dlq)
        started = time.perf_counter()
        for key, value in encoded:
            producer._kafka.send(topic, key=key, value=value)  # kafka-python alone, for the breakdown
        producer.flush()
        elapsed = time.perf_counter() - started
        report("kafka_send_only", len(encoded) / elapsed, "records/s")
        report("kafka_send_cost", elapsed / len(encoded) * 1e6, "us/record")

        started = time.perf_counter()
        for event in events:
            producer.submit(event.payload, uid_hint=event.uid)
        producer.flush()
        elapsed = time.perf_counter() - started
        producer.close()
        report("producer_runtime", len(events) / elapsed, "posts/s")

        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stack.cli", "produce", "synthetic", "--count", str(args.count),
                        "--rate", "1000", "--seed", str(args.seed), "--malformed", "0.01", "--topic", topic,
                        "--dlq-topic", dlq, "--no-resume", "--no-progress", "--cursor-name", "bench"],
                       cwd=PROJECT_ROOT, check=True, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        report("cli_end_to_end", args.count / elapsed, "posts/s (process start, generation and produce)")
        report("cli_peak_rss", max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024, "MiB")
    finally:
        admin.delete_topics([topic, dlq])
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
