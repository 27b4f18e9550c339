"""What the stages of one check share: the bundle, the decoded spec, the plans.

The config stage fills it in; the bundle, host and risk stages read it. When
decoding or validation found problems the spec is *partial* (a mistyped field
is ``None``, a name may be unknown), so each later check runs through
:meth:`Context.run`, which skips a check that trips over such a field instead
of failing the whole report: the problem is already reported.
"""

from __future__ import annotations

import os

from pyruntime.check.findings import Report
from pyruntime.records import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


@dataclass
class Context:
    """One bundle under check."""

    bundle: str
    config_name: str
    report: Report
    systemd_cgroup: bool = False
    spec: Any = None
    #: Decoding or validation reported problems: fields of ``spec`` may be
    #: None, or hold values the runtime never gets to see.
    partial: bool = False
    #: ``process.capabilities`` planned (None: absent or invalid).
    capabilities: Any = None
    #: ``linux.seccomp`` planned (None: absent or invalid).
    seccomp: Any = None

    def run(self, check: Callable[..., None], *args: Any) -> None:
        """Run one check; on a partial spec, skip it if it cannot cope."""
        if not self.partial:
            check(self, *args)
            return
        try:
            check(self, *args)
        except (AttributeError, KeyError, TypeError, ValueError):
            pass  # a field it needs is mistyped: decoding reported that

    @property
    def process(self):
        """``process``, or None."""
        return dig(self.spec, "process")

    @property
    def linux(self):
        """``linux``, or None."""
        return dig(self.spec, "linux")

    @property
    def rootfs(self) -> str | None:
        """The absolute host path of ``root.path``, or None."""
        path = dig(self.spec, "root", "path")
        if not isinstance(path, str) or not path:
            return None
        return os.path.normpath(os.path.join(self.bundle, path))

    def namespaces(self) -> tuple:
        """``linux.namespaces`` (empty when absent)."""
        return tuple(dig(self.spec, "linux", "namespaces") or ())

    def has_namespace(self, kind: str) -> bool:
        """Whether ``linux.namespaces`` lists ``kind`` (new or joined)."""
        return any(ns.type == kind for ns in self.namespaces())

    def new_namespace(self, kind: str) -> bool:
        """Whether a new namespace of ``kind`` is made (listed without a path)."""
        return any(ns.type == kind and not ns.path for ns in self.namespaces())


def dig(obj: Any, *attrs: str) -> Any:
    """Follow attributes from ``obj``; None as soon as one is missing."""
    for attr in attrs:
        if obj is None:
            return None
        obj = getattr(obj, attr, None)
    return obj
