"""The event log: topics of records with offsets, and consumer groups."""

from storage.log.protocol import Consumer, EventLog, Position, Record, Span, spans_of

__all__ = ["Consumer", "EventLog", "Position", "Record", "Span", "spans_of"]
