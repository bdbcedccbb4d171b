"""The JVM pieces the jobs run with (config/jars.yaml): which groups of Maven artifacts, and where each group's
resolved jars are found in the cache. Resolving them with Maven is an operation (stack/jars.py).

Each group resolves into <cache>/jars/<group>-<hash>, where the hash covers the group's coordinates, so a changed
manifest gets a fresh folder and an unchanged one is not fetched again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from shared.settings import PROJECT_ROOT, load_settings

MANIFEST = PROJECT_ROOT / "config" / "jars.yaml"
RESOLVED = ".resolved.json"  # written into a group's folder once every jar of it is there


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


def jars_of(group_name: str, cache: Path | None = None) -> list[Path]:
    """The resolved jars of a group; raises with the command to run when they are not fetched yet."""
    cache = cache or load_settings(with_credentials=False).stack.cache_path
    group = load_manifest()[group_name]
    folder = group.folder(cache)
    if not (folder / RESOLVED).exists():
        raise JarFetchError(f"jar group {group_name!r} is not fetched into {folder}: run `streampulse jars fetch`")
    return sorted(folder.glob("*.jar"))
