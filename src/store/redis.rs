//! [`RedisStore`]: the shared state in a Redis server.

use std::fmt;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::{BudgetPolicy, Grant, SharedLimit, StateStore, StoreError, StoreFuture};

/// The shared state in a Redis server (feature `redis`).
///
/// Every operation is one Lua script, run atomically by the server with the server's clock, so
/// processes whose clocks differ still share one bucket. Keys are `{prefix}:pace:{scope}` (a
/// hash: rate, size, what is left, when, cooldown) and `{prefix}:budget:{name}:{slot}` (a hash
/// of successes and retries per tenth of the window); every key expires by itself once unused.
/// Scopes are fingerprints: no key or value holds a credential.
///
/// The connection is redis-rs's [`ConnectionManager`], which reconnects in the background
/// after the server goes away; until it does, operations fail at once and the pacer and budget
/// decide from their own state (see the [module docs](super)).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use http_resilience::pacing::Pacer;
/// use http_resilience::store::RedisStore;
///
/// let store = Arc::new(RedisStore::connect("redis://127.0.0.1:6379", "my-app").await?);
/// let pacer = Pacer::new().share_through(store, "openai");
/// # let _ = pacer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is not shown: it may carry a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the server at `url` (`redis://[:password@]host:port[/db]`), naming every key
    /// under `prefix` (for example the application's name).
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|error| StoreError::caused_by("not a Redis URL", error))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_secs(1))
            .set_number_of_retries(2)
            .set_max_delay(1000);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|error| StoreError::caused_by("cannot connect to Redis", error))?;
        Ok(RedisStore {
            connection,
            prefix: prefix.into(),
        })
    }

    fn pace_key(&self, scope: &str) -> String {
        format!("{}:pace:{scope}", self.prefix)
    }

    fn budget_key(&self, name: &str) -> String {
        format!("{}:budget:{name}", self.prefix)
    }
}

fn failed(error: redis::RedisError) -> StoreError {
    StoreError::caused_by("a Redis script failed", error)
}

/// The server's clock in milliseconds, as every script reads it.
const NOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// A bucket refilled to `now`: `tokens` from its fields.
const REFILL: &str = r"
local function refilled(rate, burst, tokens, at, now)
  if not tokens then return burst end
  local t = tokens + rate * math.max(0, now - at) / 1000
  if t > burst then t = burst end
  return t
end
";

/// How long the count of permits handed out for an unknown scope is kept: far longer than an
/// answer takes.
const PROBE_MEMORY_MS: u64 = 10_000;

fn take_script() -> Script {
    Script::new(&format!(
        r"{NOW}{REFILL}
local b = redis.call('HMGET', KEYS[1], 'rate', 'burst', 'tokens', 'at', 'cool', 'keep')
local want = tonumber(ARGV[1])
local rate = tonumber(b[1])
-- Unknown: one permit, to learn the limit from its answer; counted, so that the first
-- record knows how many such answers may still be on their way.
if not rate or rate <= 0 then
  if want >= 1 then
    redis.call('HINCRBY', KEYS[1], 'probes', 1)
    redis.call('PEXPIRE', KEYS[1], {PROBE_MEMORY_MS})
  end
  return {{math.min(want, 1), 0, 0, 0}}
end
local burst = tonumber(b[2])
local cool = tonumber(b[5]) or 0
if cool > now then return {{0, cool - now, 1, 0}} end
local tokens = refilled(rate, burst, tonumber(b[3]), tonumber(b[4]) or now, now)
local room = math.floor(tokens + burst)
if room < 1 then
  return {{0, math.ceil((1 - room) * 1000 / rate), 1, 0}}
end
local granted = want
if room < granted then granted = room end
-- The first is covered once the bucket holds one; the others one refill interval apart.
-- (All at once when the bucket holds them all.)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end
local interval = 0
if tokens < granted then interval = math.floor(1000000 / rate) end
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], tonumber(b[6]) or 60000)
return {{granted, wait, 1, interval}}
"
    ))
}

fn return_script() -> Script {
    Script::new(&format!(
        r"{NOW}{REFILL}
local b = redis.call('HMGET', KEYS[1], 'rate', 'burst', 'tokens', 'at')
local rate = tonumber(b[1])
if not rate then return 0 end
local burst = tonumber(b[2])
local tokens = refilled(rate, burst, tonumber(b[3]), tonumber(b[4]) or now, now) + tonumber(ARGV[1])
if tokens > burst then tokens = burst end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
return 1
"
    ))
}

fn record_script() -> Script {
    Script::new(&format!(
        r"{NOW}{REFILL}
local b = redis.call('HMGET', KEYS[1], 'rate', 'burst', 'tokens', 'at', 'probes')
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local remaining = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local tokens = remaining
if not b[1] then
  -- The first limit: the other permits handed out while it was unknown may reach the
  -- provider after this answer was counted; they are owed.
  local probes = tonumber(b[5]) or 0
  if probes > 1 then tokens = remaining - (probes - 1) end
  redis.call('HDEL', KEYS[1], 'probes')
end
if b[1] then
  -- Refilled at the lower of the two rates: a first estimate too high must not have
  -- refilled the bucket faster than the provider's.
  local old_rate = tonumber(b[1])
  if rate < old_rate then old_rate = rate end
  tokens = refilled(old_rate, tonumber(b[2]), tonumber(b[3]), tonumber(b[4]) or now, now)
  if remaining < tokens then tokens = remaining end
  -- Below zero are permits already reserved ahead (or requests in flight the provider has
  -- not counted yet): they stay owed, down to the reservations' floor.
  if tokens < -burst then tokens = -burst end
elseif tokens < 0 then
  tokens = 0
end
if burst < tokens then tokens = burst end
redis.call('HSET', KEYS[1], 'rate', tostring(rate), 'burst', tostring(burst),
  'tokens', tostring(tokens), 'at', now, 'keep', keep)
redis.call('PEXPIRE', KEYS[1], keep)
return 1
"
    ))
}

