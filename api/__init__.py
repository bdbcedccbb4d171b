"""The read API (`streampulse api`): trends, keyword history and anomalies over HTTP, and the live alerts as
server-sent events. It reads what the jobs wrote — Redis, PostgreSQL (as the read-only role), the Kafka output
topics (as its own principal) — and writes nothing. README: "Read API"."""
