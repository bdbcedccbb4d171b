"""The JVM pieces the jobs run with (config/jars.yaml): which groups of Maven artifacts, and where each group's
resolved jars are found in the cache. Resolving them with Maven is an operation (stack/jars.py).

Each group resolves into <cache>/jars/<group>-<hash>, where the hash covers the group's coordinates, so a changed
manifest gets a fresh folder and an unchanged one is not fetched again.

A group with `unpack: true` is one finished JVM application published as an archive (e.g. Apicurio Registry's
Quarkus server, groupId:artifactId:version:tar.gz:all): its one artifact is unpacked into the group's folder
(`unpacked_of`) instead of copying jars.
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
    unpack: bool = False
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        blob = json.dumps([self.artifacts, self.exclude, self.transitive, self.plugin]
                          + ([True] if self.unpack else [])).encode()  # the existing groups keep their folders
        object.__setattr__(self, "digest", hashlib.sha256(blob).hexdigest()[:12])

    def folder(self, cache: Path) -> Path:
        return cache / "jars" / f"{self.name}-{self.digest}"


def load_manifest(path: Path = MANIFEST) -> dict[str, JarGroup]:
    raw = yaml.safe_load(path.read_text())
    groups = {}
    for name, spec in (raw.get("groups") or {}).items():
        unpack = bool(spec.get("unpack", False))
        for coord in spec.get("artifacts", []):
            if unpack and len(coord.split(":")) not in (4, 5):
                raise JarFetchError(f"{path}: groups.{name}: {coord!r} is not "
                                    "groupId:artifactId:version:type[:classifier] (an archive to unpack)")
            if not unpack and len(coord.split(":")) != 3:
                raise JarFetchError(f"{path}: groups.{name}: {coord!r} is not groupId:artifactId:version")
        if unpack and len(spec.get("artifacts", [])) != 1:
            raise JarFetchError(f"{path}: groups.{name}: an unpack group holds exactly one archive")
        groups[name] = JarGroup(
            name=name,
            artifacts=tuple(spec["artifacts"]),
            exclude=tuple(spec.get("exclude", ())),
            transitive=spec.get("transitive", True),
            plugin=spec.get("plugin"),
            purpose=spec.get("purpose", ""),
            unpack=unpack,
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


def unpacked_of(group_name: str, cache: Path | None = None) -> Path:
    """The folder an unpack group's archive was unpacked into; raises with the command to run when it is not."""
    cache = cache or load_settings(with_credentials=False).stack.cache_path
    folder = load_manifest()[group_name].folder(cache)
    if not (folder / RESOLVED).exists():
        raise JarFetchError(f"{group_name!r} is not fetched into {folder}: run `streampulse jars fetch` "
                            "(or `make setup`)")
    return folder
