"""The read side: listings, lookups, pagination and SQL over the read models."""
