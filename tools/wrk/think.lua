-- wrk script: each connection waits THINK milliseconds after an answer before its next
-- request (wrk's delay() hook), so 100 connections offer about 100 / (THINK + latency)
-- requests per second instead of as many as the server can answer. wrk counts a request's
-- latency from when it is written, so the think time is not in the figures.
-- Usage: wrk -t2 -c100 -d10s --latency -s tools/wrk/think.lua URL -- THINK
local think = 4

function init(args)
  if args[1] then
    think = tonumber(args[1])
  end
end

function delay()
  return think
end
