"""The `hutch` command, its settings and the processes it runs."""
