//! Presence that every instance sees: connection counts per user and instance, and each
//! doctor's choice and calls, in Redis. Every instance refreshes a heartbeat key that expires;
//! connections counted by an instance whose key expired no longer count, and the first
//! instance to notice removes them, so a crashed instance leaves no ghost ONLINE doctor.
//!
//! When a user's last connection goes (closed, on an instance that stopped or vanished), the
//! moment their grace period ends is recorded here, not in a timer of that instance: whichever
//! instance looks after it ends their calls if they are not back by then, and a doctor back in
//! time keeps their ONLINE choice.
//!
//! Each change runs as one Lua script that also derives the doctor's status before and after
//! it, so concurrent changes on several instances publish each status change once.
//!
//! Keys, under the prefix `P`: `P:instances` (set of instance ids), `P:alive:I` (heartbeat),
//! `P:conns:U` (hash instance -> open sockets of user U), `P:users:I` (users with sockets on
//! instance I), `P:doctor-of:U` (the doctor profile of user U), `P:doctor:D` (hash: user,
//! online, busy), `P:doctors` (doctors with a state), `P:lost` (sorted set: users whose last
//! connection went, by the end of their grace period in Redis time, ms).

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::events::DoctorStatus;

/// Shared by every script: is user U connected on a live instance, a doctor's status, and the
/// record of lost connections.
const PRELUDE: &str = r#"
local p = ARGV[1]
local function connected(user)
  local conns = redis.call('HGETALL', p .. ':conns:' .. user)
  for i = 1, #conns, 2 do
    if tonumber(conns[i + 1]) > 0 and redis.call('EXISTS', p .. ':alive:' .. conns[i]) == 1 then
      return true
    end
  end
  return false
end
-- 0 OFFLINE, 1 ONLINE, 2 BUSY
local function status(doctor, user)
  if not connected(user) then return 0 end
  local state = redis.call('HMGET', p .. ':doctor:' .. doctor, 'online', 'busy')
  if state[2] == '1' then return 2 end
  if state[1] == '1' then return 1 end
  return 0
end
local function register(doctor, user)
  redis.call('SET', p .. ':doctor-of:' .. user, doctor)
  redis.call('HSET', p .. ':doctor:' .. doctor, 'user', user)
  redis.call('SADD', p .. ':doctors', doctor)
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function lost(user, grace)
  redis.call('ZADD', p .. ':lost', now_ms() + tonumber(grace), user)
end
-- Forgets the sockets of an instance that is gone; the users left without a connection start
-- their grace. Appends the doctors among them that were ONLINE or BUSY to `doctors`.
local function forget_instance(instance, grace, doctors)
  redis.call('SREM', p .. ':instances', instance)
  local users = redis.call('SMEMBERS', p .. ':users:' .. instance)
  redis.call('DEL', p .. ':users:' .. instance)
  for _, user in ipairs(users) do
    redis.call('HDEL', p .. ':conns:' .. user, instance)
    if not connected(user) then
      lost(user, grace)
      local doctor = redis.call('GET', p .. ':doctor-of:' .. user)
      if doctor then
        local state = redis.call('HMGET', p .. ':doctor:' .. doctor, 'online', 'busy')
        if state[1] == '1' or state[2] == '1' then table.insert(doctors, doctor) end
      end
    end
  end
end
"#;

/// ARGV: prefix, user, instance. Returns {doctor or '', before, after}.
const CONNECT: &str = r#"
local user, instance = ARGV[2], ARGV[3]
local doctor = redis.call('GET', p .. ':doctor-of:' .. user)
local before = doctor and status(doctor, user) or 0
if doctor and not connected(user) then
  -- Back within the grace, a doctor is ONLINE again if they were; later, they choose again.
  local due = redis.call('ZSCORE', p .. ':lost', user)
  if not due or tonumber(due) < now_ms() then
    redis.call('HSET', p .. ':doctor:' .. doctor, 'online', '0')
  end
end
redis.call('ZREM', p .. ':lost', user)
redis.call('HINCRBY', p .. ':conns:' .. user, instance, 1)
redis.call('SADD', p .. ':users:' .. instance, user)
local after = doctor and status(doctor, user) or 0
return {doctor or '', before, after}
"#;

/// ARGV: prefix, user, instance, grace in ms. Returns {last, doctor or '', before, after}.
const DISCONNECT: &str = r#"
local user, instance = ARGV[2], ARGV[3]
local doctor = redis.call('GET', p .. ':doctor-of:' .. user)
local before = doctor and status(doctor, user) or 0
local key = p .. ':conns:' .. user
if redis.call('HINCRBY', key, instance, -1) <= 0 then
  redis.call('HDEL', key, instance)
  redis.call('SREM', p .. ':users:' .. instance, user)
