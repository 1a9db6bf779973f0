//! Webhook delivery: a POST of the payload to the subscription's callback URL; an attempt fails
//! on a timeout (5 s), a connection error or a non-2xx status. Failed attempts are written to the
//! subscription error log and retried after 10, 100 and 1000 s (4 attempts in all). Every window
//! is multiplied by the time factor; the timeout is at least 500 ms. Injected faults
//! ([`crate::faults::WebhookFaults`]) lose a first attempt, send a delivery twice, delay it, or
//! hold it back until the next one was sent.

use std::time::Duration;

use crate::{
    App,
    state::{DeliveryRec, ErrorLogRec, Outgoing},
    wire::SubscriptionErrorLog,
};

/// Delays before the retries, in seconds (before scaling).
pub const RETRY_DELAYS: [f64; 3] = [10.0, 100.0, 1000.0];

/// The longest a delivery held back for reordering waits for the next one.
const HELD_AT_MOST: Duration = Duration::from_secs(5);

/// Spawn the deliveries (call after releasing the lock).
pub fn spawn(app: &App, out: Vec<Outgoing>) {
    for o in out {
        let app = app.clone();
        tokio::spawn(async move { deliver(app, o).await });
    }
}

async fn deliver(app: App, o: Outgoing) {
    let mut payload_json = serde_json::to_value(&o.payload).unwrap_or_default();
    if app.lock().quirks {
        crate::api::add_unknown_fields(&mut payload_json);
    }
    let (practice_id, consumer) = {
        let m = app.lock();
        m.subscriptions
            .get(&o.subscription_id)
            .map(|r| (r.practice_id, r.consumer.clone()))
            .unwrap_or_default()
    };
    let index = {
        let mut m = app.lock();
        m.deliveries.push(DeliveryRec {
            practice_id,
            subscription_id: o.subscription_id.clone(),
            payload: payload_json.clone(),
            attempts: 0,
            delivered: false,
            gave_up: false,
        });
        m.deliveries.len() - 1
    };
    let timeout = Duration::from_secs_f64((5.0 * app.timing.time_factor).max(0.5));
    let (mut plan, mut release) = app.faults().plan_delivery();
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    if let Some(next) = plan.after_next.take() {
        // Held back until the next delivery was sent (or a while passed).
        let _ = tokio::time::timeout(HELD_AT_MOST, next).await;
    }
    for attempt in 1..=(RETRY_DELAYS.len() + 1) {
        let result = if attempt == 1 && plan.drop_first {
            None
        } else {
            Some(
                app.http
                    .post(&o.callback_url)
                    .timeout(timeout)
                    .json(&payload_json)
                    .send()
                    .await,
            )
        };
        if attempt == 1 {
            if plan.duplicate && result.is_some() {
                let _ = app
                    .http
                    .post(&o.callback_url)
                    .timeout(timeout)
                    .json(&payload_json)
                    .send()
                    .await;
            }
            // The delivery held back before this one goes now: after it.
            if let Some(held) = release.take() {
                let _ = held.send(());
            }
        }
        let failure = match result {
            None => Some((
                "ConnectException",
                "the delivery was lost on the way (injected)".to_owned(),
            )),
            Some(result) => match result {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some((
                    "HttpStatusError",
                    format!("callback answered HTTP {}", r.status()),
                )),
                Err(e) if e.is_timeout() => Some((
                    "TimeoutException",
                    format!("no answer within {} ms", timeout.as_millis()),
                )),
                Err(e) => Some((
                    "ConnectException",
                    format!("cannot reach the callback URL: {e}"),
                )),
            },
        };
        let delay = record_attempt(&app, &o, index, practice_id, &consumer, attempt, failure);
        let Some(delay) = delay else { return };
        tokio::time::sleep(Duration::from_secs_f64(delay * app.timing.time_factor)).await;
    }
}

/// Record an attempt; the delay before the next one, or `None` when done.
fn record_attempt(
    app: &App,
    o: &Outgoing,
    index: usize,
    practice_id: u64,
    consumer: &str,
    attempt: usize,
    failure: Option<(&str, String)>,
) -> Option<f64> {
    let mut m = app.lock();
    m.deliveries[index].attempts = attempt as u32;
    let Some((error_type, error_message)) = failure else {
        m.deliveries[index].delivered = true;
        return None;
    };
    let at = app.now();
    m.error_log.push(ErrorLogRec {
        practice_id,
        consumer: consumer.to_owned(),
        at,
        entry: SubscriptionErrorLog {
            id: uuid::Uuid::new_v4().to_string(),
            subscription_id: o.subscription_id.clone(),
            subscription_topic: o.payload.topic,
            client_id: o.payload.client_id.clone(),
            callback_url: o.callback_url.clone(),
            payload: o.payload.clone(),
            attempt: attempt as i64,
            error_type: error_type.to_owned(),
            error_message,
        },
    });
    let delay = RETRY_DELAYS.get(attempt - 1).copied();
    if delay.is_none() {
        m.deliveries[index].gave_up = true;
    }
    delay
}
