"""Who runs inside a job's sandbox: the image's `build` user, its ids and its home, where the
job's workspace is mounted. On the host the same processes run as the workspace's owner (an
unprivileged uid the runner is configured with: `workspace.WorkspaceSettings`)."""

from __future__ import annotations

from typing import Final

NAME: Final = "build"
UID: Final = 1000
GID: Final = 1000
HOME: Final = "/home/build"
"""The workspace's mount point in every job, as in builds.sr.ht's VMs."""
SHELL_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
