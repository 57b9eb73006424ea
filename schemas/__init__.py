"""Data definitions only: the event envelope, event types, the OTLP wire format, DDL,
migrations and the OpenAPI document. No I/O."""
