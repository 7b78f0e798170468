-- wrk script: each thread requests its own slice of the URL list (bench/out/<set>/paths.txt) in
-- order and stops when every path of its slice has been answered once; so a run requests each
-- tile once (a few extra at the end, at most one per open connection).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2])
  paths = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      table.insert(paths, line)
    end
    i = i + 1
  end
  next_index = 1
  answered = 0
  wrk.headers["Accept-Encoding"] = "gzip"
end

function request()
  local path = paths[((next_index - 1) % #paths) + 1]
  next_index = next_index + 1
  return wrk.format("GET", path)
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= #paths then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.2f p99_ms=%.2f mean_bytes=%.0f errors=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.bytes / math.max(summary.requests, 1),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
