"""The one line a foreground job prints for a failure: the innermost exception and the one that wrapped it."""

import io

from runtime.job_watch import JobWatch, root_cause

TRACE = """org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy
\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(Handler.java:219)
Caused by: java.io.IOException: unable to open JDBC writer
\tat org.apache.flink.connector.jdbc.JdbcOutputFormat.open(JdbcOutputFormat.java:145)
Caused by: org.postgresql.util.PSQLException: Connection to 127.0.0.1:1 refused. Check the hostname and port.
\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:352)
Caused by: java.net.ConnectException: Connection refused
\tat java.base/sun.nio.ch.Net.pollConnect(Native Method)
\t... 3 more
"""


def test_the_innermost_cause_comes_first_then_what_wrapped_it():
    assert root_cause(TRACE) == ("ConnectException: Connection refused ← PSQLException: Connection to 127.0.0.1:1 "
                                 "refused. Check the hostname and port.")


def test_an_exception_without_causes_is_its_own_first_line():
    assert root_cause("java.lang.IllegalStateException: no slots\n\tat Foo.bar(Foo.java:1)") == \
        "IllegalStateException: no slots"
    assert root_cause("") == "(no stack trace)"


def test_a_long_cause_is_cut_to_one_readable_line():
    line = root_cause("java.lang.RuntimeException: " + "x" * 5000)
    assert len(line) == 400 and "\n" not in line


class SnapshotWatch(JobWatch):
    """A watch that reads REST answers from a dict: what one poll of the Flink REST API returned."""

    def __init__(self, answers: dict):
        self.out = io.StringIO()
        super().__init__("http://flink", "job", "streampulse-trending", out=self.out)
        self.answers = answers

    def _get(self, path: str) -> dict:
        return self.answers[path]


def test_states_a_job_passed_through_between_two_polls_are_printed_in_order_with_the_failure():
    # The job went RUNNING (t=100), failed (t=200) and was RESTARTING (t=205) before the first poll saw it.
    watch = SnapshotWatch({
        "": {"state": "RESTARTING", "timestamps": {"INITIALIZING": 90, "CREATED": 95, "RUNNING": 100,
                                                    "RESTARTING": 205, "FAILED": 0}},
        "/exceptions": {"exceptionHistory": {"entries": [
            {"timestamp": 200, "taskName": "Sink: trends_sink (1/1) - execution #0", "exceptionName": "x",
             "stacktrace": "java.net.ConnectException: Connection refused"}]}}})
    watch.poll()
    assert watch.out.getvalue().splitlines() == [
        "[streampulse-trending] RUNNING",
        "[streampulse-trending] failure #1 in Sink: trends_sink (1/1): ConnectException: Connection refused",
        "[streampulse-trending] RESTARTING"]
    watch.poll()  # nothing new: nothing printed again
    assert len(watch.out.getvalue().splitlines()) == 3
    watch.answers[""] = {"state": "RUNNING", "timestamps": {"RUNNING": 300, "RESTARTING": 205}}
    watch.poll()
    assert watch.out.getvalue().splitlines()[-1] == "[streampulse-trending] RUNNING"
