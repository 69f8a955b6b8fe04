//! What a run found, as a table for people or one JSON object for scripts.
//!
//! Every figure is an `Option`: a mode fills in the ones that apply, and the
//! others are left out of both the table and the JSON (a missing key means
//! "not measured", never 0). The JSON keys are the names `--help` explains.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::Histogram;

/// The figures of one run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// pingpong, load, bulk or hold.
    pub mode: String,
    /// The server's address.
    pub addr: String,
    /// The wire format (`be32`, `varint`, ...).
    pub framing: String,
    /// Payload bytes of one request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Connections asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<u64>,
    /// Connections established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<u64>,
    /// Connections that could not be established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_failed: Option<u64>,
    /// Client threads of trama-bench.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// Requests kept in flight per connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<u64>,
    /// Target requests per second, all connections together (open loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Seconds measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Requests (or frames) sent in the measured period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    /// Replies to those.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered: Option<u64>,
    /// Open loop: requests whose send time came but that were never sent,
    /// because `--pipeline` requests were still unanswered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind: Option<u64>,
    /// Connections that ended early: closed by the server, reset, or a bad frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// Frames that answered no request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected: Option<u64>,
    /// Median latency, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    /// 99th percentile latency, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// 99.9th percentile latency, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_us: Option<f64>,
    /// Largest latency, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_us: Option<f64>,
    /// Smallest latency, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_us: Option<f64>,
    /// Mean latency, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_us: Option<f64>,
    /// Replies per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_s: Option<f64>,
    /// Payload megabytes (10^6 bytes) per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
    /// Payload bytes sent (bulk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Payload bytes per frame (bulk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// Bulk: whether the server closed its side after the last frame (so it
    /// had read everything) within `--timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_closed: Option<bool>,
    /// Hold: milliseconds to open every connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<f64>,
    /// Hold: milliseconds from the pings to the last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_all_ms: Option<f64>,
    /// `--server-pid`: the server's resident memory before the connections, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_before_kib: Option<u64>,
    /// `--server-pid`: the server's resident memory with every connection open, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_held_kib: Option<u64>,
    /// `--server-pid`: (held - before) / connections, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_bytes_per_conn: Option<f64>,
    /// `--server-pid`: the server's threads with every connection open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_threads: Option<u64>,
    /// The first error a connection met, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Nanoseconds as microseconds, to 0.1 µs.
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// Round to `digits` decimals (so the JSON is not 17-digit noise).
pub fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

impl Report {
    /// Fill in the latency figures from `h` (nothing when it is empty).
    pub fn latencies(&mut self, h: &Histogram) {
        if h.count() == 0 {
            return;
        }
        self.p50_us = Some(us(h.quantile(0.5)));
        self.p99_us = Some(us(h.quantile(0.99)));
        self.p999_us = Some(us(h.quantile(0.999)));
        self.max_us = Some(us(h.max()));
        self.min_us = Some(us(h.min()));
        self.mean_us = Some(round(h.mean() / 1000.0, 1));
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        // A struct of plain fields always serializes; the fallback is for form.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Two columns, figure and value, with a word on what the figure is.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
        row("mode", self.mode.clone());
        row("server", self.addr.clone());
        row("framing", self.framing.clone());
        let num = |v: Option<u64>| v.map(group);
        let fl = |v: Option<f64>, unit: &str| v.map(|x| format!("{} {unit}", fmt_f(x)));
        let cells: Vec<(&str, Option<String>)> = vec![
            ("request payload", num(self.size).map(|s| s + " B")),
            ("frame payload", num(self.frame).map(|s| s + " B")),
            ("clients", num(self.clients)),
            ("connected", num(self.connected)),
            ("could not connect", num(self.connect_failed)),
            ("client threads", num(self.threads)),
            ("pipeline", num(self.pipeline)),
            ("target rate", fl(self.rate, "req/s")),
            ("measured for", fl(self.duration_s, "s")),
            ("connect time", fl(self.connect_ms, "ms")),
            ("sent", num(self.sent)),
            ("answered", num(self.answered)),
            ("behind schedule", num(self.behind)),
            ("dropped connections", num(self.dropped)),
            ("unexpected frames", num(self.unexpected)),
            ("throughput", fl(self.msgs_per_s, "msgs/s")),
            ("payload bytes", num(self.bytes)),
            ("bandwidth", fl(self.mb_per_s, "MB/s")),
            (
                "server closed after last frame",
                self.server_closed.map(|b| b.to_string()),
            ),
            ("latency p50", fl(self.p50_us, "µs")),
            ("latency p99", fl(self.p99_us, "µs")),
            ("latency p99.9", fl(self.p999_us, "µs")),
            ("latency max", fl(self.max_us, "µs")),
            ("latency min", fl(self.min_us, "µs")),
            ("latency mean", fl(self.mean_us, "µs")),
            ("all answered within", fl(self.answer_all_ms, "ms")),
            (
                "server RSS before",
                num(self.server_rss_before_kib).map(|s| s + " KiB"),
            ),
            (
                "server RSS held",
                num(self.server_rss_held_kib).map(|s| s + " KiB"),
            ),
            (
                "server RSS per connection",
                fl(self.server_bytes_per_conn, "B"),
            ),
            ("server threads", num(self.server_threads)),
            ("first error", self.first_error.clone()),
        ];
        for (k, v) in cells {
            if let Some(v) = v {
                row(k, v);
            }
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{k:<width$}  {v}\n"));
        }
        out
    }
}

/// The progress line on stderr: at most once a second, rewritten in place
/// on a terminal and one line each otherwise (so a log keeps them all).
/// stdout is left to the result alone.
#[derive(Debug)]
pub struct Ticker {
    quiet: bool,
    tty: bool,
    last: Instant,
    printed: bool,
}

impl Ticker {
    /// A ticker that prints nothing when `quiet`.
    pub fn new(quiet: bool) -> Ticker {
        Ticker {
            quiet,
            tty: std::io::stderr().is_terminal(),
            last: Instant::now(),
            printed: false,
        }
    }

    /// Print `line()` if a second has passed since the last line.
    pub fn maybe(&mut self, line: impl FnOnce() -> String) {
        if self.quiet || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        self.printed = true;
        if self.tty {
            eprint!("\r\x1b[K{}", line());
        } else {
            eprintln!("{}", line());
        }
    }

    /// End the line on a terminal, before the result is printed.
    pub fn finish(&mut self) {
        if self.printed && self.tty {
            eprintln!();
        }
        self.printed = false;
    }
}

/// 1234567 as "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A figure with as many decimals as it deserves: grouped thousands above
/// 1,000, one decimal below.
fn fmt_f(x: f64) -> String {
    if x.abs() >= 1000.0 {
        group(x.round().max(0.0) as u64)
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_figures_are_absent_from_json() {
        let r = Report {
            mode: "pingpong".into(),
            addr: "127.0.0.1:1".into(),
            framing: "be32".into(),
            answered: Some(3),
            ..Report::default()
        };
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["answered"], 3);
        assert!(v.get("p99_us").is_none());
        assert!(r.table().contains("answered"));
        assert!(!r.table().contains("latency"));
    }

    #[test]
    fn latencies_in_microseconds() {
        let mut h = Histogram::new();
        for v in [10_000u64, 20_000, 30_000] {
            h.record(v);
        }
        let mut r = Report::default();
        r.latencies(&h);
        assert_eq!(r.max_us, Some(30.0));
        assert_eq!(r.mean_us, Some(20.0));
        let p50 = r.p50_us.unwrap();
        assert!((p50 - 20.0).abs() < 0.2, "{p50}");
    }

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
