"""Creating the container's processes: the protocol, the runtime's side, init."""
