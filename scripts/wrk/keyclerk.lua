-- wrk script for keyclerk's loads: the POST bodies keyclerk-bench's own client sends,
-- made by wrk so that the client's own cost shows beside keyclerk-bench's figures.
--
--   wrk -t2 -c64 -d5s -s keyclerk.lua http://127.0.0.1:PORT -- MODE FILE TAG
--
-- MODE     activate: a new machine per request, on key i mod n of FILE (a key a line)
--          validate: FILE holds "key fingerprint" lines of activated machines
--          mint:     FILE holds an admin token; one license per request
--          batch:    as mint, 100 licenses per request
-- TAG      makes fingerprints and order ids unique across runs
--
-- The last line of the output is "kc-wrk" and key=value pairs (latencies in
-- microseconds) for keyclerk-bench to read.

local threads = {}

function setup(thread)
   thread:set("thread_no", #threads)
   table.insert(threads, thread)
end

local mode, tag, lines, token
local n = 0
local json = { ["Content-Type"] = "application/json" }

function init(args)
   mode, tag = args[1], args[3] or "wrk"
   lines = {}
   for line in io.lines(args[2]) do
      lines[#lines + 1] = line
   end
   tag = tag .. "-" .. thread_no
   if mode == "mint" or mode == "batch" then
      token = lines[1]
      json["Authorization"] = "Bearer " .. token
   elseif mode == "validate" then
      local pairs_ = {}
      for i, line in ipairs(lines) do
         local key, fingerprint = line:match("^(%S+)%s+(%S+)$")
         pairs_[i] = '{"license_key":"' .. key .. '","fingerprint":"' .. fingerprint .. '"}'
      end
      lines = pairs_
   end
end

local function item(order)
   return '{"product":"bench","order_id":"' .. order .. '","customer_email":"buyer@example.com"}'
end

function request()
   n = n + 1
   if mode == "activate" then
      local key = lines[(n % #lines) + 1]
      local body = '{"license_key":"' .. key .. '","fingerprint":"wrk-' .. tag .. "-" .. n
         .. '","name":"bench","platform":"linux"}'
      return wrk.format("POST", "/v1/activations", json, body)
   elseif mode == "validate" then
      -- A stride through the machines, as keyclerk-bench's client takes them.
      local body = lines[((n * 7919) % #lines) + 1]
      return wrk.format("POST", "/v1/validate", json, body)
   elseif mode == "mint" then
      return wrk.format("POST", "/v1/licenses", json, item("wrk-" .. tag .. "-" .. n))
   else
      local items = {}
      for j = 1, 100 do
         items[j] = item("wrk-" .. tag .. "-" .. n .. "-" .. j)
      end
      return wrk.format("POST", "/v1/licenses/batch", json,
         '{"licenses":[' .. table.concat(items, ",") .. "]}")
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "kc-wrk requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
