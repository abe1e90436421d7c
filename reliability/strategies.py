"""Hypothesis strategies for what goes into an inference request, whatever carries it: numbers (plain and
hostile), junk scalars, arbitrary JSON values, weird names, datatypes, tensor data with right or wrong
shapes, whole V2 inference documents; and the drawing of a seeded number of distinct examples from them
(:func:`generate`, :func:`draw_families`). The HTTP requests built from them are in
:mod:`reliability.http_requests`."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from reliability.json_text import Dup, Raw
from reliability.target import FEATURES, NUMERIC, OUTPUTS, WIDTH

NAN, INF = float("nan"), float("inf")
RAW_NUMBERS = [
    "NaN", "-NaN", "nan", "Infinity", "-Infinity", "inf", "1e999", "-1e999", "1e400", "0x1A", "+1", "01", ".5",
    "1.", "1e", "-", "1_000", "\uff11", "\u0661", "9" * 400, "0." + "0" * 400 + "1", "1E+39", "-3.5e38",
    "18446744073709551616", "-9223372036854775809", "1" + "0" * 5000,
]  # fmt: skip
SPECIAL_FLOATS = [
    NAN, INF, -INF, 3.4028234663852886e38, 3.4028236e38, 1e39, 1e308, 1.7976931348623157e308, 5e-324, -0.0,
    65504.0, 65520.0, 1e-45, 2.0**63, 2.0**64,
]  # fmt: skip
SPECIAL_INTS = [
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    2**31,
    2**53 + 1,
    10**30,
    -(10**30),
]

plain_number = st.floats(-1e6, 1e6, allow_nan=False, width=32) | st.integers(-1000, 10**6)
hostile_number = st.one_of(
    st.floats(),
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-(2**80), 2**80),
    st.sampled_from(SPECIAL_FLOATS),
    st.sampled_from(SPECIAL_INTS),
    st.sampled_from([Raw(r) for r in RAW_NUMBERS]),
)
junk_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.just([]),
    st.just({}),
    st.sampled_from(["1", "1.0", "NaN", "", "\ud800", "\x00", "\u202e1"]),
)
any_json = st.recursive(
    st.none() | st.booleans() | plain_number | hostile_number | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=4)
        | st.lists(st.tuples(st.sampled_from(["inputs", "features", "a", ""]), children), max_size=3).map(Dup)
    ),
    max_leaves=20,
)
weird_text = st.text(max_size=24) | st.sampled_from(
    ["", " ", "features ", "FEATURES", "Features", "features\x00", "f\u0435atures", "\ud800", "\u202efeatures",
     "../features", "%00", "features" * 200, "\U0001f4a5", "credit-risk"]
)  # fmt: skip
datatype_strategy = st.one_of(
    st.sampled_from(NUMERIC),
    st.sampled_from(NUMERIC),
    st.sampled_from(NUMERIC).map(str.lower),
    st.sampled_from(
        ["BYTES", "BOOL", "FP8", "BF16", "STRING", "", "FP32 ", "INT128", "float32", "\u0130NT8"]
    ),
    st.text(max_size=6),
    st.sampled_from([None, 32, [], {}, True]),
)


@st.composite
def cells(draw: st.DrawFn, count: int, hostility: int) -> list[object]:
    """``count`` values: mostly plain numbers, ``hostility`` percent chance of hostile ones sprinkled in."""
    pool = draw(st.lists(plain_number, min_size=1, max_size=6))
    values: list[object] = [pool[i % len(pool)] for i in range(count)]
    if count and draw(st.integers(0, 99)) < hostility:
        for _ in range(draw(st.integers(1, 3))):
            values[draw(st.integers(0, count - 1))] = draw(hostile_number | junk_scalar)
    return values


@st.composite
def shaped(draw: st.DrawFn, rows: int, width: int, hostility: int) -> tuple[list[object], object]:
    """A tensor's ``data`` (flat, nested, ragged or over-nested) and a ``shape`` (right or wrong)."""
    flat = draw(cells(rows * width, hostility))
    layout = draw(st.sampled_from(["nested", "nested", "flat", "ragged", "deeper", "scalar"]))
    if layout == "nested":
        data: list[object] = [flat[r * width : (r + 1) * width] for r in range(rows)]
    elif layout == "ragged" and rows:
        data = [flat[r * width : (r + 1) * width] for r in range(rows)]
        data[draw(st.integers(0, rows - 1))] = flat[: max(0, width - 1)] + [[1.0]]
    elif layout == "deeper":
        data = [[[v] for v in flat[r * width : (r + 1) * width]] for r in range(rows)]
    elif layout == "scalar":
        data = draw(st.sampled_from([[1.0], [[]], [[[]]], [None], [{"a": 1}], [[1, [2]]]]))
    else:
        data = flat
    shape: object = [rows, width]
    roll = draw(st.integers(0, 99))
    if roll < 25:
        shape = draw(
            st.sampled_from(
                [[rows * width], [width, rows], [rows, width, 1], [1, rows, width], [], [rows], [-1, width],
                 [rows, -width], [0, width], [0, 2**63], [0, 2**64 - 1], [0, 2**62, 2**62], [2**31, width],
                 [2**63 - 1, width], [rows, 2**40, 0], [rows + 1, width], [1.0 * rows, width], [True, width],
                 [str(rows), width], [[rows], width], "1,26", None, {"rows": rows}]
            )
        )  # fmt: skip
    elif roll < 35:
        shape = draw(st.lists(st.integers(-(2**63), 2**64 - 1) | st.integers(-3, 30), max_size=5))
    return data, shape


