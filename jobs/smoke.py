"""Smoke job: Kafka (JSON) → Flink SQL with a Python UDF → PostgreSQL through the JDBC connector.

Proof that the jar manifest, the connector versions, the venv's Python workers and the database
roles work together. Bounded: it reads the topic up to its current end and finishes.

    streampulse run smoke -- --topic stack.smoke
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyflink.table import DataTypes
from pyflink.table.udf import udf

from runtime.flink import jdbc_options, kafka_source, sql_statements, table_env
from shared.settings import load_settings

log = logging.getLogger(__name__)


@udf(result_type=DataTypes.STRING())
def normalise_key(key: str) -> str:
    # Runs in the Python worker: proves python.executable / python.pythonpath point at the venv.
    return key.strip().lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streampulse run smoke", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topic", default="stack.smoke", help="Kafka topic of {smoke_key, amount} JSON events")
    args = parser.parse_args([a for a in (argv or []) if a != "--"])
    settings = load_settings()
    t_env = table_env(settings, "streampulse-smoke")
    t_env.create_temporary_system_function("normalise_key", normalise_key)
    source = kafka_source(settings, topic=args.topic, group_id="streampulse-smoke", bounded=True)
    *ddl, insert = sql_statements("smoke", kafka_source=source, **jdbc_options(settings))
    for statement in ddl:
        t_env.execute_sql(statement)
    log.info("running smoke job over topic %s", args.topic)
    t_env.execute_sql(insert).wait()
    print(f"smoke job finished: topic {args.topic} upserted into stack_smoke", file=sys.stderr)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(main(sys.argv[1:]))
