"""The fast path reads command lines exactly as click does, or leaves them to it."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import warnings

import pytest

from pyruntime import execution
from pyruntime.cli import commands, entry, fast, fast_exec
from pyruntime.cli.flags import normalize_argv
from pyruntime.cli.group import run_click
from pyruntime.cli.main import cli, register_commands
from pyruntime.errors import UsageError

register_commands()

#: fast's option names where click's differ.
CLICK_NAMES = {"all": "all_processes"}


def click_params(argv: list[str]) -> tuple[dict, str, dict]:
    """What click makes of ``argv``: global params, command, its params."""
    args = normalize_argv(argv, cli)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = cli.make_context("pyruntime", args)
        rest = [*ctx.protected_args, *ctx.args]
    name = rest[0]
    command = cli.get_command(ctx, name)
    sub = command.make_context(name, rest[1:], parent=ctx)
    return ctx.params, name, dict(sub.params)


def click_reading(argv: list[str]) -> tuple[dict, str, dict, list[str]]:
    """:func:`click_params` with the positional arguments apart."""
    globals_, name, params = click_params(argv)
    positional = list(params.pop("args", ()))
    return globals_, name, params, positional


@pytest.mark.parametrize(
    "argv",
    [
        ["state", "c1"],
        ["--root", "/x", "state", "c1"],
        ["--root=/x", "--debug", "state", "c1"],
        ["-root", "/x", "-log", "/l", "-log-format=json", "state", "c1"],
        ["--debug=true", "--systemd-cgroup=false", "start", "c1"],
        ["--debug=false", "--rootless", "true", "--criu", "/c", "start", "c1"],
        ["--root", "/a", "--root", "/b", "state", "c1"],
        ["kill", "c1"],
        ["kill", "c1", "KILL"],
        ["kill", "-a", "c1", "9"],
        ["kill", "--all=true", "c1", "TERM"],
        ["kill", "-all", "c1"],
        ["delete", "c1"],
        ["delete", "-f", "c1"],
        ["delete", "--force", "c1"],
        ["delete", "-force=false", "c1"],
        ["list"],
        ["list", "-q"],
        ["list", "--format", "json"],
        ["list", "-format=json", "--quiet=1"],
        ["list", "-f", "table"],
        ["create", "c1"],
        ["create", "-b", "/b", "--pid-file", "p", "c1"],
        ["create", "-bundle=/b", "-pid-file=/p", "-console-socket", "/s", "c1"],
        ["create", "--no-pivot", "--no-new-keyring=true", "--preserve-fds", "2", "c1"],
        ["create", "--preserve-fds=1", "--pidfd-socket", "/s", "c1"],
        ["run", "-d", "-bundle", "/b", "c1"],
        ["run", "--detach=false", "--keep", "--no-subreaper", "c1"],
        ["state", "-"],
    ],
)
def test_fast_path_reads_like_click(argv):
    assert_reads_like_click(argv, click_reading, CLICK_NAMES)


def assert_reads_like_click(argv, reading, renamed=None, click_only=None) -> None:
    """The fast path takes ``argv`` and reads it as ``reading`` says click does.

    ``renamed`` maps fast option names to click's where they differ;
    ``click_only`` gives, per command, the options only click reads, with
    their defaults.
    """
    parsed = fast.parse(argv)
    assert parsed is not None, "the fast path should take this command line"
    values, name, options, args = parsed
    click_globals, click_name, click_params, click_args = reading(argv)
    assert values == click_globals
    assert name == click_name
    assert args == click_args
    options = {(renamed or {}).get(k, k): v for k, v in options.items()}
    assert {**options, **(click_only or {}).get(name, {})} == click_params


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h"],
        ["--version"],
        ["-v"],
        ["state", "--help"],
        ["state"],
        ["state", "a", "b"],
        ["start"],
        ["kill", "c1", "-9"],
        ["kill", "c1", "TERM", "extra"],
        ["delete", "c1", "--force"],
        ["list", "extra"],
        ["create", "-b=/x", "c1"],
        ["create", "--pid-file", "-odd", "c1"],
        ["create", "--preserve-fds", "x", "c1"],
        ["create", "--bundle"],
        ["--", "state", "c1"],
        ["state", "--", "c1"],
        ["--bogus", "state", "c1"],
        ["--debug=maybe", "state", "c1"],
        ["spec"],
        ["ps", "c1"],
    ],
)
def test_fast_path_leaves_the_rest_to_click(argv):
    assert fast.parse(argv) is None


def test_no_side_effect_before_falling_back(tmp_path):
    log_file = tmp_path / "log"
    assert fast.run(["--log", str(log_file), "state", "--help"]) is None
    assert not log_file.exists()


@pytest.mark.parametrize(
    "text", [*commands.SIGNALS, *(f"SIG{n}" for n in commands.SIGNALS), "usr1", "9"]
)
def test_signal_names_are_click_paths(text):
    assert fast.parse_signal(text) == commands.parse_signal(text)


@pytest.mark.parametrize("text", ["BOGUS", "SIG", "", "-9", "SIGRTMIN", "_DFL"])
def test_signal_names_refused_alike(text):
    with pytest.raises(UsageError) as fast_err:
        fast.parse_signal(text)
    with pytest.raises(UsageError) as click_err:
        commands.parse_signal(text)
    assert str(fast_err.value) == str(click_err.value)


def loaded_by(imports: str, names: set[str]) -> list[str]:
    """Which of ``names`` a fresh interpreter has loaded after ``imports``."""
    code = f"import sys\n{imports}\nprint(sorted({names!r} & set(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return ast.literal_eval(out)


def test_hot_commands_import_nothing_heavy():
    imports = (
        "from pyruntime.cli import fast\n"
        "from pyruntime.state import jsonio, status, store, view"
    )
    heavy = {"click", "json", "re", "dataclasses", "subprocess", "enum", "shutil"}
    heavy |= {"contextlib", "typing", "socket", "pyruntime.container"}
    assert loaded_by(imports, heavy) == []


@pytest.mark.parametrize("lean", [True, False])
def test_entry_point_script(tmp_path, lean):
    path = tmp_path / "pyruntime"
    kind = entry.write_entry_point(str(path), lean=lean)
    assert kind == ("lean" if lean and entry.site_paths(sys.executable) else "plain")
    text = path.read_text()
    assert text.startswith(
        f"#!{sys.executable}" + (" -S\n" if kind == "lean" else "\n")
    )
    assert "import re" not in text
    assert os.stat(path).st_mode & 0o777 == 0o755
    assert os.listdir(tmp_path) == ["pyruntime"]
    result = subprocess.run(
        [str(path), "--version"], capture_output=True, text=True, env={}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pyruntime version ")


def test_lean_entry_point_adds_what_site_adds():
    paths = entry.site_paths(sys.executable)
    if paths is None:
        pytest.skip("this interpreter's site does more than add paths")
    for path in paths:
        assert path in sys.path


def test_pth_code_makes_the_entry_point_plain(tmp_path):
    (tmp_path / "plain.pth").write_text("/some/dir\n")
    assert not entry._runs_code(str(tmp_path))
    (tmp_path / "distutils-precedence.pth").write_text("import os\n")
    assert not entry._runs_code(str(tmp_path))
    (tmp_path / "hook.pth").write_text("import something; something.install()\n")
    assert entry._runs_code(str(tmp_path))


# ------------------------------------------------------------------- exec

EXEC_LINES = [
    ["exec", "c1", "true"],
    ["exec", "c1", "sh", "-c", "echo hi"],
    ["exec", "c1", "ls", "--help"],
    ["exec", "c1", "-e", "X=1"],
    ["exec", "c1", "--", "true"],
    ["exec", "c1", "--", "--", "x"],
    ["exec", "c1", "--"],
    ["exec", "c1", "-"],
    ["exec", "c1"],
    ["exec", "-", "true"],
    ["exec", "-t", "c1", "sh"],
    ["exec", "-d", "--pid-file", "/p", "c1", "sleep", "9"],
    ["exec", "-e", "A=1", "-e", "B=2", "--env", "C=3", "c1", "env"],
    ["exec", "--env=D=4", "-env", "E=5", "-env=F=6=7", "-e", "A=1", "c1", "env"],
    ["exec", "-e", "A", "-e", "A", "--env=", "c1", "env"],
    ["exec", "-c", "CAP_SYS_ADMIN", "--cap", "cap_kill", "-cap=CAP_CHOWN", "c1"],
    ["exec", "-g", "5", "--additional-gids", "6", "-additional-gids=7", "c1", "id"],
    ["exec", "-g", "8", "-g", "+9", "-g", "010", "c1", "id"],
    ["exec", "--preserve-fds", "0x2", "-preserve-fds=010", "c1", "true"],
    ["exec", "-u", "1000:1000", "--cwd", "/tmp", "c1", "pwd"],
    ["exec", "--user=0", "-cwd=/", "-user", "root", "c1", "pwd"],
    ["exec", "--cwd", "a", "--cwd", "b", "--cwd", "", "c1", "pwd"],
    ["exec", "-p", "/process.json", "c1"],
    ["exec", "--process", "p.json", "--detach", "--console-socket", "s", "-t", "c1"],
    ["exec", "-process=/p.json", "-detach", "-tty=true", "-console-socket=s", "c1"],
    ["exec", "--tty=false", "--detach=1", "--no-new-privs=TRUE", "c1", "true"],
    ["exec", "-t", "-t", "--tty=f", "--ignore-paused=no", "c1", "true"],
    ["exec", "--no-new-privs", "--apparmor", "p", "--process-label", "l", "c1"],
    ["exec", "-apparmor=p", "-process-label", "l", "-no-new-privs", "c1", "true"],
    ["exec", "--preserve-fds", "2", "c1", "true"],
    ["exec", "--preserve-fds=0", "-preserve-fds", "3", "c1", "true"],
    ["exec", "--cgroup", "memory:sub", "--cgroup", "cpu,cpuacct:sub", "c1", "true"],
    ["exec", "-cgroup=sub", "--ignore-paused", "-ignore-paused", "c1", "true"],
    ["--root", "/r", "--log-format=json", "exec", "-t", "c1", "sh"],
    ["-root=/r", "--debug", "exec", "--pid-file=p", "-d", "c1", "sleep", "1"],
]


@pytest.mark.parametrize("argv", EXEC_LINES)
def test_fast_path_reads_exec_like_click(argv):
    parsed = fast.parse(argv)
    assert parsed is not None, "the fast path should take this command line"
    values, name, options, args = parsed
    assert (values, name, options, args) == click_reading(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["exec", "-g", " 8 ", "c1", "id"], 'invalid value " 8 " for flag'),
        (["exec", "-g", "0x10", "c1", "id"], 'parsing "0x10": invalid syntax'),
        (["exec", "-g", "1_000", "c1", "id"], 'parsing "1_000": invalid syntax'),
        (["exec", "-g", "\u0663", "c1"], "strconv.ParseInt: parsing"),
        (["exec", "--preserve-fds", "x", "c1"], '"x" for flag -preserve-fds: parse'),
        (["create", "--preserve-fds", "1.5", "c1"], '"1.5" for flag -preserve-fds'),
    ],
)
def test_bad_integer_flags_are_refused_in_runcs_words(argv, message, capfd):
    # Python's int() takes blanks, "_" and any Unicode digit: runc does not.
    assert fast.parse(argv) is None  # the fast path leaves them to click
    assert run_click(argv) == 1
    assert message in capfd.readouterr().err.replace('\\"', '"')  # logrus escapes


@pytest.mark.parametrize(
    "argv",
    [
        ["exec"],
        ["exec", "--help"],
        ["exec", "-h"],
        ["exec", "-help"],
        ["exec", "-td", "c1", "sh"],
        ["exec", "-eA=1", "c1", "env"],
        ["exec", "-e=A", "c1", "env"],
        ["exec", "-uroot", "c1", "true"],
        ["exec", "-t=true", "c1", "true"],
        ["exec", "--env", "-x", "c1", "env"],
        ["exec", "--cwd", "--tty", "c1", "pwd"],
        ["exec", "-g", "x", "c1", "id"],
        ["exec", "-g", "5.0", "c1", "id"],
        ["exec", "-g", "-1", "c1", "id"],
        ["exec", "-g", "5", "-g", "", "c1", "id"],
        ["exec", "--preserve-fds", "x", "c1", "true"],
        ["exec", "--preserve-fds", "-1", "c1", "true"],
        ["exec", "--", "c1", "true"],
        ["exec", "-t", "--", "c1", "true"],
        ["exec", "--tty=maybe", "c1", "true"],
        ["exec", "--detach=", "c1", "true"],
        ["exec", "--bogus", "c1", "true"],
        ["exec", "--root", "/r", "c1", "true"],
        ["exec", "--env"],
        ["exec", "-t"],
        ["exec", "--process"],
        ["exec", "--ENV", "A=1", "c1"],
    ],
)
def test_fast_path_leaves_odd_exec_lines_to_click(argv):
    assert fast.parse(argv) is None


class Exited(Exception):
    """What fast_exec.exit_now raises here, in place of os._exit."""


def raise_exited(code: int) -> None:
    raise Exited(code)


@pytest.fixture
def exec_calls(monkeypatch):
    """Replace exec_process: record (root, id, ExecOptions), return 7."""
    calls = []

    def record(root, container_id, opts):
        calls.append((root, container_id, opts))
        return 7

    monkeypatch.setattr(execution, "exec_process", record)
    monkeypatch.setattr(fast_exec, "exit_now", raise_exited)
    return calls


@pytest.mark.parametrize(
    "argv",
    [
        ["--root", "/r", "exec", "c1", "--", "true"],
        ["--root", "/r", "exec", "--pid-file", "rel.pid", "-d", "c1", "sleep", "1"],
        ["--root=/r", "exec", "-t", "-d", "--console-socket", "s", "c1", "sh"],
        ["--root", "/r", "exec", "-e", "A=1", "-g", "5", "-c", "CAP_KILL", "c1", "id"],
        ["--root", "/r", "exec", "-p", "proc.json", "--preserve-fds=2", "c1"],
    ],
)
def test_exec_runs_alike_both_ways(exec_calls, argv):
    with pytest.raises(Exited) as exited:
        fast.run(list(argv))
    assert exited.value.args == (7,)
    assert run_click(list(argv)) == 7
    fast_call, click_call = exec_calls
    assert fast_call == click_call
    assert isinstance(fast_call[2].args, tuple)
    if fast_call[2].pid_file:
        assert fast_call[2].pid_file == os.path.abspath("rel.pid")


def test_exec_errors_are_exec_failed(monkeypatch):
    from pyruntime.errors import ExecFailedError, StateError

    def refuse(*_args):
        raise StateError("cannot exec in a stopped container")

    monkeypatch.setattr(execution, "exec_process", refuse)
    for run_line in (fast.run, run_click):
        with pytest.raises(ExecFailedError) as err:
            run_line(["--root", "/r", "exec", "c1", "true"])
        assert err.value.exit_code == 255
        assert str(err.value) == "exec failed: cannot exec in a stopped container"


def test_exec_exits_without_teardown(tmp_path):
    script = tmp_path / "exits.py"
    script.write_text(
        "import atexit, sys\n"
        "from pyruntime.cli import fast_exec\n"
        "atexit.register(lambda: print('teardown'))\n"
        "sys.stdout.write('buffered')\n"
        "fast_exec.exit_now(5)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (5, "buffered", "")


def test_exec_imports_nothing_heavy():
    # What an exec without a terminal loads, in the runtime and the tenant.
    imports = (
        "from pyruntime.cli import fast\n"
        "from pyruntime import cgroups, container, execution\n"
        "from pyruntime.process import tenant\n"
        "from pyruntime.security import capabilities"
    )
    heavy = {"click", "json", "re", "socket", "signal", "enum", "typing"}
    heavy |= {"dataclasses", "subprocess", "inspect", "contextlib"}
    assert loaded_by(imports, heavy) == []


def test_terminal_and_seccomp_code_load_only_when_asked_for():
    # create's and exec's children: the pty code (termios) and the seccomp
    # module are loaded by the runtime only for a terminal or a filter.
    imports = (
        "from pyruntime import container, execution\n"
        "from pyruntime.process import init, launcher, tenant"
    )
    unused = {"pyruntime.console", "termios", "pyruntime.security.seccomp"}
    unused.add("pyruntime.security.seccomp_cache")
    assert loaded_by(imports, unused) == []


def leave_with_a_gone_reader(tmp_path, leave: str) -> subprocess.CompletedProcess:
    """Run ``leave`` with output still buffered for a stdout nobody reads."""
    script = tmp_path / "exits.py"
    script.write_text(
        "import sys\n"
        "from pyruntime.cli import fast_exec\n"
        "sys.stdout.write('buffered')\n"
        "sys.stdin.read()\n"  # until the test has closed the reading end
        f"{leave}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    child.stdout.close()
    _, err = child.communicate(b"")
    return subprocess.CompletedProcess(child.args, child.returncode, None, err)


def test_exit_with_a_gone_reader_dies_of_sigpipe_as_runc_does(tmp_path):
    ours = leave_with_a_gone_reader(tmp_path, "fast_exec.exit_now(5)")
    assert ours.returncode == -signal.SIGPIPE
    assert ours.stderr == b""
