//! The byte budget of an upgraded connection's reads.

use std::time::Duration;

use tokio::time::Instant;

/// How fast an upgraded connection's bytes are read: `per_second` sustained, up to
/// `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct ReadRate {
    pub per_second: u64,
    pub burst: u64,
}

/// A token bucket of bytes that may run into debt: a read takes what it got, and
/// the next read waits until the debt is repaid. Why bytes: tungstenite assembles
/// fragmented messages below the socket's message count, so a client streaming
/// empty continuation frames (tens of millions a second) never sends a "message"
/// and escapes the per-socket message rate; every frame costs bytes, though.
#[derive(Debug)]
pub(super) struct ReadBudget {
    pub(super) rate: ReadRate,
    /// Exact as of `last`: refilled (and capped at `burst`) up to then.
    pub(super) tokens: f64,
    pub(super) last: Instant,
}

impl ReadBudget {
    pub(super) fn new(rate: ReadRate, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.burst as f64,
            last: now,
        }
    }

    /// When the debt will be repaid, if there is one. Without a debt the clock is
    /// not read: a refill only adds, and one done later, capped then, gives what
    /// one done now would (nothing is charged in between). So a read that finds
    /// nothing to read costs no clock reading.
    pub(super) fn wait_until(&mut self, now: impl FnOnce() -> Instant) -> Option<Instant> {
        if self.tokens >= 0.0 {
            return None;
        }
        let now = now();
        self.refill(now);
        (self.tokens < 0.0).then(|| now + Duration::from_secs_f64(-self.tokens / self.per_second()))
    }

    /// Takes `bytes`, read at `now`: refilled up to then first, so the cap applies
    /// where it would have.
    pub(super) fn charge(&mut self, bytes: usize, now: Instant) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }

    pub(super) fn refill(&mut self, now: Instant) {
        self.tokens = (self.tokens + (now - self.last).as_secs_f64() * self.per_second())
            .min(self.rate.burst as f64);
        self.last = now;
    }

    pub(super) fn per_second(&self) -> f64 {
        self.rate.per_second.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_budget_caps_where_it_would_have_and_reads_the_clock_only_in_debt() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let rate = ReadRate {
            per_second: 100,
            burst: 1_000,
        };
        let mut budget = ReadBudget::new(rate, t0);
        // Not in debt: no clock reading.
        assert_eq!(budget.wait_until(|| unreachable!()), None);
        budget.charge(1_000, at(1));
        assert_eq!(budget.wait_until(|| unreachable!()), None);
        // A long silence refills up to the burst, no more: 1,000 then 500 leaves a
        // debt of 500, five seconds at 100 bytes a second.
        budget.charge(1_000, at(101));
        budget.charge(500, at(101));
        assert_eq!(budget.wait_until(|| at(101)), Some(at(106)));
        // Paying off in part shortens the wait, and nothing is owed at its end.
        assert_eq!(budget.wait_until(|| at(103)), Some(at(106)));
        assert_eq!(budget.wait_until(|| at(106)), None);
        assert_eq!(budget.wait_until(|| unreachable!()), None);
    }
}
