"""Publishing reads: SSH keys' summaries and publish runs' status."""
