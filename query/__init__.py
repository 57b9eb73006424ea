"""The read side: Falcon resources for listings, lookups, pagination and SQL over the read
models."""
