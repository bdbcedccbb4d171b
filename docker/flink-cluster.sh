#!/bin/sh
# Start a Flink JobManager or TaskManager in the foreground from the PyFlink wheel's own scripts,
# with flink-conf/config.yaml plus the values that depend on where it runs (-D dynamic properties).
# Usage: flink-cluster.sh jobmanager|taskmanager     (environment: see docker-compose.yml)
set -eu
role=${1:?usage: flink-cluster.sh jobmanager|taskmanager}
case "$role" in jobmanager|taskmanager) ;; *) echo "unknown role '$role': expected jobmanager or taskmanager" >&2; exit 2;; esac
flink_home=$(python -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))')
: "${FLINK_JOBMANAGER_HOST:?set FLINK_JOBMANAGER_HOST to the JobManager's host name}"
: "${STREAMPULSE_MINIO__ACCESS_KEY:?set STREAMPULSE_MINIO__ACCESS_KEY (MinIO holds checkpoints and savepoints)}"
: "${STREAMPULSE_MINIO__SECRET_KEY:?set STREAMPULSE_MINIO__SECRET_KEY}"
bucket=${STREAMPULSE_MINIO__BUCKET:-streampulse-lake}
# MinIO's keys go into a private copy of the configuration, not into -D arguments that `ps` shows.
conf_dir=$(mktemp -d)
cp "${FLINK_CONF_DIR:?set FLINK_CONF_DIR to the folder of flink-conf/config.yaml}"/* "$conf_dir"/
printf '\n# Written at start by docker/flink-cluster.sh.\ns3.access-key: "%s"\ns3.secret-key: "%s"\n' \
  "$STREAMPULSE_MINIO__ACCESS_KEY" "$STREAMPULSE_MINIO__SECRET_KEY" >> "$conf_dir/config.yaml"
chmod 600 "$conf_dir/config.yaml"
export FLINK_CONF_DIR="$conf_dir"
# Inside the containers' network the JobManager and TaskManagers reach each other by host name, so they
# listen on every interface there; docker-compose.yml publishes only the Web UI, on the host's loopback.
set -- \
  -D "jobmanager.rpc.address=$FLINK_JOBMANAGER_HOST" \
  -D "jobmanager.bind-host=0.0.0.0" \
  -D "taskmanager.bind-host=0.0.0.0" \
  -D "rest.address=$FLINK_JOBMANAGER_HOST" \
  -D "rest.bind-address=0.0.0.0" \
  -D "taskmanager.host=$(hostname)" \
  -D "execution.checkpointing.dir=s3://$bucket/flink/checkpoints" \
  -D "execution.checkpointing.savepoint-dir=s3://$bucket/flink/savepoints" \
  -D "s3.endpoint=http://${STREAMPULSE_MINIO__HOST:-minio}:${STREAMPULSE_MINIO__PORT:-9000}" \
  -D "python.executable=$(command -v python)"
# The wheel keeps flink-python in opt/; a cluster needs it on its classpath to run Python operators.
FLINK_LIB_DIR=$(mktemp -d)
ln -s "$flink_home"/lib/*.jar "$flink_home"/opt/flink-python-*.jar "$FLINK_LIB_DIR"/
export FLINK_LIB_DIR
exec "$flink_home/bin/$role.sh" start-foreground "$@"
