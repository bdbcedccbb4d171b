"""A local Bluesky relay and a local Jetstream, faithful to the wire: firehose frames are two DAG-CBOR
items (header, body) encoded with libipld, commits carry a CAR v1 of real DAG-CBOR blocks with CIDv1
(dag-cbor, sha2-256) links, so atproto's own parsers read them; Jetstream events are v1 JSON text frames.

A script drives each server: ("commit", seq, repo, ops) steps are sent live and kept in the history
that a `?cursor=` connection replays (inclusive); ("drop",) cuts the TCP connection, ("close1011",)
closes with an error code, ("malformed",) sends bytes that are not DAG-CBOR, ("duplicate",) sends the
last commit again, ("error", name) sends an error frame and closes. A cursor older than `retained_from`
gets an `#info OutdatedCursor` first, as the reference PDS does."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import libipld

POST = "app.bsky.feed.post"


def cid(block: bytes) -> bytes:
    return b"\x01\x71\x12\x20" + hashlib.sha256(block).digest()  # CIDv1, dag-cbor, sha2-256


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def car(blocks: list[bytes]) -> bytes:
    """CAR v1: the header (roots = the commit block), then each block as uvarint(len) CID data."""
    header = libipld.encode_dag_cbor({"version": 1, "roots": [cid(blocks[0])]})
    return uvarint(len(header)) + header + b"".join(uvarint(len(cid(b)) + len(b)) + cid(b) + b for b in blocks)


def post_record(text: str, created_at: str, *, langs=("en",), facets=(), reply=None, tags=()) -> dict:
    record = {"$type": POST, "text": text, "createdAt": created_at, "langs": list(langs)}
    if facets:
        record["facets"] = list(facets)
    if reply:
        record["reply"] = reply
    if tags:
        record["tags"] = list(tags)
    return record


def facet(text: str, fragment: str, feature: dict) -> dict:
    """A facet over the first occurrence of `fragment`, indexed in UTF-8 bytes as the lexicon says."""
    start = text.encode().index(fragment.encode())
    return {"index": {"byteStart": start, "byteEnd": start + len(fragment.encode())}, "features": [feature]}


def commit_frame(seq: int, repo: str, ops: list[tuple]) -> bytes:
    """ops: ("create", path, record) · ("delete", path) · ("create-missing", path, record): the record
    block left out of the CAR, as in tooBig commits."""
    records = [libipld.encode_dag_cbor(op[2]) for op in ops if op[0] != "delete"]
    commit = libipld.encode_dag_cbor({"did": repo, "version": 3, "data": cid(b"mst" + repo.encode()),
                                      "rev": f"3k{seq:011d}", "prev": None, "sig": b"\x02" * 64})
    in_car = [libipld.encode_dag_cbor(op[2]) for op in ops if op[0] == "create"]
    body_ops, i = [], 0
    for op in ops:
        if op[0] == "delete":
            body_ops.append({"action": "delete", "path": op[1], "cid": None, "prev": cid(b"old" + op[1].encode())})
        else:
            body_ops.append({"action": "create", "path": op[1], "cid": cid(records[i])})
            i += 1
    body = {"seq": seq, "rebase": False, "tooBig": False, "repo": repo, "commit": cid(commit),
            "rev": f"3k{seq:011d}", "since": None, "blocks": car([commit, *in_car]), "ops": body_ops, "blobs": [],
            "time": "2026-11-26T07:00:00.000Z"}
    return libipld.encode_dag_cbor({"t": "#commit", "op": 1}) + libipld.encode_dag_cbor(body)


def error_frame(name: str, message: str) -> bytes:
    return libipld.encode_dag_cbor({"op": -1}) + libipld.encode_dag_cbor({"error": name, "message": message})


def info_frame(name: str, message: str) -> bytes:
    return libipld.encode_dag_cbor({"t": "#info", "op": 1}) + libipld.encode_dag_cbor({"name": name,
                                                                                        "message": message})


@dataclass
class FakeRelay:
    script: list[tuple]
    retained_from: int = 0  # the oldest seq a cursor can replay
    jetstream: bool = False  # serve Jetstream v1 JSON instead of firehose frames
    history: list[tuple[int, bytes | str]] = field(default_factory=list)  # (seq or time_us, frame) sent live
    position: int = 0
    connections: list[str] = field(default_factory=list)  # the request paths, cursor included
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def _encode(self, step: tuple) -> tuple[int, bytes | str]:
        if self.jetstream:
            return step[1], json.dumps(step[2])  # ("event", time_us, event)
        return step[1], commit_frame(step[1], step[2], step[3])

    def handler(self, ws) -> None:
        url = urlparse(ws.request.path)
        params = parse_qs(url.query)
        with self.lock:
            self.connections.append(ws.request.path)
        cursor = int(params["cursor"][0]) if "cursor" in params else None
        if cursor is not None:
            if not self.jetstream and cursor < self.retained_from:
                ws.send(info_frame("OutdatedCursor", "Requested cursor exceeded limit. Possibly missing events"))
                cursor = self.retained_from
            with self.lock:
                replay = [frame for position, frame in self.history if position >= cursor]
            for frame in replay:
                ws.send(frame)
        while not self.stopping.is_set():
            with self.lock:
                if self.position >= len(self.script):
                    step = None
                else:
                    step = self.script[self.position]
                    self.position += 1
            if step is None:
                self.stopping.wait(0.1)  # the script is over: hold the connection open
                continue
            kind = step[0]
            if kind in ("commit", "event"):
                position, frame = self._encode(step)
                with self.lock:
                    self.history.append((position, frame))
                ws.send(frame)
            elif kind == "duplicate":
                ws.send(self.history[-1][1])
            elif kind == "malformed":
                ws.send(b"\xff\xff\xff" if not self.jetstream else "{not json")
            elif kind == "error":
                ws.send(error_frame(step[1], "scripted"))
                ws.close(1000)
                return
            elif kind == "close1011":
                ws.close(1011, "scripted")
                return
            elif kind == "drop":
                ws.socket.shutdown(socket.SHUT_RDWR)
                return

    def start(self) -> str:
        from websockets.sync.server import serve

        self.server = serve(self.handler, "127.0.0.1", 0, max_size=None)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/subscribe" if self.jetstream else f"ws://127.0.0.1:{port}/xrpc"

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
