"""The seccomp plan: actions, operators, architectures, flags, rule splitting."""

from __future__ import annotations

import errno
import json

import pytest

from pyruntime.errors import ConfigError
from pyruntime.linux import syscalls as sc
from pyruntime.security import seccomp
from pyruntime.spec.model import Arg, Seccomp, Syscall


def config(*syscalls: Syscall, default="SCMP_ACT_ALLOW", **kw) -> Seccomp:
    return Seccomp(default_action=default, syscalls=syscalls or None, **kw)


def call(*names, action="SCMP_ACT_ERRNO", errno_ret=None, args=None) -> Syscall:
    args = tuple(args) if args is not None else None
    return Syscall(names=names, action=action, errno_ret=errno_ret, args=args)


def problems_of(seccomp_config: Seccomp) -> list[str]:
    with pytest.raises(ConfigError) as info:
        seccomp.plan_seccomp(seccomp_config)
    return info.value.problems


def test_plan_seccomp_absent_is_none():
    assert seccomp.plan_seccomp(None) is None


@pytest.mark.parametrize(
    ("action", "errno_ret", "value"),
    [
        ("SCMP_ACT_KILL", None, 0x00000000),
        ("SCMP_ACT_KILL_THREAD", None, 0x00000000),
        ("SCMP_ACT_KILL_PROCESS", None, 0x80000000),
        ("SCMP_ACT_TRAP", None, 0x00030000),
        ("SCMP_ACT_ERRNO", None, 0x00050000 | errno.EPERM),
        ("SCMP_ACT_ERRNO", errno.ENOSYS, 0x00050000 | errno.ENOSYS),
        ("SCMP_ACT_ERRNO", 0, 0x00050000),
        ("SCMP_ACT_TRACE", None, 0x7FF00000 | errno.EPERM),
        ("SCMP_ACT_TRACE", 7, 0x7FF00007),
        ("SCMP_ACT_ALLOW", None, 0x7FFF0000),
        ("SCMP_ACT_LOG", None, 0x7FFC0000),
    ],
)
def test_plan_seccomp_default_action_values(action, errno_ret, value):
    plan = seccomp.plan_seccomp(config(default=action, default_errno_ret=errno_ret))
    assert plan.default_action == value


def test_plan_seccomp_action_values_match_libseccomp():
    import pyseccomp

    assert seccomp.ACTIONS["SCMP_ACT_KILL"] == pyseccomp.KILL
    assert seccomp.ACTIONS["SCMP_ACT_KILL_PROCESS"] == pyseccomp.KILL_PROCESS
    assert seccomp.ACTIONS["SCMP_ACT_TRAP"] == pyseccomp.TRAP
    assert seccomp.ACTIONS["SCMP_ACT_ERRNO"] == pyseccomp.ERRNO(0)
    assert seccomp.ACTIONS["SCMP_ACT_TRACE"] == pyseccomp.TRACE(0)
    assert seccomp.ACTIONS["SCMP_ACT_ALLOW"] == pyseccomp.ALLOW
    assert seccomp.ACTIONS["SCMP_ACT_LOG"] == pyseccomp.LOG
    assert seccomp.ACTIONS["SCMP_ACT_NOTIFY"] == pyseccomp.NOTIFY


def test_plan_seccomp_operator_values_match_libseccomp():
    import pyseccomp

    for name, value in seccomp.OPERATORS.items():
        assert getattr(pyseccomp, name.removeprefix("SCMP_CMP_")) == value


def test_plan_seccomp_architecture_values_match_libseccomp():
    import pyseccomp

    for name, value in seccomp.ARCHITECTURES.items():
        assert getattr(pyseccomp.Arch, name.removeprefix("SCMP_ARCH_")) == value


def test_plan_seccomp_rule_errno_ret():
    plan = seccomp.plan_seccomp(
        config(call("mkdir"), call("rmdir", errno_ret=errno.EROFS))
    )
    assert [rule.action for rule in plan.rules] == [
        0x00050000 | errno.EPERM,
        0x00050000 | errno.EROFS,
    ]


