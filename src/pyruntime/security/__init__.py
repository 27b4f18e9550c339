"""Privilege reduction for the container's process.

- :mod:`pyruntime.security.capabilities`: the five capability sets
  (python-prctl plus raw capget/capset and ambient prctl calls);
- :mod:`pyruntime.security.seccomp`: the seccomp filter (libseccomp through
  pyseccomp to compile, seccomp(2) to load).

Nothing is imported here: init imports the submodule it needs, and the heavy
libraries are imported inside the functions that use them.
"""
