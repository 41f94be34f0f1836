//! Where the federation keeps its state in Redis, and the Lua scripts that change it at once
//! (a script runs alone in Redis: no other node's command comes between its steps).
//!
//! | key | type | what |
//! |---|---|---|
//! | `chatter:log` | stream | the room: every line, join, leave and whisper, in one order (`MAXLEN ~ --redis-history`) |
//! | `chatter:handle:{handle}` | string, TTL | the node holding the handle (`SET NX PX`, refreshed by its heartbeat); the handle in ASCII lower case (`string.lower`), so that `Ann` is taken while `ann` is |
//! | `chatter:node:{node}` | string, TTL | the node's heartbeat: its instance; gone, the node is dead |
//! | `chatter:nodes` | hash | node → instance: the nodes that registered and were not reaped |
//! | `chatter:members:{node}` | set | the node's members, for `/who` at a start and for its reaping |
//! | `chatter:reaped:{node}` | string, TTL 1 h | the instance reaped, so that it joins its members again if it was only away (and, after Redis lost its data, the late reaper's mark) |
//! | `chatter:epoch` | string | set once by the first node: a different one after a reconnection means Redis lost its data |

/// The prefix of every key.
pub(crate) const PREFIX: &str = "chatter:";

/// The `EVAL` of one of the scripts below, with no keys (a script names its own, from the
/// prefix, its first argument): its other arguments are to be added.
pub(crate) fn script(body: &str) -> fibra::redis::Cmd {
    fibra::redis::Cmd::new("EVAL")
        .arg(body)
        .arg("0")
        .arg(PREFIX)
}

/// The room's stream.
pub(crate) const LOG: &str = "chatter:log";

/// The key marking this Redis's data: set by the first node, changed only by a data loss.
pub(crate) const EPOCH: &str = "chatter:epoch";

/// Claims a handle for a node and lists it among the node's members; 1 if the node holds it
/// now (it did already, or it was free), 0 if another node does.
/// KEYS: none; ARGV: prefix, node, ttl (ms), handle.
pub(crate) const CLAIM: &str = r#"
local p, node, ttl, h = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = p .. 'handle:' .. string.lower(h)
local owner = redis.call('GET', key)
if owner and owner ~= node then return 0 end
redis.call('SET', key, node, 'PX', ttl)
redis.call('SADD', p .. 'members:' .. node, h)
return 1
"#;

/// Frees the handles a node held, if it still holds them, and takes them off its members.
/// ARGV: prefix, node, handles...
pub(crate) const RELEASE: &str = r#"
local p, node = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local key = p .. 'handle:' .. string.lower(ARGV[i])
  if redis.call('GET', key) == node then redis.call('DEL', key) end
  redis.call('SREM', p .. 'members:' .. node, ARGV[i])
end
return #ARGV - 2
"#;

/// The heartbeat: the node's key and its members' handles live for another TTL (taken back
/// if Redis lost them), the node and its members listed. Returns `{lost, rejoin, other}`:
/// the handles another node holds now, 1 if this instance had been reaped (declared dead)
/// and must join its members again, and the instance of another live chatter that
/// refreshed this node's key since ("" if none: two chatters under one name).
/// ARGV: prefix, node, instance, ttl (ms), handles...
pub(crate) const HEARTBEAT: &str = r#"
local p, node, inst, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rejoin = 0
if redis.call('GET', p .. 'reaped:' .. node) == inst then
  rejoin = 1
  redis.call('DEL', p .. 'reaped:' .. node)
end
local other = redis.call('GET', p .. 'node:' .. node)
if other == false or other == inst then other = '' end
redis.call('SET', p .. 'node:' .. node, inst, 'PX', ttl)
redis.call('HSET', p .. 'nodes', node, inst)
local lost = {}
for i = 5, #ARGV do
  local h = ARGV[i]
  local key = p .. 'handle:' .. string.lower(h)
  local owner = redis.call('GET', key)
  if owner == false or owner == node then
    redis.call('SET', key, node, 'PX', ttl)
    redis.call('SADD', p .. 'members:' .. node, h)
  else
    table.insert(lost, h)
  end
end
return {lost, rejoin, other}
"#;

