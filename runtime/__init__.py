"""The job runtime and the services' clients: what the jobs and the producers run on (layer 2, ARCHITECTURE.md)."""
