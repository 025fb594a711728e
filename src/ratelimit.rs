//! Rate limits (governor), keyed per client IP or per account, and failure budgets
//! for logins. Each instance enforces its own; memory stays bounded because idle
//! keys are swept.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::{auth::UserId, config::Config};

/// A refusal: wait this many whole seconds (`Retry-After`). Its HTTP answer is
/// 429 `rate_limited` (`crate::http::error`); a socket's is an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {retry_after_secs} s")]
pub struct Limited {
    pub retry_after_secs: u64,
}

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
    pub fn check(&self, key: &K) -> Result<(), Limited> {
        self.limiter.check_key(key).map_err(|not_until| {
            // The request span carries the client IP; the key itself (an email for
            // the account limit) is not logged.
            tracing::warn!(
                security_event = "rate_limited",
                limit = self.name,
                "rate limit hit"
            );
            metrics::counter!("doorman_rate_limited_total", "limit" => self.name).increment(1);
            Limited {
                retry_after_secs: whole_seconds(not_until.wait_time_from(self.clock.now())),
            }
        })
    }

    /// Forgets keys whose state is back to full: a flood of distinct keys cannot
    /// grow the map without bound.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// Retry-After in whole seconds, rounded up.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A keyed budget of *failures* (GCRA): `burst` at once, one more every `period`.
/// Unlike a governor limit, a cell can be given back: an attempt takes its cell up
/// front (so a hundred concurrent guesses cannot all slip past a budget of ten
/// while their hashes run) and returns it when it turns out not to be a failure.
pub struct FailureBudget<K: Hash + Eq + Clone> {
    name: &'static str,
    period: Duration,
    burst: u32,
    /// The theoretical arrival time per key; a key whose time has passed is full.
    tat: Mutex<HashMap<K, Instant>>,
}

/// Keys one budget keeps at most. Past it, the keys with the least debt go first
/// (those closest to a full budget lose least by being forgotten), down to nine
/// tenths: a flood of fresh keys cannot refill the budget of an account under attack.
const MAX_BUDGET_KEYS: usize = 100_000;

