//! What a run prints: one line per check and a summary for people, one JSON
//! object for scripts, and for batches a CSV with one row per submission and
//! one column per check.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::hints;
use crate::lang::Lang;
use crate::plan::{Check, Outcome, Status};
use crate::transcript::Transcript;

/// The verdicts of one run against one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What was checked (an address, or the command that started it).
    pub target: String,
    /// One per check, in the battery's order.
    pub outcomes: Vec<Outcome>,
    /// The frames each check that ran exchanged (for the HTML pages; not in
    /// the JSON or CSV).
    pub transcripts: BTreeMap<Check, Transcript>,
}

impl Report {
    /// A report for `target`.
    pub fn new(target: impl Into<String>, outcomes: Vec<Outcome>) -> Report {
        Report {
            target: target.into(),
            outcomes,
            transcripts: BTreeMap::new(),
        }
    }

    /// How many checks ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == status).count()
    }

    /// The outcome of `check`, if it was part of the run.
    pub fn outcome(&self, check: Check) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.check == check)
    }

    /// Names of the failed checks.
    pub fn failed(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| o.status == Status::Fail)
            .map(|o| o.check.name())
            .collect()
    }

    /// The human report, in this run's language.
    pub fn text(&self) -> String {
        self.text_in(Lang::current())
    }

    /// The human report in `lang`: a line per check (a failure's hint on
    /// its own indented line under it), then the summary.
    pub fn text_in(&self, lang: Lang) -> String {
        let width = self
            .outcomes
            .iter()
            .map(|o| o.check.name().len())
            .max()
            .unwrap_or(0);
        let mut s = format!("trama-check {}\n", self.target);
        let status_width = [Status::Pass, Status::Fail, Status::Skip]
            .into_iter()
            .map(|st| lang.status(st).chars().count())
            .max()
            .unwrap_or(4);
        for o in &self.outcomes {
            s.push_str(&format!(
                "  {:<status_width$}  {:<width$}  {}\n",
                lang.status(o.status),
                o.check.name(),
                lang.reason(&o.reason)
            ));
            if let Some(h) = hints::for_outcome(o, lang) {
                s.push_str(&format!(
                    "  {:<status_width$}  {}: {h}\n",
                    "",
                    lang.hint_label()
                ));
            }
        }
        s.push_str(&self.summary_in(lang));
        s.push('\n');
        s
    }

    /// `N passed, N failed, N skipped` (and which failed), in this run's language.
    pub fn summary(&self) -> String {
        self.summary_in(Lang::current())
    }

    /// The summary in `lang`.
    pub fn summary_in(&self, lang: Lang) -> String {
        lang.summary(
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Skip),
            &self.failed(),
        )
    }

    /// The JSON object: target, checks (name, status, reason, and a
    /// failure's hint in this run's language, else null), and the counts.
    pub fn json(&self) -> Value {
        let lang = Lang::current();
        let checks: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                json!({
                    "name": o.check.name(),
                    "status": o.status.as_str(),
                    "reason": o.reason,
                    "hint": hints::for_outcome(o, lang),
                })
            })
            .collect();
        json!({
            "target": self.target,
            "checks": checks,
            "passed": self.count(Status::Pass),
            "failed": self.count(Status::Fail),
            "skipped": self.count(Status::Skip),
        })
    }
}

/// One submission of a batch.
#[derive(Debug, Clone)]
pub struct Row {
    /// The submission's folder name.
    pub submission: String,
    /// Why the battery could not run at all (the server did not start), if so.
    pub error: Option<String>,
    /// The run.
    pub report: Report,
}

