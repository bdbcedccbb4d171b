"""`streampulse api`: the read API under uvicorn (uvloop, httptools), in one or more worker processes."""

from __future__ import annotations

import logging

from api.app import check_credentials
from shared.settings import Settings

log = logging.getLogger("streampulse.api")


def serve(settings: Settings, *, host: str | None = None, port: int | None = None, workers: int | None = None,
          access_log: bool = False) -> int:
    """Blocks until SIGINT/SIGTERM. Raises ConfigError before listening when a credential is missing."""
    import uvicorn

    check_credentials(settings)
    host, port = host or settings.api.host, port or settings.api.port
    workers = workers or settings.api.workers
    log.info("read API on http://%s:%d (OpenAPI at /openapi.json, docs at /docs), %d worker%s", host, port,
             workers, "" if workers == 1 else "s")
    # Each worker builds its app from config/ and the environment (the credentials are in it by now).
    uvicorn.run("api.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                loop="uvloop", http="httptools", access_log=access_log, log_level="info", timeout_graceful_shutdown=5)
    return 0
