"""Prometheus's file-based service discovery: a process with a /metrics endpoint (a producer) announces it by a
target file in the folder the stack's Prometheus watches, for as long as it runs."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from shared.settings import Settings


def scrape_targets_dir(settings: Settings) -> Path:
    return settings.stack.state_path / "prometheus" / "targets"


@contextlib.contextmanager
def scrape_target(settings: Settings, name: str, port: int, labels: dict[str, str]) -> Iterator[Path]:
    """Announce a process's /metrics on 127.0.0.1:<port> to the stack's Prometheus for as long as the block runs."""
    path = scrape_targets_dir(settings) / f"{name}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")  # Prometheus must never read half a file
    tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": labels}]))
    tmp.replace(path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
