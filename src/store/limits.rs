//! Flow control of a queue, across every worker process: a global concurrency limit, a limit
//! per concurrency key, a rate limit and a rate limit per key (issue 15). Limits live in the
//! queue's `porter_queues` row; the claim reads them in the same transaction that takes jobs,
//! so they hold across processes and through crashes (a SIGKILLed worker's jobs stay
//! `running`, and so keep their slots, until they are rescued).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most a concurrency or rate limit may be.
pub const MAX_LIMIT: u32 = 1_000_000;

/// The longest period of a rate limit: 366 days. Starts are kept that long at most.
pub const MAX_RATE_PERIOD: Duration = Duration::from_secs(366 * 86_400);

/// At most `limit` job starts in any window of `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Starts allowed per window.
    pub limit: u32,
    /// The window, in milliseconds (at least 1).
    pub period_ms: u64,
}

impl Rate {
    /// The window as a duration.
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms)
    }

    /// Checks the limit and the period (see [`Rate::parse`]).
    pub fn check(&self, what: &'static str) -> Result<()> {
        check_limit(what, i64::from(self.limit))?;
        if self.period_ms == 0 {
            return Err(Error::invalid(what, "the period must be at least 1ms"));
        }
        if self.period() > MAX_RATE_PERIOD {
            return Err(Error::invalid(
                what,
                "the period must be at most 366 days (366d)",
            ));
        }
        Ok(())
    }

    /// Parses `N/DURATION`: `20/1s`, `1000/1h`, `5/500ms`, `100/1h30m`. N is 1 to
    /// [`MAX_LIMIT`], the period 1 ms to 366 days.
    pub fn parse(what: &'static str, text: &str) -> Result<Rate> {
        let Some((n, period)) = text.trim().split_once('/') else {
            return Err(Error::invalid(
                what,
                format!("{text:?} has no period; write it as N/DURATION, like 20/1s or 1000/1h"),
            ));
        };
        let limit: i64 = n.trim().parse().map_err(|_| {
            Error::invalid(
                what,
                format!("{n:?} is not a whole number of starts; write N/DURATION, like 20/1s"),
            )
        })?;
        check_limit(what, limit)?;
        let period = parse_duration(period).map_err(|e| Error::invalid(what, e))?;
        let rate = Rate {
            limit: limit as u32,
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
        };
        if period < Duration::from_millis(1) {
            return Err(Error::invalid(what, "the period must be at least 1ms"));
        }
        rate.check(what)?;
        Ok(rate)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.period_ms;
        let period = if ms % 86_400_000 == 0 {
            format!("{}d", ms / 86_400_000)
        } else if ms % 3_600_000 == 0 {
            format!("{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 {
            format!("{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
        write!(f, "{}/{period}", self.limit)
    }
}

/// A queue's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// At most this many running jobs of the queue, across every process.
    pub concurrency: Option<u32>,
    /// At most this many running jobs per concurrency key (jobs without a key are not held).
    pub per_key: Option<u32>,
    /// At most this many starts of the queue's jobs in any window of the period.
    pub rate: Option<Rate>,
    /// At most this many starts per concurrency key in any window of the period.
    pub rate_per_key: Option<Rate>,
}

impl QueueLimits {
    /// Whether a limit per concurrency key is set (of concurrency or rate).
    pub fn per_key_any(&self) -> bool {
        self.per_key.is_some() || self.rate_per_key.is_some()
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.concurrency.is_some()
            || self.per_key.is_some()
            || self.rate.is_some()
            || self.rate_per_key.is_some()
    }

    /// Checks every limit that is set: 1 to [`MAX_LIMIT`], rate periods 1 ms to 366 days.
    pub fn check(&self) -> Result<()> {
        if let Some(n) = self.concurrency {
            check_limit("concurrency", i64::from(n))?;
        }
        if let Some(n) = self.per_key {
            check_limit("per_key", i64::from(n))?;
        }
        if let Some(r) = self.rate {
            r.check("rate")?;
        }
        if let Some(r) = self.rate_per_key {
            r.check("rate_per_key")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for QueueLimits {
    /// `concurrency=5 per_key=1 rate=20/1s rate_per_key=2/1s`, or `-` when there are none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.concurrency {
            parts.push(format!("concurrency={n}"));
        }
        if let Some(n) = self.per_key {
            parts.push(format!("per_key={n}"));
        }
        if let Some(r) = self.rate {
            parts.push(format!("rate={r}"));
        }
        if let Some(r) = self.rate_per_key {
            parts.push(format!("rate_per_key={r}"));
        }
        if parts.is_empty() {
            f.write_str("-")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// Refuses a limit below 1 or above [`MAX_LIMIT`].
pub fn check_limit(what: &'static str, n: i64) -> Result<()> {
    if n < 1 {
        return Err(Error::invalid(
            what,
            format!("{n} is not a limit: it must be at least 1 (use --clear to remove limits)"),
        ));
    }
    if n > i64::from(MAX_LIMIT) {
        return Err(Error::invalid(
            what,
            format!("{n} is over the largest limit, {MAX_LIMIT}"),
        ));
    }
    Ok(())
}

/// Set a queue's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimitParams {
    /// The queue.
    pub queue: String,
    /// Remove every limit first (`--clear`).
    #[serde(default)]
    pub clear: bool,
    /// The limits to set; those left `None` keep their value (unless `clear`).
    #[serde(default)]
    pub set: QueueLimits,
}

/// One (queue, concurrency key) of a limited queue as a driver counts it: its available due
/// jobs, its running jobs, its starts in the per-key rate window, and the queue's starts in
/// the queue's rate window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeyUsage {
    /// Queue name.
    pub queue: String,
    /// Concurrency key (`None`: jobs without one).
    pub key: Option<String>,
    /// Available jobs that are due.
    pub available: i64,
    /// Running jobs.
    pub running: i64,
    /// Starts of this key within the queue's per-key rate window.
    pub key_starts: i64,
    /// Starts of the queue within its rate window (the same on every row of a queue).
    pub queue_starts: i64,
}

/// Of a limited queue's available due jobs, how many a claim would not take now because of
/// a limit (however many workers had free slots).
pub fn waiting_because_of_limits(limits: &QueueLimits, usage: &[QueueKeyUsage]) -> i64 {
    let available: i64 = usage.iter().map(|u| u.available).sum();
    let running: i64 = usage.iter().map(|u| u.running).sum();
    let queue_starts = usage.first().map_or(0, |u| u.queue_starts);
    let mut claimable: i64 = usage
        .iter()
        .map(|u| {
            if u.key.is_none() {
                return u.available;
            }
            let mut free = u.available;
            if let Some(n) = limits.per_key {
                free = free.min(i64::from(n) - u.running);
            }
            if let Some(r) = limits.rate_per_key {
                free = free.min(i64::from(r.limit) - u.key_starts);
            }
            free.max(0)
        })
        .sum();
    if let Some(n) = limits.concurrency {
        claimable = claimable.min(i64::from(n) - running);
    }
    if let Some(r) = limits.rate {
        claimable = claimable.min(i64::from(r.limit) - queue_starts);
    }
    (available - claimable.max(0)).max(0)
}

/// Parses `500ms`, `10s`, `2m`, `1h`, `1d`, or a sum of those (`1h30m`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let s = text.trim();
    let bad = || format!("{text:?} is not a duration; write it like 500ms, 10s, 2m, 1h or 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let r = Rate::parse("rate", "20/1s").unwrap();
        assert_eq!(
            r,
            Rate {
                limit: 20,
                period_ms: 1000
            }
        );
        assert_eq!(r.to_string(), "20/1s");
        assert_eq!(
            Rate::parse("rate", "1000/1h").unwrap().to_string(),
            "1000/1h"
        );
        assert_eq!(
            Rate::parse("rate", "5/1500ms").unwrap().to_string(),
            "5/1500ms"
        );
        for bad in [
            "20",
            "20/",
            "/1s",
            "0/1s",
            "-1/1s",
            "20/0ms",
            "20/0s",
            "x/1s",
            "20/1x",
            "20/400d",
            "2000000/1s",
        ] {
            assert!(
                Rate::parse("rate", bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn waiting_counts_what_a_limit_holds_back() {
        let key = |k: Option<&str>, available, running| QueueKeyUsage {
            queue: "q".into(),
            key: k.map(str::to_string),
            available,
            running,
            key_starts: 0,
            queue_starts: 0,
        };
        let global = QueueLimits {
            concurrency: Some(3),
            ..Default::default()
        };
        assert_eq!(waiting_because_of_limits(&global, &[key(None, 10, 1)]), 8);
        assert_eq!(waiting_because_of_limits(&global, &[key(None, 1, 0)]), 0);
        let per_key = QueueLimits {
            per_key: Some(1),
            ..Default::default()
        };
        let usage = [key(Some("a"), 5, 1), key(Some("b"), 5, 0), key(None, 2, 0)];
        assert_eq!(waiting_because_of_limits(&per_key, &usage), 5 + 4);
    }
}
