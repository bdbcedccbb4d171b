"""Redis as the cache of "what is trending right now", and the deleted posts it must never show.

    streampulse:trends:current        sorted set keyword → z of the latest window with trends (+ ":meta")
    streampulse:trend:<keyword>       hash of the keyword's latest trend (sample_uids: a JSON array of uids)
    streampulse:deleted               sorted set uid → when its deletion notice arrived (epoch ms)

The trending job publishes (TrendPublisher), the deletions job forgets (DeletedPosts). Each step is one Lua
script, atomic in Redis, so the two never race: a deleted uid is recorded before the hashes are scrubbed, and
a hash written afterwards leaves out every uid recorded as deleted.
"""

from __future__ import annotations

import json

from shared.names import REDIS_CURRENT as CURRENT
from shared.names import REDIS_DELETED as DELETED
from shared.names import REDIS_KEYWORD as KEYWORD
from shared.settings import Settings

# Replace the current set only with a window at least as new as the one it holds, and each keyword's
# hash likewise, in one atomic step: replays after a failure rewrite the same content, never older.
REPLACE_CURRENT = """
local window_end = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local held = tonumber(redis.call('HGET', KEYS[2], 'window_end') or '-1')
if window_end < held then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('HSET', KEYS[2], 'window_end', ARGV[1])
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""
# ARGV: window_end, ttl, n, n sample uids, then field/value pairs. Samples recorded as deleted are left out.
# (cjson writes "/" as "\/": undone, so the uids read as they were written.)
UPSERT_KEYWORD = """
local held = tonumber(redis.call('HGET', KEYS[1], 'window_end') or '-1')
if tonumber(ARGV[1]) < held then return 0 end
local n = tonumber(ARGV[3])
local kept = {}
for i = 4, 3 + n do
    if not redis.call('ZSCORE', KEYS[2], ARGV[i]) then kept[#kept + 1] = ARGV[i] end
end
local samples = '[]'
if #kept > 0 then samples = (string.gsub(cjson.encode(kept), '\\\\/', '/')) end
redis.call('HSET', KEYS[1], 'sample_uids', samples, unpack(ARGV, 4 + n))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
# KEYS: the deleted set, then keyword hashes; ARGV: uid, now (ms), keep (ms). Records the uid as deleted, drops
# records older than `keep`, and takes the uid out of each hash's sample_uids. Returns how many hashes held it.
FORGET = """
local uid = ARGV[1]
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), uid)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[2]) - tonumber(ARGV[3])))
local scrubbed = 0
for i = 2, #KEYS do
    local text = redis.call('HGET', KEYS[i], 'sample_uids')
    if text then
        local ok, uids = pcall(cjson.decode, text)
        if ok and type(uids) == 'table' then
            local kept, found = {}, false
            for _, u in ipairs(uids) do
                if u == uid then found = true else kept[#kept + 1] = u end
            end
            if found then
                local samples = '[]'
                if #kept > 0 then samples = (string.gsub(cjson.encode(kept), '\\\\/', '/')) end
                redis.call('HSET', KEYS[i], 'sample_uids', samples)
                scrubbed = scrubbed + 1
            end
        end
    end
end
return scrubbed
"""


def redis_options(settings: Settings) -> dict:
    """What a job's Python worker needs to reach Redis (pickled into the job's function)."""
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    return {"host": settings.redis.host, "port": settings.redis.port, "password": password,
            "socket_timeout": 10, "decode_responses": True}


class TrendPublisher:
    """The trending job's side: the current set and each keyword's hash, never moved back to an older window,
    so a replay after a failure is harmless."""

    def __init__(self, options: dict, ttl_s: int):
        import redis

        self.ttl_s = ttl_s
        self.client = redis.Redis(**options)
        self.replace_current = self.client.register_script(REPLACE_CURRENT)
        self.upsert_keyword = self.client.register_script(UPSERT_KEYWORD)

    def publish(self, window_end: int, members: list[tuple[str, float]], trends: list[tuple[str, list[str], dict]]):
        """members: (keyword, z) of the window's ranking; trends: (keyword, sample uids, other fields)."""
        self.replace_current(keys=[CURRENT, CURRENT + ":meta"],
                             args=[window_end, self.ttl_s, *[x for keyword, z in members for x in (z, keyword)]])
        for keyword, samples, fields in trends:
            self.upsert_keyword(keys=[KEYWORD + keyword, DELETED],
                                args=[window_end, self.ttl_s, len(samples), *samples,
                                      *[x for kv in fields.items() for x in kv]])


class DeletedPosts:
    """The deletions job's side: a deleted uid leaves every keyword hash at once, and is remembered `keep_s`
    so that a trend published later (a window still open when the post was deleted) leaves it out."""

    def __init__(self, options: dict, keep_s: int):
        import redis

        self.keep_ms = keep_s * 1000
        self.client = redis.Redis(**options)
        self.forget_script = self.client.register_script(FORGET)

    def forget(self, uid: str, now_ms: int) -> int:
        """How many keyword hashes held the uid (none holds it afterwards)."""
        hashes = list(self.client.scan_iter(match=KEYWORD + "*", count=1000, _type="hash"))
        return int(self.forget_script(keys=[DELETED, *hashes], args=[uid, now_ms, self.keep_ms]))


def sample_uids(text: str | None) -> list[str]:
    """A hash's sample_uids field as a list."""
    return json.loads(text) if text else []
