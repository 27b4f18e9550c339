"""The command-line interface (click), runc's grammar."""
