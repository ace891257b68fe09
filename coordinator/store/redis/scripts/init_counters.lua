-- ARGV: prefix. Run once when the store is opened: a namespace written
-- before the phase counters and the labelled set existed gets them from its
-- runs (a walk of every pending phase, once; later writes keep them).
if redis.call('EXISTS', K_COUNTS) == 0 then
  local c = {0, 0, 0, 0}
  for _, run in ipairs(redis.call('ZRANGE', K_RUNS, 0, -1)) do
    local v = redis.call('HMGET', k_run(run), 'pending', 'leased', 'succeeded', 'failed')
    for j = 1, 4 do c[j] = c[j] + (tonumber(v[j]) or 0) end
  end
  redis.call('HSET', K_COUNTS, 'pending', istr(c[1]), 'leased', istr(c[2]),
             'succeeded', istr(c[3]), 'failed', istr(c[4]))
end
-- Marked in the meta hash (schema_version's), so the walk happens once.
if redis.call('HSETNX', P .. 'meta', 'pending_labelled_indexed', '1') == 1 then
  for _, run in ipairs(redis.call('ZRANGE', K_RUNS, 0, -1)) do
    for _, m in ipairs(redis.call('ZRANGE', k_pending(run), 0, -1)) do
      local labels = redis.call('HGET', k_phase(run, string.sub(m, 33)), 'labels')
      if labels and labels ~= '' then
        redis.call('ZADD', K_LABELLED, 0, labelled_member(run, m))
      end
    end
  end
end
return 1
