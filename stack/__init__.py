"""Layer 4, operations: the local stack (Kafka, PostgreSQL, Redis, MinIO, Prometheus as ordinary processes on
loopback ports), jar downloads, the Flink cluster, Superset, the demo, and the `streampulse` command (cli.py).

The same code serves `make demo`, the tests and CI. State and logs live under one git-ignored
folder (stack.state_dir); downloaded jars and built binaries under stack.cache_dir.
"""
