"""`streampulse submit`: its own options, before or after the job's name, and the job's options after `--`."""

from __future__ import annotations

import pytest

import stack.cluster
from stack import cli


@pytest.fixture
def submitted(monkeypatch):
    """What `streampulse submit ...` would hand to Cluster.submit (no cluster is started)."""
    calls = []

    class Recorder:
        def __init__(self, settings):
            pass

        def submit(self, job, job_args, from_savepoint=None, parallelism=None):
            calls.append((job, job_args, from_savepoint, parallelism))
            return "job-id"

    monkeypatch.setattr(stack.cluster, "Cluster", Recorder)

    def run(*argv: str):
        args = cli.build_parser().parse_args(["submit", *argv])
        assert args.handler(args, None) == 0
        return calls[-1]
    return run


@pytest.mark.parametrize(("argv", "expected"), [
    (["trending", "--", "--topic", "t"], ("trending", ["--topic", "t"], None, None)),
    (["trending", "--parallelism", "2", "--", "--topic", "t"], ("trending", ["--topic", "t"], None, 2)),
    (["trending", "--from-savepoint", "s3://b/sp", "-p", "1", "--", "--bounded"],
     ("trending", ["--bounded"], "s3://b/sp", 1)),
    (["--parallelism", "3", "trending", "--topic", "t"], ("trending", ["--topic", "t"], None, 3)),
    (["volume", "-p", "4"], ("volume", [], None, 4)),
])
def test_own_options_anywhere_before_the_jobs(submitted, argv, expected):
    assert submitted(*argv) == expected


def test_unknown_option_before_the_separator_and_a_bad_parallelism_are_refused(submitted, capsys):
    with pytest.raises(SystemExit, match=r"unknown option.*--bogus"):
        submitted("trending", "--bogus", "--", "--topic", "t")
    with pytest.raises(SystemExit):
        submitted("trending", "--parallelism", "0", "--", "--topic", "t")
    assert "expected a whole number ≥ 1, got '0'" in capsys.readouterr().err
