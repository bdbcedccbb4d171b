"""The services of the local stack, each installed when missing, started as an ordinary
process on a loopback port, checked for readiness and stopped by pid.
"""

from stack.services.base import Service, StackError, SupervisedService, apt_install, new_secret, tail_text
from stack.services.kafka import Kafka, kafka_acls, retention_configs
from stack.services.minio import Minio
from stack.services.postgres import Postgres
from stack.services.prometheus import Prometheus
from stack.services.redis import Redis
from stack.services.registry import Registry

__all__ = ["Kafka", "Minio", "Postgres", "Prometheus", "Redis", "Registry", "Service", "StackError",
           "SupervisedService", "apt_install", "kafka_acls", "new_secret", "retention_configs", "tail_text"]
