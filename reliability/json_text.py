"""JSON text written hostile on purpose: NaN / Infinity literals, integers of any size, duplicate keys,
verbatim fragments, lone surrogates — what ``json.dumps`` refuses to write. The strategies build values
with :class:`Raw` and :class:`Dup` in them; :func:`to_bytes` renders a request body."""

from __future__ import annotations

import json
import math


class Raw(str):
    """JSON text inserted verbatim (NaN, Infinity, 1e999, 0x10, ...)."""


class Dup(list):
    """A JSON object as (key, value) pairs: keys may repeat."""


def dump(value: object, ascii_only: bool = False) -> str:
    """JSON text of ``value``, hostile on purpose: NaN / Infinity literals, integers of any size, duplicate
    keys (:class:`Dup`), verbatim fragments (:class:`Raw`), lone surrogates."""
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    if isinstance(value, Dup):
        return "{" + ",".join(f"{dump(str(k), ascii_only)}:{dump(v, ascii_only)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{dump(str(k), ascii_only)}:{dump(v, ascii_only)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    raise TypeError(type(value))


def to_bytes(value: object, ascii_only: bool = False) -> bytes:
    return dump(value, ascii_only).encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8
