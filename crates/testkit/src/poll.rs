//! Polling with deadlines: tests wait for what the integration does in the background.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] and [`eventually_or`] ask again.
pub const EVERY: Duration = Duration::from_millis(200);

/// Ask `f` every `every` until it gives a value; `None` once `within` has passed (`f` is asked
/// at least once).
pub async fn poll_until<T, F, Fut>(within: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Ask `f` every 200 ms until it gives a value; panic with `"{what}: not within {within:?}"`
/// once `within` has passed.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_or(what, within, String::new, f).await
}

/// [`eventually`], with `context()` (e.g. the nodes' log tails) in the panic message.
pub async fn eventually_or<T, F, Fut>(
    what: &str,
    within: Duration,
    context: impl Fn() -> String,
    f: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(within, EVERY, f).await {
        Some(v) => v,
        None => panic!("{what}: not within {within:?}\n{}", context()),
    }
}
