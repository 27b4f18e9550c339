"""The lean JSON functions write and read exactly what :mod:`json` does."""

from __future__ import annotations

import json
import math

import pytest

from pyruntime import log
from pyruntime.state import jsonio

DOCUMENTS = [
    {},
    [],
    None,
    True,
    0,
    -17,
    2.5,
    1e100,
    "",
    'quote " and \\ backslash',
    "é ü 中文 \U0001f600 \x00 \x1f \u2028",
    {"ociVersion": "1.2.0", "id": "c1", "pid": 42, "annotations": {"k": "v"}},
    {"nested": {"list": [1, [2, [3, {}]], []], "empty": {}}, "t": False},
    [{"a": None}, {"b": [True, 1.5, "x"]}],
    {7: "int key", 2.5: "float key", True: "bool key", None: "null key"},
]


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_dumps_is_json_compact(doc):
    assert jsonio.dumps(doc) == json.dumps(doc, separators=(",", ":"))


@pytest.mark.parametrize("doc", DOCUMENTS)
@pytest.mark.parametrize("indent", [2, 4])
def test_dumps_indented_is_json_indented(doc, indent):
    assert jsonio.dumps_indented(doc, indent) == json.dumps(doc, indent=indent)


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_loads_round_trip(doc):
    text = json.dumps(doc)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads("  \n" + text + "\t\n") == json.loads(text)


def test_special_floats():
    assert math.isnan(jsonio.loads("NaN"))
    assert jsonio.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]
    assert jsonio.dumps([math.inf]) == "[Infinity]"


@pytest.mark.parametrize(
    "text", ["", "   ", "{", "[1,]", '{"a" 1}', "[1] x", "nul", '"\\x"', "\x00"]
)
def test_errors_are_jsons(text):
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonio.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_unserialisable_is_a_type_error():
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonio.dumps({"a": object()})
    with pytest.raises(TypeError):
        jsonio.dumps_indented({(1, 2): "tuple key"})


@pytest.mark.parametrize("msg", ['say "hi"', "tab\there", "é\n\x01", "\\"])
def test_json_log_line_is_json_dumps(msg):
    saved = log._sink.fmt
    log._sink.fmt = "json"
    try:
        line = log.format_line("error", msg)
    finally:
        log._sink.fmt = saved
    doc = json.loads(line)
    expected = json.dumps(
        {"level": "error", "msg": msg, "time": doc["time"]},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert line == expected