def test_plan_seccomp_unknown_actions_have_paths():
    problems = problems_of(
        config(call("mkdir", action="SCMP_ACT_NOPE"), default="SCMP_ACT_MAYBE")
    )
    assert problems == [
        'linux.seccomp.defaultAction: unknown action "SCMP_ACT_MAYBE"',
        'linux.seccomp.syscalls[0].action: unknown action "SCMP_ACT_NOPE"',
    ]


def test_plan_seccomp_errno_ret_needs_an_errno_action():
    problems = problems_of(
        config(
            call("mkdir", action="SCMP_ACT_KILL", errno_ret=1),
            default="SCMP_ACT_ALLOW",
            default_errno_ret=5,
        )
    )
    assert problems == [
        "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW does not return an errno",
        "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL does not return an errno",
    ]


def test_plan_seccomp_errno_ret_must_fit_16_bits():
    problems = problems_of(config(default="SCMP_ACT_ERRNO", default_errno_ret=70000))
    assert problems == ["linux.seccomp.defaultErrnoRet: 70000 does not fit in 16 bits"]


def test_plan_seccomp_architectures():
    plan = seccomp.plan_seccomp(
        config(architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"))
    )
    assert plan.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    problems = problems_of(config(architectures=("SCMP_ARCH_X86_64", "amd64")))
    assert problems == ['linux.seccomp.architectures[1]: unknown architecture "amd64"']


@pytest.mark.parametrize(
    ("flags", "bits"),
    [
        ((), 0),
        (("SECCOMP_FILTER_FLAG_TSYNC",), 0),
        (("SECCOMP_FILTER_FLAG_LOG",), sc.SECCOMP_FILTER_FLAG_LOG),
        (("SECCOMP_FILTER_FLAG_SPEC_ALLOW",), sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW),
        (
            ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
            sc.SECCOMP_FILTER_FLAG_LOG | sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        ),
    ],
)
def test_plan_seccomp_flags(flags, bits):
    plan = seccomp.plan_seccomp(config(flags=flags))
    assert plan.flags == bits
    assert plan.default_flags is False


def test_plan_seccomp_absent_flags_default_to_spec_allow():
    plan = seccomp.plan_seccomp(config())
    assert plan.flags == sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW
    assert plan.default_flags is True


def test_plan_seccomp_unknown_flag():
    problems = problems_of(config(flags=("SECCOMP_FILTER_FLAG_LOG", "FLAG_X")))
    assert problems == ['linux.seccomp.flags[1]: unknown flag "FLAG_X"']


def test_plan_seccomp_one_rule_per_name():
    plan = seccomp.plan_seccomp(config(call("mkdir", "mkdirat", "rmdir")))
    assert [rule.name for rule in plan.rules] == ["mkdir", "mkdirat", "rmdir"]
    assert all(rule.conditions == () for rule in plan.rules)


def test_plan_seccomp_skips_rules_equal_to_default():
    plan = seccomp.plan_seccomp(
        config(
            call("read", action="SCMP_ACT_ERRNO"),
            call("mkdir", action="SCMP_ACT_ERRNO", errno_ret=errno.EROFS),
            default="SCMP_ACT_ERRNO",
        )
    )
    assert [rule.name for rule in plan.rules] == ["mkdir"]


def test_plan_seccomp_operators_and_masked_eq():
    args = [
        Arg(index=0, value=3, op="SCMP_CMP_NE"),
        Arg(index=1, value=0o077, value_two=0, op="SCMP_CMP_MASKED_EQ"),
        Arg(index=2, value=5, op="SCMP_CMP_LT"),
        Arg(index=3, value=5, op="SCMP_CMP_LE"),
        Arg(index=4, value=5, op="SCMP_CMP_GE"),
        Arg(index=5, value=5, op="SCMP_CMP_GT"),
    ]
    plan = seccomp.plan_seccomp(config(call("openat", args=args)))
    (rule,) = plan.rules
    assert rule.conditions == (
        seccomp.Condition(0, 1, 3, 0),
        seccomp.Condition(1, 7, 0o077, 0),
        seccomp.Condition(2, 2, 5, 0),
        seccomp.Condition(3, 3, 5, 0),
        seccomp.Condition(4, 5, 5, 0),
        seccomp.Condition(5, 6, 5, 0),
    )


def test_plan_seccomp_same_index_splits_into_rules():
    args = [
        Arg(index=1, value=0o700, op="SCMP_CMP_EQ"),
        Arg(index=0, value=3, op="SCMP_CMP_EQ"),
        Arg(index=1, value=0o711, op="SCMP_CMP_EQ"),
    ]
    plan = seccomp.plan_seccomp(config(call("chmod", "fchmod", args=args)))
    assert [(rule.name, rule.conditions) for rule in plan.rules] == [
        ("chmod", (seccomp.Condition(1, 4, 0o700),)),
        ("chmod", (seccomp.Condition(0, 4, 3),)),
        ("chmod", (seccomp.Condition(1, 4, 0o711),)),
        ("fchmod", (seccomp.Condition(1, 4, 0o700),)),
        ("fchmod", (seccomp.Condition(0, 4, 3),)),
        ("fchmod", (seccomp.Condition(1, 4, 0o711),)),
    ]


def test_plan_seccomp_bad_operator_and_index():
    args = [
        Arg(index=0, value=1, op="SCMP_CMP_EQUAL"),
        Arg(index=6, value=1, op="SCMP_CMP_EQ"),
    ]
    problems = problems_of(config(call("kill"), call("tkill", args=args)))
    assert problems == [
        'linux.seccomp.syscalls[1].args[0].op: unknown operator "SCMP_CMP_EQUAL"',
        "linux.seccomp.syscalls[1].args[1].index: 6 is not a syscall argument (0 to 5)",
    ]


def test_plan_seccomp_notify_needs_listener_path():
    problems = problems_of(config(call("mkdir", action="SCMP_ACT_NOTIFY")))
    assert problems == [
        "linux.seccomp.listenerPath: must be set when a rule uses SCMP_ACT_NOTIFY"
    ]
    plan = seccomp.plan_seccomp(
        config(call("mkdir", action="SCMP_ACT_NOTIFY"), listener_path="/run/a.sock")
    )
    assert plan.uses_notify
    assert plan.listener_path == "/run/a.sock"


def test_plan_seccomp_notify_refused_for_default_and_write():
    problems = problems_of(
        config(
            call("write", "read", action="SCMP_ACT_NOTIFY"),
            call("sendmsg", action="SCMP_ACT_NOTIFY"),
            default="SCMP_ACT_NOTIFY",
            listener_path="/run/a.sock",
        )
    )
    assert problems == [
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action "
        "(init could not hand the listener over)",
        "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be used for write "
        "(init needs it to hand the listener over)",
        "linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY cannot be used for "
        "sendmsg (init needs it to hand the listener over)",
    ]


def test_effective_flags_follow_notify():
    wait = sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    flags = ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",)
    without = seccomp.plan_seccomp(config(call("mkdir"), flags=flags))
    assert seccomp.effective_flags(without) == 0
    with_notify = seccomp.plan_seccomp(
        config(
            call("mkdir", action="SCMP_ACT_NOTIFY"),
            flags=flags,
            listener_path="/run/a.sock",
        )
    )
    assert seccomp.effective_flags(with_notify) == (
        wait | sc.SECCOMP_FILTER_FLAG_NEW_LISTENER
    )


def test_listener_message_is_container_process_state():
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42}
    message = json.loads(seccomp.listener_message(state, 42, "meta"))
    assert message == {
        "ociVersion": "1.2.0",
        "fds": ["seccompFd"],
        "pid": 42,
        "metadata": "meta",
        "state": state,
    }
    assert json.loads(seccomp.listener_message(state, 42, None))["metadata"] == ""


def test_feature_lists():
    features = seccomp.feature_lists()
    assert features["enabled"] is True
    assert "SCMP_ACT_KILL_PROCESS" in features["actions"]
    assert features["operators"] == sorted(seccomp.OPERATORS)
    assert "SCMP_ARCH_X86_64" in features["archs"]
    assert features["knownFlags"] == [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ]
    assert set(features["supportedFlags"]) <= set(features["knownFlags"])
