"""Lua scripts behind `DialerStore`: each is one atomic step of a lead's life, so a dialer
that dies between two steps leaves Redis consistent and never dials a lead twice.

Lead state (``lstate`` hash, JSON per lead): ``attempts``, ``status`` (pending, dialing,
done, exhausted, invalid, dnc), ``prio`` (dial order), ``next_at`` and ``last_result``.
A pending lead sits in ``ready`` (scored by priority) or in ``later`` (scored by the unix
time it may be dialled again).
"""

from __future__ import annotations

# KEYS: leads, phones, lstate, ready, counts    ARGV: JSON list of [lead_id, phone, lead_json, prio]
# Returns {added, lead ids refused because the id already belongs to another number}.
# A number already in the campaign is skipped, so replaying an import adds nothing.
ADD_LEADS = """
local added, clashes = 0, {}
for _, item in ipairs(cjson.decode(ARGV[1])) do
  local id, phone, doc, prio = item[1], item[2], item[3], item[4]
  if redis.call('HSETNX', KEYS[2], phone, id) == 1 then
    if redis.call('HEXISTS', KEYS[1], id) == 1 then
      redis.call('HDEL', KEYS[2], phone)
      table.insert(clashes, id)
    else
      redis.call('HSET', KEYS[1], id, doc)
      redis.call('HSET', KEYS[3], id, cjson.encode({attempts = 0, status = 'pending', prio = prio}))
      redis.call('ZADD', KEYS[4], prio, id)
      added = added + 1
    end
  end
end
redis.call('HINCRBY', KEYS[5], 'leads', added)
return {added, cjson.encode(clashes)}
"""

# KEYS: ready, lstate, claims, inflight, leads, campaign dnc, global dnc, counts
# ARGV: lead_id, call_uuid, now, use_global_dnc (1/0), max_attempts
# Returns {verdict, attempt}: ok | gone (not ready any more) | exhausted | dnc | claimed
CLAIM = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {'gone', 0} end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
local st = raw and cjson.decode(raw) or {}
local attempts = tonumber(st['attempts'] or 0)
local lead = cjson.decode(redis.call('HGET', KEYS[5], ARGV[1]) or '{}')
redis.call('ZREM', KEYS[1], ARGV[1])
if attempts >= tonumber(ARGV[5]) then
  st['status'] = 'exhausted'
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(st))
  redis.call('HINCRBY', KEYS[8], 'exhausted', 1)
  redis.call('HINCRBY', KEYS[8], 'finished', 1)
  return {'exhausted', attempts}
end
local phone = lead['phone'] or ''
if redis.call('SISMEMBER', KEYS[6], phone) == 1
   or (ARGV[4] == '1' and redis.call('SISMEMBER', KEYS[7], phone) == 1) then
  st['status'] = 'dnc'
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(st))
  redis.call('HINCRBY', KEYS[8], 'dnc', 1)
  redis.call('HINCRBY', KEYS[8], 'finished', 1)
  return {'dnc', attempts}
end
local n = attempts + 1
if redis.call('HSETNX', KEYS[3], ARGV[1] .. '#' .. n, ARGV[2]) == 0 then return {'claimed', n} end
st['attempts'] = n
st['status'] = 'dialing'
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(st))
redis.call('HSET', KEYS[4], ARGV[2],
  cjson.encode({lead_id = ARGV[1], attempt = n, started_at = tonumber(ARGV[3])}))
redis.call('HINCRBY', KEYS[8], 'attempts', 1)
return {'ok', n}
"""

# KEYS: results, inflight, lstate, later, records, daily, counts, stats, connected, outbox
# ARGV: attempt_id, call_uuid, lead_id, record_json, status, next_at ('' = none), day,
#       answered (0/1), abandoned (0/1), stats_json ('' = keep), outcome, connected_json ('' = no),
#       outbox event ('' = none: the SQL records' copy, cluster/records/outbox.py)
RECORD_RESULT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[4]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
local raw = redis.call('HGET', KEYS[3], ARGV[3])
local st = raw and cjson.decode(raw) or {}
st['status'] = ARGV[5]
st['last_result'] = ARGV[11]
if ARGV[6] ~= '' then
  st['next_at'] = tonumber(ARGV[6])
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[3])
else
  st['next_at'] = nil
end
redis.call('HSET', KEYS[3], ARGV[3], cjson.encode(st))
redis.call('XADD', KEYS[5], '*', 'data', ARGV[4])
redis.call('HINCRBY', KEYS[6], ARGV[7] .. '|answered', tonumber(ARGV[8]))
redis.call('HINCRBY', KEYS[6], ARGV[7] .. '|abandoned', tonumber(ARGV[9]))
redis.call('HINCRBY', KEYS[7], ARGV[11], 1)
if ARGV[5] ~= 'pending' then redis.call('HINCRBY', KEYS[7], 'finished', 1) end
if ARGV[10] ~= '' then redis.call('SET', KEYS[8], ARGV[10]) end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[9], ARGV[2], ARGV[12]) end
if KEYS[10] and ARGV[13] and ARGV[13] ~= '' then redis.call('XADD', KEYS[10], '*', 'e', ARGV[13]) end
return 1
"""

