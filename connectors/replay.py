"""The `replay` source: SocialPost records from JSONL or Avro container files, as fast as possible or
at N× real time by event time.

JSONL lines are parsed here (so that pacing can read created_at); a line that is not UTF-8 or not
JSON is passed on as raw bytes, and the producer sends it to the dead-letter topic with the reason.
The cursor is (file, record number): a restarted replay skips what it already sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fastavro

from connectors.producer import SourceItem
from shared.post import SCHEMA, SocialPost, timestamp_field

AVRO_SUFFIXES = (".avro",)


def read_items(paths: Sequence[Path], *, resume_from: dict[str, Any] | None = None) -> Iterator[SourceItem]:
    """Items from every file in order; `resume_from` is a cursor this function yielded earlier."""
    files = [str(Path(p)) for p in paths]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"replay input not found: {', '.join(missing)}")
    start_file, start_record = 0, 0
    if resume_from:
        if resume_from.get("file") not in files:
            raise ValueError(f"the saved cursor points at {resume_from.get('file')!r}, not one of the inputs; "
                             "pass --no-resume to start over")
        start_file, start_record = files.index(resume_from["file"]), int(resume_from["record"])
    for index, name in enumerate(files[start_file:], start=start_file):
        skip = start_record if index == start_file else 0
        records = _avro_records(name) if name.endswith(AVRO_SUFFIXES) else _jsonl_records(name)
        for number, payload in enumerate(records, start=1):
            if number <= skip:
                continue
            uid = payload.get("uid") if isinstance(payload, dict) and isinstance(payload.get("uid"), str) else None
            yield SourceItem(payload, cursor={"file": name, "record": number}, uid_hint=uid)


def event_time(item: SourceItem) -> int | None:
    if isinstance(item.payload, dict):
        try:
            return timestamp_field(item.payload, "created_at")
        except ValueError:
            return None
    return None


def _jsonl_records(name: str) -> Iterator[dict | bytes]:
    with open(name, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                yield line.rstrip(b"\r\n")


def _avro_records(name: str) -> Iterator[dict]:
    with open(name, "rb") as container:
        yield from fastavro.reader(container)


def write_avro(posts: Iterable[SocialPost], path: Path, *, codec: str = "deflate") -> int:
    """An Avro container file of SocialPost records (readable by replay, fastavro, avro-tools, Spark…)."""
    count = 0

    def records():
        nonlocal count
        for post in posts:
            count += 1
            yield post.to_record()

    with open(path, "wb") as out:
        fastavro.writer(out, SCHEMA, records(), codec=codec)
    return count


def write_jsonl(posts: Iterable[SocialPost], path: Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for post in posts:
            out.write(post.to_json() + "\n")
            count += 1
    return count
