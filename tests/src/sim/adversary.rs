//! The platform as an adversary, for property tests: every lead request may be answered late
//! (so concurrent pages come back in any order), may first insert leads into the requested window
//! or delete one from it, may fail the way the platform fails (5xx, throttle, bad JSON, expired
//! token), and may switch the wire encoding of numbers or refuse phone decrypts. All of it is
//! drawn from one seed, so a failing case can be replayed from the seed it prints.

use chrono::{DateTime, Duration, Utc};
use std::time::Duration as StdDuration;

/// SplitMix64: small, fast, and the same sequence for the same seed on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A time in `[start, end]`, whole seconds (the platforms keep seconds).
    pub fn time_in(&mut self, start: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
        let span = (end - start).num_seconds().max(0) as u64;
        start + Duration::seconds(self.below(span + 1) as i64)
    }
}

/// How hostile the platform is; percentages are per lead request.
#[derive(Debug, Clone)]
pub struct Hostility {
    pub max_delay: StdDuration,
    pub insert_percent: u64,
    /// Leads one insert adds, at most.
    pub insert_max: u64,
    /// Leads all inserts add, at most.
    pub insert_budget: u64,
    /// Inserted leads are new: created at most this long ago (and more than 11 minutes ago, so
    /// every source's window can hold them), in whichever window covers that; without it, they
    /// are created anywhere in the window being paged.
    pub insert_recent: Option<Duration>,
    pub delete_percent: u64,
    pub fault_percent: u64,
    pub encoding_switch_percent: u64,
    pub decrypt_refusal_percent: u64,
}

impl Hostility {
    /// Everything at once, at rates that still let a sync finish in a few runs.
    pub fn all() -> Self {
        Self {
            max_delay: StdDuration::from_millis(12),
            insert_percent: 12,
            insert_max: 3,
            insert_budget: u64::MAX,
            insert_recent: None,
            delete_percent: 6,
            fault_percent: 6,
            encoding_switch_percent: 10,
            decrypt_refusal_percent: 10,
        }
    }
}

/// One request's fate.
#[derive(Debug, Clone, Default)]
pub struct Move {
    pub delay: StdDuration,
    pub fault: Option<super::Fault>,
    /// Creation times of leads to add to the requested window before answering.
    pub inserts: Vec<DateTime<Utc>>,
    /// Which lead of the window (an index, modulo its size) to delete before answering.
    pub delete: Option<u64>,
    pub switch_encoding: bool,
    pub toggle_decrypt_refusal: bool,
}

#[derive(Debug)]
pub struct Adversary {
    pub rng: Rng,
    pub hostility: Hostility,
    /// While false, requests are answered as a calm platform would (the quiescent run).
    pub active: bool,
    /// Ids of the leads this adversary deleted (a store may keep what it saw before).
    pub deleted: Vec<String>,
    /// Leads inserted so far.
    pub inserted: u64,
}

impl Adversary {
    pub fn new(seed: u64, hostility: Hostility) -> Self {
        Self {
            rng: Rng::new(seed),
            hostility,
            active: true,
            deleted: Vec::new(),
            inserted: 0,
        }
    }

    /// Draws the fate of a request for the window `[start, end]`, at `now`.
    pub fn draw(&mut self, start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> Move {
        if !self.active {
            return Move::default();
        }
        let h = self.hostility.clone();
        let r = &mut self.rng;
        let delay = StdDuration::from_micros(r.below(h.max_delay.as_micros() as u64 + 1));
        let fault = r.chance(h.fault_percent).then(|| match r.below(4) {
            0 => super::Fault::Status(503),
            1 => super::Fault::Throttle,
            2 => super::Fault::MalformedJson,
            _ => super::Fault::TokenExpired,
        });
        // One kind of change per request, so every change shows in the total of the answer that
        // follows it. An insert and a delete that land between the same two answers cancel in
        // every total, and no count can see them (see shared::sync::reconcile).
        let inserts: Vec<DateTime<Utc>> = if r.chance(h.insert_percent) && self.inserted < h.insert_budget {
            let n = (1 + r.below(h.insert_max.max(1))).min(h.insert_budget - self.inserted);
            let (from, to) = match h.insert_recent {
                Some(recent) => (now - recent, now - Duration::minutes(11)),
                None => (start, end),
            };
            (0..n).map(|_| r.time_in(from, to)).collect()
        } else {
            Vec::new()
        };
        self.inserted += inserts.len() as u64;
        let delete = (inserts.is_empty() && r.chance(h.delete_percent)).then(|| r.next_u64());
        Move {
            delay,
            fault,
            inserts,
            delete,
            switch_encoding: r.chance(h.encoding_switch_percent),
            toggle_decrypt_refusal: r.chance(h.decrypt_refusal_percent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_moves() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let xs: Vec<u64> = (0..8).map(|_| a.below(1000)).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.below(1000)).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(43).next_u64(), Rng::new(42).next_u64());
    }
}
