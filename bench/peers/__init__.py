"""Pure-Python peers of the trending job's window counting, for the throughput benchmark.

Each peer reads a posts topic from the beginning up to its end offsets at start, counts per keyword
(all sources together) the distinct uids and distinct authors of 1-minute tumbling windows and of
5-minute windows sliding by 1 minute (event time = created_at, 30 s of allowed out-of-orderness),
writes one CSV row per (window, keyword) and exits 0. See bench/peers/README.md.

    venv_python = ensure_venv("bytewax")                    # once; cached under ~/.cache/streampulse/peers/
    command = peer_command("bytewax", "127.0.0.1:19092", topic, Path("out.csv"), "bench-1234")
    subprocess.run(command, cwd=PROJECT_ROOT, env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}, check=True)
    exact, total = check(Path("out.csv"), read_posts("127.0.0.1:19092", topic))

`ensure_venv` and `peer_command` need only the standard library; `read_posts` needs kafka-python and
`shared.post`, `check` needs `tests.oracle` (the project's venv has both).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

PEERS = ("bytewax", "quix")
HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]
CACHE = Path.home() / ".cache" / "streampulse" / "peers"
HEADER = ("window_kind", "window_start_ms", "window_end_ms", "keyword", "posts", "authors")
_SCRIPTS = {"bytewax": "bytewax_windows.py", "quix": "quix_windows.py"}
_MARKER = ".installed"


def _log(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


def requirements(name: str) -> Path:
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}: one of {', '.join(PEERS)}")
    return HERE / f"{name}.requirements.txt"


def venv_dir(name: str) -> Path:
    """~/.cache/streampulse/peers/<name>-<first 12 hex of the requirements file's sha256>."""
    digest = hashlib.sha256(requirements(name).read_bytes()).hexdigest()[:12]
    return CACHE / f"{name}-{digest}"


def _base_python() -> str:
    found = shutil.which("python3.11")
    if found:
        return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise RuntimeError("python3.11 is not on PATH: the peers' venvs are Python 3.11")


def ensure_venv(name: str) -> Path:
    """The python of the peer's venv, created and installed from its pinned requirements when missing.

    Keyed by a hash of the requirements file, so an edited file gets a new venv; idempotent and safe
    to call from several processes at once (a lock file beside the venv). A venv whose install did
    not finish (no marker) is rebuilt. Progress goes to stderr; a failed pip raises RuntimeError.
    """
    req = requirements(name)
    target = venv_dir(name)
    python = target / "bin" / "python"
    marker = target / _MARKER
    wanted = req.read_text()
    if marker.exists() and python.exists() and marker.read_text() == wanted:
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and python.exists() and marker.read_text() == wanted:
            return python
        if target.exists():
            _log(f"removing the unfinished venv {target}")
            shutil.rmtree(target)
        _log(f"creating {target} ({req.name}); the first install takes a minute")
        subprocess.run([_base_python(), "-m", "venv", str(target)], check=True, stdout=sys.stderr)
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
                   "-r", str(req)]
        result = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"installing {req.name} into {target} failed:\n{result.stderr[-3000:]}")
        marker.write_text(wanted)
        _log(f"{name} venv ready: {python}")
    return python


def peer_command(name: str, bootstrap: str, topic: str, out: Path, group_id: str) -> list[str]:
    """argv running peer `name` with its venv's python (built first if needed, see ensure_venv).

    Run it with cwd=PROJECT_ROOT and PYTHONPATH=PROJECT_ROOT (the peers import shared.post and
    shared.keywords; they also add the project root to sys.path themselves when it is missing).
    It writes the CSV to `out`, logs to stderr and exits 0 when the whole topic (as of its start)
    is counted. `group_id` names the consumer group (Quix also prefixes its internal topics with it).
    """
    script = HERE / _SCRIPTS[name] if name in _SCRIPTS else None
    if script is None:
        raise ValueError(f"unknown peer {name!r}: one of {', '.join(PEERS)}")
    return [str(ensure_venv(name)), str(script), "--bootstrap", bootstrap, "--topic", topic, "--out", str(out),
            "--group-id", group_id]


