//! When is a window of an offset-paged listing really stored? Pages fetched concurrently are
//! answered at different moments, and rows inserted or deleted meanwhile shift the others across
//! page boundaries, where they fall between pages. So a window counts as stored only when what we
//! fetched reconciles with the platform's final answer:
//!
//! * Every answer carries the window's total at that moment. Without deletions totals only grow,
//!   and every row fetched still exists, so `distinct ids fetched ≥ the total of a final answer
//!   taken after all others` proves that nothing is missing.
//! * Rows were deleted while paging when a total fell (an answer given after another has a
//!   smaller total), or when more distinct rows were fetched than the final total. Rows fetched
//!   may then be gone, the count proves nothing, and the window is pulled again. Which answer was
//!   given first is the platform's clock where answers carry one (Douyin's `extra.now`); without
//!   it, pages are fetched one at a time, so the order they arrive is the order they were given.
//! * A short count is repaired where rows can have fallen: at a boundary between pages `k` and
//!   `k+1` rows fall through only when page `k+1` was answered before page `k` (its total is
//!   smaller) and rows were inserted in between; they then lie at most a few pages after the
//!   boundary. A window still short after that is split in time, each half pulled on its own.
//!
//! An insert and a delete that both land between the same two answers leave no trace in any
//! total; the overlap of the next run and a FULL sync are what catch that.

use crate::lead::PlatformLead;
use crate::sources::Page;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// What the rows and totals of one window say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every row the platform holds for the window was fetched.
    Reconciled,
    /// `missing` rows (at least) were not fetched.
    Short { missing: u64 },
    /// The total fell while paging: rows were deleted, so counting proves nothing.
    Deleted,
}

/// Rows fetched for one window, and the total each page reported.
#[derive(Debug, Clone)]
pub struct Tally {
    page_size: u32,
    /// Distinct ids fetched, with their creation times.
    seen: HashMap<String, Option<DateTime<Utc>>>,
    /// Per page, the smallest and largest total its answers reported (the earliest and the
    /// latest answer, as totals only grow without deletions).
    page_totals: BTreeMap<u32, (u64, u64)>,
    /// The largest total any answer reported.
    max_total: u64,
    /// The most pages any answer reported.
    max_pages: u32,
    /// An answer was given after one with a larger total: rows were deleted in between.
    deletion_seen: bool,
    /// Every answer's (platform clock, total), in the order they arrived.
    answered: Vec<(Option<i64>, u64)>,
    /// Answers whose clocks are at most this far apart (ms) are not ordered by them: a platform
    /// reads its rows a moment before it stamps the answer, so of two answers given that close
    /// together the one stamped first may have read last.
    clock_tolerance_ms: i64,
}

/// See [`Tally::with_clock_tolerance`]; `SYNC_CLOCK_TOLERANCE_MS`.
pub const DEFAULT_CLOCK_TOLERANCE_MS: i64 = 100;

impl Tally {
    pub fn new(page_size: u32) -> Self {
        Self {
            page_size: page_size.max(1),
            seen: HashMap::new(),
            page_totals: BTreeMap::new(),
            max_total: 0,
            max_pages: 0,
            deletion_seen: false,
            answered: Vec::new(),
            clock_tolerance_ms: DEFAULT_CLOCK_TOLERANCE_MS,
        }
    }

    /// Answers stamped at most `ms` apart count as unordered: any difference of their totals is
    /// then taken as a deletion (the window is pulled again), never as growth.
    pub fn with_clock_tolerance(mut self, ms: i64) -> Self {
        self.clock_tolerance_ms = ms.max(0);
        self
    }

    /// Notes one answer for `page`, in the order answers arrive.
    pub fn record(&mut self, page: u32, answer: &Page) {
        for lead in &answer.leads {
            self.note(lead);
        }
        let total = answer.total.unwrap_or_else(|| self.fallback_total(page, answer));
        self.deletion_seen |= self.fell(answer.answered_at, total);
        self.answered.push((answer.answered_at, total));
        let span = self.page_totals.entry(page).or_insert((total, total));
        *span = (span.0.min(total), span.1.max(total));
        self.max_total = self.max_total.max(total);
        let pages = answer.pages.unwrap_or_else(|| self.pages_for(total));
        self.max_pages = self.max_pages.max(pages);
    }

    /// True when an answer with `total`, given at `at`, shows a fall against one noted before:
    /// given earlier with a larger total, or later with a smaller one. Which was given first is
    /// the platform's clock where both answers carry times further apart than the tolerance; two
    /// stamped closer than that may have read the rows in either order, so any difference counts;
    /// without clocks it is the order they arrived (which only sequential paging makes the order
    /// they were given).
    fn fell(&self, at: Option<i64>, total: u64) -> bool {
        self.answered.iter().any(|&(other_at, other)| match (other_at, at) {
            (Some(a), Some(b)) if (a - b).abs() > self.clock_tolerance_ms => {
                if a < b {
                    other > total
                } else {
                    other < total
                }
            }
            (Some(_), Some(_)) => other != total,
            _ => other > total,
        })
    }

