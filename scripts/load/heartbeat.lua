-- wrk: heartbeats of workers w0..w(WORKERS-1) (WORKERS from the environment, default 10000),
-- one after another, each thread starting at another worker. Register the workers first
-- (scripts/load-wrk.sh does). The headers given with -H go with every request, and so does TOKEN
-- from the environment, when set, as a bearer token. An answer other than 2xx is printed as
-- `status CODE BODY`.
--
--   WORKERS=10000 wrk -t2 -c64 -d8s --latency -s scripts/load/heartbeat.lua http://127.0.0.1:PORT

local workers = tonumber(os.getenv("WORKERS") or "") or 10000
local token = os.getenv("TOKEN")
local offer = '{"cpu":"8","memory":"32Gi","disk":"100Gi"}'
local none = '{"cpu":"0","memory":"0","disk":"0"}'
local body = '{"resources":{"total":' .. offer .. ',"allocated":' .. none .. ',"available":'
  .. offer .. '},"healthy":true}'

local threads = 0
setup = function(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local i = nil
request = function()
  if i == nil then i = ((tid or 0) * 7919) % workers end
  i = (i + 1) % workers
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["content-type"] = "application/json"
  if token and token ~= "" then headers["authorization"] = "Bearer " .. token end
  return wrk.format("POST", "/v1/workers/w" .. i .. "/heartbeat", headers, body)
end

response = function(status, headers, body)
  if status < 200 or status >= 300 then io.write("status " .. status .. " " .. body .. "\n") end
end
