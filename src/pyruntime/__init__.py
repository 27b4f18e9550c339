"""pyruntime: a runc-compatible OCI container runtime written in Python.

The package is layered; imports point one way only::

    cli  ->  container  ->  process  ->  rootfs / namespaces / cgroups / hooks
         ->  state / spec  ->  linux (the only module that talks to libc)
"""

__version__ = "0.1.0"
#: The runtime-spec version whose config and state documents we speak.
OCI_VERSION = "1.2.0"
NAME = "pyruntime"
