//! The overview's chart, drawn on the server as SVG (no script): completed and failed
//! (discarded) jobs per minute over the last hour, as stacked bars from the jobs' finish times
//! (kept while retention keeps the jobs: 24 h for completed, 7 d for discarded, by default),
//! and the queue depth (jobs available now, every queue) as a line. The database keeps no
//! history of depth, so the line is what this web process sampled, once a minute at most, each
//! time a dashboard page was drawn: it starts when the process does, and has gaps where nobody
//! looked. The page reloads itself, so the chart moves while it is open.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{html, Markup};

use crate::store::ThroughputRow;

/// Minutes the chart spans.
pub const MINUTES: i64 = 60;
const WIDTH: i64 = 720;
const HEIGHT: i64 = 160;
const TOP: i64 = 14;
const BAR: i64 = WIDTH / MINUTES;

/// Queue depth samples of this process, one per minute at most, the last hour's kept.
#[derive(Debug, Default)]
pub struct DepthSamples {
    samples: Mutex<VecDeque<(DateTime<Utc>, i64)>>,
}

impl DepthSamples {
    /// Records the depth seen at `now` (the minute's latest sample wins).
    pub fn record(&self, now: DateTime<Utc>, depth: i64) {
        let minute = floor_minute(now);
        let mut s = self.samples.lock().expect("depth samples");
        match s.back_mut() {
            Some((m, d)) if *m == minute => *d = depth,
            _ => s.push_back((minute, depth)),
        }
        while s
            .front()
            .is_some_and(|(m, _)| *m <= minute - Duration::minutes(MINUTES))
        {
            s.pop_front();
        }
    }

    /// The samples, oldest first.
    pub fn get(&self) -> Vec<(DateTime<Utc>, i64)> {
        self.samples
            .lock()
            .expect("depth samples")
            .iter()
            .copied()
            .collect()
    }
}

fn floor_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap_or(t)
}

/// The chart for the hour up to `now`.
pub fn chart(now: DateTime<Utc>, rows: &[ThroughputRow], depth: &[(DateTime<Utc>, i64)]) -> Markup {
    let end = floor_minute(now);
    let start = end - Duration::minutes(MINUTES - 1);
    // Slot i is the minute start + i.
    let slot = |t: DateTime<Utc>| (floor_minute(t) - start).num_minutes();
    let mut completed = [0i64; MINUTES as usize];
    let mut failed = [0i64; MINUTES as usize];
    for r in rows {
        let i = slot(r.minute);
        if (0..MINUTES).contains(&i) {
            completed[i as usize] += r.completed;
            failed[i as usize] += r.discarded;
        }
    }
    let max_jobs = (0..MINUTES as usize)
        .map(|i| completed[i] + failed[i])
        .max()
        .unwrap_or(0)
        .max(1);
    let points: Vec<(i64, i64)> = depth
        .iter()
        .map(|(t, d)| (slot(*t), *d))
        .filter(|(i, _)| (0..MINUTES).contains(i))
        .collect();
    let max_depth = points.iter().map(|(_, d)| *d).max().unwrap_or(0).max(1);
    let plot = HEIGHT - TOP;
    let y = |v: i64, max: i64| HEIGHT - v * plot / max;
    let polyline: String = points
        .iter()
        .map(|(i, d)| format!("{},{}", i * BAR + BAR / 2, y(*d, max_depth)))
        .collect::<Vec<_>>()
        .join(" ");
    let total_completed: i64 = completed.iter().sum();
    let total_failed: i64 = failed.iter().sum();
    html! {
        figure #chart {
            svg #throughput xmlns="http://www.w3.org/2000/svg" width=(WIDTH + 60) height=(HEIGHT + 24)
                viewBox=(format!("0 0 {} {}", WIDTH + 60, HEIGHT + 24)) role="img"
                aria-label=(format!("last hour: {total_completed} jobs completed, {total_failed} failed")) {
                rect x="0" y="0" width=(WIDTH) height=(HEIGHT) fill="#fafafa" stroke="#ddd" {}
                @for i in 0..MINUTES as usize {
                    @let minute = start + Duration::minutes(i as i64);
                    @let (c, f) = (completed[i], failed[i]);
                    @if c + f > 0 {
                        g.minute data-minute=(minute.format("%H:%M").to_string()) data-completed=(c) data-failed=(f) {
                            title { (minute.format("%H:%M UTC").to_string()) ": " (c) " completed, " (f) " failed" }
                            @if c > 0 {
                                rect.completed x=(i as i64 * BAR + 1) y=(y(c, max_jobs)) width=(BAR - 2) height=(HEIGHT - y(c, max_jobs)) fill="#5a5" {}
                            }
                            @if f > 0 {
                                rect.failed x=(i as i64 * BAR + 1) y=(y(c + f, max_jobs)) width=(BAR - 2) height=(y(c, max_jobs) - y(c + f, max_jobs)) fill="#c44" {}
                            }
                        }
                    }
                }
                @if !polyline.is_empty() {
                    polyline #depth points=(polyline) fill="none" stroke="#36c" stroke-width="2" {}
                    @for (i, d) in &points {
                        circle cx=(i * BAR + BAR / 2) cy=(y(*d, max_depth)) r="2.5" fill="#36c" { title { "depth " (d) } }
                    }
                }
                text x=(WIDTH + 4) y=(TOP + 4) font-size="11" fill="#5a5" { (max_jobs) "/min" }
                text x=(WIDTH + 4) y=(TOP + 18) font-size="11" fill="#36c" { "depth " (max_depth) }
                text x="0" y=(HEIGHT + 16) font-size="11" fill="#777" { (start.format("%H:%M").to_string()) }
                text x=(WIDTH) y=(HEIGHT + 16) font-size="11" fill="#777" text-anchor="end" { (end.format("%H:%M").to_string()) " UTC" }
            }
            figcaption {
                span style="color:#5a5" { "■ completed" } " (" span #total-completed { (total_completed) } ")  "
                span style="color:#c44" { "■ failed (discarded)" } " (" span #total-failed { (total_failed) } ")  "
                span style="color:#36c" { "— queue depth" } " (jobs available, sampled by this web process while the dashboard is open)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_keeps_one_sample_a_minute_for_an_hour() {
        let d = DepthSamples::default();
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T10:00:10Z")
            .unwrap()
            .with_timezone(&Utc);
        d.record(t0, 1);
        d.record(t0 + Duration::seconds(20), 2);
        assert_eq!(d.get(), vec![(floor_minute(t0), 2)]);
        d.record(t0 + Duration::minutes(61), 5);
        assert_eq!(d.get().len(), 1, "older than an hour is dropped");
    }
}