end
local last = not connected(user)
if last then lost(user, ARGV[4]) end
local after = doctor and status(doctor, user) or 0
return {last and 1 or 0, doctor or '', before, after}
"#;

/// ARGV: prefix, doctor, user, field, '0' or '1'. Returns {refused, before, after}; refused
/// when going online without a connection.
const SET_FLAG: &str = r#"
local doctor, user, field, value = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
register(doctor, user)
local before = status(doctor, user)
if field == 'online' and value == '1' and not connected(user) then
  return {1, before, before}
end
redis.call('HSET', p .. ':doctor:' .. doctor, field, value)
return {0, before, status(doctor, user)}
"#;

/// ARGV: prefix, doctor, user.
const STATUS: &str = "return status(ARGV[2], ARGV[3])";

/// ARGV: prefix. Returns {doctor, status, ...} for doctors not OFFLINE.
const PRESENT: &str = r#"
local out = {}
for _, doctor in ipairs(redis.call('SMEMBERS', p .. ':doctors')) do
  local user = redis.call('HGET', p .. ':doctor:' .. doctor, 'user')
  local s = user and status(doctor, user) or 0
  if s > 0 then
    table.insert(out, doctor)
    table.insert(out, s)
  end
end
return out
"#;

/// ARGV: prefix, instance, expiry in ms, grace in ms, then user, count pairs of this
/// instance's sockets. Refreshes the heartbeat; if the instance had been given up for dead,
/// counts its sockets again. Then forgets the instances whose heartbeat expired. Returns the
/// doctors that thereby went OFFLINE.
const HEARTBEAT: &str = r#"
local me, expiry, grace = ARGV[2], ARGV[3], ARGV[4]
redis.call('SET', p .. ':alive:' .. me, '1', 'PX', expiry)
if redis.call('SADD', p .. ':instances', me) == 1 then
  for i = 5, #ARGV, 2 do
    redis.call('HSET', p .. ':conns:' .. ARGV[i], me, ARGV[i + 1])
    redis.call('SADD', p .. ':users:' .. me, ARGV[i])
    redis.call('ZREM', p .. ':lost', ARGV[i])
  end
end
local doctors = {}
for _, instance in ipairs(redis.call('SMEMBERS', p .. ':instances')) do
  if redis.call('EXISTS', p .. ':alive:' .. instance) == 0 then
    forget_instance(instance, grace, doctors)
  end
end
return doctors
"#;

/// ARGV: prefix, instance, grace in ms. A stopping instance forgets itself (and any socket it
/// could not close in time); returns the doctors that thereby went OFFLINE.
const LEAVE: &str = r#"
local doctors = {}
forget_instance(ARGV[2], ARGV[3], doctors)
redis.call('DEL', p .. ':alive:' .. ARGV[2])
return doctors
"#;

/// ARGV: prefix. Takes the users whose grace is over; returns those not back.
const TAKE_OVERDUE: &str = r#"
local key = p .. ':lost'
local out = {}
for _, user in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now_ms(), 'LIMIT', 0, 1000)) do
  redis.call('ZREM', key, user)
  if not connected(user) then table.insert(out, user) end
end
return out
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

fn decode_status(code: i64) -> DoctorStatus {
    match code {
        2 => DoctorStatus::Busy,
        1 => DoctorStatus::Online,
        _ => DoctorStatus::Offline,
    }
}

/// A doctor's status before and after a change.
pub type Change = (DoctorStatus, DoctorStatus);

pub struct SharedPresence {
    connection: ConnectionManager,
    prefix: String,
    instance: Uuid,
    expiry: Duration,
    grace: Duration,
    scripts: Scripts,
}

struct Scripts {
    connect: Script,
    disconnect: Script,
    set_flag: Script,
    status: Script,
    present: Script,
    heartbeat: Script,
    leave: Script,
    take_overdue: Script,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn ids(ids: Vec<String>) -> Vec<Uuid> {
    ids.iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect()
}

/// A doctor's status change, from a script's `doctor or '', before, after`.
fn doctor_change(doctor: &str, before: i64, after: i64) -> Option<(Uuid, Change)> {
    Uuid::parse_str(doctor)
        .ok()
        .map(|id| (id, (decode_status(before), decode_status(after))))
}

impl SharedPresence {
    /// An instance whose heartbeat is older than `expiry` counts as gone; a user whose last
    /// connection went has `grace` to come back.
    pub fn new(
        connection: ConnectionManager,
        prefix: &str,
        expiry: Duration,
        grace: Duration,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            instance: Uuid::now_v7(),
            expiry,
            grace,
            scripts: Scripts {
                connect: script(CONNECT),
                disconnect: script(DISCONNECT),
                set_flag: script(SET_FLAG),
                status: script(STATUS),
                present: script(PRESENT),
                heartbeat: script(HEARTBEAT),
                leave: script(LEAVE),
                take_overdue: script(TAKE_OVERDUE),
            },
        }
    }