    /// A platform that gives no total: what this page's rows imply.
    fn fallback_total(&self, page: u32, answer: &Page) -> u64 {
        let before = u64::from(page.saturating_sub(1)) * u64::from(self.page_size);
        before + answer.leads.len() as u64 + u64::from(answer.next.is_some())
    }

    fn note(&mut self, lead: &PlatformLead) {
        self.seen
            .entry(lead.source_lead_id.clone())
            .or_insert(lead.fields.created_at);
    }

    pub fn has(&self, id: &str) -> bool {
        self.seen.contains_key(id)
    }

    pub fn distinct(&self) -> u64 {
        self.seen.len() as u64
    }

    pub fn answers(&self) -> usize {
        self.answered.len()
    }

    pub fn max_total(&self) -> u64 {
        self.max_total
    }

    fn pages_for(&self, total: u64) -> u32 {
        total.div_ceil(u64::from(self.page_size)).min(u64::from(u32::MAX)) as u32
    }

    /// Pages the window has by the largest count seen.
    pub fn pages_needed(&self) -> u32 {
        self.max_pages.max(self.pages_for(self.max_total))
    }

    /// Pages up to `pages_needed` that no answer covered yet.
    pub fn unfetched(&self) -> Vec<u32> {
        (1..=self.pages_needed())
            .filter(|p| !self.page_totals.contains_key(p))
            .collect()
    }

    /// The verdict, given the total of an answer taken after every other.
    pub fn verdict(&self, final_total: u64) -> Verdict {
        // More distinct rows than the platform holds: some of them are gone.
        if self.deletion_seen || final_total < self.max_total || self.distinct() > final_total {
            return Verdict::Deleted;
        }
        match final_total.checked_sub(self.distinct()) {
            None | Some(0) => Verdict::Reconciled,
            Some(missing) => Verdict::Short { missing },
        }
    }

    /// The pages to fetch again where rows can have fallen between pages. A boundary `k|k+1` is
    /// covered when some answer of page `k` came no later than some answer of page `k+1` (rows
    /// pushed over it then show up twice instead of never). Otherwise every answer of `k+1`
    /// predates every answer of `k`, and rows inserted in between can have crossed it unseen; by
    /// the final answer they lie at most `final − total(k+1)` rows past it.
    pub fn repair_pages(&self, final_total: u64) -> Vec<u32> {
        let size = u64::from(self.page_size);
        let last = self.pages_for(final_total).max(1);
        let mut pages = Vec::new();
        for (&k, &(earliest_k, _)) in &self.page_totals {
            let Some(&(_, latest_next)) = self.page_totals.get(&(k + 1)) else {
                continue;
            };
            if earliest_k <= latest_next {
                continue;
            }
            let spread = final_total.saturating_sub(latest_next).max(1);
            let through = (u64::from(k) * size + spread).div_ceil(size).min(u64::from(last)) as u32;
            // Page k too: were the smaller total a deletion rather than an earlier answer, the
            // rows moved the other way, onto page k.
            pages.extend(k..=through.max(k + 1));
        }
        pages.sort_unstable();
        pages.dedup();
        pages
    }

    /// How deep the head of the listing reaches that rows created while paging can have filled
    /// (a listing newest first puts them there, each at its own time among the other new rows):
    /// beyond `reached` (the head already looked at) by as many pages as rows are `missing`,
    /// and at least as deep as the total grew since the first answer, plus one page.
    pub fn head_reach(&self, final_total: u64, missing: u64, reached: u32) -> u32 {
        let first = self.answered.iter().map(|&(_, t)| t).min().unwrap_or(final_total);
        let size = u64::from(self.page_size);
        let grown = final_total.saturating_sub(first).div_ceil(size) + 1;
        let deeper = u64::from(reached) + missing.div_ceil(size);
        grown.max(deeper).min(u64::from(self.pages_needed())) as u32
    }

