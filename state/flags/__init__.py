"""Flag definitions as a relational projection, its reads, and the cached current set the
SDK-facing routes answer from."""
