"""Resolve the JVM pieces listed in config/jars.yaml with Maven into a cache outside git.

Each group is resolved with maven-dependency-plugin into <cache>/jars/<group>-<hash>, where the
hash covers the group's coordinates, so a changed manifest gets a fresh folder and an unchanged one
is not fetched again. A failed resolution names the coordinates Maven could not find.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

from shared.settings import PROJECT_ROOT, load_settings

log = logging.getLogger(__name__)

MANIFEST = PROJECT_ROOT / "config" / "jars.yaml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_DONE = ".resolved.json"


class JarFetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class JarGroup:
    name: str
    artifacts: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    transitive: bool = True
    plugin: str | None = None
    purpose: str = ""
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        blob = json.dumps([self.artifacts, self.exclude, self.transitive, self.plugin]).encode()
        object.__setattr__(self, "digest", hashlib.sha256(blob).hexdigest()[:12])

    def folder(self, cache: Path) -> Path:
        return cache / "jars" / f"{self.name}-{self.digest}"


def load_manifest(path: Path = MANIFEST) -> dict[str, JarGroup]:
    raw = yaml.safe_load(path.read_text())
    groups = {}
    for name, spec in (raw.get("groups") or {}).items():
        for coord in spec.get("artifacts", []):
            if len(coord.split(":")) != 3:
                raise JarFetchError(f"{path}: groups.{name}: {coord!r} is not groupId:artifactId:version")
        groups[name] = JarGroup(
            name=name,
            artifacts=tuple(spec["artifacts"]),
            exclude=tuple(spec.get("exclude", ())),
            transitive=spec.get("transitive", True),
            plugin=spec.get("plugin"),
            purpose=spec.get("purpose", ""),
        )
    return groups


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
    if (dest / _DONE).exists():
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
        (staging / "out" / _DONE).write_text(json.dumps({"artifacts": group.artifacts, "jars": jars}, indent=1))
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


def jars_of(group_name: str, cache: Path | None = None) -> list[Path]:
    """The resolved jars of a group; raises with the command to run when they are not fetched yet."""
    cache = cache or load_settings(with_credentials=False).stack.cache_path
    group = load_manifest()[group_name]
    folder = group.folder(cache)
    if not (folder / _DONE).exists():
        raise JarFetchError(f"jar group {group_name!r} is not fetched into {folder}: run `streampulse jars fetch`")
    return sorted(folder.glob("*.jar"))


def install_into(dest: Path | None, plugins: Path | None, cache: Path) -> None:
    """Copy fetched jars into a Flink distribution's lib (dest) and plugins folders (for images)."""
    for name, folder in fetch_all(cache).items():
        group = load_manifest()[name]
        if group.plugin and plugins:
            target = plugins / group.plugin
        elif not group.plugin and dest and name.startswith("flink-"):
            target = dest
        else:
            continue
        target.mkdir(parents=True, exist_ok=True)
        for jar in folder.glob("*.jar"):
            shutil.copy2(jar, target / jar.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.jars", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="resolve the manifest's jar groups into the cache")
    fetch.add_argument("groups", nargs="*", help="only these groups (default: all)")
    fetch.add_argument("--dest", type=Path, help="also copy Flink job jars into this folder (e.g. /opt/flink/lib)")
    fetch.add_argument("--plugins", type=Path, help="also copy Flink plugins into this plugins folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    cache = load_settings(with_credentials=False).stack.cache_path
    try:
        for name, folder in fetch_all(cache, args.groups).items():
            print(f"{name}: {folder} ({len(list(folder.glob('*.jar')))} jars)")
        if args.dest or args.plugins:
            install_into(args.dest, args.plugins, cache)
    except JarFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
