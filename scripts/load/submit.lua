-- wrk: every request submits a new one-task job, `PREFIX-THREAD-N` (PREFIX from the environment,
-- default "load"), so that names are unique across threads and across runs with other prefixes.
-- The headers given with -H (e.g. `-H "authorization: Bearer TOKEN"`) go with every request, and
-- so does TOKEN from the environment, when set, as a bearer token. An answer other than 2xx is
-- printed as `status CODE BODY` (the calling scripts count those lines).
--
--   PREFIX=run1 wrk -t2 -c64 -d8s --latency -s scripts/load/submit.lua http://127.0.0.1:PORT

prefix = os.getenv("PREFIX") or "load"
local token = os.getenv("TOKEN")

local threads = 0
setup = function(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local n = 0
request = function()
  n = n + 1
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["content-type"] = "application/json"
  if token and token ~= "" then headers["authorization"] = "Bearer " .. token end
  local name = string.format("%s-%d-%d", prefix, tid or 0, n)
  local body = '{"name":"' .. name .. '","tasks":[{"name":"main","image":"busybox:1.36",'
    .. '"resources":{"cpu":"10m","memory":"6Mi","disk":"1Mi"}}]}'
  return wrk.format("POST", "/v1/jobs", headers, body)
end

response = function(status, headers, body)
  if status < 200 or status >= 300 then io.write("status " .. status .. " " .. body .. "\n") end
end
