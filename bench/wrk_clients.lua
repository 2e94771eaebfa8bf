-- wrk script: each connection is one client (run with -t N -c N: one connection per thread)
-- that sends a GET for a random path from PATHS_FILE, waits for the answer, then thinks for an
-- exponentially distributed time of mean THINK_MS before its next request.  Per request it
-- records the latency (request written -> answer parsed, CLOCK_MONOTONIC) and the answer's
-- Server-Timing header; done() writes them to OUT_FILE as TSV.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } am_timespec;
int clock_gettime(int clk_id, am_timespec *tp);
]]
local ts = ffi.new("am_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local paths, sent, think_ms
samples = {}

function init(args)
  paths = {}
  for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
  think_ms = tonumber(os.getenv("THINK_MS"))
  math.randomseed(id * 7919)
  for _ = 1, 10 do math.random() end
end

function delay()
  return -think_ms * math.log(1 - math.random())
end

function request()
  sent = now_ms()
  return wrk.format("GET", paths[math.random(#paths)])
end

function response(status, headers, body)
  local elapsed = now_ms() - sent
  samples[#samples + 1] = string.format("%d\t%.3f\t%s", status, elapsed, headers["Server-Timing"] or "")
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("OUT_FILE"), "w")
  for _, thread in ipairs(threads) do
    for _, line in ipairs(thread:get("samples")) do out:write(line, "\n") end
  end
  out:close()
end
