"""A client of a Confluent-compatible schema registry (Apicurio Registry 3's `/apis/ccompat/v7`, the local stack's
registry, stack/services/registry.py): register a subject's schema — the registry checks it against the subject's
compatibility rule and answers 409 with its reason when it breaks it —, read a schema by id, set a subject's
compatibility. No Confluent library: io.confluent's jars are not served by the Maven registry this project reaches,
and confluent-kafka is not among the project's pinned packages; the API used here is a handful of calls over httpx.

The producers register their writer schema with it (connectors/producer.py); the jobs' minute stage gives
shared/post.py its `schema` lookup (runtime/minute_stage.py), which the wire format's reader caches per id.
"""

from __future__ import annotations

import json
import logging

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
CCOMPAT = "/apis/ccompat/v7"
START_HINT = "run `streampulse stack up` (or `make stack-up`)"


class RegistryError(RuntimeError):
    """A registry call that did not do what was asked."""


class RegistryUnavailable(RegistryError):
    """The registry did not answer (down, wrong URL): nothing about the schema is known."""

    def __init__(self, url: str, cause: object):
        super().__init__(f"the schema registry at {url} is not reachable ({cause}); {START_HINT}")
        self.url, self.cause = url, cause


class SchemaRefused(RegistryError):
    """The registry refused to register a schema under a subject: `reason` is its own message (e.g. the
    compatibility rule's violation)."""

    def __init__(self, subject: str, status: int, reason: str, url: str):
        super().__init__(f"the schema registry at {url} refused the schema for subject {subject!r} "
                         f"(HTTP {status}): {reason}")
        self.subject, self.status, self.reason = subject, status, reason


class SchemaRegistry:
    """A Confluent-compatible registry at `url` (e.g. http://127.0.0.1:18085; the ccompat path is added)."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + CCOMPAT, timeout=timeout_s,
                                  headers={"Accept": CONTENT_TYPE + ", application/json"})
        self._httpx = httpx
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))  # a line a call

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SchemaRegistry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict | None = None):
        try:
            return self._http.request(method, path, content=None if body is None else json.dumps(body),
                                      headers={"Content-Type": CONTENT_TYPE} if body is not None else None)
        except self._httpx.TransportError as exc:
            raise RegistryUnavailable(self.url, f"{type(exc).__name__}: {exc}") from None

    def register(self, subject: str, schema: dict | str) -> int:
        """Register `schema` (Avro) under `subject` and return its global id (the same id again for a schema
        registered before). Raises SchemaRefused with the registry's message when it refuses (409: the
        subject's compatibility rule; 422: not a valid schema)."""
        text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
        response = self._call("POST", f"/subjects/{subject}/versions", {"schema": text})
        if response.status_code in (409, 422):
            raise SchemaRefused(subject, response.status_code, _message(response), self.url)
        _check(response, f"registering a schema under {subject!r}", self.url)
        return int(response.json()["id"])

    def schema(self, schema_id: int) -> dict | None:
        """The Avro schema (parsed JSON) with this global id, or None when the registry has no such id."""
        response = self._call("GET", f"/schemas/ids/{schema_id}")
        if response.status_code == 404:
            return None
        _check(response, f"reading schema id {schema_id}", self.url)
        return json.loads(response.json()["schema"])

    def versions(self, subject: str) -> list[int]:
        response = self._call("GET", f"/subjects/{subject}/versions")
        if response.status_code == 404:
            return []
        _check(response, f"listing the versions of {subject!r}", self.url)
        return list(response.json())

    def delete_version(self, subject: str, version: int) -> None:
        """Remove one version of a subject for good (a soft delete, then the permanent one)."""
        for suffix in ("", "?permanent=true"):
            response = self._call("DELETE", f"/subjects/{subject}/versions/{version}{suffix}")
            if response.status_code != 404:
                _check(response, f"deleting version {version} of {subject!r}", self.url)

    def set_compatibility(self, subject: str, level: str) -> None:
        _check(self._call("PUT", f"/config/{subject}", {"compatibility": level}),
               f"setting {subject!r}'s compatibility to {level}", self.url)

    def compatibility(self, subject: str) -> str | None:
        """The subject's own compatibility level, None when it has none (the global one applies)."""
        response = self._call("GET", f"/config/{subject}")
        if response.status_code == 404:
            return None
        _check(response, f"reading {subject!r}'s compatibility", self.url)
        body = response.json()
        return body.get("compatibilityLevel") or body.get("compatibility")


def _message(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:1000]
    return str(body.get("message", body))[:1000] if isinstance(body, dict) else str(body)[:1000]


def _check(response, what: str, url: str) -> None:
    if response.status_code >= 400:
        raise RegistryError(f"schema registry at {url}: {what} failed with HTTP {response.status_code}: "
                            f"{_message(response)}")
