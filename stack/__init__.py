"""The local stack: Kafka, PostgreSQL, Redis and MinIO as ordinary processes on loopback ports.

The same code serves `make demo`, the tests and CI. State and logs live under one git-ignored
folder (stack.state_dir); downloaded jars and built binaries under stack.cache_dir.
"""
