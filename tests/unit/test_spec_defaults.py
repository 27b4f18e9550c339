"""Unit tests for pyruntime.spec.defaults: the ``runc spec`` template.

The expected texts are what runc 1.1.5 wrote for ``runc spec`` and
``runc spec --rootless`` (run as uid 0), byte for byte.
"""

from __future__ import annotations

import json
import os

import pytest

from pyruntime import OCI_VERSION
from pyruntime.errors import ConfigError
from pyruntime.spec import decode_spec, validate_spec
from pyruntime.spec.defaults import default_spec, write_default_spec

RUNC_SPEC = """\
{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}"""

RUNC_SPEC_ROOTLESS = """\
{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "none",
			"source": "/sys",
			"options": [
				"rbind",
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"uidMappings": [
			{
				"containerID": 0,
				"hostID": 0,
				"size": 1
			}
		],
		"gidMappings": [
			{
				"containerID": 0,
				"hostID": 0,
				"size": 1
			}
		],
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			},
			{
				"type": "user"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}"""


def expected_document(runc_text: str) -> dict:
    """runc's template with our ociVersion and the caller's ids in the mappings."""
    document = json.loads(runc_text)
    document["ociVersion"] = OCI_VERSION
    for key, host_id in (("uidMappings", os.geteuid()), ("gidMappings", os.getegid())):
        for mapping in document["linux"].get(key, []):
            mapping["hostID"] = host_id
    return document


@pytest.mark.parametrize(
    ("rootless", "runc_text"),
    [(False, RUNC_SPEC), (True, RUNC_SPEC_ROOTLESS)],
    ids=["default", "rootless"],
)
def test_default_spec_matches_runc(rootless: bool, runc_text: str) -> None:
    # Same formatting as runc (tab indent, no final newline) ...
    assert json.dumps(json.loads(runc_text), indent="\t") == runc_text
    # ... and the same content in the same key order.
    expected = json.dumps(expected_document(runc_text), indent="\t")
    assert json.dumps(default_spec(rootless), indent="\t") == expected


def test_default_spec_is_fresh_each_call() -> None:
    first = default_spec()
    first["process"]["args"].append("x")
    first["linux"]["maskedPaths"].clear()
    assert default_spec()["process"]["args"] == ["sh"]
    assert default_spec()["linux"]["maskedPaths"]


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_decodes_and_validates(rootless: bool) -> None:
    spec = decode_spec(json.dumps(default_spec(rootless)))
    assert spec.oci_version == OCI_VERSION
    assert validate_spec(spec) == []


def test_runc_own_template_decodes() -> None:
    spec = decode_spec(RUNC_SPEC)
    assert spec.oci_version == "1.0.2-dev"
    assert validate_spec(spec) == []


def test_write_default_spec(tmp_path) -> None:
    path = write_default_spec(str(tmp_path))
    assert path == str(tmp_path / "config.json")
    assert (tmp_path / "config.json").read_text() == json.dumps(
        default_spec(), indent="\t"
    )


def test_write_default_spec_rootless(tmp_path) -> None:
    write_default_spec(str(tmp_path), rootless=True)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written == default_spec(rootless=True)


def test_write_default_spec_refuses_to_overwrite(tmp_path) -> None:
    (tmp_path / "config.json").write_text("keep me")
    with pytest.raises(ConfigError) as info:
        write_default_spec(str(tmp_path))
    assert str(info.value) == "File config.json exists. Remove it first"
    assert (tmp_path / "config.json").read_text() == "keep me"


def test_write_default_spec_missing_bundle(tmp_path) -> None:
    bundle = tmp_path / "absent"
    with pytest.raises(ConfigError) as info:
        write_default_spec(str(bundle))
    assert str(info.value) == (
        f"write `{bundle}/config.json`: no such file or directory"
    )
