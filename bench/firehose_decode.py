"""Decode throughput of the Bluesky firehose path, beside the real network's rate.

    python -m bench.firehose_decode [--frames 50000] [--post-share 0.11] [--seed 1]

Builds firehose frames as the relay sends them (DAG-CBOR header and body, a CAR of the commit and its
record blocks; tests/fakes/bluesky.py), a share of them post creates with facets and the rest likes,
follows and reposts (about 11 % of real events are post creates), then times, in one process:
`FirehoseSource.read` alone (frame → SourceItems: DAG-CBOR, op filter, CAR for posts, mapping), and
the same plus validation and Avro encoding of each post (what the producer does before Kafka).
No network and no Kafka: this is the CPU ceiling of one producer process.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime

from connectors.bluesky import FirehoseSource
from shared.post import encode, parse_post
from shared.settings import BlueskySettings
from tests.fakes.bluesky import POST, commit_frame, facet, post_record

REAL_EVENTS_PER_S = (320, 350)  # all record types, Jetstream ops note 2026-07-09 (../shared/reference)


def frames(count: int, post_share: float, seed: int) -> tuple[list[bytes], int]:
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    out, posts = [], 0
    for seq in range(1, count + 1):
        repo = f"did:plc:{rng.randrange(10**6):024d}"
        if rng.random() < post_share:
            text = f"Trying the new café ☕ with @friend.bsky.social #coffee {rng.randrange(10**6)} https://example.com/x"
            record = post_record(text, now, facets=[
                facet(text, "@friend.bsky.social", {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:f"}),
                facet(text, "#coffee", {"$type": "app.bsky.richtext.facet#tag", "tag": "coffee"}),
                facet(text, "https://example.com/x", {"$type": "app.bsky.richtext.facet#link",
                                                      "uri": "https://example.com/x"})])
            ops = [("create", f"{POST}/3k{seq:010d}", record)]
            posts += 1
        else:
            collection = rng.choice(("app.bsky.feed.like", "app.bsky.graph.follow", "app.bsky.feed.repost"))
            ops = [("create", f"{collection}/3l{seq:010d}", {"$type": collection, "createdAt": now,
                                                              "subject": f"at://did:plc:s/{POST}/3k"})]
        out.append(commit_frame(seq, repo, ops))
    return out, posts


def report(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:,.1f} {unit}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--post-share", type=float, default=0.11)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"# python -m bench.firehose_decode --frames {args.frames} --post-share {args.post_share} "
          f"--seed {args.seed}", flush=True)
    data, posts = frames(args.frames, args.post_share, args.seed)
    report("frames", len(data), "frames")
    report("post_creates", posts, "posts")
    report("mean_frame_size", sum(map(len, data)) / len(data), "bytes")

    for frame in data[:1000]:  # warm up: first calls into libipld and atproto
        for item in FirehoseSource(BlueskySettings()).read(frame):
            encode(parse_post(item.payload))
    source = FirehoseSource(BlueskySettings())
    started = time.perf_counter()
    items = [item for frame in data for item in source.read(frame)]
    decode_s = time.perf_counter() - started
    assert len(items) == posts, (len(items), posts)
    report("decode_frames_per_s", len(data) / decode_s, "frames/s")
    report("decode_posts_per_s", posts / decode_s, "posts/s")

    source = FirehoseSource(BlueskySettings())
    started = time.perf_counter()
    for frame in data:
        for item in source.read(frame):
            encode(parse_post(item.payload))
    full_s = time.perf_counter() - started
    report("decode_validate_encode_frames_per_s", len(data) / full_s, "frames/s")
    report("headroom_over_real_firehose", len(data) / full_s / REAL_EVENTS_PER_S[1], "x (vs 350 events/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
