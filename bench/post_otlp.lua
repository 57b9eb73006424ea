-- One OTLP/HTTP protobuf export request per call, the same prebuilt bytes every time.
-- HUTCH_BENCH_BODY names the file bench/otlp.py wrote; HUTCH_BENCH_SECRET, when set, is
-- sent as X-Secret (the Collector ignores it).
local file = assert(io.open(os.getenv("HUTCH_BENCH_BODY"), "rb"))
wrk.body = file:read("*all")
file:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-protobuf"
local secret = os.getenv("HUTCH_BENCH_SECRET")
if secret and secret ~= "" then
    wrk.headers["X-Secret"] = secret
end
