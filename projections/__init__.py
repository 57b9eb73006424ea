"""Consumers that turn log records into ClickHouse rows, one module per projection, with
the runner that writes them exactly once and the compiled span transform."""
