"""Log lines are exactly what containerd and podman parse."""

from __future__ import annotations

import json
import re

from pyruntime import log


def test_json_line_shape(tmp_path):
    path = tmp_path / "log.json"
    log.configure(str(path), "json", debug=False)
    try:
        log.fail("container does not exist")
        log.debug("not shown")
        log.warning("careful")
    finally:
        log.configure(None, "text", debug=False)
        log._sink.fd = 2
        log._sink.to_stderr = True
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == ["level", "msg", "time"]
    assert first["level"] == "error"
    assert first["msg"] == "container does not exist"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["time"])
    assert json.loads(lines[1])["level"] == "warning"


def test_text_line_shape():
    log.configure(None, "text", debug=False)
    line = log.format_line("error", 'say "hi"')
    assert re.fullmatch(r'time="[^"]+" level=error msg="say \\"hi\\""', line)
