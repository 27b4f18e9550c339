"""The config stage: config.json read, decoded, validated and planned.

Each step is the runtime's own: :mod:`pyruntime.spec.decode` (syntax, types,
required fields, ``ociVersion``), :mod:`pyruntime.spec.validate` (rules across
fields), :func:`~pyruntime.security.capabilities.plan_capabilities` and
:func:`~pyruntime.security.seccomp.plan_seccomp`. What is new here is that
nothing stops at the first problem:

- a syntax error caused by ``//`` or ``/* */`` comments is reported, and the
  rest of the check reads the document with the comments blanked out;
- decoding problems do not stop validation (what the decoder already named is
  not reported twice);
- keys the model does not know, and fields pyruntime does not apply, become
  warnings: the runtime-spec says to ignore them, which is easy to miss.
"""

from __future__ import annotations

import os

from pyruntime import OCI_VERSION
from pyruntime.check.context import Context, dig
from pyruntime.check.findings import CONFIG, split_problem
from pyruntime.errors import ConfigError, describe_oserror
from pyruntime.spec import decode, model, validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Fields pyruntime decodes but does not apply, and what that means.
IGNORED_FIELDS = {
    "process.commandLine": (("process", "command_line"), "it is a Windows setting"),
    "process.user.username": (
        ("process", "user", "username"),
        "it is a Windows setting",
    ),
    "linux.netDevices": (
        ("linux", "net_devices"),
        "no network device is moved into the container",
    ),
}
#: Top-level sections of other platforms: ignored on Linux, as they should be.
OTHER_PLATFORMS = frozenset({"windows", "solaris", "vm", "zos"})

_HINTS = (
    ("required field is missing", "add it: the runtime-spec requires it"),
    ("is not an absolute path", "make it an absolute path (starting with /)"),
    ("is out of range", "use a value that fits the field's type"),
    ("SemVer", f"use a 1.x runtime-spec version, such as {OCI_VERSION}"),
    ("unsupported version", f"use a 1.x runtime-spec version, such as {OCI_VERSION}"),
    ("unknown capability", "use a name `pyruntime features` lists"),
    ("unknown action", "use an action `pyruntime features` lists (linux.seccomp)"),
    ("unknown architecture", "use an arch `pyruntime features` lists"),
    ("unknown flag", "use a flag `pyruntime features` lists (linux.seccomp)"),
    ("unknown operator", "use an operator `pyruntime features` lists"),
    ("mount namespace is required", 'add {"type": "mount"} to linux.namespaces'),
    ("without a private UTS namespace", 'add {"type": "uts"} to linux.namespaces'),
    ("needs a", "add that namespace to linux.namespaces, or drop the setting"),
    ("is not in permitted", "add it to permitted too, or drop it from effective"),
    ("is not in bounding", "add it to bounding too, or drop it from inheritable"),
)
#: A decoding problem's expected kind (compiled only when a problem is met).
_EXPECTED = r"expected (?P<kind>[a-z ]+), got"


# --- the stage --------------------------------------------------------------------


def check_config(ctx: Context) -> None:
    """Read, decode, validate and plan the config; fill ``ctx.spec``."""
    document = read_document(ctx)
    if document is None:
        return
    decode_document(ctx, document)
    validate_document(ctx)
    ctx.run(plan_capabilities)
    ctx.run(plan_seccomp)
    find_unknown_keys(ctx, document)
    ctx.run(find_ignored_fields)


def hint_for(message: str) -> str:
    """What to do about a decoding or validation problem."""
    import re  # only for a config with problems

    match = re.search(_EXPECTED, message)
    if match:
        kind = match["kind"]
        article = "an" if kind[0] in "aeiou" else "a"
        return f"give {article} {kind} here"
    for needle, hint in _HINTS:
        if needle in message:
            return hint
    return "fix this value in the config"


def report_problems(ctx: Context, problems: list[str], code: str) -> None:
    """Report ConfigError problems (``path: what``) as config errors."""
    for problem in problems:
        where, message = split_problem(problem)
        ctx.report.error(
            CONFIG, code, where or ctx.config_name, message, hint_for(message)
        )


# --- reading -------------------------------------------------------------------


def read_document(ctx: Context) -> dict | None:
    """The config's JSON object, or None after reporting why there is none."""
    text = read_text(ctx)
    if text is None:
        return None
    try:
        return decode.parse_json(text, ctx.config_name)
    except ConfigError as err:
        return recover_from_comments(ctx, text, err.problems[0])