/// Quote a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `s` with its lines joined by ` | `, blank ones dropped.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The batch table: `submission,passed,failed,skipped,error,<one column per check>`.
pub fn csv(rows: &[Row], checks: &[Check]) -> String {
    let mut out = String::from("submission,passed,failed,skipped,error");
    for c in checks {
        out.push(',');
        out.push_str(c.name());
    }
    out.push('\n');
    for r in rows {
        let mut cells = vec![
            csv_field(&r.submission),
            r.report.count(Status::Pass).to_string(),
            r.report.count(Status::Fail).to_string(),
            r.report.count(Status::Skip).to_string(),
            // One line per row: the error's lines joined.
            csv_field(&one_line(r.error.as_deref().unwrap_or(""))),
        ];
        for c in checks {
            cells.push(
                r.report
                    .outcome(*c)
                    .map_or("", |o| o.status.as_str())
                    .to_string(),
            );
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// The batch summary as JSON: each submission's report plus its error.
pub fn batch_json(dir: &str, command: &str, rows: &[Row]) -> Value {
    let subs: Vec<Value> = rows.iter().map(|r| r.json(false)).collect();
    json!({"dir": dir, "command": command, "submissions": subs})
}

/// `pass`, `fail` or `skip` back to a status.
fn status_from(s: &str) -> Option<Status> {
    [Status::Pass, Status::Fail, Status::Skip]
        .into_iter()
        .find(|st| st.as_str() == s)
}

impl Row {
    /// The row as the batch JSON has it (the report, `submission` and
    /// `error`), with `transcripts` too when `frames` (how a batch job hands
    /// its row to the batch).
    pub fn json(&self, frames: bool) -> Value {
        let mut v = self.report.json();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("submission".into(), json!(self.submission));
            obj.insert("error".into(), json!(self.error));
            if frames {
                let t: serde_json::Map<String, Value> = self
                    .report
                    .transcripts
                    .iter()
                    .map(|(c, t)| (c.name().to_string(), t.json()))
                    .collect();
                obj.insert("transcripts".into(), Value::Object(t));
            }
        }
        v
    }

    /// Back from [`Row::json`] (or a submission of a batch's JSON).
    pub fn from_json(v: &Value) -> Result<Row, String> {
        let submission = v["submission"]
            .as_str()
            .ok_or("a submission without a \"submission\" name")?
            .to_string();
        let bad = |what: &str| format!("submission {submission:?}: {what}");
        let mut outcomes = Vec::new();
        for c in v["checks"]
            .as_array()
            .ok_or_else(|| bad("no \"checks\" list"))?
        {
            let name = c["name"].as_str().unwrap_or("");
            let check =
                Check::from_name(name).ok_or_else(|| bad(&format!("no check called {name:?}")))?;
            let status = status_from(c["status"].as_str().unwrap_or(""))
                .ok_or_else(|| bad(&format!("{name}: no pass, fail or skip status")))?;
            outcomes.push(Outcome {
                check,
                status,
                reason: c["reason"].as_str().unwrap_or("").to_string(),
            });
        }
        let mut report = Report::new(v["target"].as_str().unwrap_or(""), outcomes);
        if let Some(t) = v["transcripts"].as_object() {
            for (name, t) in t {
                if let Some(check) = Check::from_name(name) {
                    report
                        .transcripts
                        .insert(check, crate::transcript::Transcript::from_json(t));
                }
            }
        }
        Ok(Row {
            submission,
            error: v["error"].as_str().map(String::from),
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report::new(
            "127.0.0.1:8080",
            vec![
                Outcome {
                    check: Check::OneMessage,
                    status: Status::Pass,
                    reason: "ok".into(),
                },
                Outcome {
                    check: Check::IdleCpu,
                    status: Status::Fail,
                    reason: "99.0% of one core".into(),
                },
                Outcome {
                    check: Check::ThreadsReleased,
                    status: Status::Skip,
                    reason: "needs idle-cpu".into(),
                },
            ],
        )
    }

    #[test]
    fn json_has_exactly_the_documented_shape() {
        let v = report().json();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5);
        assert_eq!(v["target"], "127.0.0.1:8080");
        assert_eq!(v["passed"], 1);
        assert_eq!(v["failed"], 1);
        assert_eq!(v["skipped"], 1);
        assert_eq!(
            v["checks"][1],
            json!({"name": "idle-cpu", "status": "fail", "reason": "99.0% of one core",
                   "hint": hints::for_outcome(&report().outcomes[1], Lang::En)})
        );
        assert!(v["checks"][1]["hint"].as_str().unwrap().contains("b''"));
        assert_eq!(v["checks"][0]["hint"], Value::Null);
    }

    #[test]
    fn text_lists_every_check_and_the_summary() {
        let t = report().text();
        assert!(
            t.contains("  fail  idle-cpu          99.0% of one core\n"),
            "{t}"
        );
        assert!(
            t.ends_with("1 passed, 1 failed, 1 skipped (failed: idle-cpu)\n"),
            "{t}"
        );
        assert!(t.contains("\n        hint: recv returned b''"), "{t}");
    }

    #[test]
    fn text_in_spanish() {
        let t = report().text_in(Lang::Es);
        assert!(
            t.contains("  falla    idle-cpu          99.0% of one core\n"),
            "{t}"
        );
        assert!(t.contains("\n           pista: recv devolvió b''"), "{t}");
        assert!(
            t.ends_with("bien: 1, fallan: 1, omitidas: 1 (fallan: idle-cpu)\n"),
            "{t}"
        );
    }

    #[test]
    fn csv_has_a_column_per_check_and_quotes_when_needed() {
        let rows = vec![
            Row {
                submission: "ana".into(),
                error: None,
                report: report(),
            },
            Row {
                submission: "bea, \"b\"".into(),
                error: Some("did not start;\nits output:\n\nboom".into()),
                report: Report::new("x", vec![]),
            },
        ];
        let c = csv(&rows, &[Check::OneMessage, Check::IdleCpu]);
        assert_eq!(
            c,
            "submission,passed,failed,skipped,error,one-message,idle-cpu\n\
             ana,1,1,1,,pass,fail\n\
             \"bea, \"\"b\"\"\",0,0,0,did not start; | its output: | boom,,\n"
        );
    }

    #[test]
    fn batch_json_adds_submission_and_error() {
        let rows = vec![Row {
            submission: "ana".into(),
            error: None,
            report: report(),
        }];
        let v = batch_json("subs", "python3 {}/servidor.py", &rows);
        assert_eq!(v["submissions"][0]["submission"], "ana");
        assert_eq!(v["submissions"][0]["error"], Value::Null);
        assert_eq!(v["submissions"][0]["failed"], 1);
    }

    #[test]
    fn rows_survive_their_json() {
        let mut r = report();
        r.transcripts.insert(
            Check::OneMessage,
            crate::transcript::Transcript {
                lines: vec!["#1 c2s -> frame 1 2 bytes text: hi".into()],
                dropped: 3,
            },
        );
        let row = Row {
            submission: "ana".into(),
            error: Some("boom".into()),
            report: r,
        };
        let back = Row::from_json(&row.json(true)).unwrap();
        assert_eq!(back.report, row.report);
        assert_eq!(back.error, row.error);
        assert!(row.json(false).get("transcripts").is_none());
    }
}