def peer_environment(username: str, password: str) -> dict[str, str]:
    """What to add to a peer's environment for a broker that wants a SCRAM login (read by kafka_config in
    each peer; secrets stay out of argv)."""
    return {"PEER_KAFKA_USERNAME": username, "PEER_KAFKA_PASSWORD": password}


def read_posts(bootstrap: str, topic: str, options: dict | None = None) -> list[dict]:
    """Every post of `topic` up to its end offsets now, decoded (dicts with the fields the oracle reads)."""
    from kafka import KafkaConsumer, TopicPartition

    from shared.post import decode

    options = options or {"bootstrap_servers": bootstrap}  # kafka-python's connection arguments (login)
    consumer = KafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist at {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        posts: list[dict] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    post = decode(record.value)
                    posts.append({"uid": post.uid, "source": post.source, "author_id": post.author_id,
                                  "text": post.text, "hashtags": list(post.hashtags), "langs": list(post.langs),
                                  "created_at": post.created_at})
        return posts
    finally:
        consumer.close()


def _rows(path: Path) -> Iterable[tuple[str, int, int, str, int, int]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if tuple(header or ()) != HEADER:
            raise ValueError(f"{path}: header {header!r} is not {','.join(HEADER)}")
        for kind, start, end, keyword, posts, authors in reader:
            yield kind, int(start), int(end), keyword, int(posts), int(authors)


def read_csv(path: Path | str) -> dict[tuple[str, int, str], tuple[int, int]]:
    """(window_kind, window_start_ms, keyword) -> (posts, authors) of a peer's CSV (a repeated row: the last wins)."""
    return {(kind, start, keyword): (posts, authors) for kind, start, _, keyword, posts, authors in _rows(Path(path))}


def oracle(posts: list[dict], tumble_ms: int = 60_000, size_ms: int = 300_000,
           slide_ms: int = 60_000) -> dict[tuple[str, int, str], tuple[int, int]]:
    """The expected windows, keyed like read_csv, from tests.oracle (source "*" only)."""
    from tests.oracle import recompute

    expected = {}
    for kind, size, slide in (("tumble", tumble_ms, tumble_ms), ("hop", size_ms, slide_ms)):
        for (start, source, keyword), counts in recompute(posts, size, slide).items():
            if source == "*":
                expected[kind, start, keyword] = counts
    return expected


def check(path: Path | str, posts: list[dict], tumble_ms: int = 60_000, size_ms: int = 300_000,
          slide_ms: int = 60_000) -> tuple[int, int]:
    """(exact, total): total = windows the oracle has; exact = those the CSV has with the same counts, minus
    every row that is not exact otherwise (a window the oracle lacks, a repeated row, a wrong window end),
    so exact == total only when the CSV is the oracle. Differences are summarised on stderr."""
    expected = oracle(posts, tumble_ms, size_ms, slide_ms)
    sizes = {"tumble": tumble_ms, "hop": size_ms}
    seen: dict[tuple[str, int, str], tuple[int, int]] = {}
    extra = repeated = bad_end = 0
    for kind, start, end, keyword, n_posts, n_authors in _rows(Path(path)):
        key = (kind, start, keyword)
        if key in seen:
            repeated += 1
        elif key not in expected:
            extra += 1
        if end != start + sizes.get(kind, -start - 1):
            bad_end += 1
        seen[key] = (n_posts, n_authors)
    matched = sum(1 for key, counts in expected.items() if seen.get(key) == counts)
    missing = sum(1 for key in expected if key not in seen)
    wrong = len(expected) - matched - missing
    if matched != len(expected) or extra or repeated or bad_end:
        sample = [(key, expected[key], seen.get(key)) for key in sorted(expected) if seen.get(key) != expected[key]][:5]
        _log(f"{path}: {matched:,}/{len(expected):,} windows exact; {missing:,} missing, {wrong:,} with other counts, "
             f"{extra:,} not in the oracle, {repeated:,} repeated, {bad_end:,} with a wrong end; e.g. {sample}")
    return max(0, matched - extra - repeated - bad_end), len(expected)