def read_text(ctx: Context) -> str | None:
    """The config file as text, or None after reporting the problem."""
    path = os.path.join(ctx.bundle, ctx.config_name)
    where = ctx.config_name
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        ctx.report.error(
            CONFIG,
            "config-missing",
            where,
            f"no {ctx.config_name} in `{ctx.bundle}`",
            "check the bundle directory, or write a config with `pyruntime spec`",
        )
        return None
    except OSError as err:
        ctx.report.error(
            CONFIG,
            "config-unreadable",
            where,
            f"read `{path}`: {describe_oserror(err)}",
            "make the file readable",
        )
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        ctx.report.error(
            CONFIG,
            "json-syntax",
            where,
            f"byte {err.start}: not valid UTF-8",
            "save the file as UTF-8",
        )
        return None


def recover_from_comments(ctx: Context, text: str, problem: str) -> dict | None:
    """Report a syntax error; carry on without comments if they caused it."""
    where, message = split_syntax_problem(problem)
    where = f"{ctx.config_name} {where}".strip()
    spans = find_comments(text)
    if not spans:
        ctx.report.error(
            CONFIG, "json-syntax", where, message, "fix the JSON syntax at that place"
        )
        return None
    lines = sorted({text.count("\n", 0, start) + 1 for start, _ in spans})
    listed = ", ".join(str(line) for line in lines)
    ctx.report.error(
        CONFIG,
        "json-comments",
        where,
        f"{message}: JSON has no comments (comments on lines {listed})",
        "remove the comments; the rest of this report reads the file without them",
    )
    try:
        return decode.parse_json(blank_out(text, spans), ctx.config_name)
    except ConfigError as err:
        where, message = split_syntax_problem(err.problems[0])
        ctx.report.error(
            CONFIG,
            "json-syntax",
            f"{ctx.config_name} {where}".strip(),
            message,
            "fix the JSON syntax at that place",
        )
        return None


def split_syntax_problem(problem: str) -> tuple[str, str]:
    """``line L, column C: what`` into its place and its message."""
    place, sep, message = problem.partition(": ")
    if sep and place.startswith("line "):
        return place, message
    return "", problem


def find_comments(text: str) -> list[tuple[int, int]]:
    """Where ``//`` and ``/* */`` comments are, outside string literals."""
    spans, index, size = [], 0, len(text)
    while index < size:
        char = text[index]
        if char == '"':
            index = end_of_string(text, index)
        elif text.startswith("//", index):
            end = text.find("\n", index)
            end = size if end < 0 else end
            spans.append((index, end))
            index = end
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            end = size if end < 0 else end + 2
            spans.append((index, end))
            index = end
        else:
            index += 1
    return spans


def end_of_string(text: str, start: int) -> int:
    """The offset just after the string literal opening at ``start``."""
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
        elif text[index] == '"':
            return index + 1
        elif text[index] == "\n":
            return index  # unterminated: the JSON parser reports it
        else:
            index += 1
    return index


