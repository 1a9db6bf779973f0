//! The marketplace's callback URL of one link, with the link's secret in it, and the limit on how
//! often a delivery may wake a link.
//!
//! Each link subscribes with its own callback URL, `{public_url}/webhooks/market/{token}`. The
//! token is `{link id}.{mac}`, where `mac` is HMAC-SHA-256 of the link id under the node's
//! webhook secret (the one the PMS signs with, domain-separated), so every node that shares the
//! secret computes the same URL and no table of tokens is kept. A delivery to a token that does
//! not check out (compared in constant time) is answered 404 and wakes nothing; a good token
//! wakes only its own link, and only when this node works it.
//!
//! An outsider who learnt one link's URL can wake that link, but [`WakeLimiter`] lets a link be
//! woken by deliveries at most once per second: a burst is folded into one wake-up now and one
//! a second later, so no delivery is lost and no flood becomes a poll storm.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use slotbridge_store::LinkId;

use crate::http::constant_time_eq;

/// The most often a link is woken by marketplace deliveries.
pub const WAKE_INTERVAL: Duration = Duration::from_secs(1);

const CONTEXT: &[u8] = b"slotbridge marketplace callback v1:";

fn mac(secret: &SecretString, link: LinkId) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let mut m = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(CONTEXT);
    m.update(link.to_string().as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The secret path segment of `link`'s callback URL.
pub fn token(secret: &SecretString, link: LinkId) -> String {
    format!("{link}.{}", mac(secret, link))
}

/// The link a callback token belongs to, when it checks out.
pub fn link_of(secret: &SecretString, token: &str) -> Option<LinkId> {
    let (id, given) = token.split_once('.')?;
    let link: LinkId = id.parse().ok()?;
    constant_time_eq(mac(secret, link).as_bytes(), given.as_bytes()).then_some(link)
}

/// `link`'s callback URL under the node's public base URL.
pub fn url(public_url: &url::Url, secret: &SecretString, link: LinkId) -> String {
    let base = public_url.as_str().trim_end_matches('/');
    format!("{base}/webhooks/market/{}", token(secret, link))
}

/// What to do with a delivery for a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Wake the link now.
    Now,
    /// Wake it after this long (the first delivery within the interval).
    After(Duration),
    /// A wake-up is already due; nothing more to do.
    Folded,
}

/// At most one wake-up per link per [`WAKE_INTERVAL`]; a delivery inside the interval is folded
/// into one wake-up at its end.
#[derive(Debug, Default)]
pub struct WakeLimiter {
    links: HashMap<LinkId, (Instant, bool)>,
}

impl WakeLimiter {
    /// A delivery for `link` arrived at `now`.
    pub fn admit(&mut self, link: LinkId, now: Instant) -> Wake {
        if self.links.len() > 10_000 {
            self.links
                .retain(|_, (at, pending)| *pending || now.duration_since(*at) < WAKE_INTERVAL);
        }
        match self.links.get_mut(&link) {
            Some((_, true)) => Wake::Folded,
            Some((at, pending)) if now.duration_since(*at) < WAKE_INTERVAL => {
                *pending = true;
                Wake::After(WAKE_INTERVAL - now.duration_since(*at))
            }
            _ => {
                self.links.insert(link, (now, false));
                Wake::Now
            }
        }
    }

    /// The folded wake-up of `link` happened at `now`.
    pub fn woken(&mut self, link: LinkId, now: Instant) {
        self.links.insert(link, (now, false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("a webhook secret".to_owned())
    }

    #[test]
    fn a_token_checks_out_only_for_its_link_and_secret() {
        let link = LinkId::new();
        let t = token(&secret(), link);
        assert_eq!(link_of(&secret(), &t), Some(link));
        let other = SecretString::from("another".to_owned());
        assert_eq!(link_of(&other, &t), None, "another node's secret");
        let (id, mac) = t.split_once('.').unwrap();
        let forged = format!("{}.{mac}", LinkId::new());
        assert_eq!(
            link_of(&secret(), &forged),
            None,
            "a mac moved to another link"
        );
        let mut flipped = mac.to_owned().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = format!("{id}.{}", String::from_utf8(flipped).unwrap());
        assert_eq!(link_of(&secret(), &flipped), None);
        assert_eq!(link_of(&secret(), id), None, "no mac");
        assert_eq!(link_of(&secret(), ""), None);
        assert_eq!(link_of(&secret(), "x.y"), None);
    }

    #[test]
    fn the_url_is_under_the_public_url() {
        let link = LinkId::new();
        let base: url::Url = "https://sb.example.com/".parse().unwrap();
        assert_eq!(
            url(&base, &secret(), link),
            format!(
                "https://sb.example.com/webhooks/market/{}",
                token(&secret(), link)
            )
        );
    }

    #[test]
    fn a_link_is_woken_at_most_once_per_interval_and_a_burst_is_folded() {
        let (a, b) = (LinkId::new(), LinkId::new());
        let t0 = Instant::now();
        let mut l = WakeLimiter::default();
        assert_eq!(l.admit(a, t0), Wake::Now);
        assert_eq!(l.admit(b, t0), Wake::Now, "links are limited apart");
        let ms = Duration::from_millis;
        assert_eq!(l.admit(a, t0 + ms(200)), Wake::After(ms(800)));
        for n in 0..100 {
            assert_eq!(l.admit(a, t0 + ms(300 + n)), Wake::Folded);
        }
        l.woken(a, t0 + ms(1000));
        assert_eq!(l.admit(a, t0 + ms(1500)), Wake::After(ms(500)));
        l.woken(a, t0 + ms(2000));
        assert_eq!(l.admit(a, t0 + ms(3000)), Wake::Now);
    }
}