fn cooldown_script() -> Script {
    Script::new(&format!(
        r"{NOW}{REFILL}
local b = redis.call('HMGET', KEYS[1], 'rate', 'burst', 'tokens', 'at', 'cool')
local rate = tonumber(b[1])
if not rate then return 0 end
local until_ = now + tonumber(ARGV[1])
local cool = tonumber(b[5]) or 0
if until_ > cool then cool = until_ end
-- The provider has nothing left: neither has the bucket (it had drifted above); permits
-- reserved ahead stay reserved.
local tokens = refilled(rate, tonumber(b[2]), tonumber(b[3]), tonumber(b[4]) or now, now)
if tokens > 0 then tokens = 0 end
redis.call('HSET', KEYS[1], 'cool', cool, 'tokens', tostring(tokens), 'at', now)
return 1
"
    ))
}

/// ARGV: the window in ms, then per operation: deposit count or withdraw wish, ratio, floor.
/// KEYS[1]: the budget's key prefix; slot keys are `{prefix}:{slot}`.
fn deposit_script() -> Script {
    Script::new(&format!(
        r"{NOW}
local window = tonumber(ARGV[1])
local slot = math.floor(now / (window / 10))
local key = KEYS[1] .. ':' .. slot
redis.call('HINCRBY', key, 'd', tonumber(ARGV[2]))
redis.call('PEXPIRE', key, window + 2000)
return 1
"
    ))
}

fn withdraw_script() -> Script {
    Script::new(&format!(
        r"{NOW}
local window = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local ratio = tonumber(ARGV[3])
local floor = tonumber(ARGV[4])
local slot = math.floor(now / (window / 10))
local deposits, withdrawals = 0, 0
for s = slot - 9, slot do
  local v = redis.call('HMGET', KEYS[1] .. ':' .. s, 'd', 'w')
  deposits = deposits + (tonumber(v[1]) or 0)
  withdrawals = withdrawals + (tonumber(v[2]) or 0)
end
local granted = math.floor(floor + ratio * deposits - withdrawals)
if granted > want then granted = want end
if granted < 0 then granted = 0 end
if granted > 0 then
  local key = KEYS[1] .. ':' .. slot
  redis.call('HINCRBY', key, 'w', granted)
  redis.call('PEXPIRE', key, window + 2000)
end
return granted
"
    ))
}

/// The scripts, made once (each hashes its text for `EVALSHA`).
struct Scripts {
    take: Script,
    give_back: Script,
    record: Script,
    cooldown: Script,
    deposit: Script,
    withdraw: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        take: take_script(),
        give_back: return_script(),
        record: record_script(),
        cooldown: cooldown_script(),
        deposit: deposit_script(),
        withdraw: withdraw_script(),
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl StateStore for RedisStore {
    fn take_permits(&self, scope: &str, want: u32) -> StoreFuture<'_, Grant> {
        let key = self.pace_key(scope);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let (granted, wait, known, interval_us): (u32, u64, u8, u64) = scripts()
                .take
                .key(key)
                .arg(want)
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(Grant {
                granted,
                wait: Duration::from_millis(wait),
                interval: Duration::from_micros(interval_us),
                known: known == 1,
            })
        })
    }

    fn return_permits(&self, scope: &str, count: u32) -> StoreFuture<'_, ()> {
        let key = self.pace_key(scope);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let _: i64 = scripts()
                .give_back
                .key(key)
                .arg(count)
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn record_limit(&self, scope: &str, limit: SharedLimit) -> StoreFuture<'_, ()> {
        let key = self.pace_key(scope);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let _: i64 = scripts()
                .record
                .key(key)
                .arg(limit.per_second.to_string())
                .arg(limit.burst.to_string())
                .arg(limit.remaining.to_string())
                .arg(millis(limit.keep_for).max(1))
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn set_cooldown(&self, scope: &str, wait: Duration) -> StoreFuture<'_, ()> {
        let key = self.pace_key(scope);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let _: i64 = scripts()
                .cooldown
                .key(key)
                .arg(millis(wait))
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn deposit(&self, budget: &str, successes: u32, policy: BudgetPolicy) -> StoreFuture<'_, ()> {
        let key = self.budget_key(budget);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let _: i64 = scripts()
                .deposit
                .key(key)
                .arg(millis(policy.window).max(10))
                .arg(successes)
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn withdraw(&self, budget: &str, want: u32, policy: BudgetPolicy) -> StoreFuture<'_, u32> {
        let key = self.budget_key(budget);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let granted: u32 = scripts()
                .withdraw
                .key(key)
                .arg(millis(policy.window).max(10))
                .arg(want)
                .arg(policy.ratio.to_string())
                .arg(policy.floor.to_string())
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(granted)
        })
    }
}
