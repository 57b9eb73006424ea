"""Consumers that turn log records into read-model rows, one module per projection."""
