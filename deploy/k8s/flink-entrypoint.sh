#!/bin/sh
# The Flink Kubernetes Operator's entry point in the StreamPulse image (flinkConfiguration
# kubernetes.entry.path: /opt/streampulse/deploy/k8s/flink-entrypoint.sh; the image copies the repository to
# /opt/streampulse). Flink's native Kubernetes integration starts every JobManager and TaskManager container as
#   <kubernetes.entry.path> bash -c "kubernetes-jobmanager.sh kubernetes-application ..."   (or taskmanager)
# and mounts the generated config.yaml at kubernetes.flink.conf.dir with FLINK_CONF_DIR pointing there. The
# official flink image's /docker-entrypoint.sh ends in `exec "$@"` with Flink's bin/ on PATH; this image is
# python:3.11-slim with the apache-flink wheel, whose Flink distribution is the pyflink package folder, so this
# script puts that folder's bin/ on PATH, sets FLINK_HOME to it and runs the command it was given.
set -eu
flink_home=$(python -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))')
export FLINK_HOME="$flink_home"
export PATH="$flink_home/bin:$PATH"
# The image runs as an unprivileged user that cannot write into site-packages (Flink's default log folder).
mkdir -p "${FLINK_LOG_DIR:-/var/lib/streampulse/flink-log}"
exec "$@"
