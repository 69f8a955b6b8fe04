//! Where courses grade: Gradescope's `results.json`, JUnit XML, and the
//! points per check (`--weights FILE`) both use.
//!
//! A weights file is one `check = points` per line (`#` starts a comment,
//! blank lines are ignored); `* = points` sets the points of every check not
//! listed (1 without it), and `visibility = V` sets Gradescope's visibility
//! (`visible`, the default, `hidden`, `after_due_date` or `after_published`).
//! A check name that does not exist is an error, so a typo does not silently
//! give a check the default.
//!
//! Points of a skipped check: a check skipped because this setup cannot run
//! it for anyone (the raw dialect, no `--spawn`, thread counts off Linux: the
//! reasons [`Setup::unmet`] gives) is not part of the grade (0 of 0 points);
//! any other skip (the server did not start, exited, reached the time limit,
//! or a check it depends on failed) is 0 of its points.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Value};

use crate::plan::{Check, Dialect, Expect, Measures, Setup, Status};
use crate::report::Row;

/// Gradescope's visibilities.
const VISIBILITIES: [&str; 4] = ["visible", "hidden", "after_due_date", "after_published"];

/// Points per check, read from `--weights FILE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    points: BTreeMap<Check, f64>,
    default: f64,
    visibility: String,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            points: BTreeMap::new(),
            default: 1.0,
            visibility: "visible".into(),
        }
    }
}

impl Weights {
    /// Read a weights file.
    pub fn load(path: &Path) -> Result<Weights, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the weights file {}: {e}", path.display()))?;
        Weights::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse the text of a weights file (see the module docs).
    pub fn parse(text: &str) -> Result<Weights, String> {
        let mut w = Weights::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |msg: String| format!("line {}: {msg}", n + 1);
            let Some((key, value)) = line.split_once('=') else {
                return Err(at(format!("expected `check = points`, found {line:?}")));
            };
            let (key, value) = (key.trim(), value.trim());
            if key == "visibility" {
                if !VISIBILITIES.contains(&value) {
                    return Err(at(format!(
                        "visibility {value:?} is not one of {}",
                        VISIBILITIES.join(", ")
                    )));
                }
                w.visibility = value.to_string();
                continue;
            }
            let points: f64 = value
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| at(format!("{value:?} is not a number of points (0 or more)")))?;
            if key == "*" {
                w.default = points;
            } else {
                let check = Check::from_name(key).ok_or_else(|| {
                    at(format!(
                        "no check called {key:?} (trama-check --list shows them)"
                    ))
                })?;
                w.points.insert(check, points);
            }
        }
        Ok(w)
    }

    /// The points of `check`.
    pub fn points(&self, check: Check) -> f64 {
        self.points.get(&check).copied().unwrap_or(self.default)
    }
}

/// Every reason [`Setup::unmet`] can give, on any setup: a skip with one of
/// these reasons is a check nobody could earn here.
fn unmet_reasons() -> &'static BTreeSet<String> {
    static REASONS: std::sync::OnceLock<BTreeSet<String>> = std::sync::OnceLock::new();
    REASONS.get_or_init(|| {
        let mut all = BTreeSet::new();
        for dialect in [Dialect::Framed, Dialect::Raw] {
            for expect in [Expect::Echo, Expect::Reply] {
                for bits in 0..16u8 {
                    let setup = Setup {
                        dialect,
                        expect,
                        spawned: bits & 1 != 0,
                        measures: Measures {
                            cpu_and_memory: bits & 2 != 0,
                            peak_memory: bits & 4 != 0,
                            threads: bits & 8 != 0,
                        },
                    };
                    all.extend(Check::ALL.iter().filter_map(|c| setup.unmet(*c)));
                }
            }
        }
        all
    })
}

/// One check's grade.
struct Graded {
    check: Check,
    status: Status,
    reason: String,
    /// A failure's hint, in this run's language.
    hint: Option<String>,
    score: f64,
    max: f64,
    /// Skipped because nobody could run it here.
    counts: bool,
}

fn graded(row: &Row, weights: &Weights) -> Vec<Graded> {
    row.report
        .outcomes
        .iter()
        .map(|o| {
            let counts = !(o.status == Status::Skip && unmet_reasons().contains(&o.reason));
            let max = if counts { weights.points(o.check) } else { 0.0 };
            Graded {
                check: o.check,
                status: o.status,
                reason: o.reason.clone(),
                hint: crate::hints::for_outcome(o, crate::lang::Lang::current()),
                score: if o.status == Status::Pass { max } else { 0.0 },
                max,
                counts,
            }
        })
        .collect()
}

