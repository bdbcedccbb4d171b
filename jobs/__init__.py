"""PyFlink jobs, one module per job. Each has `main(argv)` and runs embedded (`streampulse run JOB`)."""
