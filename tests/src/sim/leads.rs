//! The simulator's lead book: deterministic generated leads per (source, account), which tests
//! grow (new leads) and edit (late fields, follow-ups) between pulls.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The lead APIs the simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimSource {
    Laike,
    OceanEngineClue,
    OceanEngineLife,
    Feiyu,
    Fans,
}

/// A lead as the platform holds it. For fans `clue_id` is the fan's open_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLead {
    pub clue_id: String,
    pub name: String,
    pub phone: String,
    pub create_time: DateTime<Utc>,
    pub modify_time: DateTime<Utc>,
    /// Empty until a late update fills it.
    pub convert_status: String,
    pub app_name: String,
}

const NAMES: [&str; 6] = ["张先生", "李女士", "王先生", "赵女士", "刘先生", "陈女士"];

#[derive(Default)]
pub struct Book {
    accounts: HashMap<(SimSource, String), Vec<SimLead>>,
    /// Leads ever made per account: ids derive from it, so a deletion never lets one repeat.
    made: HashMap<(SimSource, String), usize>,
}

fn digest(source: SimSource, account: &str, i: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(format!("{source:?}\0{account}\0{i}").as_bytes());
    h.finalize().into()
}

/// Lead `i` of an account: ids above 2^53, and every 10th lead shares the previous one's phone.
fn make(source: SimSource, account: &str, i: usize, at: DateTime<Utc>) -> SimLead {
    let d = digest(source, account, i);
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    let clue_id = match source {
        SimSource::Fans => format!("fan-{:016x}-{i}", n),
        _ => (7_000_000_000_000_000_000 + n % 2_000_000_000_000_000_000).to_string(),
    };
    let phone_index = if i % 10 == 9 { i - 1 } else { i };
    let p = digest(source, account, phone_index);
    let phone = format!(
        "138{:08}",
        u64::from_be_bytes(p[..8].try_into().expect("8 bytes")) % 100_000_000
    );
    SimLead {
        clue_id,
        name: NAMES[i % NAMES.len()].to_owned(),
        phone,
        create_time: at,
        modify_time: at + Duration::minutes(2),
        convert_status: String::new(),
        app_name: String::new(),
    }
}

impl Book {
    fn list(&mut self, source: SimSource, account: &str) -> &mut Vec<SimLead> {
        self.accounts.entry((source, account.to_owned())).or_default()
    }

    /// Reserves `n` lead numbers of the account; returns the first.
    fn reserve(&mut self, source: SimSource, account: &str, n: usize) -> usize {
        self.list(source, account);
        let made = self.made.entry((source, account.to_owned())).or_default();
        let first = *made;
        *made += n;
        first
    }

    pub fn has(&self, source: SimSource, account: &str) -> bool {
        self.accounts.contains_key(&(source, account.to_owned()))
    }

    /// `count` leads spread evenly over `[base - span, base)`.
    pub fn seed(&mut self, source: SimSource, account: &str, count: usize, span: Duration, base: DateTime<Utc>) {
        let start = self.reserve(source, account, count);
        let list = self.list(source, account);
        let step = span / (count.max(1) as i32);
        for k in 0..count {
            // Platforms keep whole seconds.
            let at = base - span + step * (k as i32);
            let at = at - Duration::nanoseconds(i64::from(at.timestamp_subsec_nanos()));
            list.push(make(source, account, start + k, at));
        }
    }

    pub fn insert(&mut self, source: SimSource, account: &str, n: usize, at: DateTime<Utc>) {
        let start = self.reserve(source, account, n);
        let list = self.list(source, account);
        for k in 0..n {
            list.push(make(source, account, start + k, at + Duration::seconds(k as i64)));
        }
    }

    /// One lead for each creation time in `times`.
    pub fn insert_at(&mut self, source: SimSource, account: &str, times: &[DateTime<Utc>]) {
        let start = self.reserve(source, account, times.len());
        let list = self.list(source, account);
        for (k, at) in times.iter().enumerate() {
            list.push(make(source, account, start + k, *at));
        }
    }

    /// Deletes lead number `pick` (modulo their count) of those created in `[start, end]`;
    /// returns its id.
    pub fn delete_in(
        &mut self,
        source: SimSource,
        account: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        pick: u64,
    ) -> Option<String> {
        let list = self.list(source, account);
        let inside: Vec<usize> = (0..list.len())
            .filter(|&i| list[i].create_time >= start && list[i].create_time <= end)
            .collect();
        let chosen = *inside.get((pick % inside.len().max(1) as u64) as usize)?;
        Some(list.remove(chosen).clue_id)
    }

    /// The leads of several accounts created in `[start, end]`, newest first.
    pub fn window_of(
        &self,
        source: SimSource,
        accounts: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<SimLead> {
        let mut leads: Vec<SimLead> = accounts
            .iter()
            .flat_map(|a| self.window(source, a, start, end))
            .collect();
        leads.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(a.clue_id.cmp(&b.clue_id)));
        leads
    }

    /// The `n` newest leads get their late fields and a new modify time.
    pub fn change(&mut self, source: SimSource, account: &str, n: usize, now: DateTime<Utc>) {
        let mut leads = self.list(source, account).iter_mut().collect::<Vec<_>>();
        leads.sort_by_key(|l| std::cmp::Reverse(l.create_time));
        for lead in leads.into_iter().take(n) {
            lead.modify_time = now;
            lead.convert_status = "合法转化".to_owned();
            lead.app_name = "抖音".to_owned();
        }
    }

    /// Every lead of the account, newest first.
    pub fn all(&self, source: SimSource, account: &str) -> Vec<SimLead> {
        let mut leads = self
            .accounts
            .get(&(source, account.to_owned()))
            .cloned()
            .unwrap_or_default();
        leads.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(a.clue_id.cmp(&b.clue_id)));
        leads
    }

    /// Leads created in `[start, end]` (inclusive, as the platforms filter), newest first.
    pub fn window(&self, source: SimSource, account: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<SimLead> {
        self.all(source, account)
            .into_iter()
            .filter(|l| l.create_time >= start && l.create_time <= end)
            .collect()
    }
}

/// One page of `all`, 1-based; with `overlap`, a page after the first repeats the previous page's last row.
pub fn page_of(all: &[SimLead], page: usize, size: usize, overlap: bool) -> Vec<SimLead> {
    let start = (page.max(1) - 1) * size;
    let mut rows: Vec<SimLead> = all.iter().skip(start).take(size).cloned().collect();
    if overlap && start > 0 && start <= all.len() {
        rows.insert(0, all[start - 1].clone());
    }
    rows
}
