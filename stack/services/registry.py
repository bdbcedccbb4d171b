"""The schema registry: Apicurio Registry 3 (Confluent-compatible API), storing in the stack's PostgreSQL."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from psycopg import sql

from runtime import clients
from runtime.schema_registry import RegistryError, SchemaRegistry
from shared import jar_manifest
from shared.post import schema_json
from stack import jars
from stack.processes import ManagedProcess
from stack.services.base import StackError, SupervisedService

GROUP = "apicurio-registry"  # config/jars.yaml: the server, unpacked (quarkus-run.jar + lib/)
MIN_JAVA = 21  # Apicurio Registry 3.3's classes are compiled for Java 21
JVM_ROOT = Path("/usr/lib/jvm")


def java_version(home: Path) -> int | None:
    """The feature version of the JDK/JRE at `home` (its `release` file), None when it is not one."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(?:1\.)?(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match and (home / "bin" / "java").exists() else None


def find_java(configured: str = "", root: Path = JVM_ROOT) -> Path:
    """The `java` of registry.java_home, or of the newest JDK ≥ 21 under /usr/lib/jvm; StackError saying what to
    install when there is none."""
    if configured:
        home = Path(configured).expanduser()
        version = java_version(home)
        if version is None or version < MIN_JAVA:
            raise StackError(f"registry.java_home {home} is not a Java {MIN_JAVA}+ installation "
                             f"(found {version or 'no Java'}): Apicurio Registry needs Java {MIN_JAVA} or newer")
        return home / "bin" / "java"
    found = {home: java_version(home) for home in (sorted(root.iterdir()) if root.is_dir() else [])
             if not home.is_symlink()}
    usable = sorted((v, str(h)) for h, v in found.items() if v is not None and v >= MIN_JAVA)
    if not usable:
        seen = ", ".join(sorted({f"Java {v}" for v in found.values() if v})) or "none"
        raise StackError(
            f"the schema registry (Apicurio Registry 3.3) needs Java {MIN_JAVA} or newer; under {root} there is "
            f"{seen}. Install one — `sudo apt-get install -y openjdk-21-jre-headless` (Debian 13, Ubuntu 24.04) or "
            f"Eclipse Temurin 21+ (https://adoptium.net/installation/linux/) — or point registry.java_home "
            f"(STREAMPULSE_REGISTRY__JAVA_HOME) at one")
    return Path(usable[-1][1]) / "bin" / "java"


class Registry(SupervisedService):
    """Apicurio Registry 3.3 from its Maven archive, on Java 21+, bound to the stack's host, its artifacts in a
    database of its own on the stack's PostgreSQL (SQL storage); health on the management port."""

    name = "registry"
    stop_timeout_s = 30.0

    @property
    def address(self) -> str:
        return f"{self.settings.registry.host}:{self.settings.registry.port}"

    @property
    def health_url(self) -> str:
        registry = self.settings.registry
        return f"http://{registry.host}:{registry.management_port}/health/ready"

    def install(self) -> None:
        find_java(self.settings.registry.java_home)
        jars.fetch_all(self.settings.stack.cache_path, [GROUP])

    def ensure_database(self) -> None:
        """The registry's login and database on the stack's PostgreSQL (idempotent; the password set again)."""
        registry = self.settings.registry
        password = registry.db_password.get_secret_value() if registry.db_password else ""
        if not password:
            raise StackError("registry.db_password is not set: `streampulse stack up` generates it into "
                             f"{self.settings.credentials_file}")
        with clients.postgres(self.settings, "admin", database="postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (registry.db_user,)).fetchone()
            verifier = conn.pgconn.encrypt_password(password.encode(), registry.db_user.encode(),
                                                    b"scram-sha-256").decode()
            conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(registry.db_user), sql.Literal(verifier)))
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (registry.database,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(registry.database), sql.Identifier(registry.db_user)))

    def launch(self, proc: ManagedProcess) -> None:
        registry, pg = self.settings.registry, self.settings.postgres
        java = find_java(registry.java_home)
        server = jar_manifest.unpacked_of(GROUP, self.settings.stack.cache_path) / "quarkus-run.jar"
        self.ensure_database()
        self.home.mkdir(parents=True, exist_ok=True)
        properties = {
            "quarkus.http.host": registry.host, "quarkus.http.port": registry.port,
            "quarkus.management.host": registry.host, "quarkus.management.port": registry.management_port,
            "apicurio.storage.kind": "sql", "apicurio.storage.sql.kind": "postgresql",
            "apicurio.datasource.url": f"jdbc:postgresql://{pg.host}:{pg.port}/{registry.database}",
            "apicurio.datasource.username": registry.db_user,
            "apicurio.datasource.jdbc.initial-size": 2, "apicurio.datasource.jdbc.min-size": 2,
            "apicurio.datasource.jdbc.max-size": 10,
            "quarkus.log.console.color": "false",
        }
        # The password travels in the environment (Quarkus reads APICURIO_DATASOURCE_PASSWORD), never on the
        # command line that `ps` shows.
        proc.start([str(java), f"-Xmx{registry.heap}", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                    *(f"-D{key}={value}" for key, value in properties.items()), "-jar", str(server)],
                   env={"APICURIO_DATASOURCE_PASSWORD": registry.db_password.get_secret_value()}, cwd=self.home)

    def ready(self) -> bool:
        if self.pid() is None:  # another process on the port (a second stack's) is not ours
            return False
        with urllib.request.urlopen(self.health_url, timeout=3) as response:
            return response.status == 200

    def client(self) -> SchemaRegistry:
        return SchemaRegistry(self.settings.registry.base_url, self.settings.registry.timeout_s)

    def provision(self) -> tuple[int, str]:
        """Register SocialPost version 1 under the posts' subject and set the subject's compatibility rule
        (idempotent: the same schema gets its id again). Returns (v1's id, the subject's compatibility)."""
        registry = self.settings.registry
        try:
            with self.client() as client:
                schema_id = client.register(registry.subject, schema_json(1))
                client.set_compatibility(registry.subject, registry.compatibility)
                return schema_id, client.compatibility(registry.subject)
        except RegistryError as exc:
            raise StackError(f"provisioning the schema registry: {exc}") from None

