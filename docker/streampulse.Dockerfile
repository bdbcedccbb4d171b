# One image for every StreamPulse process in docker-compose.yml: the Flink JobManager and TaskManager
# (from the PyFlink wheel's own scripts), job submission with `flink run -py`, the producers and the
# one-shot provisioning. Build context: the repository root (see .dockerignore).
FROM python:3.11-slim-bookworm

# A JRE for Flink, Maven to resolve config/jars.yaml, procps because Flink's scripts call ps.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless maven procps \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/default-java \
    STREAMPULSE_STACK__CACHE_DIR=/opt/streampulse-cache \
    STREAMPULSE_STACK__STATE_DIR=/var/lib/streampulse \
    PYTHONUNBUFFERED=1

WORKDIR /opt/streampulse
# Pinned dependencies first, so that code changes do not re-install them.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p shared && touch shared/__init__.py \
 && pip install --no-cache-dir -c constraints.txt . \
 && pip uninstall -y streampulse
COPY . .
RUN pip install --no-cache-dir --no-deps -c constraints.txt -e . \
 && streampulse jars fetch \
 && rm -rf /root/.m2

# The Flink plugins folder: the wheel's Prometheus reporter and the S3 filesystem for checkpoints.
RUN set -eu; \
    flink_home=$(python -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))'); \
    mkdir -p /opt/flink-plugins/s3-fs-hadoop; \
    cp -r "$flink_home/plugins/metrics-prometheus" /opt/flink-plugins/; \
    cp /opt/streampulse-cache/jars/flink-plugin-s3-*/*.jar /opt/flink-plugins/s3-fs-hadoop/
ENV FLINK_PLUGINS_DIR=/opt/flink-plugins \
    FLINK_CONF_DIR=/opt/streampulse/flink-conf

RUN useradd --system --uid 9999 --home-dir /var/lib/streampulse --create-home streampulse \
 && chown -R streampulse /opt/streampulse-cache
USER streampulse
ENTRYPOINT ["streampulse"]
CMD ["--help"]
