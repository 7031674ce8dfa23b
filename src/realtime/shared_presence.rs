//! Presence that every instance sees: connection counts per user and instance, and each
//! doctor's choice and calls, in Redis. Every instance refreshes a heartbeat key that expires;
//! connections counted by an instance whose key expired no longer count, and the first
//! instance to notice removes them, so a crashed instance leaves no ghost ONLINE doctor.
//!
//! Each change runs as one Lua script that also derives the doctor's status before and after
//! it, so concurrent changes on several instances publish each status change once.
//!
//! Keys, under the prefix `P`: `P:instances` (set of instance ids), `P:alive:I` (heartbeat),
//! `P:conns:U` (hash instance -> open sockets of user U), `P:users:I` (users with sockets on
//! instance I), `P:doctor-of:U` (the doctor profile of user U), `P:doctor:D` (hash: user,
//! online, busy), `P:doctors` (doctors with a state).

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::presence::DoctorStatus;

/// Shared by every script: is user U connected on a live instance, and a doctor's status.
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
"#;

/// ARGV: prefix, user, instance.
const CONNECT: &str = r#"
redis.call('HINCRBY', p .. ':conns:' .. ARGV[2], ARGV[3], 1)
redis.call('SADD', p .. ':users:' .. ARGV[3], ARGV[2])
return 1
"#;

/// ARGV: prefix, user, instance. Returns {last, doctor or '', before, after}.
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
if last and doctor then
  -- Coming back does not make a doctor ONLINE again by itself.
  redis.call('HSET', p .. ':doctor:' .. doctor, 'online', '0')
end
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

/// ARGV: prefix, user.
const IS_CONNECTED: &str = "return connected(ARGV[2]) and 1 or 0";

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

/// ARGV: prefix, instance, expiry in ms, then user, count pairs of this instance's sockets.
/// Refreshes the heartbeat; if the instance had been given up for dead, counts its sockets
/// again. Then removes the instances whose heartbeat expired. Returns {users, doctors}: the
/// users that thereby left, and the doctors among them that were ONLINE or BUSY.
const HEARTBEAT: &str = r#"
local me, expiry = ARGV[2], ARGV[3]
redis.call('SET', p .. ':alive:' .. me, '1', 'PX', expiry)
if redis.call('SADD', p .. ':instances', me) == 1 then
  for i = 4, #ARGV, 2 do
    redis.call('HSET', p .. ':conns:' .. ARGV[i], me, ARGV[i + 1])
    redis.call('SADD', p .. ':users:' .. me, ARGV[i])
  end
end
local gone, doctors = {}, {}
for _, instance in ipairs(redis.call('SMEMBERS', p .. ':instances')) do
  if redis.call('EXISTS', p .. ':alive:' .. instance) == 0 then
    redis.call('SREM', p .. ':instances', instance)
    local users = redis.call('SMEMBERS', p .. ':users:' .. instance)
    redis.call('DEL', p .. ':users:' .. instance)
    for _, user in ipairs(users) do
      redis.call('HDEL', p .. ':conns:' .. user, instance)
      if not connected(user) then
        table.insert(gone, user)
        local doctor = redis.call('GET', p .. ':doctor-of:' .. user)
        if doctor then
          local state = redis.call('HMGET', p .. ':doctor:' .. doctor, 'online', 'busy')
          if state[1] == '1' or state[2] == '1' then table.insert(doctors, doctor) end
          redis.call('HSET', p .. ':doctor:' .. doctor, 'online', '0')
        end
      end
    end
  end
end
return {gone, doctors}
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

/// What a heartbeat found: users whose last connection was on instances that vanished, and
/// the doctors among them that were ONLINE or BUSY (OFFLINE now).
#[derive(Default)]
pub struct Vanished {
    pub users: Vec<Uuid>,
    pub doctors: Vec<Uuid>,
}

pub struct SharedPresence {
    connection: ConnectionManager,
    prefix: String,
    instance: Uuid,
    expiry: Duration,
    scripts: Scripts,
}

struct Scripts {
    connect: Script,
    disconnect: Script,
    set_flag: Script,
    status: Script,
    is_connected: Script,
    present: Script,
    heartbeat: Script,
}

impl SharedPresence {
    pub fn new(connection: ConnectionManager, prefix: &str, expiry: Duration) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            instance: Uuid::now_v7(),
            expiry,
            scripts: Scripts {
                connect: script(CONNECT),
                disconnect: script(DISCONNECT),
                set_flag: script(SET_FLAG),
                status: script(STATUS),
                is_connected: script(IS_CONNECTED),
                present: script(PRESENT),
                heartbeat: script(HEARTBEAT),
            },
        }
    }

    /// How often to refresh the heartbeat: three times per expiry.
    pub fn heartbeat_every(&self) -> Duration {
        self.expiry / 3
    }

    pub async fn connect(&self, user_id: Uuid) -> redis::RedisResult<()> {
        self.scripts
            .connect
            .arg(&self.prefix)
            .arg(user_id.to_string())
            .arg(self.instance.to_string())
            .invoke_async::<i64>(&mut self.connection.clone())
            .await
            .map(drop)
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
            .invoke_async(&mut self.connection.clone())
            .await?;
        let doctor = Uuid::parse_str(&doctor)
            .ok()
            .map(|id| (id, (decode_status(before), decode_status(after))));
        Ok((last == 1, doctor))
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

    pub async fn is_connected(&self, user_id: Uuid) -> redis::RedisResult<bool> {
        let connected: i64 = self
            .scripts
            .is_connected
            .arg(&self.prefix)
            .arg(user_id.to_string())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(connected == 1)
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
    /// given it up) and clears out instances whose heartbeat expired.
    pub async fn heartbeat(&self, local: &[(Uuid, usize)]) -> redis::RedisResult<Vanished> {
        let mut invocation = self.scripts.heartbeat.arg(&self.prefix);
        invocation
            .arg(self.instance.to_string())
            .arg(u64::try_from(self.expiry.as_millis()).unwrap_or(u64::MAX));
        for (user, count) in local {
            invocation.arg(user.to_string()).arg(*count);
        }
        let (users, doctors): (Vec<String>, Vec<String>) = invocation
            .invoke_async(&mut self.connection.clone())
            .await?;
        let ids = |ids: Vec<String>| {
            ids.iter()
                .filter_map(|id| Uuid::parse_str(id).ok())
                .collect()
        };
        Ok(Vanished {
            users: ids(users),
            doctors: ids(doctors),
        })
    }
}
