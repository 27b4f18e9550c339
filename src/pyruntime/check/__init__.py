"""``pyruntime check``: every problem of a bundle, found in one pass.

Four stages, each reusing the runtime's own decoders and planners, none of
them changing anything on the host:

1. :mod:`.config`: the document (syntax, types, required fields, version,
   rules across fields, capability and seccomp plans, unknown keys);
2. :mod:`.bundle`: the files it names (rootfs, program, cwd, bind sources,
   mount points, device nodes, namespace paths, hooks);
3. :mod:`.host`: what this host can give it (cgroup controllers and files,
   capabilities, rlimits, LSMs, seccomp, namespace kinds, filesystems);
4. :mod:`.risks`: risky settings, as warnings.

:mod:`.render` prints the report; :mod:`.smoke` runs the bundle for
``--run``. :func:`check_bundle` is the entry point.
"""

from __future__ import annotations

import os

from pyruntime.check.findings import BUNDLE, Report
from pyruntime.spec.decode import CONFIG_NAME


def check_bundle(
    bundle: str,
    config_name: str = CONFIG_NAME,
    systemd_cgroup: bool = False,
    run_timeout: float | None = None,
) -> Report:
    """Check ``bundle`` (a directory) and return everything found.

    With ``run_timeout``, the bundle is then run as a smoke test (see
    :mod:`.smoke`) for at most that many seconds.
    """
    from pyruntime.check import bundle as bundle_stage
    from pyruntime.check import config, host, risks
    from pyruntime.check.context import Context

    bundle = os.path.abspath(bundle)
    report = Report(bundle=bundle, config=config_name, host=host.describe_host())
    if not os.path.isdir(bundle):
        report.error(
            BUNDLE,
            "bundle",
            bundle,
            "the bundle is not a directory",
            "give the directory that holds config.json and the rootfs",
        )
        return report
    ctx = Context(bundle, config_name, report, systemd_cgroup=systemd_cgroup)
    config.check_config(ctx)
    if ctx.spec is None:
        return report
    bundle_stage.check_bundle(ctx)
    host.check_host(ctx)
    risks.check_risks(ctx)
    note_skipped(ctx)
    if run_timeout is not None:
        from pyruntime.check.smoke import smoke_test

        smoke_test(ctx, run_timeout)
    return report


def note_skipped(ctx) -> None:
    """Say which checks could not run because the config lacks something."""
    if ctx.spec.root is None:
        ctx.report.note(
            BUNDLE,
            "skipped",
            "root",
            "the rootfs, the program and its cwd were not checked",
            "give root.path to have them checked",
        )
    elif ctx.spec.process is None:
        ctx.report.note(
            BUNDLE,
            "skipped",
            "process",
            "the program and its cwd were not checked",
            "give process to have them checked",
        )