# KEYS: ended, connected, stats, outbox    ARGV: attempt_id, call_uuid, end_json, stats_json,
#       outbox event ('' = none)
CALL_ENDED = """
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3]) == 0 then return 0 end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
if KEYS[4] and ARGV[5] and ARGV[5] ~= '' then redis.call('XADD', KEYS[4], '*', 'e', ARGV[5]) end
return 1
"""

# KEYS: later, ready, lstate    ARGV: now, limit.  Due retries back into the ready set.
PROMOTE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local st = cjson.decode(redis.call('HGET', KEYS[3], id) or '{}')
  if st['status'] == 'pending' then redis.call('ZADD', KEYS[2], st['prio'] or 1000, id) end
end
return #due
"""

# KEYS: ready, later, lstate, outbox    ARGV: lead_id, until, outbox event ('' = none).
# A lead outside its calling window waits (the decision goes to the SQL records).
DEFER = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if KEYS[4] and ARGV[3] and ARGV[3] ~= '' then redis.call('XADD', KEYS[4], '*', 'e', ARGV[3]) end
local st = cjson.decode(redis.call('HGET', KEYS[3], ARGV[1]) or '{}')
st['next_at'] = tonumber(ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(st))
return 1
"""

# KEYS: campaign hash, campaign set    ARGV: id, config_json, now
# Returns created | same | exists
CREATE_CAMPAIGN = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'config') == ARGV[2] then return 'same' end
  return 'exists'
end
redis.call('HSET', KEYS[1], 'config', ARGV[2], 'state', 'created', 'created_at', ARGV[3],
           'updated_at', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 'created'
"""

# KEYS: lstate, ready    ARGV: JSON list of [lead_id, prio].  New dial order for leads
# not yet finished; a lead waiting in `later` takes its new priority when it is due.
SET_PRIORITY = """
local changed = 0
for _, item in ipairs(cjson.decode(ARGV[1])) do
  local raw = redis.call('HGET', KEYS[1], item[1])
  if raw then
    local st = cjson.decode(raw)
    if st['status'] == 'pending' then
      st['prio'] = item[2]
      redis.call('HSET', KEYS[1], item[1], cjson.encode(st))
      redis.call('ZADD', KEYS[2], 'XX', item[2], item[1])
      changed = changed + 1
    end
  end
end
return changed
"""

# KEYS: leads, lstate, later, counts, outbox    ARGV: lead_id, lead_json, due_at, prio, event
# A callback lead (cluster/dialer/callbacks.py): waits in the later set until due, then
# goes ahead of the imported leads (its prio); once per lead id. Returns 1 when added.
ADD_CALLBACK = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({attempts = 0, status = 'pending',
  prio = tonumber(ARGV[4]), next_at = tonumber(ARGV[3]), callback = 1}))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'leads', 1)
redis.call('HINCRBY', KEYS[4], 'callbacks', 1)
if ARGV[5] ~= '' then redis.call('XADD', KEYS[5], '*', 'e', ARGV[5]) end
return 1
"""

# KEYS: dnc set, outbox    ARGV: add|remove, event_json, phone...
# Changes the set and sends the numbers it actually changed to the compliance ledger (one
# outbox event naming them); returns how many changed.
DNC_CHANGE = """
local changed = {}
for i = 3, #ARGV do
  local n
  if ARGV[1] == 'add' then n = redis.call('SADD', KEYS[1], ARGV[i])
  else n = redis.call('SREM', KEYS[1], ARGV[i]) end
  if n == 1 then table.insert(changed, ARGV[i]) end
end
if #changed > 0 then
  local event = cjson.decode(ARGV[2])
  event['phones'] = changed
  redis.call('XADD', KEYS[2], '*', 'e', cjson.encode(event))
end
return #changed
"""
