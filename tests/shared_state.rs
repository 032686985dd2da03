//! Several stacks, one API key: pacing, cooldowns and the retry budget shared through a state
//! store, in paused time against the mock provider that enforces its limit (and, when
//! `HTTP_RESILIENCE_REDIS_URL` names a server, the same through Redis). Also what happens when
//! the store fails: nothing waits past its timeout, nothing fails.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::provider::{Provider, Style};
use http::StatusCode;
use http_resilience::pacing::Pacer;
use http_resilience::retry::RetryBudget;
use http_resilience::store::{
    BudgetPolicy, Grant, InProcessStore, SharedLimit, StateStore, StoreError, StoreFuture,
};
use http_resilience::ResilienceLayer;
use tokio::time::Instant;
use tower::ServiceExt;

use common::{paced_client as client, paced_get as get};

/// `workers` stacks, each with `callers` callers sending for `run_for`; returns (logical
/// requests that failed, attempts answered 200, attempts answered 429).
async fn run_fleet(
    provider: &Provider,
    pacers: Vec<Pacer>,
    callers: usize,
    run_for: Duration,
) -> (u32, u32, u32) {
    let end = Instant::now() + run_for;
    let failed = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for pacer in pacers {
        let client = client(
            provider,
            ResilienceLayer::new()
                .pacer(pacer)
                .deadline(Duration::from_secs(120)),
        );
        for _ in 0..callers {
            let client = client.clone();
            let failed = Arc::clone(&failed);
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    match client.clone().oneshot(get()).await {
                        Ok(response) if response.status() == StatusCode::OK => {}
                        other => {
                            if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("failed: {:?}", other.map(|r| r.status()));
                            }
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let seconds = provider.seconds();
    let ok = seconds.iter().map(|s| s.ok).sum();
    let limited = seconds.iter().map(|s| s.limited).sum();
    (failed.load(Ordering::Relaxed), ok, limited)
}

/// 120 a minute shared by four stacks for five minutes: the provider allows the full bucket
/// (120) and 2 a second after it, 720 in all.
const LIMIT_PER_MINUTE: f64 = 120.0;
const RUN: Duration = Duration::from_secs(300);
const ALLOWED: f64 = LIMIT_PER_MINUTE + LIMIT_PER_MINUTE / 60.0 * 300.0;

#[tokio::test(start_paused = true)]
async fn four_stacks_sharing_a_store_stay_under_the_limit_and_use_it() {
    let provider = Provider::new(Style::OpenAi, LIMIT_PER_MINUTE, 1e9);
    let store = Arc::new(InProcessStore::new());
    let pacers = (0..4)
        .map(|_| Pacer::new().share_through(store.clone(), "test"))
        .collect::<Vec<_>>();
    let stats_of = pacers.clone();
    let (failed, ok, limited) = run_fleet(&provider, pacers, 4, RUN).await;
    assert_eq!(failed, 0);
    assert!(
        limited * 100 <= ok + limited,
        "{limited} of {} attempts answered 429",
        ok + limited
    );
    assert!(
        f64::from(ok) >= 0.9 * ALLOWED,
        "used {ok} of the {ALLOWED} the limit allowed"
    );
    // Leases: far fewer round trips than requests.
    let round_trips: u64 = stats_of
        .iter()
        .map(|p| p.store_stats().unwrap().round_trips)
        .sum();
    assert!(
        round_trips <= u64::from(ok),
        "{round_trips} round trips for {ok} requests"
    );
    assert!(stats_of
        .iter()
        .all(|p| p.store_stats().unwrap().failures == 0));
}

#[tokio::test(start_paused = true)]
async fn four_stacks_pacing_alone_overrun_the_limit() {
    let provider = Provider::new(Style::OpenAi, LIMIT_PER_MINUTE, 1e9);
    let pacers = (0..4).map(|_| Pacer::new()).collect();
    let (_, ok, limited) = run_fleet(&provider, pacers, 4, RUN).await;
    // Each stack refills at the whole limit's rate: the fleet asks several times what it may.
    assert!(
        limited * 10 > ok + limited,
        "only {limited} of {} attempts answered 429",
        ok + limited
    );
}

/// A store that fails every operation, or never answers.
struct BrokenStore {
    hang: bool,
    calls: AtomicU32,
}

impl BrokenStore {
    fn answer<T: Send + 'static>(&self) -> StoreFuture<'_, T> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.hang {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async { Err(StoreError::new("connection refused")) })
        }
    }
}

impl StateStore for BrokenStore {
    fn take_permits(&self, _: &str, _: u32) -> StoreFuture<'_, Grant> {
        self.answer()
    }
    fn return_permits(&self, _: &str, _: u32) -> StoreFuture<'_, ()> {
        self.answer()
    }
    fn record_limit(&self, _: &str, _: SharedLimit) -> StoreFuture<'_, ()> {
        self.answer()
    }
    fn set_cooldown(&self, _: &str, _: Duration) -> StoreFuture<'_, ()> {
        self.answer()
    }
    fn deposit(&self, _: &str, _: u32, _: BudgetPolicy) -> StoreFuture<'_, ()> {
        self.answer()
    }
    fn withdraw(&self, _: &str, _: u32, _: BudgetPolicy) -> StoreFuture<'_, u32> {
        self.answer()
    }
}

