-- wrk script: GET /counter for a pool of logged-in sessions, as the
-- Tomcat harness drives its cluster. COOKIES_FILE has lines "user sid";
-- the sessions are split between wrk's threads (WRK_THREADS), each
-- thread cycles through its own, and follows Set-Cookie as a browser
-- would. It counts responses that lost the session (no user, or a 401)
-- and session id changes.
local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

local sids, users, index = {}, {}, {}
local n, i = 0, 0
lost, renamed, total = 0, 0, 0

function init(args)
  local every = tonumber(os.getenv("WRK_THREADS") or "2")
  local k = 0
  for line in io.lines(os.getenv("COOKIES_FILE")) do
    local user, sid = line:match("^(%S+)%s+(%S+)$")
    if user and k % every == tid then
      n = n + 1
      users[n], sids[n], index[user] = user, sid, n
    end
    k = k + 1
  end
end

-- DELAY_MS paces each connection (wrk waits that long before each of its
-- requests): 32 connections at 24 ms make about Tomcat's measured 1.3k
-- req/s, to compare latencies at the same rate rather than at saturation.
local pause = tonumber(os.getenv("DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end

function request()
  i = i % n + 1
  return wrk.format("GET", "/counter", { ["Cookie"] = "JSESSIONID=" .. sids[i] })
end

function response(status, headers, body)
  total = total + 1
  local user = body:match('"user":"([^"]*)"')
  if status ~= 200 or user == nil or user == "" then
    lost = lost + 1
    return
  end
  local sc = headers["Set-Cookie"]
  local sid = sc and sc:match("JSESSIONID=([^;]+)")
  if sid and index[user] then
    sids[index[user]] = sid
    renamed = renamed + 1
  end
end

function done(summary, latency, requests)
  local l, r, t = 0, 0, 0
  for _, th in ipairs(threads) do
    l = l + (th:get("lost") or 0)
    r = r + (th:get("renamed") or 0)
    t = t + (th:get("total") or 0)
  end
  io.write(string.format("WRK-LUA responses=%d lost=%d renamed=%d\n", t, l, r))
  io.write(string.format("WRK-SUMMARY rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
