"""The state commands validate against: relational projections of the log (identity,
flags, builds, web builds), their read functions, and the one command context (lock, catch
up, validate, append, catch up)."""
