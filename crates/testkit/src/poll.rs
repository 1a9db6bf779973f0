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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_until_gives_the_first_value_and_none_after_the_limit() {
        let mut n = 0;
        let got = poll_until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            let v = (n == 3).then_some(n);
            async move { v }
        })
        .await;
        assert_eq!(got, Some(3));
        let never: Option<()> = poll_until(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { None },
        )
        .await;
        assert_eq!(never, None);
    }

    #[tokio::test]
    #[should_panic(expected = "the thing: not within")]
    async fn eventually_names_what_did_not_happen() {
        eventually("the thing", Duration::from_millis(10), || async {
            None::<()>
        })
        .await;
    }
}
