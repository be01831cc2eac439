"""The Lua scripts of the Redis store: each touches one record hash, atomically.

One key per script, so that they run on Redis Cluster without hash tags. The
indexes over several records (by user, by kind) are updated by the store
afterwards; see :mod:`coatcheck.stores.redis`.
"""

from __future__ import annotations

#: Write the whole record: replace the hash, set its TTL.
#: KEYS[1] record; ARGV[1] ttl ms, ARGV[2..] field/value pairs.
#: Returns the kind the hash held before ("" if none), so that the store can
#: take the key out of that kind's index if the kind changed.
SAVE = """
local replaced = redis.call('HGET', KEYS[1], 'k') or ''
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return replaced
"""

#: Merge into an existing record only; never re-create a revoked one. With an
#: expected field (ARGV[3] non-empty), apply only if it holds ARGV[4].
#: KEYS[1] record; ARGV[1] ttl ms, ARGV[2] number of pairs n, ARGV[3] expected
#: field or "", ARGV[4] expected value, then n pairs, then names to delete.
#: Returns {0, ""} if nothing was written, else {1, the kind held before}.
UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], ARGV[3]) ~= ARGV[4] then return {0, ''} end
local replaced = redis.call('HGET', KEYS[1], 'k') or ''
local n = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + 2 * n))
if #ARGV > 4 + 2 * n then redis.call('HDEL', KEYS[1], unpack(ARGV, 5 + 2 * n)) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {1, replaced}
"""

#: Create the record unless one is there whose expiry (field "e") is after
#: now by the store's clock; Redis's TTL has usually removed the others.
#: KEYS[1] record; ARGV[1] ttl ms, ARGV[2] now, ARGV[3..] field/value pairs.
#: Returns 1 if the record was written, else 0.
ADD = """
local expires_at = redis.call('HGET', KEYS[1], 'e')
if expires_at and tonumber(expires_at) > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

#: KEYS[1] record; ARGV[1] last seen, ARGV[2] expires at, ARGV[3] ttl ms.
#: Returns {user id, kind} ("" for none) of the record, so that the store can
#: extend the user's index and rescore the kind's, or {"", ""} if it is gone.
TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', ''} end
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {redis.call('HGET', KEYS[1], 'u') or '', redis.call('HGET', KEYS[1], 'k') or ''}
"""
