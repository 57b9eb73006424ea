-- One telemetry event per request, as an app SDK sends it.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Secret"] = os.getenv("HUTCH_BENCH_SECRET") or "none"
wrk.body = '{"kind":"info","version":"1.4.2","bits":{"event":"app_opened","screen":"home","ms":182}}'
