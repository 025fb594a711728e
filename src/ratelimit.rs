//! Rate limits (governor), keyed per client IP or per account. Each instance
//! enforces its own; memory stays bounded because idle keys are swept.

use std::{hash::Hash, net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::{auth::UserId, config::Config, error::Error};

/// One keyed limit.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    name: &'static str,
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `name` labels the security event logged when the limit refuses someone.
    pub fn new(name: &'static str, quota: Quota) -> Self {
        Self {
            name,
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one cell for `key`, or says how long to wait (whole seconds, rounded up).
    pub fn check(&self, key: &K) -> Result<(), Error> {
        self.limiter.check_key(key).map_err(|not_until| {
            // The request span carries the client IP; the key itself (an email for
            // the account limit) is not logged.
            tracing::warn!(
                security_event = "rate_limited",
                limit = self.name,
                "rate limit hit"
            );
            let wait = not_until.wait_time_from(self.clock.now());
            Error::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// Forgets keys whose state is back to full: a flood of distinct keys cannot
    /// grow the map without bound.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

/// Every limit of the server.
pub struct Limits {
    pub ws_handshake: KeyedLimit<IpAddr>,
    pub login: KeyedLimit<IpAddr>,
    pub register: KeyedLimit<IpAddr>,
    pub refresh: KeyedLimit<IpAddr>,
    /// Per normalised email, across IPs: slows a distributed guessing attack on one
    /// account, and, being a rate, never locks the owner out for long.
    pub login_account: KeyedLimit<String>,
    /// Room messages per user, WebSocket and HTTP publishes alike: one budget, so a
    /// client cannot double its rate by using both doors.
    pub publish: KeyedLimit<UserId>,
    /// HTTP publishes per client IP: bounds what many accounts behind one address
    /// can push (five users' worth of budget).
    pub publish_ip: KeyedLimit<IpAddr>,
}

impl Limits {
    pub fn new(config: &Config) -> Self {
        let per_minute = Quota::per_minute(nz(config.login_per_minute));
        Self {
            ws_handshake: KeyedLimit::new(
                "ws_handshake",
                Quota::per_second(nz(config.ws_handshake_per_second))
                    .allow_burst(nz(config.ws_handshake_burst)),
            ),
            login: KeyedLimit::new("login", per_minute),
            register: KeyedLimit::new("register", per_minute),
            refresh: KeyedLimit::new(
                "refresh",
                Quota::per_minute(nz(config.login_per_minute.saturating_mul(6))),
            ),
            login_account: KeyedLimit::new("login_account", per_minute),
            publish: KeyedLimit::new(
                "publish",
                Quota::per_second(nz(config.publish_per_second))
                    .allow_burst(nz(config.publish_per_second.saturating_mul(2))),
            ),
            publish_ip: KeyedLimit::new(
                "publish_ip",
                Quota::per_second(nz(config.publish_per_second.saturating_mul(5)))
                    .allow_burst(nz(config.publish_per_second.saturating_mul(10))),
            ),
        }
    }

    fn sweep(&self) {
        self.ws_handshake.sweep();
        self.login.sweep();
        self.register.sweep();
        self.refresh.sweep();
        self.login_account.sweep();
        self.publish.sweep();
        self.publish_ip.sweep();
    }

    /// Sweeps all limits every `every`, until the limits themselves are dropped
    /// (the task holds only a weak reference).
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(limits) => limits.sweep(),
                    None => break,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_distinct_keys_is_forgotten_by_the_sweep() {
        let limit = KeyedLimit::<u32>::new("test", Quota::per_second(nz(1000)));
        for key in 0..10_000 {
            limit.check(&key).unwrap();
        }
        assert_eq!(limit.len(), 10_000);
        // After a full replenish period every key is back to its full quota.
        std::thread::sleep(Duration::from_millis(1100));
        limit.sweep();
        assert!(limit.is_empty(), "{} keys left", limit.len());
    }

    #[test]
    fn a_refusal_says_how_long_to_wait_in_whole_seconds() {
        let limit = KeyedLimit::<u32>::new("test", Quota::per_minute(nz(1)));
        limit.check(&1).unwrap();
        match limit.check(&1) {
            Err(Error::RateLimited { retry_after_secs }) => {
                assert!((59..=60).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Other keys are unaffected.
        assert!(limit.check(&2).is_ok());
    }
}
