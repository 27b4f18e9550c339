"""The kernel seam: system calls (``syscalls``) and /proc readers (``procfs``)."""
