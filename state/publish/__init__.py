"""Publish runs' relational state: the projection of the `publish` topic and its reads."""
