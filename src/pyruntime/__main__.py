"""Allow ``python -m pyruntime``."""

from pyruntime.cli.main import main

main()
