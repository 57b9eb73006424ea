-- Provisioners polling GET /api/provisioner/dequeue as fast as they are answered (bench.job_dequeue).
-- Each job handed out is noted; done() writes "id uuid lease_id" a line to HUTCH_BENCH_OUT.
local path = "/api/provisioner/dequeue?available_vcpus=4&cpu_architecture=Amd64&host=wrk-host"
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("HUTCH_BENCH_TOKEN") or "none")
handed = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  req = wrk.format("GET", path)
end

function request()
  return req
end

function response(status, headers, body)
  local id, uuid, lease = body:match('"new_job":{"id":(%d+),"uuid":"([^"]+)","lease_id":"([^"]+)"')
  if id then
    handed[#handed + 1] = id .. " " .. uuid .. " " .. lease
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("HUTCH_BENCH_OUT"), "w")
  for _, thread in ipairs(threads) do
    for _, id in ipairs(thread:get("handed")) do
      out:write(id, "\n")
    end
  end
  out:close()
end
