"""What a job running in the foreground tells its terminal: every state change (RUNNING, RESTARTING,
FAILED, ...), each failure with its root cause in one line as it happens, and every `progress_s` a progress
line (records read from Kafka, the lag still to read, the last completed checkpoint). It reads the job's REST
API, the one the Flink Web UI reads, so what the terminal says is what the Web UI shows.

    [streampulse-trending] RUNNING
    [streampulse-trending] failure #1 in SinkMaterializer[27] -> Sink: late_posts_sink[27] (1/1): ConnectException:
        Connection refused ← PSQLException: Connection to 127.0.0.1:1 refused. Check that the hostname and ...
    [streampulse-trending] RESTARTING
    [streampulse-trending] failure #2 in SinkMaterializer[27] -> Sink: late_posts_sink[27] (1/1): the same cause
    [streampulse-trending] read 120,400 records, lag 3,100, last checkpoint #12 4 s ago
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import urllib.request

CAUSE_CHARS = 400


def root_cause(stacktrace: str) -> str:
    """The innermost exception of a Java stack trace and the one that wrapped it (which often names the
    address or the operator: "ConnectException: Connection refused ← PSQLException: Connection to
    127.0.0.1:1 refused"), on one line, without packages."""
    lines = [line.strip() for line in stacktrace.splitlines() if line.strip()]
    chain = lines[:1] + [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    if not chain:
        return "(no stack trace)"

    def short(exception: str) -> str:
        name, sep, message = exception.partition(": ")
        return name.rsplit(".", 1)[-1] + sep + message

    text = short(chain[-1]) + (f" ← {short(chain[-2])}" if len(chain) > 1 else "")
    return text[:CAUSE_CHARS]


class JobWatch(threading.Thread):
    """Polls one job's REST resources and prints what changed; stop() ends it."""

    def __init__(self, rest_url: str, job_id: str, label: str, *, progress_s: float = 30.0, poll_s: float = 1.0,
                 out=sys.stderr):
        super().__init__(name=f"watch {label}", daemon=True)
        self.rest_url, self.job_id, self.label = rest_url.rstrip("/"), job_id, label
        self.progress_s, self.poll_s, self.out = progress_s, poll_s, out
        self.state: str | None = None
        self.failures_seen = 0  # newest failure timestamp already printed
        self.state_seen = 0  # newest state-change timestamp already printed
        self.failures, self.last_failure = 0, None
        self.last_progress = time.monotonic()
        self._stop_event = threading.Event()

    def _get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.rest_url}/jobs/{self.job_id}{path}", timeout=10) as response:
            return json.load(response)

    def say(self, message: str) -> None:
        print(f"[{self.label}] {message}", file=self.out, flush=True)

    def poll(self) -> None:
        job = self._get("")
        entries = self._get("/exceptions").get("exceptionHistory", {}).get("entries", [])
        # Failures and state changes since the last poll, in the order they happened: a job can go RUNNING ->
        # RESTARTING between two polls, and `timestamps` (when the job last entered each state) still has both.
        events = [(entry["timestamp"], 0, entry) for entry in entries if entry["timestamp"] > self.failures_seen]
        events += [(entered, 1, state) for state, entered in job.get("timestamps", {}).items()
                   if entered > self.state_seen and state not in ("INITIALIZING", "CREATED")]
        for timestamp, is_state, what in sorted(events, key=lambda event: event[:2]):
            if not is_state:
                self.failures_seen = timestamp
                self.say_failure(what)
            else:
                self.state_seen = timestamp
                self.say_state(what)
        self.say_state(job["state"])
        if self.state == "RUNNING" and time.monotonic() - self.last_progress >= self.progress_s:
            self.last_progress = time.monotonic()
            self.say(self.progress(job))

    def say_failure(self, entry: dict) -> None:
        self.failures += 1
        task = (entry.get("taskName") or "the job").split(" - execution #")[0]
        cause = root_cause(entry.get("stacktrace") or entry["exceptionName"])
        self.say(f"failure #{self.failures} in {task}: "
                 + ("the same cause" if (task, cause) == self.last_failure else cause))
        self.last_failure = (task, cause)

    def say_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.say(state)

    def progress(self, job: dict) -> str:
        sources = [v for v in job["vertices"] if v["name"].startswith("Source:")]
        read = sum(v["metrics"].get("write-records", 0) for v in sources)
        lag = 0.0
        for vertex in sources:
            available = self._get(f"/vertices/{vertex['id']}/subtasks/metrics")
            pending = ",".join(m["id"] for m in available if m["id"].endswith(".pendingRecords"))
            if pending:
                for metric in self._get(f"/vertices/{vertex['id']}/subtasks/metrics?get={pending}&agg=sum"):
                    lag += metric.get("sum", 0.0)
        checkpoints = self._get("/checkpoints")
        latest = (checkpoints.get("latest") or {}).get("completed")
        checkpoint = (f"last checkpoint #{latest['id']} {time.time() - latest['latest_ack_timestamp'] / 1000:.0f} s ago"
                      if latest else "no checkpoint yet")
        failed = checkpoints.get("counts", {}).get("failed", 0)
        return (f"read {read:,} records, lag {lag:,.0f}, {checkpoint}"
                + (f" ({failed} failed)" if failed else ""))

    def run(self) -> None:
        while not self._stop_event.is_set():
            # The REST endpoint still starting or the job just ended: the next poll, or the result, says.
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poll()
            self._stop_event.wait(self.poll_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)
        with contextlib.suppress(OSError, KeyError, ValueError):  # the final state and what ended it
            self.poll()
