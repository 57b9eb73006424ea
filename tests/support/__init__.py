"""What the tests share besides fixtures (those are in tests/conftest.py); no tests here.

- Running Hutch: `servers` (uvicorn in a thread, `hutch serve` as processes), `settings`
  (a test's settings, embedded or production backends), `services` (reach a real service or
  skip), `admin` (`hutch` commands in-process), `processes` (process trees).
- Talking to it: `responses` (error bodies, listings), `builds` (uploads), `credential_probes`,
  `otlp_builders` (OTLP export requests), `sql_corpus` (adversarial SQL).
- Waiting for it: `waiting` (`eventually`, `eventually_async`).
- Stand-ins and local servers: `clickhouse_standin` (ClickHouse's HTTP interface on chDB, a
  process of its own) and `clickhouse` (that process), `s3` (moto, versitygw), `local_https`.
- For the projections: `projection_cases` (every projection; a writer killed mid-commit, run
  with `python -m tests.support.projection_cases`), `rowbinary` (RowBinary back to columns).
- Run by tools, not imported: `schemathesis_hooks` (loaded by `st`),
  `fuzz_otel_spans_rowbinary` (`python -m tests.support.fuzz_otel_spans_rowbinary`).
"""
