"""What ``state`` and ``list`` print about a container, in runc's shape.

Kept in the state package, apart from :mod:`pyruntime.container`, so that
these read-only commands load only the state directory code: no processes,
cgroups, hooks or config decoding.
"""

from __future__ import annotations

import os
import time

from pyruntime import OCI_VERSION, log
from pyruntime.errors import RuntimeError_
from pyruntime.state import status as st
from pyruntime.state.store import ContainerState, list_ids, open_container


def now_rfc3339() -> str:
    """UTC time with nanoseconds, as runc's ``created``."""
    secs, frac = divmod(time.time_ns(), 1_000_000_000)
    fraction = f".{frac:09d}".rstrip("0").rstrip(".")  # Go's RFC3339Nano
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + fraction + "Z"


def state_view(state: ContainerState, status: str, owner: str) -> dict:
    """Render a state in runc's key order."""
    view = {
        "ociVersion": state.oci_version or OCI_VERSION,
        "id": state.id,
        "pid": 0 if status == st.STOPPED else state.pid,
        "status": status,
        "bundle": state.bundle,
        "rootfs": state.rootfs,
        "created": state.created or now_rfc3339(),
    }
    if state.annotations:
        # Go's encoding/json writes a map's keys sorted: so does runc.
        view["annotations"] = dict(sorted(state.annotations.items()))
    view["owner"] = owner
    return view


def describe(root: str, container_id: str) -> dict:
    """The ``state`` document: the spec's fields plus runc's extras."""
    with open_container(root, container_id, lock=False) as cdir:
        state = cdir.load()
        status = st.current_status(cdir, state)
    return state_view(state, status, owner="")


def list_views(root: str) -> list[dict]:
    """Every container under ``root``; unreadable ones are reported and skipped."""
    views = []
    owners: dict[int, str] = {}
    for container_id in list_ids(root):
        try:
            with open_container(root, container_id, lock=False) as cdir:
                state = cdir.load()
                status = st.current_status(cdir, state)
                uid = os.stat(cdir.path).st_uid
        except RuntimeError_ as err:
            log.warning(f"list: skip `{container_id}`: {err}")
            continue
        if uid not in owners:
            owners[uid] = owner_name(uid)
        views.append(state_view(state, status, owners[uid]))
    return views


def owner_name(uid: int) -> str:
    """The user name owning a container directory, or ``#uid``."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def format_table(views: list[dict]) -> str:
    """Align like Go's tabwriter(minwidth 12, padding 3); last column unpadded."""
    header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = [header] + [
        [v["id"], str(v["pid"]), v["status"], v["bundle"], v["created"], v["owner"]]
        for v in views
    ]
    widths = [max(12, max(len(row[i]) for row in rows) + 3) for i in range(5)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:5])]
        lines.append("".join(cells) + row[5] + "\n")
    return "".join(lines)