    /// Forgets every row and answer: the window is pulled again from scratch.
    pub fn reset(&mut self) {
        *self = Tally::new(self.page_size).with_clock_tolerance(self.clock_tolerance_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::{LeadFields, LeadSource};
    use crate::sources::PageRef;

    fn page(ids: std::ops::Range<u32>, total: u64) -> Page {
        Page {
            answered_at: None,
            leads: ids
                .map(|i| PlatformLead {
                    source: LeadSource::Laike,
                    source_lead_id: i.to_string(),
                    fields: LeadFields::default(),
                    raw: serde_json::Value::Null,
                    phone_cipher: None,
                })
                .collect(),
            total: Some(total),
            pages: None,
            next: Some(PageRef::Number(2)),
        }
    }

    #[test]
    fn rows_pushed_over_a_boundary_answered_out_of_order_are_located() {
        // 30 rows (ids = positions), pages of 10. Pages 1 and 3 answer; then 2 rows are
        // inserted at the top; then page 2 answers with old rows 8..18. Old rows 18 and 19 now
        // sit on page 3, which answered before they moved there.
        let mut t = Tally::new(10);
        t.record(1, &page(0..10, 30));
        t.record(3, &page(20..30, 30));
        t.record(2, &page(8..18, 32));
        // The final check (page 1) brings the two new rows and old 0..8.
        let mut check = page(100..102, 32);
        check.leads.extend(page(0..8, 32).leads);
        t.record(1, &check);
        assert_eq!(t.verdict(32), Verdict::Short { missing: 2 });
        assert_eq!(t.repair_pages(32), vec![2, 3], "only 2|3 can have lost rows");
        t.record(3, &page(18..28, 32));
        assert_eq!(t.verdict(32), Verdict::Reconciled);
        assert_eq!(t.repair_pages(32), Vec::<u32>::new());
    }

    #[test]
    fn pages_answered_in_order_lose_nothing_to_inserts() {
        let mut t = Tally::new(10);
        t.record(1, &page(0..10, 20));
        t.record(2, &page(9..19, 21)); // one insert above: row 9 shows up twice
        assert_eq!(t.repair_pages(21), Vec::<u32>::new());
        assert_eq!(t.verdict(21), Verdict::Short { missing: 2 }, "the new row and row 19");
        assert_eq!(t.unfetched(), vec![3]);
    }

    #[test]
    fn only_growth_with_every_row_is_reconciled_and_a_fall_is_a_deletion() {
        let mut t = Tally::new(10);
        t.record(1, &page(0..10, 15));
        t.record(2, &page(10..16, 16));
        assert_eq!(t.verdict(16), Verdict::Reconciled);
        assert_eq!(t.verdict(14), Verdict::Deleted);
        assert_eq!(t.pages_needed(), 2);
        // An answer of 15 after one of 16: a row went away meanwhile.
        t.record(2, &page(10..15, 15));
        assert_eq!(t.verdict(16), Verdict::Deleted);
    }

    #[test]
    fn answers_that_crossed_on_the_way_are_ordered_by_the_platforms_clock() {
        let stamped = |ids: std::ops::Range<u32>, total: u64, at: i64| Page {
            answered_at: Some(at),
            ..page(ids, total)
        };
        // Page 3 was given after page 2 (a delete in between) but arrived first.
        let mut t = Tally::new(10).with_clock_tolerance(5);
        t.record(1, &stamped(0..10, 30, 100));
        t.record(3, &stamped(20..30, 29, 300));
        t.record(2, &stamped(10..20, 30, 200));
        assert_eq!(t.verdict(30), Verdict::Deleted);
        // The same arrival with growth instead: page 2 given last, with the larger total.
        let mut t = Tally::new(10).with_clock_tolerance(5);
        t.record(1, &stamped(0..10, 30, 100));
        t.record(3, &stamped(20..30, 30, 200));
        t.record(2, &stamped(10..20, 31, 300));
        assert_ne!(t.verdict(31), Verdict::Deleted);
    }

    #[test]
    fn answers_stamped_too_close_together_are_not_ordered_by_their_clocks() {
        let stamped = |ids: std::ops::Range<u32>, total: u64, at: i64| Page {
            answered_at: Some(at),
            ..page(ids, total)
        };
        // Page 2 read 31 rows (one inserted), then a row was deleted, then page 3 read 30 and
        // was stamped first (seed laike 7421545080372215): 1 ms apart, the clocks cannot say
        // which read first, and growth would hide the deletion.
        let mut t = Tally::new(10).with_clock_tolerance(5);
        t.record(1, &stamped(0..10, 30, 100));
        t.record(3, &stamped(20..30, 30, 200));
        t.record(2, &stamped(10..20, 31, 201));
        assert_eq!(
            t.verdict(31),
            Verdict::Deleted,
            "a difference within the tolerance is a deletion"
        );
        let mut t = Tally::new(10).with_clock_tolerance(5);
        t.record(1, &stamped(0..10, 30, 100));
        t.record(3, &stamped(20..30, 30, 200));
        t.record(2, &stamped(10..20, 31, 206));
        assert_ne!(
            t.verdict(31),
            Verdict::Deleted,
            "further apart, the clocks order them: growth"
        );
    }

    #[test]
    fn more_rows_than_the_platform_holds_means_some_are_gone() {
        let mut t = Tally::new(10);
        t.record(1, &page(0..10, 11));
        t.record(2, &page(10..11, 11));
        t.record(1, &page(20..30, 10));
        assert_eq!(t.verdict(10), Verdict::Deleted);
    }
}
