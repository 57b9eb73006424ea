"""CI job reads: a job, its manifest, logs and trigger deliveries; listings for developers
and tenants."""
