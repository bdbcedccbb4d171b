"""The one line a foreground job prints for a failure: the innermost exception and the one that wrapped it."""

from shared.job_watch import root_cause

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