/// The reaper: every listed node whose heartbeat key has expired is dead; for each, its
/// members' leaves go into the stream (once: the node leaves the list in the same step, so
/// another node's reaper finds nothing), its handles are freed, and a tombstone names the
/// instance reaped. Returns the nodes reaped.
/// ARGV: prefix, the stream's MAXLEN, the reaper's node, the reaper's instance.
pub(crate) const REAP: &str = r#"
local p, maxlen, by, inst = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local reaped = {}
local nodes = redis.call('HGETALL', p .. 'nodes')
for j = 1, #nodes, 2 do
  local n, dead = nodes[j], nodes[j + 1]
  if redis.call('EXISTS', p .. 'node:' .. n) == 0 then
    for _, h in ipairs(redis.call('SMEMBERS', p .. 'members:' .. n)) do
      redis.call('XADD', p .. 'log', 'MAXLEN', '~', maxlen, '*',
        'k', 'leave', 'n', n, 'i', inst, 's', '0', 'h', h, 'by', by)
      local key = p .. 'handle:' .. string.lower(h)
      if redis.call('GET', key) == n then redis.call('DEL', key) end
    end
    redis.call('DEL', p .. 'members:' .. n)
    redis.call('HDEL', p .. 'nodes', n)
    redis.call('SET', p .. 'reaped:' .. n, dead, 'PX', 3600000)
    table.insert(reaped, n)
  end
end
return reaped
"#;

/// The late reaper, after Redis lost its data: a node the others knew that has not come
/// back to it (no heartbeat key, not listed) and was not reaped since is dead, and its
/// members, whom the new Redis never heard of, leave: once (the tombstone, set in the same
/// step, stops every other node's late reaper and the reaper), and only for the handles no
/// other node took since.
/// ARGV: prefix, the stream's MAXLEN, the reaper's node, the reaper's instance, the dead
/// node, its instance (as last seen), its handles...
pub(crate) const REAP_LOST: &str = r#"
local p, maxlen, by, inst, n, dead = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if redis.call('EXISTS', p .. 'node:' .. n) == 1 or redis.call('HEXISTS', p .. 'nodes', n) == 1 then
  return 0
end
if not redis.call('SET', p .. 'reaped:' .. n, dead, 'PX', 3600000, 'NX') then return 0 end
for i = 7, #ARGV do
  local h = ARGV[i]
  local key = p .. 'handle:' .. string.lower(h)
  local owner = redis.call('GET', key)
  if owner == false or owner == n then
    redis.call('XADD', p .. 'log', 'MAXLEN', '~', maxlen, '*',
      'k', 'leave', 'n', n, 'i', inst, 's', '0', 'h', h, 'by', by)
    if owner == n then redis.call('DEL', key) end
  end
end
return 1
"#;

/// A node's hello, at its start: the members a former instance of the same node left behind
/// (a crash, a restart under the same name) leave now; the node registers; and it learns
/// the room: the stream's last id (it reads from there), and every other node's members
/// (what `/who` lists). Returns `{last_id, node, instance, {handles}, ...}`.
/// ARGV: prefix, the stream's MAXLEN, node, instance, ttl (ms).
pub(crate) const HELLO: &str = r#"
local p, maxlen, node, inst, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local before = redis.call('GET', p .. 'node:' .. node)
if before ~= inst then
  for _, h in ipairs(redis.call('SMEMBERS', p .. 'members:' .. node)) do
    redis.call('XADD', p .. 'log', 'MAXLEN', '~', maxlen, '*',
      'k', 'leave', 'n', node, 'i', inst, 's', '0', 'h', h, 'by', node)
    local key = p .. 'handle:' .. string.lower(h)
    if redis.call('GET', key) == node then redis.call('DEL', key) end
  end
  redis.call('DEL', p .. 'members:' .. node)
end
redis.call('SET', p .. 'node:' .. node, inst, 'PX', ttl)
redis.call('HSET', p .. 'nodes', node, inst)
local last = redis.call('XREVRANGE', p .. 'log', '+', '-', 'COUNT', 1)
local out = {'0-0'}
if #last > 0 then out[1] = last[1][1] end
local nodes = redis.call('HGETALL', p .. 'nodes')
for j = 1, #nodes, 2 do
  local n = nodes[j]
  if n ~= node then
    table.insert(out, n)
    table.insert(out, nodes[j + 1])
    table.insert(out, redis.call('SMEMBERS', p .. 'members:' .. n))
  end
end
return out
"#;

/// A node's goodbye, at its stop: its members leave (in the stream, for the others), its
/// handles are freed and it is no longer listed.
/// ARGV: prefix, the stream's MAXLEN, node, instance.
pub(crate) const BYE: &str = r#"
local p, maxlen, node, inst = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('GET', p .. 'node:' .. node) ~= inst then return 0 end
for _, h in ipairs(redis.call('SMEMBERS', p .. 'members:' .. node)) do
  redis.call('XADD', p .. 'log', 'MAXLEN', '~', maxlen, '*',
    'k', 'leave', 'n', node, 'i', inst, 's', '0', 'h', h, 'by', node)
  local key = p .. 'handle:' .. string.lower(h)
  if redis.call('GET', key) == node then redis.call('DEL', key) end
end
redis.call('DEL', p .. 'members:' .. node, p .. 'node:' .. node)
redis.call('HDEL', p .. 'nodes', node)
return 1
"#;
