"""One error shape for every JSON endpoint: {"error": {"code", "message", "field"}}.

Codes are stable and documented in README ("API errors").
"""

from __future__ import annotations

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error a JSON endpoint reports to its caller."""

    status = 400

    def __init__(self, code: str, message: str, field: str | None = None, status: int | None = None, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        self.extra = extra

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": capped(self.message), "field": capped(self.field, 120)}
        body.update(self.extra)
        return {"error": body}


class ValidationError(ApiError):
    status = 422

    def __init__(self, message: str, field: str | None = None, code: str = "invalid", **extra):
        super().__init__(code, message, field, **extra)


class NotFound(ApiError):
    status = 404

    def __init__(self, message: str, field: str | None = None, code: str = "not_found"):
        super().__init__(code, message, field)


class UnknownKey(ValidationError):
    """A request named a service, location or staff member this business does not have (422)."""

    def __init__(self, message: str, field: str):
        super().__init__(message, field, code="unknown_key")


class Conflict(ApiError):
    status = 409


class SlotUnavailable(Conflict):
    """The time asked for is taken (the database refused the overlap) or was lost to a deadlock."""

    def __init__(self, message: str = "this time is no longer available", **extra):
        super().__init__("slot_unavailable", message, "start", **extra)


MAX_ECHO = 300


def capped(text, limit: int = MAX_ECHO):
    """Error texts may echo input: never more than `limit` characters of it."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def error_response(code: str, message: str, status: int, field: str | None = None):
    return jsonify({"error": {"code": code, "message": capped(message), "field": capped(field, 120)}}), status


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/health")) or request.accept_mimetypes.best == "application/json"


def _rollback() -> None:
    try:
        from app.extensions import db

        db.session.rollback()
    except Exception:  # noqa: BLE001 - the answer matters more than a failed rollback
        pass


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(exc.to_dict()), exc.status

    # Safety nets for input the validators did not stop (a missed check must not be a 500):
    # dates/numbers beyond range, JSON nested beyond the parser, and values PostgreSQL
    # refuses as data (SQLSTATE class 22: out of range, bad text, negative LIMIT...).
    @app.errorhandler(OverflowError)
    def _overflow(exc):
        _rollback()
        return error_response("invalid", "a date or number is out of range", 422)

    @app.errorhandler(RecursionError)
    def _too_deep(exc):
        _rollback()
        return error_response("invalid_json", "the request is nested too deeply", 400)

    from sqlalchemy.exc import DBAPIError

    @app.errorhandler(DBAPIError)
    def _data_error(exc):
        _rollback()
        state = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
        if state.startswith("22"):
            return error_response("invalid", "a value in the request is not valid here", 400)
        raise exc

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(code, exc.description or exc.name, exc.code or 500)
