"""MinIO: built once with go install; the lake's bucket and its lifecycle rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from runtime import clients
from stack.processes import ManagedProcess
from stack.services.base import StackError, SupervisedService, tail_text


class Minio(SupervisedService):
    """MinIO built from its Go module with `go install`, cached per module version."""

    name = "minio"
    MODULE = "github.com/minio/minio"

    @property
    def address(self) -> str:
        return self.settings.minio.endpoint

    @property
    def binary(self) -> Path:
        return self.settings.stack.cache_path / "bin" / f"minio-{self.settings.minio.module_version}" / "minio"

    def install(self) -> None:
        if self.binary.exists():
            return
        if shutil.which("go") is None:
            raise StackError("MinIO is built with Go, which is not on PATH: install Go 1.24+ (apt-get install golang)")
        version = self.settings.minio.module_version
        print(f"[minio] building {self.MODULE}@{version} with go install (first time only, a few minutes; "
              f"cached in {self.binary.parent})", file=sys.stderr, flush=True)
        result = subprocess.run(["go", "install", f"{self.MODULE}@{version}"], capture_output=True, text=True,
                                env={**os.environ, "GOBIN": str(self.binary.parent), "CGO_ENABLED": "0"})
        if result.returncode != 0:
            raise StackError(f"go install {self.MODULE}@{version} failed:\n{tail_text(result.stderr)}")

    def launch(self, proc: ManagedProcess) -> None:
        ms = self.settings.minio
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        proc.start(
            [str(self.binary), "server", str(self.home / "data"), "--address", f"{ms.host}:{ms.port}",
             "--console-address", f"{ms.host}:{ms.console_port}", "--quiet"],
            env={"MINIO_ROOT_USER": ms.access_key.get_secret_value(),
                 "MINIO_ROOT_PASSWORD": ms.secret_key.get_secret_value(),
                 "MINIO_UPDATE": "off", "MINIO_BROWSER_REDIRECT": "off"},
        )

    def ready(self) -> bool:
        url = f"http://{self.settings.minio.endpoint}/minio/health/ready"
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200

    def create_bucket(self) -> bool:
        """Create the lake's bucket if missing (True when it was) and set its lifecycle rules from
        minio.retention_days, every time: a changed retention takes effect at the next `up`."""
        from minio.commonconfig import ENABLED, Filter
        from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

        client = clients.minio(self.settings)
        ms = self.settings.minio
        made = not client.bucket_exists(ms.bucket)
        if made:
            client.make_bucket(ms.bucket)
        rules = [Rule(ENABLED, rule_filter=Filter(prefix=prefix), rule_id=f"expire {prefix}",
                      expiration=Expiration(days=days)) for prefix, days in sorted(ms.retention_days.items())]
        if rules:
            client.set_bucket_lifecycle(ms.bucket, LifecycleConfig(rules))
        else:
            client.delete_bucket_lifecycle(ms.bucket)
        return made