async fn a_broken_store_changes_nothing(hang: bool) {
    let provider = Provider::new(Style::OpenAi, 60.0, 1e9);
    let store = Arc::new(BrokenStore {
        hang,
        calls: AtomicU32::new(0),
    });
    let pacer = Pacer::new().share_through(store.clone(), "test");
    let budget = RetryBudget::default().share_through(store.clone(), "test");
    let client = client(
        &provider,
        ResilienceLayer::new()
            .pacer(pacer.clone())
            .budget(budget.clone()),
    );
    let start = Instant::now();
    for _ in 0..80 {
        let response = client.clone().oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // As the pacer alone would: 60 at once, then one a second; no more than the store's
    // timeout (50 ms) lost once per retry of the store, a second apart.
    let elapsed = start.elapsed();
    assert!(elapsed <= Duration::from_secs(21), "{elapsed:?}");
    let stats = pacer.store_stats().unwrap();
    assert!(stats.failures >= 1, "{stats:?}");
    assert!(stats.fallbacks >= 1, "{stats:?}");
    assert!(store.calls.load(Ordering::Relaxed) >= 1);
    // Tried again about once a second, not on every request.
    assert!(stats.round_trips <= 40, "{stats:?}");
    let limited: u32 = provider.seconds().iter().map(|s| s.limited).sum();
    assert!(limited <= 1, "{limited}");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_refuses_every_operation_changes_nothing() {
    a_broken_store_changes_nothing(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_store_that_never_answers_costs_at_most_its_timeout() {
    a_broken_store_changes_nothing(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_bounds_a_storm_across_stacks() {
    let store = Arc::new(InProcessStore::new());
    // No floor, one retry per success: a storm after 20 successes allows 20 retries in all,
    // however many stacks see it.
    let budgets: Vec<RetryBudget> = (0..4)
        .map(|_| {
            RetryBudget::new(Duration::from_secs(10), 0, 1.0).share_through(store.clone(), "b")
        })
        .collect();
    for budget in &budgets {
        for _ in 0..5 {
            budget.deposit();
        }
        // Reported after the batching interval.
        tokio::time::sleep(Duration::from_millis(300)).await;
        budget.deposit();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut allowed = 0;
    for _ in 0..200 {
        for budget in &budgets {
            if budget.withdraw() {
                allowed += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // 24 successes reported at most; each stack's first retry may be decided alone while its
    // first lease is on the way (24 local successes allow 6 each).
    assert!(allowed <= 24 + 4 * 6, "{allowed} retries allowed");
    assert!(allowed >= 20, "{allowed} retries allowed");
}

#[tokio::test(start_paused = true)]
async fn a_429_with_a_wait_makes_the_other_stacks_wait() {
    let store = Arc::new(InProcessStore::new());
    store
        .record_limit(
            "s",
            SharedLimit {
                per_second: 10.0,
                burst: 10.0,
                remaining: 10.0,
                keep_for: Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
    store
        .set_cooldown("s", Duration::from_secs(5))
        .await
        .unwrap();
    let grant = store.take_permits("s", 4).await.unwrap();
    assert_eq!(grant.granted, 0);
    assert_eq!(grant.wait, Duration::from_secs(5));
    tokio::time::advance(Duration::from_secs(5)).await;
    let grant = store.take_permits("s", 4).await.unwrap();
    assert_eq!(grant.granted, 4);
    // An unknown scope gets one permit, for the answer that tells its limit.
    let grant = store.take_permits("unknown", 3).await.unwrap();
    assert_eq!((grant.granted, grant.known), (1, false));
}

/// A limit recorded while permits are reserved ahead keeps them owed: an answer saying a few
/// are left (counted before the reserved requests reached the provider) must not hand the
/// reserved permits out a second time.
async fn reserved_permits_survive_a_recorded_limit(store: &dyn StateStore) {
    let limit = |remaining| SharedLimit {
        per_second: 1.0,
        burst: 5.0,
        remaining,
        keep_for: Duration::from_secs(60),
    };
    store.record_limit("reserved", limit(0.0)).await.unwrap();
    // Three permits reserved ahead, due in about 1, 2 and 3 s.
    let ahead = store.take_permits("reserved", 3).await.unwrap();
    assert_eq!(ahead.granted, 3);
    store.record_limit("reserved", limit(2.0)).await.unwrap();
    // The next is the fourth due: about 4 s away, not at once nor in 1 s.
    let next = store.take_permits("reserved", 1).await.unwrap();
    assert_eq!(next.granted, 1);
    assert!(
        next.wait > Duration::from_millis(3500) && next.wait <= Duration::from_secs(4),
        "{next:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_in_process_store_keeps_reserved_permits_through_a_record() {
    reserved_permits_survive_a_recorded_limit(&InProcessStore::new()).await;
}

/// The same contract against a real Redis server, when one is named.
#[cfg(feature = "redis")]
mod redis_store {
    use super::*;

    #[tokio::test]
    async fn redis_keeps_reserved_permits_through_a_record() {
        use http_resilience::store::RedisStore;
        let Some(url) = redis_url() else { return };
        let prefix = format!("hr-test-reserved-{}", std::process::id());
        let store = RedisStore::connect(&url, prefix).await.unwrap();
        reserved_permits_survive_a_recorded_limit(&store).await;
    }

    use common::redis_url;

    #[tokio::test]
    async fn the_scripts_keep_the_bucket_the_cooldown_and_the_budget() {
        use http_resilience::store::RedisStore;
        let Some(url) = redis_url() else { return };
        let prefix = format!("hr-test-{}", std::process::id());
        let store = RedisStore::connect(&url, prefix).await.unwrap();
        let limit = SharedLimit {
            per_second: 1.0,
            burst: 5.0,
            remaining: 3.0,
            keep_for: Duration::from_secs(60),
        };
        let unknown = store.take_permits("scope", 2).await.unwrap();
        assert_eq!((unknown.granted, unknown.known), (1, false));
        store.record_limit("scope", limit).await.unwrap();
        // What the provider reported left (3), usable now.
        let grant = store.take_permits("scope", 3).await.unwrap();
        assert_eq!((grant.granted, grant.known), (3, true));
        assert!(grant.wait < Duration::from_millis(50), "{grant:?}");
        // Empty: the next permit is reserved, usable in about a second.
        let ahead = store.take_permits("scope", 1).await.unwrap();
        assert_eq!(ahead.granted, 1);
        assert!(ahead.wait > Duration::from_millis(900) && ahead.wait <= Duration::from_secs(1));
        // No more than a bucket (5) ahead: 4 more at most, the first due in about 2 s and
        // the others a second apart.
        let far = store.take_permits("scope", 10).await.unwrap();
        assert_eq!(far.granted, 4);
        assert!(far.wait > Duration::from_millis(1900), "{far:?}");
        assert_eq!(far.interval, Duration::from_secs(1));
        assert_eq!(store.take_permits("scope", 1).await.unwrap().granted, 0);
        store.return_permits("scope", 5).await.unwrap();
        store
            .set_cooldown("scope", Duration::from_secs(30))
            .await
            .unwrap();
        let cooling = store.take_permits("scope", 1).await.unwrap();
        assert_eq!(cooling.granted, 0);
        assert!(cooling.wait > Duration::from_secs(29));

        let policy = BudgetPolicy {
            ratio: 0.5,
            floor: 1.0,
            window: Duration::from_secs(10),
        };
        store.deposit("budget", 4, policy).await.unwrap();
        // floor 1 + half of 4 = 3.
        assert_eq!(store.withdraw("budget", 5, policy).await.unwrap(), 3);
        assert_eq!(store.withdraw("budget", 1, policy).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn keys_hold_fingerprints_not_credentials_and_expire() {
        use http_resilience::store::RedisStore;
        let Some(url) = redis_url() else { return };
        let prefix = format!("hr-keys-{}", std::process::id());
        let store = Arc::new(RedisStore::connect(&url, prefix.clone()).await.unwrap());
        let pacer = Pacer::new().share_through(store.clone(), "openai");
        let provider = Provider::new(Style::OpenAi, 600.0, 1e9);
        let client = client(&provider, ResilienceLayer::new().pacer(pacer.clone()));
        for _ in 0..5 {
            client.clone().oneshot(get()).await.unwrap();
        }
        // Let the background record reach the server.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(!keys.is_empty(), "the scope was recorded");
        for key in &keys {
            assert!(!key.contains("sk-test"), "{key}");
            let ttl: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(ttl > 0, "{key} expires by itself");
            let fields: Vec<String> = redis::cmd("HVALS")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(fields.iter().all(|v| !v.contains("sk-test")));
        }
        assert_eq!(pacer.store_stats().unwrap().failures, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_server_is_rejoined() {
        use http_resilience::store::RedisStore;
        if redis_url().is_none() {
            return;
        }
        let port = common::free_port();
        let dir = std::env::temp_dir().join(format!("hr-restart-{}", std::process::id()));
        let mut redis = common::start_redis(port, &dir).await;
        let url = format!("redis://127.0.0.1:{port}");
        let store = Arc::new(RedisStore::connect(&url, "restart").await.unwrap());
        let pacer = Pacer::new().share_through(store, "restart");
        let provider = Provider::new(Style::OpenAi, 6000.0, 1e9);
        let client = client(&provider, ResilienceLayer::new().pacer(pacer.clone()));
        let keys = |url: String| async move {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("restart:*")
                .query_async(&mut connection)
                .await
                .unwrap();
            keys
        };
        let send = |n: usize| {
            let client = client.clone();
            async move {
                for _ in 0..n {
                    let response = client.clone().oneshot(get()).await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                }
            }
        };
        send(20).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !keys(url.clone()).await.is_empty(),
            "the scope was recorded"
        );
        assert_eq!(pacer.store_stats().unwrap().failures, 0);

        // The server goes: every request still succeeds, from this process's own state.
        redis.kill().unwrap();
        redis.wait().unwrap();
        send(20).await;
        let down = pacer.store_stats().unwrap();
        assert!(down.failures >= 1, "{down:?}");

        // It comes back empty on the same port: the pacer rejoins and records the scope again.
        let mut redis = common::start_redis(port, &dir).await;
        let mut rejoined = false;
        for _ in 0..50 {
            send(5).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !keys(url.clone()).await.is_empty() {
                rejoined = true;
                break;
            }
        }
        let after = pacer.store_stats().unwrap();
        let _ = redis.kill();
        let _ = redis.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            rejoined,
            "the scope was recorded in the restarted server: {after:?}"
        );
        assert!(
            after.round_trips > down.round_trips,
            "{down:?} then {after:?}"
        );
    }
}
