-- wrk script for scripts/bench-peers: POSTs pre-made bodies, each at most once.
-- usage: wrk -t T -c C -d D -s scripts/bench/sign.lua URL -- BODIES_FILE EXPECTED_STATUS T
-- Thread k of T takes lines k, k+T, k+2T, ... of BODIES_FILE (one JSON body a line). A thread that
-- has used all its lines stops. done() prints one JSON line: requests, the expected status's count,
-- other statuses, bodies left unused, requests/s and latency percentiles (µs).
local threads = {}
local counter = 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    bodies_file = args[1]
    expected = tonumber(args[2])
    nthreads = tonumber(args[3])
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    local all = {}
    for line in io.lines(bodies_file) do table.insert(all, line) end
    mine = {}
    for i = id + 1, #all, nthreads do table.insert(mine, all[i]) end
    total_mine = #mine
    next_body = 1
    ok = 0
    bad = 0
    exhausted = 0
end

function request()
    local body = mine[next_body]
    if body == nil then
        exhausted = 1
        wrk.thread:stop()
        return wrk.format("GET", "/exhausted", nil, nil)
    end
    next_body = next_body + 1
    return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
    if status == expected then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
    local ok, bad, exhausted, left = 0, 0, 0, 0
    for _, thread in ipairs(threads) do
        ok = ok + thread:get("ok")
        bad = bad + thread:get("bad")
        exhausted = exhausted + thread:get("exhausted")
        left = left + (thread:get("total_mine") - thread:get("next_body") + 1)
    end
    local seconds = summary.duration / 1e6
    io.write(string.format(
        '{"requests":%d,"ok":%d,"bad":%d,"socket_errors":%d,"exhausted_threads":%d,"bodies_left":%d,' ..
        '"seconds":%.3f,"rps":%.1f,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
        summary.requests, ok, bad,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        exhausted, left, seconds, ok / seconds,
        latency:percentile(50), latency:percentile(99), latency.max))
end
