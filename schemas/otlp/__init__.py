"""The OTLP wire format: decoding binary and JSON export requests as upb reads them, the
rules for items Hutch rejects, and counting items on the request's skeleton."""