    /// How often to refresh the heartbeat: three times per expiry.
    pub fn heartbeat_every(&self) -> Duration {
        self.expiry / 3
    }

    /// Returns the user's doctor's status change if they are a doctor.
    pub async fn connect(&self, user_id: Uuid) -> redis::RedisResult<Option<(Uuid, Change)>> {
        let (doctor, before, after): (String, i64, i64) = self
            .scripts
            .connect
            .arg(&self.prefix)
            .arg(user_id.to_string())
            .arg(self.instance.to_string())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(doctor_change(&doctor, before, after))
    }

    /// Returns whether it was the user's last connection anywhere, and their doctor's status
    /// change if they are a doctor.
    pub async fn disconnect(
        &self,
        user_id: Uuid,
    ) -> redis::RedisResult<(bool, Option<(Uuid, Change)>)> {
        let (last, doctor, before, after): (i64, String, i64, i64) = self
            .scripts
            .disconnect
            .arg(&self.prefix)
            .arg(user_id.to_string())
            .arg(self.instance.to_string())
            .arg(millis(self.grace))
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok((last == 1, doctor_change(&doctor, before, after)))
    }

    /// Sets the doctor's `online` or `busy` flag; `None` if going online without a connection.
    pub async fn set_flag(
        &self,
        doctor_id: Uuid,
        user_id: Uuid,
        field: &'static str,
        value: bool,
    ) -> redis::RedisResult<Option<Change>> {
        let (refused, before, after): (i64, i64, i64) = self
            .scripts
            .set_flag
            .arg(&self.prefix)
            .arg(doctor_id.to_string())
            .arg(user_id.to_string())
            .arg(field)
            .arg(if value { "1" } else { "0" })
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok((refused == 0).then(|| (decode_status(before), decode_status(after))))
    }

    pub async fn status(&self, doctor_id: Uuid, user_id: Uuid) -> redis::RedisResult<DoctorStatus> {
        let code: i64 = self
            .scripts
            .status
            .arg(&self.prefix)
            .arg(doctor_id.to_string())
            .arg(user_id.to_string())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(decode_status(code))
    }

    pub async fn present_doctors(&self) -> redis::RedisResult<Vec<(Uuid, DoctorStatus)>> {
        let flat: Vec<(String, i64)> = self
            .scripts
            .present
            .arg(&self.prefix)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(flat
            .into_iter()
            .filter_map(|(id, code)| Some((Uuid::parse_str(&id).ok()?, decode_status(code))))
            .collect())
    }

    /// Refreshes this instance's heartbeat (re-counting `local` connections if others had
    /// given it up) and forgets instances whose heartbeat expired. Returns the doctors that
    /// went OFFLINE with them.
    pub async fn heartbeat(&self, local: &[(Uuid, usize)]) -> redis::RedisResult<Vec<Uuid>> {
        let mut invocation = self.scripts.heartbeat.arg(&self.prefix);
        invocation
            .arg(self.instance.to_string())
            .arg(millis(self.expiry))
            .arg(millis(self.grace));
        for (user, count) in local {
            invocation.arg(user.to_string()).arg(*count);
        }
        let doctors: Vec<String> = invocation
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(ids(doctors))
    }

    /// This instance stops: others no longer count its sockets, and wait for none of its
    /// heartbeats. Returns the doctors that went OFFLINE with it.
    pub async fn leave(&self) -> redis::RedisResult<Vec<Uuid>> {
        let doctors: Vec<String> = self
            .scripts
            .leave
            .arg(&self.prefix)
            .arg(self.instance.to_string())
            .arg(millis(self.grace))
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(ids(doctors))
    }

    /// The users whose grace ended without them coming back, wherever they lost their
    /// connection; each is returned to one caller only.
    pub async fn take_overdue(&self) -> redis::RedisResult<Vec<Uuid>> {
        let users: Vec<String> = self
            .scripts
            .take_overdue
            .arg(&self.prefix)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(ids(users))
    }
}