def blank_out(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each comment replaced by spaces (line breaks kept)."""
    chars = list(text)
    for start, end in spans:
        for index in range(start, end):
            if chars[index] != "\n":
                chars[index] = " "
    return "".join(chars)


# --- decoding and validation -----------------------------------------------------


def decode_document(ctx: Context, document: dict) -> None:
    """Decode into ``ctx.spec``, reporting every type problem."""
    problems: list[str] = []
    spec = decode.decode_object(model.Spec, document, "", problems)
    problems.extend(decode.check_oci_version(document.get("ociVersion")))
    report_problems(ctx, problems, "decode")
    ctx.partial = bool(problems)
    ctx.spec = model.replace(spec, raw=document)


def validate_document(ctx: Context) -> None:
    """The cross-field rules, minus what decoding already reported."""
    known = [f.where for f in ctx.report.findings if f.code == "decode"]
    problems: list[str] = []
    for rule in validate.RULES:
        try:
            found = list(rule(ctx.spec))
        except (AttributeError, KeyError, TypeError, ValueError):
            if not ctx.partial:
                raise
            continue
        problems.extend(p for p in found if not covered(split_problem(p)[0], known))
    report_problems(ctx, problems, "invalid")
    # Later checks may meet values only validation refuses (an unknown rlimit).
    ctx.partial = ctx.partial or bool(problems)


def covered(path: str, known: list[str]) -> bool:
    """Whether ``path`` is, or lies inside, a path already reported."""
    return any(
        path == where or path.startswith((where + ".", where + "[")) for where in known
    )


# --- planners that read only the document ----------------------------------------


def plan_capabilities(ctx: Context) -> None:
    """``process.capabilities`` turned into numbers, as init will use them."""
    from pyruntime.security.capabilities import plan_capabilities as plan

    try:
        ctx.capabilities = plan(dig(ctx.process, "capabilities"))
    except ConfigError as err:
        report_problems(ctx, err.problems, "capabilities")


def plan_seccomp(ctx: Context) -> None:
    """``linux.seccomp`` checked and flattened, as init will load it."""
    seccomp = dig(ctx.linux, "seccomp")
    if seccomp is None:
        return  # and the module (with its socket import) is not loaded
    from pyruntime.security.seccomp import plan_seccomp as plan

    try:
        ctx.seccomp = plan(seccomp)
    except ConfigError as err:
        report_problems(ctx, err.problems, "seccomp")


# --- what will be ignored ----------------------------------------------------------


def find_unknown_keys(ctx: Context, document: dict) -> None:
    """Warn about keys the runtime-spec (as pyruntime knows it) does not have."""
    for path in unknown_keys(model.Spec, document, ""):
        key = path.rsplit(".", 1)[-1]
        if path in OTHER_PLATFORMS:
            message = f"`{key}` is not a Linux setting: ignored"
            hint = "nothing to do, unless the config was meant for Linux"
        else:
            message = f"unknown key `{key}`: ignored"
            hint = "check its spelling against the runtime-spec"
        ctx.report.warning(CONFIG, "unknown-key", path, message, hint)


def unknown_keys(cls: type, value: Any, path: str) -> list[str]:
    """JSON paths of keys in ``value`` that the model class ``cls`` lacks."""
    if not isinstance(value, dict):
        return []
    fields = {f.key: f for f in decode.fields_of(cls)}
    found = []
    for key, item in value.items():
        where = decode.join_key(path, key)
        if key not in fields:
            found.append(where)
            continue
        found.extend(unknown_in_value(fields[key].hint, item, where))
    return found


def unknown_in_value(hint: Any, value: Any, path: str) -> list[str]:
    """Unknown keys inside one field's value, following its annotation."""
    shape, cls = model_shape(hint)
    if cls is None:
        return []
    if shape == "object":
        return unknown_keys(cls, value, path)
    if shape == "array" and isinstance(value, list):
        return [
            key
            for index, item in enumerate(value)
            for key in unknown_keys(cls, item, f"{path}[{index}]")
        ]
    if shape == "map" and isinstance(value, dict):
        return [
            key
            for name, item in value.items()
            for key in unknown_keys(cls, item, f"{path}[{quoted(name)}]")
        ]
    return []


def quoted(key: str) -> str:
    """A map key as a JSON path spells it: ``"name"``, quoted as JSON is."""
    import json  # only for the keys of a map of objects

    return json.dumps(key)


def model_shape(hint: Any) -> tuple[str, type | None]:
    """(``object``/``array``/``map``, model class) for a field annotation.

    The annotations are ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``,
    model classes and scalar types: read from their ``__origin__`` and
    ``__args__``, as :mod:`typing` would, without importing it.
    """
    origin = getattr(hint, "__origin__", None)
    args = getattr(hint, "__args__", ())
    if origin is tuple:
        return ("array", args[0] if model.is_model(args[0]) else None)
    if origin is dict:
        return ("map", args[1] if model.is_model(args[1]) else None)
    if type(None) in args:  # X | None
        inner = [arg for arg in args if arg is not type(None)]
        return model_shape(inner[0])
    if model.is_model(hint):
        return ("object", hint)
    return ("scalar", None)


def find_ignored_fields(ctx: Context) -> None:
    """Warn about fields that are decoded but not applied by pyruntime."""
    for where, (attrs, effect) in IGNORED_FIELDS.items():
        if dig(ctx.spec, *attrs) is None:
            continue
        key = where.rsplit(".", 1)[-1]
        ctx.report.warning(
            CONFIG,
            "ignored",
            where,
            f"pyruntime does not apply `{key}`: {effect}",
            "remove it, or run this bundle with a runtime that applies it",
        )
