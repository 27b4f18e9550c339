"""The messages the runtime and its children exchange while creating a container.

Three processes take part. The runtime (**R**) forks an *intermediate*
process (**I**) and moves it into the cgroup on a second thread (the first
move waits for an RCU grace period); meanwhile **I** joins the namespaces and
forks the container's *init* (**N**), then exits at once, so that **N** is
re-parented to the runtime (a child subreaper) and later to the caller's
subreaper. A second process is needed because a new pid namespace applies
only to the children of the process that unshares it. **N** may be born
before **I** is in the cgroup, so **R** moves **N** too before it says
``cgroup-joined``; **N** waits for that before anything that depends on its
cgroup (its cgroup namespace, the hooks).

All three share one ``SOCK_SEQPACKET`` socketpair: one message per packet,
each a JSON object with a ``type``.

====  ===================  =====================================================
from  type                 meaning
====  ===================  =====================================================
I     ``map-ids``          I unshared its user namespace: write its id maps
R     ``ids-mapped``       done; I goes on with the other namespaces
I     ``init-pid``         N exists (``pid``: its pid in R's pid namespace)
R     ``go``               N may start setting up (R records its pid meanwhile)
R     ``cgroup-joined``    R moved I, then N, into the container's cgroup
N     ``mounts-ready``     N's mounts are done: run prestart/createRuntime
R     ``hooks-done``       they succeeded; N runs createContainer and pivots
N     ``ready``            N is set up and waits for ``start`` on exec.fifo
I/N   ``error``            setup failed (``message``); the sender exits
====  ===================  =====================================================

If R dies, the children read end-of-file on the socket and exit, so a
SIGKILLed ``create`` leaves no process behind that ``delete --force`` could
not find.

``start`` talks to N through ``exec.fifo``: see :mod:`pyruntime.process.fifo`.
"""

from __future__ import annotations

# The C module of :mod:`socket`: its socket type has everything a
# socketpair needs, and ``socket`` itself would import enum and selectors.
import _socket

from pyruntime.errors import SetupError
from pyruntime.state import jsonio

_MAX_MESSAGE = 65536


class Channel:
    """One end of the creation socketpair."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        """Make the runtime's end and the children's end."""
        parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        return cls(parent), cls(child)

    def send(self, kind: str, **fields) -> None:
        """Send one message."""
        fields["type"] = kind
        self.sock.send(jsonio.dumps(fields).encode())

    def receive(self) -> dict:
        """Wait for one message; end-of-file means the other side is gone."""
        data = self.sock.recv(_MAX_MESSAGE)
        if not data:
            raise EOFError("the other side of the creation channel exited")
        return jsonio.loads(data.decode())

    def expect(self, kind: str) -> dict:
        """Wait for a message of one type; an ``error`` message is raised."""
        message = self.receive()
        if message["type"] == "error":
            raise SetupError(message["message"])
        if message["type"] != kind:
            raise SetupError(
                f"creation protocol: expected `{kind}`, got `{message['type']}`"
            )
        return message

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()

    def close(self) -> None:
        """Close this end."""
        self.sock.close()
