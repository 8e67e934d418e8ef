"""fal's 422 answers, byte for byte: schema validation errors and typed model errors.

A fal app is a FastAPI app.  A JSON body is read by Starlette (``json.loads`` on the raw
bytes), validated by pydantic with ``validate_python(..., from_attributes=True)``, and a
failure is answered by fal's own ``RequestValidationError`` handler (fal SDK
``projects/fal/src/fal/api/api.py`` ``_build_app``; WAN25.md §3.1)::

    JSONResponse({"detail": jsonable_encoder(exc.errors(), custom_encoder={...})},
                 422, headers={"x-fal-billable-units": "0"})

This module reproduces that pipeline without FastAPI in the loop, so an endpoint's
``parse()`` stays cheap and never raises.  ``tests/test_wan25_validation.py`` checks the
bytes against a real FastAPI app running fal's handler.

Typed model errors (``image_load_error`` ...) follow fal's documented error shape instead
(WAN25.md §3.2; PROTOCOL.md §5): ``loc, msg, type, url, ctx?, input?``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from typing import TYPE_CHECKING

import orjson

from mock_server.core.answers import Answer

if TYPE_CHECKING:  # pydantic loads when a body first needs it, not at start-up
    from pydantic import TypeAdapter, ValidationError

__all__ = [
    "BILLABLE_ZERO",
    "ERRORS_DOC_URL",
    "field_error_answer",
    "json_answer",
    "model_error_answer",
    "decode_json_body",
    "validate_data",
    "schema_error_answer",
]

T = TypeVar("T")

#: fal's schema-422 handler always marks the request as not billable (fal SDK ``_build_app``).
BILLABLE_ZERO: tuple[tuple[str, str], ...] = (("x-fal-billable-units", "0"),)

#: Prefix of the ``url`` key in fal's documented typed errors (WAN25.md §3.2).
ERRORS_DOC_URL = "https://docs.fal.ai/errors#"

# FastAPI answers a body it cannot decode at all (invalid UTF-8, numbers with more than
# 4300 digits, nesting deeper than json's recursion limit) with a 400 from its generic
# ``except Exception`` branch in ``fastapi/routing.py``; fal does not override it.
_NOT_PARSED = object()
# A run of 19+ digits, found by mapping every digit to "0" (no other byte is "0"): a bytes
# translate and a substring search cost a quarter of the regex ``[0-9]{19}``.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19
_UNPARSABLE_BODY = Answer(400, b'{"detail":"There was an error parsing the body"}')
# What fal's catch-all handler sends for anything unexpected (fal SDK ``_build_app``).
_INTERNAL_ERROR = Answer(500, b'{"detail":"Internal Server Error"}')


def json_answer(status: int, content: Any, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """An Answer whose body is rendered exactly like Starlette's ``JSONResponse``.

    ``json.dumps(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))``
    encoded as UTF-8 (``starlette/responses.py``).
    """
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
    return Answer(status, body.encode("utf-8"), headers)


# -- schema (pydantic) errors -------------------------------------------------------


def _fal_encode(value: Any) -> Any:
    """FastAPI's ``jsonable_encoder`` with fal's ``custom_encoder``, for JSON-born values.

    fal's encoder (fal SDK ``_build_app``, WAN25.md §3.1): bytes -> ``"<binary N bytes>"``;
    str -> invalid UTF-8 (lone surrogates from ``\\udXXX`` escapes) replaced by ``?``;
    non-finite floats (``NaN``/``Infinity`` are valid for ``json.loads``) -> ``str(x)``;
    exceptions -> ``str(e)``.  jsonable_encoder itself drops dict keys starting with
    ``_sa`` (its ``sqlalchemy_safe`` default) and turns tuples into lists.
    """
    kind = type(value)
    if kind is str:
        return value.encode("utf-8", "replace").decode("utf-8")
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if value is None or kind is int or kind is bool:
        return value
    if kind is dict:
        encoded: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("_sa"):
                continue
            encoded[_fal_encode(key)] = _fal_encode(item)
        return encoded
    if kind is list or kind is tuple:
        return [_fal_encode(item) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<binary {len(value)} bytes>"
    if isinstance(value, BaseException):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    # Anything else is never produced by json.loads or by pydantic's ctx for JSON input
    # (the tests compare every kind that is with FastAPI's own encoder).
    return str(value)


def schema_error_answer(errors: Iterable[Mapping[str, Any]], loc_prefix: Sequence[str | int] = ("body",)) -> Answer:
    """fal's 422 for pydantic-style error dicts (``ValidationError.errors(include_url=False)``).

    ``loc`` is prefixed (FastAPI's ``_regenerate_error_with_loc`` keeps the key's place, so
    the key order stays ``type, loc, msg, input, ctx``).
    """
    prefix = list(loc_prefix)
    detail = []
    for error in errors:
        item = dict(error)
        item.pop("url", None)
        if "loc" in item:
            item["loc"] = prefix + list(item["loc"])
        detail.append(_fal_encode(item))
    return json_answer(422, {"detail": detail}, BILLABLE_ZERO)


def _validation_error_answer(exc: "ValidationError") -> Answer:
    return schema_error_answer(exc.errors(include_url=False))


def decode_json_body(body: bytes) -> Any:
    """A raw request body as FastAPI decodes it: the JSON value, or the exact Answer
    FastAPI + fal's handler send when it cannot be decoded:

    - empty body: ``missing`` at ``["body"]`` with ``input: null``;
    - malformed JSON: ``json_invalid`` at ``["body", <char position>]``, ``input: {}``,
      ``ctx.error`` = ``json.JSONDecodeError.msg`` (``fastapi/routing.py``);
    - undecodable bytes: FastAPI's 400 ``There was an error parsing the body``.
    """
    if not body:
        return schema_error_answer(
            [{"type": "missing", "loc": (), "msg": "Field required", "input": None}]
        )
    # orjson refuses what json.loads alone accepts (NaN, a BOM, UTF-16) and agrees on the
    # rest, except that it turns integers beyond 64 bits into floats: a body with a run
    # of 19+ digits goes to the stdlib parser (FastAPI's), which decides every odd body.
    data = _NOT_PARSED
    if _LONG_DIGITS not in body.translate(_DIGITS_TO_ZERO):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        if data is _NOT_PARSED:
            data = json.loads(body)
    except json.JSONDecodeError as exc:
        return schema_error_answer(
            [{"type": "json_invalid", "loc": (exc.pos,), "msg": "JSON decode error", "input": {}, "ctx": {"error": exc.msg}}]
        )
    except Exception:  # UnicodeDecodeError, RecursionError, int digit limit ...
        return _UNPARSABLE_BODY
    return data


def validate_data(data: Any, adapter: "TypeAdapter[T]") -> T | Answer:
    """Validate a decoded body as FastAPI does (``validate_python(from_attributes=True)``):
    the value, or the exact 422 for anything pydantic rejects (including a non-object
    body: ``model_attributes_type``); never raises."""
    from pydantic import ValidationError

    try:
        return adapter.validate_python(data, from_attributes=True)
    except ValidationError as exc:
        try:
            return _validation_error_answer(exc)
        except Exception:  # e.g. RecursionError encoding a pathological echo
            return _INTERNAL_ERROR
    except Exception:
        return _INTERNAL_ERROR


# -- app-level errors -----------------------------------------------------------------


def field_error_answer(field: str, message: str, type: str = "value_error", status: int = 422) -> Answer:
    """fal's ``FieldException`` answer: ``{"detail":[{"loc":["body",field],"msg","type"}]}``.

    fal SDK ``exceptions/_base.py`` ``to_pydantic_format``; the handler adds
    ``x-fal-billable-units`` only when the units are nonzero, so no header here.
    """
    return json_answer(status, {"detail": [{"loc": ["body", field], "msg": message, "type": type}]})


def model_error_answer(
    type: str,
    msg: str,
    loc: Sequence[str | int],
    *,
    ctx: Mapping[str, Any] | None = None,
    input: Any = None,
    has_input: bool = True,
    status: int = 422,
) -> Answer:
    """One of fal's documented typed model errors (WAN25.md §3.2).

    Key order follows the documented example: ``loc, msg, type, url, ctx, input``
    (``ctx`` only when given; ``input`` unless ``has_input`` is False).
    """
    item: dict[str, Any] = {"loc": list(loc), "msg": msg, "type": type, "url": ERRORS_DOC_URL + type}
    if ctx is not None:
        item["ctx"] = dict(ctx)
    if has_input:
        item["input"] = input
    return json_answer(status, {"detail": [_fal_encode(item)]})
