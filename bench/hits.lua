-- wrk script of the harness: POST /e with realistic browser-client hits, counting statuses.
-- Bodies are text/plain JSON (as navigator.sendBeacon/fetch of the browser client send them), with
-- an _fbp cookie, Origin https://www.shop.example and Host t.shop.example. The mix is 60 % PageView,
-- 30 % AddToCart, 10 % Purchase with contact data (new e-mail, phone, order and event id in every
-- Purchase: no server cache sees one twice). BENCH_DELAY_MS (optional) makes every
-- connection wait that long before its next request (a paced run below saturation).
-- done() prints one line "BENCH_RESULT {json}" with counts and latency percentiles in µs.

local threads = {}
local requests = {}
local counter = 1
ok = 0
other = 0

local ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function body(i, now, r)
  local eid = string.format("%d-%d-%06d", tid or 0, now, i)
  local url = "https://www.shop.example/products/item-" .. (i % 97) .. "?utm_source=news"
  if r < 6 then
    return string.format('{"event_name":"PageView","event_id":"%s","event_time":%d,' ..
      '"event_source_url":"%s","referrer_url":"https://www.shop.example/"}', eid, now, url)
  elseif r < 9 then
    return string.format('{"event_name":"AddToCart","event_id":"%s","event_time":%d,' ..
      '"event_source_url":"%s","custom_data":{"value":"19.90","currency":"eur",' ..
      '"content_ids":["sku-%d"],"content_type":"product"}}', eid, now, url, i % 97)
  end
  return string.format('{"event_name":"Purchase","event_id":"%s","event_time":%d,' ..
    '"event_source_url":"https://www.shop.example/thanks?o=%d",' ..
    '"custom_data":{"value":"%d.50","currency":"EUR","content_ids":["sku-%d","sku-3"],' ..
    '"order_id":"A-%d"},"user_data":{"em":" Buyer%d@Example.com","ph":"+1 (650) %03d-%04d",' ..
    '"fn":"Jane","ln":"Doe","ct":"Menlo Park","zp":"94025","country":"us",' ..
    '"external_id":"cust-%d"}}', eid, now, i, 10 + i % 90, i % 97, i, i,
    200 + math.floor(i / 10000) % 800, i % 10000, i)
end

local headers = {}
local purchases = 0
local started = 0

function init(args)
  local now = os.time()
  started = now
  for i = 1, 200 do
    local fbp = string.format("_fbp=fb.1.%d000.%d", now - 86400, 100000000 + i * 7919 + (tid or 0))
    headers[i] = {
      ["Host"] = "t.shop.example",
      ["Origin"] = "https://www.shop.example",
      ["Content-Type"] = "text/plain;charset=UTF-8",
      ["User-Agent"] = ua,
      ["Cookie"] = fbp .. "; _ga=GA1.1.123456789.1700000000",
      ["Accept"] = "*/*",
    }
    if i % 10 ~= 9 then
      requests[i] = wrk.format("POST", "/e", headers[i], body(i, now, i % 10))
    end
  end
end

function request()
  local i = counter
  counter = counter % 200 + 1
  local r = requests[i]
  if r then return r end
  -- a Purchase: new contact data and order every time, so that no cache of the server
  -- (customer-data hashing, phone parsing) sees a value twice
  purchases = purchases + 1
  local n = (tid or 0) * 100000000 + purchases
  return wrk.format("POST", "/e", headers[i], body(n, started, 9))
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pace then
  function delay() return pace end
end

function done(summary, latency, requests_)
  local total_ok, total_other = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_other = total_other + t:get("other")
  end
  local e = summary.errors
  io.write(string.format('BENCH_RESULT {"requests":%d,"duration_us":%d,"ok":%d,"other":%d,' ..
    '"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%d}\n',
    summary.requests, summary.duration, total_ok, total_other,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