impl<K: Hash + Eq + Clone> FailureBudget<K> {
    pub fn new(name: &'static str, burst: u32, per: Duration) -> Self {
        let burst = burst.max(1);
        Self {
            name,
            period: per / burst,
            burst,
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// A budget that never lets more than `max` cells through in any `window`
    /// (for `max` ≥ 2; one cell per `window` for 1). A GCRA budget of burst `b`,
    /// one more every `t`, lets `b + window / t` through in a window: half of
    /// `max` at once, the other half spread over the window.
    pub fn at_most(name: &'static str, max: u32, window: Duration) -> Self {
        let burst = (max / 2).max(1);
        let spread = max.saturating_sub(burst).max(1);
        Self {
            name,
            period: window / spread,
            burst,
            tat: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Instant>> {
        self.tat.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one cell for `key`, or refuses with how long to wait.
    pub fn take(&self, key: &K) -> Result<(), Limited> {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_BUDGET_KEYS && !map.contains_key(key) {
            map.retain(|_, tat| *tat > now);
            if map.len() >= MAX_BUDGET_KEYS {
                let mut tats: Vec<Instant> = map.values().copied().collect();
                tats.sort_unstable();
                let cut = tats[tats.len() - MAX_BUDGET_KEYS * 9 / 10];
                map.retain(|_, tat| *tat >= cut);
            }
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let next = tat + self.period;
        let limit = now + self.period * self.burst;
        if next > limit {
            drop(map);
            tracing::warn!(
                security_event = "rate_limited",
                limit = self.name,
                "login failure budget spent"
            );
            metrics::counter!("doorman_rate_limited_total", "limit" => self.name).increment(1);
            return Err(Limited {
                retry_after_secs: whole_seconds(next - limit),
            });
        }
        map.insert(key.clone(), next);
        Ok(())
    }

    /// Gives back a cell taken by [`take`](Self::take).
    pub fn give_back(&self, key: &K) {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(tat) = map.get_mut(key) {
            *tat = tat.checked_sub(self.period).unwrap_or(now);
            if *tat <= now {
                map.remove(key);
            }
        }
    }

    /// Forgets keys whose budget is full again.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, tat| *tat > now);
        map.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Who may try a password, and how often it may be wrong.
///
/// Failures, not attempts, are counted, and never in a way that lets a stranger
/// lock the owner out:
/// - from a device the account has used (a device cookie), failures count only
///   against that device's own budget;
/// - from anywhere else, against a budget per (account, IP) and under
///   account-wide ceilings shared by all unknown devices: never more than N in any
///   15 minutes nor 10·N in any 24 hours (NIST SP 800-63B §5.2.2 caps consecutive
///   failures at 100; N = 10 by default).
///
/// A correct password gives its cells back. The arithmetic is in docs/security.md.
pub struct LoginThrottle {
    per_account_ip: FailureBudget<(String, IpAddr)>,
    per_account: FailureBudget<String>,
    per_account_daily: FailureBudget<String>,
    per_device: FailureBudget<(String, String)>,
}

/// One password check in progress. Dropped without [`LoginAttempt::finish`] (say,
/// the client hung up while the hash ran), it stays counted as a failure.
pub struct LoginAttempt<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    from: From,
    finished: bool,
}

enum From {
    Device(String),
    Ip(IpAddr),
}

impl LoginThrottle {
    /// `n`: `DOORMAN_LOGIN_PER_MINUTE`.
    pub fn new(n: u32) -> Self {
        let n = n.max(1);
        let quarter_hour = Duration::from_secs(15 * 60);
        Self {
            per_account_ip: FailureBudget::new("login_account_ip", n, quarter_hour),
            per_account: FailureBudget::at_most("login_account", n, quarter_hour),
            per_account_daily: FailureBudget::at_most(
                "login_account_daily",
                n.saturating_mul(10),
                Duration::from_secs(24 * 3600),
            ),
            per_device: FailureBudget::new("login_device", n, quarter_hour),
        }
    }

    /// Takes the cells a failure would cost, or refuses with 429. `device` is the
    /// id of a device cookie already recognised for this account.
    pub fn begin(
        &self,
        account: &str,
        ip: IpAddr,
        device: Option<String>,
    ) -> Result<LoginAttempt<'_>, Limited> {
        let account = account.to_owned();
        let from = match device {
            Some(device) => {
                self.per_device.take(&(account.clone(), device.clone()))?;
                From::Device(device)
            }
            None => {
                let key = (account.clone(), ip);
                self.per_account_ip.take(&key)?;
                if let Err(e) = self.per_account.take(&account) {
                    self.per_account_ip.give_back(&key);
                    return Err(e);
                }
                if let Err(e) = self.per_account_daily.take(&account) {
                    self.per_account.give_back(&account);
                    self.per_account_ip.give_back(&key);
                    return Err(e);
                }
                From::Ip(ip)
            }
        };
        Ok(LoginAttempt {
            throttle: self,
            account,
            from,
            finished: false,
        })
    }

    fn sweep(&self) {
        self.per_account_ip.sweep();
        self.per_account.sweep();
        self.per_account_daily.sweep();
        self.per_device.sweep();
    }
}

impl LoginAttempt<'_> {
    /// Ends the attempt: a failure keeps its cells, anything else (a correct
    /// password, or an error that was no guess, such as an outage) gives them back.
    pub fn finish(mut self, failed: bool) {
        self.finished = true;
        if failed {
            return;
        }
        let t = self.throttle;
        match &self.from {
            From::Device(device) => t
                .per_device
                .give_back(&(self.account.clone(), device.clone())),
            From::Ip(ip) => {
                t.per_account_ip.give_back(&(self.account.clone(), *ip));
                t.per_account.give_back(&self.account);
                t.per_account_daily.give_back(&self.account);
            }
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        // The client hung up while its password was being checked: counted as a
        // failure (it may have been one), and said so, as failed logins are.
        if !self.finished {
            tracing::warn!(
                security_event = "login_abandoned",
                "login abandoned before its answer; counted as a failure"
            );
        }
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

/// The name of every limit: the `limit` label of `doorman_rate_limited_total`.
pub const LIMIT_NAMES: &[&str] = &[
    "ws_handshake",
    "login",
    "register",
    "refresh",
    "publish",
    "publish_ip",
    "room_create",
    "mail_ip",
    "mail_address",
    "email_token",
    "factor_change",
    "login_account",
    "login_account_daily",
    "login_account_ip",
    "login_device",
];

/// Every limit of the server.
pub struct Limits {
    pub ws_handshake: KeyedLimit<IpAddr>,
    pub login: KeyedLimit<IpAddr>,
    pub register: KeyedLimit<IpAddr>,
    pub refresh: KeyedLimit<IpAddr>,
    /// Failed passwords per account, IP and device (see [`LoginThrottle`]).
    pub login_failures: LoginThrottle,
    /// Room messages per user, WebSocket and HTTP publishes alike: one budget, so a
    /// client cannot double its rate by using both doors.
    pub publish: KeyedLimit<UserId>,
    /// HTTP publishes per client IP: bounds what many accounts behind one address
    /// can push (five users' worth of budget).
    pub publish_ip: KeyedLimit<IpAddr>,
    /// Private rooms created per user (`DOORMAN_ROOM_CREATE_PER_MINUTE`).
    pub room_create: KeyedLimit<UserId>,
    /// Requests for a mailed link (verification, password reset) per client IP:
    /// `DOORMAN_LOGIN_PER_MINUTE`, like login.
    pub mail_ip: KeyedLimit<IpAddr>,
    /// Mailed links per address (`DOORMAN_MAIL_PER_ADDRESS_PER_HOUR`), whoever asks
    /// and whether or not the address has an account: nobody can flood a mailbox,
    /// and the answer says nothing about the account.
    pub mail_address: KeyedLimit<String>,
    /// Uses of mailed tokens (verify, reset confirm) per client IP: six times
    /// `DOORMAN_LOGIN_PER_MINUTE`, like refresh.
    pub email_token: KeyedLimit<IpAddr>,
    /// TOTP enrolments started per user (each writes a row): `DOORMAN_LOGIN_PER_MINUTE`.
    pub factor_change: KeyedLimit<UserId>,
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
            login_failures: LoginThrottle::new(config.login_per_minute),
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
            room_create: KeyedLimit::new(
                "room_create",
                Quota::per_minute(nz(config.room_create_per_minute)),
            ),
            mail_ip: KeyedLimit::new("mail_ip", per_minute),
            mail_address: KeyedLimit::new(
                "mail_address",
                Quota::per_hour(nz(config.mail_per_address_per_hour)),
            ),
            email_token: KeyedLimit::new(
                "email_token",
                Quota::per_minute(nz(config.login_per_minute.saturating_mul(6))),
            ),
            factor_change: KeyedLimit::new("factor_change", per_minute),
        }
    }

    fn sweep(&self) {
        self.ws_handshake.sweep();
        self.login.sweep();
        self.register.sweep();
        self.refresh.sweep();
        self.login_failures.sweep();
        self.publish.sweep();
        self.publish_ip.sweep();
        self.room_create.sweep();
        self.mail_ip.sweep();
        self.mail_address.sweep();
        self.email_token.sweep();
        self.factor_change.sweep();
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
    fn limit_names_lists_every_limit() {
        use clap::Parser;
        let config = Config::try_parse_from(["doorman"]).unwrap();
        let limits = Limits::new(&config);
        let t = &limits.login_failures;
        let mut names = vec![
            limits.ws_handshake.name,
            limits.login.name,
            limits.register.name,
            limits.refresh.name,
            limits.publish.name,
            limits.publish_ip.name,
            limits.room_create.name,
            limits.mail_ip.name,
            limits.mail_address.name,
            limits.email_token.name,
            limits.factor_change.name,
            t.per_account.name,
            t.per_account_daily.name,
            t.per_account_ip.name,
            t.per_device.name,
        ];
        names.sort_unstable();
        let mut listed = LIMIT_NAMES.to_vec();
        listed.sort_unstable();
        assert_eq!(names, listed);
    }

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
    fn a_failure_budget_counts_what_is_not_given_back() {
        let budget = FailureBudget::<u32>::new("test", 3, Duration::from_secs(60));
        for _ in 0..3 {
            budget.take(&1).unwrap();
        }
        assert!(matches!(
            budget.take(&1),
            Err(Limited { retry_after_secs }) if (19..=20).contains(&retry_after_secs)
        ));
        // Successes give their cells back: any number of them, in any order.
        budget.give_back(&1);
        budget.take(&1).unwrap();
        for _ in 0..10 {
            budget.give_back(&1);
        }
        for _ in 0..3 {
            budget.take(&1).unwrap();
        }
        assert!(budget.take(&1).is_err());
        assert!(budget.take(&2).is_ok(), "other keys are unaffected");
        for _ in 0..10 {
            budget.give_back(&1);
            budget.give_back(&2);
        }
        budget.sweep();
        assert_eq!(budget.len(), 0);
    }

    #[test]
    fn a_known_device_is_not_stopped_by_failures_elsewhere() {
        let throttle = LoginThrottle::new(10);
        let ip = |i: u8| IpAddr::from([192, 0, 2, i]);
        // One failure per IP, ten IPs: the account-wide ceiling is spent.
        let mut checked = 0;
        for i in 0..10 {
            if let Ok(attempt) = throttle.begin("ann", ip(i), None) {
                attempt.finish(true);
                checked += 1;
            }
        }
        assert_eq!(checked, 5, "half the quarter hour's 10 at once");
        assert!(throttle.begin("ann", ip(200), None).is_err());
        // The owner's device has its own budget.
        let attempt = throttle.begin("ann", ip(200), Some("dev".into())).unwrap();
        attempt.finish(false);
        assert!(throttle.begin("bob", ip(200), None).is_ok());
    }

    /// Never more than `max` in any window: half at once, then one every
    /// `window / (max - max/2)`, so a burst plus a window's refill is `max`.
    #[test]
    fn an_at_most_budget_never_lets_more_than_max_through_in_a_window() {
        for (max, window) in [(10, 15 * 60), (100, 24 * 3600), (7, 60), (2, 900)] {
            let window = Duration::from_secs(window);
            let budget = FailureBudget::<u32>::at_most("test", max, window);
            let let_through = budget.burst as u128 + window.as_nanos() / budget.period.as_nanos();
            assert_eq!(let_through, max as u128, "max {max}");
            let mut taken = 0;
            while budget.take(&1).is_ok() {
                taken += 1;
            }
            assert_eq!(taken, budget.burst);
            match budget.take(&1) {
                Err(Limited { retry_after_secs }) => {
                    let next = budget.period.as_secs();
                    assert!((next.saturating_sub(1)..=next).contains(&retry_after_secs));
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    }

    /// The default account-wide ceilings (issue 31, item 11): at most 10 failures
    /// in any 15 minutes and 100 in any day from unknown devices.
    #[test]
    fn the_default_account_ceilings_are_ten_a_quarter_hour_and_a_hundred_a_day() {
        let throttle = LoginThrottle::new(10);
        let quarter = &throttle.per_account;
        assert_eq!(
            (quarter.burst, quarter.period),
            (5, Duration::from_secs(180))
        );
        let daily = &throttle.per_account_daily;
        assert_eq!((daily.burst, daily.period), (50, Duration::from_secs(1728)));
        // The day's budget refuses on its own, when the quarter hour's would not.
        for _ in 0..50 {
            daily.take(&"ann".to_owned()).unwrap();
        }
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert!(throttle.begin("ann", ip, None).is_err());
        // …and gives back what the other budgets took for the refused attempt.
        assert!(throttle.begin("bob", ip, None).is_ok());
        assert!(throttle.per_account.lock().get("ann").is_none());
        // The owner's device is not counted against either.
        throttle
            .begin("ann", ip, Some("dev".into()))
            .unwrap()
            .finish(true);
    }

    #[test]
    fn a_refusal_says_how_long_to_wait_in_whole_seconds() {
        let limit = KeyedLimit::<u32>::new("test", Quota::per_minute(nz(1)));
        limit.check(&1).unwrap();
        match limit.check(&1) {
            Err(Limited { retry_after_secs }) => {
                assert!((59..=60).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Other keys are unaffected.
        assert!(limit.check(&2).is_ok());
    }
}
