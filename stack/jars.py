"""`streampulse jars fetch`: resolve the JVM pieces of config/jars.yaml (shared/jar_manifest.py) with Maven's
dependency plugin into their cache folders. A failed resolution names the coordinates Maven could not find.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

from shared.jar_manifest import RESOLVED, JarFetchError, JarGroup, load_manifest

log = logging.getLogger(__name__)

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"


def _pom(group: JarGroup) -> str:
    exclusions = "".join(
        f"<exclusion><groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId></exclusion>"
        for g, a in (e.split(":") for e in group.exclude)
    )
    deps = "".join(
        f"<dependency><groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId>"
        f"<version>{escape(v)}</version><exclusions>{exclusions}</exclusions></dependency>"
        for g, a, v in (c.split(":") for c in group.artifacts)
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>streampulse.jars</groupId><artifactId>{escape(group.name)}</artifactId>"
        f"<version>1</version><packaging>pom</packaging><dependencies>{deps}</dependencies></project>"
    )


def fetch_group(group: JarGroup, cache: Path) -> Path:
    """Resolve one group into its cache folder (idempotent) and return the folder."""
    dest = group.folder(cache)
    if (dest / RESOLVED).exists():
        return dest
    if shutil.which("mvn") is None:
        raise JarFetchError("Maven (mvn) is not on PATH: install it (apt-get install maven) and run again")
    log.info("resolving %s (%d artifacts) with Maven into %s", group.name, len(group.artifacts), dest)
    staging = Path(tempfile.mkdtemp(prefix=f"{group.name}-", dir=dest.parent if dest.parent.exists() else None))
    try:
        pom = staging / "pom.xml"
        pom.write_text(_pom(group))
        cmd = [
            "mvn", "-B", "-q", "-f", str(pom), f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={staging / 'out'}",
            f"-DexcludeTransitive={'false' if group.transitive else 'true'}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            missing = [c for c in group.artifacts if c in result.stdout + result.stderr]
            raise JarFetchError(
                f"Maven could not resolve jar group {group.name!r}"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + f"\n--- mvn output (last lines) ---\n{_tail(result.stdout + result.stderr)}"
            )
        jars = sorted(p.name for p in (staging / "out").glob("*.jar"))
        for coord in group.artifacts:
            artifact, version = coord.split(":")[1], coord.split(":")[2]
            if f"{artifact}-{version}.jar" not in jars:
                raise JarFetchError(f"jar group {group.name!r}: {coord} resolved but no jar was copied")
        (staging / "out" / RESOLVED).write_text(json.dumps({"artifacts": group.artifacts, "jars": jars}, indent=1))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        (staging / "out").rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def fetch_all(cache: Path, names: list[str] | None = None) -> dict[str, Path]:
    groups = load_manifest()
    unknown = set(names or ()) - set(groups)
    if unknown:
        raise JarFetchError(f"unknown jar group(s) {sorted(unknown)}; the manifest has {sorted(groups)}")
    return {name: fetch_group(groups[name], cache) for name in (names or groups)}
