//! The `main` of the in-process benches (`overhead.rs`, `middleware.rs`): criterion's run, or a
//! plain run for callgrind, inside a runtime that is entered but never driven (the stacks'
//! timers need one to exist; nothing in these benches waits).

use criterion::Criterion;

/// A count for callgrind from `<PREFIX>_ROUNDS` (the number of requests to send).
pub fn rounds(prefix: &str) -> usize {
    std::env::var(format!("{prefix}_ROUNDS"))
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{prefix}_ROUNDS is a number"))
}

/// Runs `without_criterion` (which returns whether it handled the run) or else `benches`.
pub fn main(without_criterion: fn() -> bool, benches: fn()) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    if without_criterion() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
