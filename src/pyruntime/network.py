"""Network set-up inside a new network namespace.

A new network namespace starts with only ``lo``, and down. Bringing it up is
one ``SIOCSIFFLAGS`` ioctl, done here without netlink: importing pyroute2
costs about 150 ms, which every container start would pay. pyroute2 is kept
for what needs real netlink (moving ``linux.netDevices`` into the namespace).
"""

from __future__ import annotations

# The C module of :mod:`socket` is enough for one ioctl, and cheaper to load.
import _socket
import fcntl
import struct

from pyruntime.errors import SetupError

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def bring_up_loopback() -> None:
    """Set ``lo`` up in the current network namespace."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sH14x", b"lo", 0)
        reply = fcntl.ioctl(sock, _SIOCGIFFLAGS, request)
        flags = struct.unpack("16sH14x", reply)[1]
        request = struct.pack("16sH14x", b"lo", flags | _IFF_UP)
        fcntl.ioctl(sock, _SIOCSIFFLAGS, request)
    except OSError as err:
        raise SetupError(f"bring up interface `lo`: {err.strerror}") from err
    finally:
        sock.close()
