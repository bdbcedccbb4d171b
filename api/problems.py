"""Every error the API answers in one shape: RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

log = logging.getLogger("streampulse.api")

MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 422: "Invalid parameters",
          500: "Internal error", 503: "Service unavailable"}


class Problem(Exception):
    """An answer other than 200: its status, what went wrong, and (for a parameter) which one."""

    def __init__(self, status: int, detail: str, *, parameter: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.parameter = status, detail, parameter


def problem_response(request: Request, status: int, detail: str, errors: list[dict] | None = None) -> Response:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail,
            "instance": request.url.path}
    if errors:
        body["errors"] = errors
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    """Answer our own problems, FastAPI's parameter validation, unknown routes and crashes in the one shape."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        errors = [{"parameter": exc.parameter, "message": exc.detail}] if exc.parameter else None
        return problem_response(request, exc.status, exc.detail, errors)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"parameter": ".".join(str(part) for part in error["loc"][1:]) or error["loc"][0],
                   "message": error["msg"]} for error in exc.errors()]
        detail = "; ".join(f"{e['parameter']}: {e['message']}" for e in errors)
        return problem_response(request, 422, detail, errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        return problem_response(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return problem_response(request, 500, f"{type(exc).__name__}: the API could not answer; see its log")


PROBLEM_RESPONSES = {status: {"description": TITLES[status], "content": {MEDIA_TYPE: {"schema": {
    "type": "object", "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "instance": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object", "properties": {
                       "parameter": {"type": "string"}, "message": {"type": "string"}}}}}}}}}
    for status in (400, 422, 503)}
