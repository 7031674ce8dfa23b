-- POSTs one GraphQL request body to /graphql: the file named by WRK_BODY (default search.json
-- beside this script), which `cargo bench --bench doctors` also sends.
--   wrk -t2 -c64 -d20s --latency -s benches/wrk/graphql.lua http://ADDR
--   WRK_BODY=benches/wrk/trivial.json wrk ... (the trivial request, for comparison)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local path = os.getenv("WRK_BODY") or (here .. "search.json")
local file = assert(io.open(path, "rb"), "cannot open " .. path)
wrk.method = "POST"
wrk.path = "/graphql"
wrk.body = file:read("*a")
wrk.headers["Content-Type"] = "application/json"
file:close()

-- wrk counts only transport errors; a GraphQL error still answers 200 with "errors". Each
-- thread counts its own (a global, so that done() can read it through the thread).
local threads = {}
errors = 0

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("errors")
  end
  io.write(string.format("responses that were not 200 or held errors: %d\n", total))
end
