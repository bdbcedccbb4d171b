"""PyFlink jobs, one module per job: `build(settings, args)` and `main = job_main(...)` (runtime/job.py); each runs
embedded (`streampulse run JOB`) or on a cluster (`streampulse submit JOB`, `flink run -py jobs/JOB.py`)."""
