"""The execution half of `hutch runner`, a program of its own that reaches Hutch over HTTP only:
Debian images built with debootstrap (`images.py`), each job's size-limited workspace and root
(`workspace.py`, `mounts.py`), tasks run in bubblewrap (`sandbox.py`, `process.py`), sources
cloned and secrets placed (`sources.py`, `secret_files.py`), artifacts collected
(`artifacts.py`). It speaks no HTTP and imports nothing of Hutch's but `base`; what is and is
not sandboxed is said in `sandbox.py` (and the README)."""
