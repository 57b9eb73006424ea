"""CI jobs as a relational projection of the `jobs` topic, and its reads."""
