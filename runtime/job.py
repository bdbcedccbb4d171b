"""A job's command line, the same for every job: a job module defines `build(settings, args)` → the Flink
environment (its sources, operators and sinks, every INSERT in one statement set), and hands it to `job_main`.

    main = job_main("archive", __doc__, build, topic=POSTS_TOPIC, arguments=arguments)

gives `main(argv)`: --topic, --group-id (streampulse-<job>), --bounded, the backfill's options when the job has a
backfill (runtime/backfill.py) and the job's own options; the settings;
the job run in the foreground or submitted, as runtime/flink.py `execute` decides.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from runtime.flink import execute
from shared.settings import Settings, load_settings

log = logging.getLogger(__name__)


def job_main(name: str, doc: str | None, build: Callable[[Settings, argparse.Namespace], object], *, topic: str,
             arguments: Callable[[argparse.ArgumentParser], None] | None = None,
             backfill: bool = False) -> Callable[..., int]:
    def main(argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(prog=f"streampulse run {name}", description=doc,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--topic", default=topic, help=f"the topic the job reads (default {topic})")
        parser.add_argument("--group-id", default=f"streampulse-{name}", help="its Kafka consumer group")
        parser.add_argument("--bounded", action="store_true",
                            help="read the topic from the start to its current end, then finish (tests, demo)")
        if arguments:
            arguments(parser)
        if backfill:  # --from/--to: the job over a past period of the lake, in batch mode
            from runtime import backfill as backfill_options

            backfill_options.arguments(parser)
        args = parser.parse_args([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--"])
        env = build(load_settings(), args)
        source = "the lake" if getattr(args, "backfill_from", None) else args.topic
        log.info("%s job: reading %s", name, source)
        execute(env, f"streampulse-{name}")
        return 0

    return main


def run_script(main: Callable[[], int]) -> None:
    """`python jobs/<job>.py` and `flink run -py jobs/<job>.py`: logs to stderr, the exit code from main."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(main())
