"""`streampulse jars fetch`: resolve the JVM pieces of config/jars.yaml (shared/jar_manifest.py) with Maven's
dependency plugin into their cache folders (copy-dependencies; `unpack` for an archive group such as the schema
registry's server). A failed resolution names the coordinates Maven could not find.
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
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{group.name}-", dir=dest.parent))
    try:
        pom = staging / "pom.xml"
        pom.write_text(_pom(group if not group.unpack else JarGroup(group.name, ())))
        if group.unpack:
            _unpack(group, pom, staging / "out")
            _install(staging / "out", dest)
            return dest
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
        _install(staging / "out", dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _unpack(group: JarGroup, pom: Path, out: Path) -> None:
    """An archive group: Maven's dependency:unpack of its one artifact (g:a:v:type[:classifier]) into `out`."""
    (coord,) = group.artifacts
    cmd = ["mvn", "-B", "-q", "-f", str(pom), f"{DEPENDENCY_PLUGIN}:unpack", f"-Dartifact={coord}",
           f"-DoutputDirectory={out}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise JarFetchError(f"Maven could not resolve and unpack {coord} (group {group.name!r})"
                            f"\n--- mvn output (last lines) ---\n{_tail(result.stdout + result.stderr)}")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    if not files:
        raise JarFetchError(f"group {group.name!r}: {coord} resolved but unpacked nothing into {out}")
    (out / RESOLVED).write_text(json.dumps({"artifacts": group.artifacts, "files": len(files),
                                            "top": sorted({f.split("/")[0] for f in files})}, indent=1))


def _install(out: Path, dest: Path) -> None:
    """Move a finished folder into place (its .resolved.json written last, inside it)."""
    if dest.exists():
        shutil.rmtree(dest)
    out.rename(dest)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def fetch_all(cache: Path, names: list[str] | None = None) -> dict[str, Path]:
    groups = load_manifest()
    unknown = set(names or ()) - set(groups)
    if unknown:
        raise JarFetchError(f"unknown jar group(s) {sorted(unknown)}; the manifest has {sorted(groups)}")
    return {name: fetch_group(groups[name], cache) for name in (names or groups)}
