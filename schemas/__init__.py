"""Data definitions only: the event envelope, event types, DDL and migrations. No I/O."""
