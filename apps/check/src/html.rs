//! `--html DIR`: static pages a TA opens in a browser. A page per
//! submission (a single run's page is DIR/index.html; a batch's are
//! DIR/s/NAME.html, with DIR/index.html linking them all): each check's
//! verdict, its reason in numbers, and the frames exchanged during it as
//! trama-tap shows them. One file each, inline CSS, no JavaScript, every
//! text escaped (names, reasons and frames are the student's bytes).

use std::path::{Path, PathBuf};

use crate::hints;
use crate::lang::Lang;
use crate::plan::Status;
use crate::report::Row;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:75em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
.pass{background:#dfd}.fail{background:#fdd}.skip{background:#eee;color:#555}\
.verdict{font-weight:bold;text-transform:uppercase;white-space:nowrap}.name{white-space:nowrap}\
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:90%}\
section{margin-top:1.5em}h2{font-size:1.1em}.error{background:#fdd;padding:.6em}";

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one path segment of a URL (everything but unreserved bytes
/// percent-encoded).
fn url_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    )
}

fn class(s: Status) -> &'static str {
    s.as_str()
}

/// An outcome's reason, escaped, and a failure's hint after it.
fn with_hint(o: &crate::plan::Outcome) -> String {
    let lang = Lang::current();
    let mut r = escape(&lang.reason(&o.reason));
    if let Some(h) = hints::for_outcome(o, lang) {
        r.push_str(&format!(
            "<br><span class=\"hint\">{}: {}</span>",
            lang.hint_label(),
            escape(&h)
        ));
    }
    r
}

/// The page of one submission; `back` links to the index, if there is one.
pub fn page(row: &Row, back: Option<&str>) -> String {
    let mut h = head(&format!("trama-check: {}", row.submission));
    if let Some(back) = back {
        h.push_str(&format!(
            "<p><a href=\"{}\">All submissions</a></p>\n",
            escape(back)
        ));
    }
    h.push_str(&format!(
        "<h1>{}</h1>\n<p>Target: <code>{}</code></p>\n<p id=\"summary\">{}</p>\n",
        escape(&row.submission),
        escape(&row.report.target),
        escape(&row.report.summary())
    ));
    if let Some(e) = &row.error {
        h.push_str(&format!(
            "<pre class=\"error\">not checked: {}</pre>\n",
            escape(e)
        ));
    }
    h.push_str("<table>\n<tr><th>Verdict</th><th>Check</th><th>Reason</th></tr>\n");
    for o in &row.report.outcomes {
        h.push_str(&format!(
            "<tr class=\"{c}\" id=\"row-{n}\"><td class=\"verdict\">{c}</td>\
             <td class=\"name\"><a href=\"#{n}\">{n}</a></td><td>{r}</td></tr>\n",
            c = class(o.status),
            n = o.check.name(),
            r = with_hint(o)
        ));
    }
    h.push_str("</table>\n");
    for o in &row.report.outcomes {
        h.push_str(&format!(
            "<section id=\"{n}\">\n<h2><span class=\"verdict {c}\">{c}</span> {n}</h2>\n<p>{r}</p>\n",
            c = class(o.status),
            n = o.check.name(),
            r = with_hint(o)
        ));
        match row.report.transcripts.get(&o.check) {
            Some(t) if !t.lines.is_empty() => {
                h.push_str("<pre>");
                for l in &t.lines {
                    h.push_str(&escape(l));
                    h.push('\n');
                }
                if t.dropped > 0 {
                    h.push_str(&format!("... and {} more frames not shown\n", t.dropped));
                }
                h.push_str("</pre>\n");
            }
            Some(_) => h.push_str("<p><em>No frames were exchanged.</em></p>\n"),
            None => h.push_str("<p><em>Not run: no frames.</em></p>\n"),
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// Where a batch's page of `submission` goes, relative to DIR.
pub fn page_path(submission: &str) -> PathBuf {
    Path::new("s").join(format!("{submission}.html"))
}

/// The index of a batch: a row per submission, linking its page.
pub fn index(rows: &[Row]) -> String {
    let mut h = head("trama-check: submissions");
    h.push_str(&format!(
        "<h1>trama-check: {} submissions</h1>\n<table>\n<tr><th>Submission</th><th>Passed</th>\
         <th>Failed</th><th>Skipped</th><th>Failed checks</th></tr>\n",
        rows.len()
    ));
    for r in rows {
        let class = if r.error.is_some() || r.report.count(Status::Fail) > 0 {
            "fail"
        } else {
            "pass"
        };
        let failed = match &r.error {
            Some(_) => "not checked".to_string(),
            None => r.report.failed().join(", "),
        };
        h.push_str(&format!(
            "<tr class=\"{class}\"><td><a href=\"s/{}.html\">{}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>\n",
            url_segment(&r.submission),
            escape(&r.submission),
            r.report.count(Status::Pass),
            r.report.count(Status::Fail),
            r.report.count(Status::Skip),
            escape(&failed)
        ));
    }
    h.push_str("</table>\n</body>\n</html>\n");
    h
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A single run's page, as DIR/index.html.
pub fn write_single(dir: &Path, row: &Row) -> Result<(), String> {
    write(&dir.join("index.html"), &page(row, None))
}

/// A batch's pages (DIR/s/NAME.html), unless `pages` is false (a merge,
/// whose pages the shards wrote), and DIR/index.html.
pub fn write_batch(dir: &Path, rows: &[Row], pages: bool) -> Result<(), String> {
    if pages {
        for r in rows {
            write(
                &dir.join(page_path(&r.submission)),
                &page(r, Some("../index.html")),
            )?;
        }
    }
    write(&dir.join("index.html"), &index(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Check, Outcome};
    use crate::report::Report;

    #[test]
    fn everything_is_escaped() {
        let mut report = Report::new(
            "<x>",
            vec![Outcome {
                check: Check::OneMessage,
                status: Status::Fail,
                reason: "<script>alert(1)</script> & \"'".into(),
            }],
        );
        report.transcripts.insert(
            Check::OneMessage,
            crate::transcript::Transcript {
                lines: vec!["#1 c2s -> frame 1 8 bytes text: </pre><b>".into()],
                dropped: 0,
            },
        );
        let row = Row {
            submission: "a<b> & c#?".into(),
            error: None,
            report,
        };
        let p = page(&row, Some("../index.html"));
        assert!(!p.contains("<script>"), "{p}");
        assert!(!p.contains("</pre><b>"), "{p}");
        assert!(
            p.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;&#39;"),
            "{p}"
        );
        let i = index(&[row]);
        assert!(
            i.contains("href=\"s/a%3Cb%3E%20%26%20c%23%3F.html\""),
            "{i}"
        );
        assert!(i.contains(">a&lt;b&gt; &amp; c#?</a>"), "{i}");
    }
}
