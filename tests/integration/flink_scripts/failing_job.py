"""Test helper, run as a subprocess: a job whose every record raises, with no restart strategy, run through
runtime.flink.execute as the jobs run embedded. The terminal must say FAILED with the cause; the exit is 1."""

from __future__ import annotations

import sys

from runtime.flink import JobFailed, execute, stream_env
from shared.settings import load_settings


def explode(value: int) -> int:
    raise ValueError(f"record {value} is not welcome here")


def main() -> int:
    env, _ = stream_env(load_settings(), "streampulse-failing", extra={"restart-strategy.type": "none"})
    env.from_collection([7, 8, 9]).map(explode).print()
    try:
        execute(env, "streampulse-failing")
    except JobFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