@st.composite
def input_spec(
    draw: st.DrawFn, name: object, rows: int, width: int, datatype: object, hostility: int
) -> dict:
    data, shape = draw(shaped(rows, width, hostility))
    spec: dict[str, object] = {"name": name, "shape": shape, "datatype": datatype, "data": data}
    roll = draw(st.integers(0, 99))
    if roll < 6:
        del spec[draw(st.sampled_from(["name", "shape", "datatype", "data"]))]
    elif roll < 12:
        spec["data"] = draw(junk_scalar | st.sampled_from(["1,2,3", 1.0, Raw("NaN")]))
    elif roll < 20:
        spec["parameters"] = draw(
            any_json
            | st.fixed_dictionaries({"binary_data_size": any_json})
            | st.just({"content_type": "str"})
        )
    elif roll < 23:
        spec[draw(st.text(max_size=6))] = draw(any_json)
    return spec


@st.composite
def v2_document(draw: st.DrawFn) -> object:
    rows = draw(st.sampled_from([1, 1, 2, 3, 0]) | st.integers(0, 30))
    hostility = draw(st.sampled_from([0, 30, 60, 100]))
    layout = draw(st.sampled_from(["matrix", "matrix", "matrix", "columns", "columns", "random"]))
    datatype = draw(datatype_strategy)
    inputs: list[object] = []
    if layout == "matrix":
        width = draw(st.sampled_from([WIDTH, WIDTH, WIDTH, WIDTH - 1, WIDTH + 1, 0, 1]))
        name = draw(st.sampled_from(["features"] * 6 + [FEATURES[0]]) | weird_text)
        inputs.append(draw(input_spec(name, rows, width, datatype, hostility)))
        if draw(st.integers(0, 99)) < 8:  # repeated, or extra tensors
            inputs.append(draw(st.sampled_from([inputs[0], {"name": FEATURES[1], "shape": [1], "datatype": "FP32",
                                                            "data": [1.0]}])))  # fmt: skip
    elif layout == "columns":
        names: list[object] = list(FEATURES)
        roll = draw(st.integers(0, 99))
        if roll < 10:
            names.pop(draw(st.integers(0, WIDTH - 1)))
        elif roll < 18:
            names.append(names[draw(st.integers(0, WIDTH - 1))])
        elif roll < 26:
            names.append(draw(weird_text))
        elif roll < 32:
            names.append("features")
        elif roll < 40:
            names = list(draw(st.permutations(names)))
        values = draw(cells(rows * len(names), hostility // 4))
        as_matrix = draw(st.booleans())  # [N, 1] tensors rather than [N]
        for index, name in enumerate(names):
            column = values[index * rows : (index + 1) * rows]
            inputs.append(
                {"name": name, "shape": [rows, 1] if as_matrix else [rows], "datatype": datatype,
                 "data": [[v] for v in column] if as_matrix else column}
            )  # fmt: skip
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # a few columns damaged
            index = draw(st.integers(0, len(inputs) - 1))
            column_rows = max(0, rows + draw(st.sampled_from([0, 0, 1, -1])))
            inputs[index] = draw(input_spec(names[index], column_rows, 1, datatype, hostility))
    else:
        inputs = draw(st.lists(any_json, max_size=4))
    document: dict[str, object] = {"inputs": inputs}
    if draw(st.integers(0, 99)) < 25:
        outputs = st.fixed_dictionaries(
            {"name": st.sampled_from(OUTPUTS) | weird_text | junk_scalar},
            optional={
                "parameters": st.fixed_dictionaries({"binary_data": any_json})
                | any_json
                | st.sampled_from(["binary_data", ["binary_data"], 1, Dup([("binary_data", True)] * 2)])
            },
        )
        document["outputs"] = draw(st.lists(outputs | junk_scalar, max_size=5) | junk_scalar)
    if draw(st.integers(0, 99)) < 15:
        document["parameters"] = draw(st.fixed_dictionaries({"binary_data_output": any_json}) | any_json)
    if draw(st.integers(0, 99)) < 15:
        document["id"] = draw(weird_text | junk_scalar)
    roll = draw(st.integers(0, 99))
    if roll < 4:
        del document["inputs"]
    elif roll < 8:
        document["inputs"] = draw(junk_scalar | any_json)
    elif roll < 12:
        return Dup([("inputs", []), *document.items()])  # duplicate key: the last one wins in orjson
    elif roll < 14:
        return [document]
    return document


class _Enough(Exception):
    """Raised inside a hypothesis test to end generation once the quota is reached."""


def generate(strategy: st.SearchStrategy[Any], count: int, seed: int, sink: Callable[[Any], None],
             key: Callable[[Any], str] | None = None) -> int:  # fmt: skip
    """Draw examples of ``strategy`` with hypothesis (no database, no deadline, no shrinking; seeded, so a run
    can be repeated) and hand the first ``count`` distinct ones to ``sink`` (distinct by ``key``, when given).
    Returns how many it handed."""
    drawn = 0
    seen: set[str] = set()

    @settings(
        max_examples=count * 4,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @hypothesis_seed(seed)
    @given(strategy)
    def run(example: Any) -> None:
        nonlocal drawn
        if drawn >= count:
            raise _Enough
        if key is not None:
            fingerprint = key(example)
            if fingerprint in seen:
                return
            seen.add(fingerprint)
        drawn += 1
        sink(example)

    with suppress(_Enough), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Generating overly large repr")  # a 2 MB body's repr
        run()
    return drawn


Family = tuple[str, float, st.SearchStrategy[Any]]  # (name, share of the requests, strategy)


def draw_families(families: list[Family], requests: int, seed: int, sink: Callable[[Any], None],
                  key: Callable[[Any], str] | None = None, log: Callable[[str], None] = print) -> dict[str, int]:  # fmt: skip
    """About ``requests`` distinct examples in all, each family its share (at least one), the family at
    index ``i`` seeded ``seed + i``; a family whose space ran out early is topped up from the first three.
    Returns how many each family handed to ``sink``."""
    generated: dict[str, int] = {}
    total_share = sum(share for _, share, _ in families)
    for index, (name, share, strategy) in enumerate(families):
        quota = max(1, round(requests * share / total_share))
        family_started = time.monotonic()
        generated[name] = generate(strategy, quota, seed + index, sink, key)
        log(f"  {name:<14} {generated[name]:>6} requests ({time.monotonic() - family_started:.1f} s)")
    missing, round_ = requests - sum(generated.values()), 0
    while missing > 0 and round_ < 5:  # a family whose space ran out early: top up with the big ones
        name, _, strategy = families[round_ % min(3, len(families))]
        extra = generate(strategy, missing, seed + 1_000 + round_, sink, key)
        generated[name] += extra
        missing -= extra
        round_ += 1
    return generated