/// Gradescope's `results.json` for one submission.
pub fn gradescope(row: &Row, weights: &Weights) -> Value {
    let grades = graded(row, weights);
    let tests: Vec<Value> = grades
        .iter()
        .map(|g| {
            let output = match (g.status, g.counts) {
                (Status::Skip, false) => format!("skipped (not graded here): {}", g.reason),
                (Status::Skip, true) => format!("skipped: {}", g.reason),
                (s, _) => format!("{}: {}", s.as_str(), g.reason),
            };
            let output = match &g.hint {
                Some(h) => format!(
                    "{output}\n{}: {h}",
                    crate::lang::Lang::current().hint_label()
                ),
                None => output,
            };
            json!({
                "name": g.check.name(),
                "score": g.score,
                "max_score": g.max,
                "status": if g.status == Status::Pass { "passed" } else { "failed" },
                "output": output,
                "visibility": weights.visibility,
            })
        })
        .collect();
    let score: f64 = grades.iter().map(|g| g.score).sum();
    let mut output = format!("trama-check: {}", row.report.summary());
    if let Some(e) = &row.error {
        output.push_str(&format!("\nnot checked: {e}"));
    }
    json!({
        "score": score,
        "output": output,
        "visibility": weights.visibility,
        "tests": tests,
    })
}

/// `s` escaped for XML text and attribute values; characters XML 1.0 cannot
/// hold (most control characters) become U+FFFD.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a `testsuite` per submission, a `testcase` per check, with
/// `failure` or `skipped` and the reason; a submission that did not start
/// has its error in `system-err`.
pub fn junit(rows: &[Row]) -> String {
    let count = |s: Status| -> usize { rows.iter().map(|r| r.report.count(s)).sum() };
    let tests: usize = rows.iter().map(|r| r.report.outcomes.len()).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"trama-check\" tests=\"{tests}\" failures=\"{}\" skipped=\"{}\" errors=\"0\">\n",
        count(Status::Fail),
        count(Status::Skip)
    ));
    for r in rows {
        let name = xml_escape(&r.submission);
        x.push_str(&format!(
            "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\">\n",
            r.report.outcomes.len(),
            r.report.count(Status::Fail),
            r.report.count(Status::Skip)
        ));
        for o in &r.report.outcomes {
            let reason = xml_escape(&o.reason);
            x.push_str(&format!(
                "    <testcase classname=\"trama-check.{name}\" name=\"{}\"",
                o.check.name()
            ));
            match o.status {
                Status::Pass => x.push_str("/>\n"),
                Status::Fail => x.push_str(&format!(
                    ">\n      <failure message=\"{reason}\">{reason}</failure>\n    </testcase>\n"
                )),
                Status::Skip => x.push_str(&format!(
                    ">\n      <skipped message=\"{reason}\"/>\n    </testcase>\n"
                )),
            }
        }
        if let Some(e) = &r.error {
            x.push_str(&format!(
                "    <system-err>not checked: {}</system-err>\n",
                xml_escape(e)
            ));
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Outcome;
    use crate::report::Report;

    fn row() -> Row {
        let o = |check, status, reason: &str| Outcome {
            check,
            status,
            reason: reason.into(),
        };
        Row {
            submission: "ana <&\"'>".into(),
            error: None,
            report: Report::new(
                "x",
                vec![
                    o(Check::OneMessage, Status::Pass, "ok"),
                    o(Check::ByteAtATime, Status::Fail, "got 1 of 4 bytes <\u{1}>"),
                    o(
                        Check::IdleCpu,
                        Status::Skip,
                        "measures the server's process: run with --spawn",
                    ),
                    o(Check::Garbage, Status::Skip, "the server exited during x"),
                ],
            ),
        }
    }

    #[test]
    fn weights_parse_defaults_and_errors() {
        let w =
            Weights::parse("# points\none-message = 3\n* = 2 # others\n\nvisibility = hidden\n")
                .unwrap();
        assert_eq!(w.points(Check::OneMessage), 3.0);
        assert_eq!(w.points(Check::Garbage), 2.0);
        assert_eq!(w.visibility, "hidden");
        assert!(Weights::parse("one-mesage = 1")
            .unwrap_err()
            .contains("line 1"));
        assert!(Weights::parse("one-message = -1").is_err());
        assert!(Weights::parse("one-message 1").is_err());
        assert!(Weights::parse("visibility = public").is_err());
        assert_eq!(Weights::default().points(Check::Garbage), 1.0);
    }

    #[test]
    fn gradescope_scores_and_skips() {
        let w = Weights::parse("byte-at-a-time = 2").unwrap();
        let g = gradescope(&row(), &w);
        assert_eq!(g["score"], 1.0);
        let t = g["tests"].as_array().unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[0]["score"], 1.0);
        assert_eq!(t[1]["max_score"], 2.0);
        assert_eq!(t[1]["score"], 0.0);
        // Not runnable here: not graded. Skipped after a crash: 0 of 1.
        assert_eq!(t[2]["max_score"], 0.0);
        assert_eq!(t[3]["max_score"], 1.0);
        for test in t {
            for key in ["name", "score", "max_score", "output", "visibility"] {
                assert!(test.get(key).is_some(), "{test}");
            }
        }
    }

    #[test]
    fn junit_escapes_everything() {
        let x = junit(&[row()]);
        assert!(x.contains("name=\"ana &lt;&amp;&quot;&apos;&gt;\""), "{x}");
        assert!(x.contains("got 1 of 4 bytes &lt;\u{FFFD}&gt;"), "{x}");
        assert!(
            x.contains("tests=\"4\" failures=\"1\" skipped=\"2\""),
            "{x}"
        );
    }
}
