"""Publishing writes: the SSH keys a developer publishes with (ingest/publish/ssh_keys*.py),
generating a package's files and publish runs over SSH."""
