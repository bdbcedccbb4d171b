"""Superset configuration for StreamPulse (SUPERSET_CONFIG_PATH points here; `streampulse superset up`
sets the environment it reads). Nothing secret lives in this file: the secret key and the metadata
database come from the environment, and Superset itself refuses to start with its default key."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
# The metadata (users, datasets, charts, dashboards): SQLite in the state folder unless told otherwise.
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_URI"]

# One machine, no Celery or Redis cache for Superset itself: queries run in the web process and results
# are cached in memory for a minute (the jobs write every minute).
DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 60}
RATELIMIT_STORAGE_URI = "memory://"

# The dashboards are refreshed by their own refresh interval; nothing here needs the example data.
SUPERSET_LOAD_EXAMPLES = False
ROW_LIMIT = 10_000
