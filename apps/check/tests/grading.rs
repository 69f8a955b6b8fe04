//! The grading side of `trama-check batch`, end to end: a folder of Python
//! submissions that all listen on the same fixed port (the notes' 8080),
//! checked with `--jobs 4` and with `--jobs 1` (the same table), in two
//! shards joined by `merge` (the same table again), with the Gradescope
//! files checked against Gradescope's documented keys, the JUnit XML parsed
//! by python3's xml.etree, and the HTML pages rendered by a headless
//! chromium, every link of the index followed.
//!
//! Every submission binds 127.0.0.1:8080 at once: that only works because
//! each job runs in a network namespace of its own (root on Linux, or user
//! namespaces). Where none can be made, the test fails and says so. The
//! port is not this machine's 8080: each namespace has its own.

#![allow(clippy::unwrap_used)]
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    check_command, ok, python, quote, read_json, servidor_template, submission, CHECK, FAST,
};
use serde_json::Value;
use trama_test_support::{python3, python_script, run_command};

const DEADLINE: Duration = Duration::from_secs(600);

/// The submissions: four servers with one known defect or none, and one
/// that has no server at all.
fn submissions(root: &Path) -> PathBuf {
    let subs = root.join("subs");
    for (student, server) in [
        ("ana", Some("correct")),
        ("bea", Some("single_recv")),
        ("cris", Some("serial")),
        ("dani", None),
        ("eva", Some("correct")),
    ] {
        let folder = subs.join(student);
        match server {
            Some(server) => submission(&folder, server),
            None => std::fs::create_dir_all(&folder).unwrap(),
        }
    }
    subs
}

/// Fail with the reason when this machine cannot give each job a network.
fn require_network_namespaces() {
    let out = Command::new(CHECK)
        .arg("--probe-isolation")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "this test needs network namespaces (root on Linux, or user namespaces allowed), so \
         that every submission can bind 127.0.0.1:8080 at once; here: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `trama-check ARGS` and return its stdout and the wall time.
fn check(args: &[&str]) -> (String, Duration) {
    let mut cmd = check_command();
    cmd.args(args);
    let start = Instant::now();
    let (status, stdout, stderr) = ok(run_command(cmd, DEADLINE));
    let took = start.elapsed();
    assert!(status.success(), "{args:?}\n{stdout}\n{stderr}");
    (stdout, took)
}

/// A batch of `subs` into `out` with `extra` flags; returns its CSV, its
/// JSON and how long it took.
fn batch(subs: &Path, out: &Path, extra: &[&str]) -> (String, Value, Duration) {
    std::fs::create_dir_all(out).unwrap();
    let template = servidor_template(8080);
    let csv = out.join("out.csv");
    let json = out.join("out.json");
    let mut args: Vec<String> = vec![
        "batch".into(),
        subs.to_string_lossy().into(),
        "--spawn".into(),
        template,
        "--addr".into(),
        "127.0.0.1:8080".into(),
        "--start-timeout".into(),
        "10s".into(),
        "--csv".into(),
        csv.to_string_lossy().into(),
        "--json".into(),
        json.to_string_lossy().into(),
    ];
    args.extend(FAST.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, took) = check(&args);
    let table = std::fs::read_to_string(&csv).unwrap();
    let summary: Value = read_json(&json);
    (table, summary, took)
}

/// A submission's name, whether it was checked, and each check's name and status.
type Verdicts = (String, bool, Vec<(String, String)>);

/// The verdicts of a batch's JSON: per submission, its name, whether it
/// was checked, and each check's name and status (reasons carry measured
/// numbers, such as CPU percentages, that differ from run to run).
fn submissions_of(v: &Value) -> Vec<Verdicts> {
    v["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let checks = s["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["name"].to_string(), c["status"].to_string()))
                .collect();
            (s["submission"].to_string(), s["error"].is_null(), checks)
        })
        .collect()
}

/// The scores of a Gradescope file.
fn scores(path: &Path) -> Vec<(String, f64, f64)> {
    let v: Value = read_json(path);
    let mut all = vec![("total".to_string(), v["score"].as_f64().unwrap(), 0.0)];
    for t in v["tests"].as_array().unwrap() {
        all.push((
            t["name"].to_string(),
            t["score"].as_f64().unwrap(),
            t["max_score"].as_f64().unwrap(),
        ));
    }
    all
}

/// Gradescope's documented keys: a numeric `score` and a `tests` list whose
/// items have `name`, `score`, `max_score`, `output` and a `visibility` of
/// the four Gradescope knows.
fn check_gradescope(path: &Path, weights: &[(&str, f64)]) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    let visibilities = ["hidden", "after_due_date", "after_published", "visible"];
    assert!(v["score"].is_number(), "{v}");
    let tests = v["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 13, "{v}");
    let mut sum = 0.0;
    for t in tests {
        let name = t["name"].as_str().unwrap();
        let (score, max) = (
            t["score"].as_f64().unwrap(),
            t["max_score"].as_f64().unwrap(),
        );
        assert!(t["output"].is_string(), "{t}");
        assert!(
            visibilities.contains(&t["visibility"].as_str().unwrap()),
            "{t}"
        );
        assert!((0.0..=max).contains(&score), "{t}");
        let weight = weights
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(1.0, |(_, w)| *w);
        // Every check runs here (framed, spawned, Linux): all count.
        assert_eq!(max, weight, "{t}");
        sum += score;
    }
    assert_eq!(v["score"].as_f64().unwrap(), sum, "{v}");
    v
}

/// python3's xml.etree reads the JUnit file; its counts match the JSON.
fn check_junit(path: &Path, summary: &Value) {
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
for suite in root.findall("testsuite"):
    cases = suite.findall("testcase")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == failures
    assert int(suite.get("skipped")) == skipped
    print(suite.get("name"), len(cases), failures, skipped)
"#;
    let python = ok(python3());
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<String> = summary["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} 13 {} {}",
                s["submission"].as_str().unwrap(),
                s["failed"],
                s["skipped"]
            )
        })
        .collect();
    assert_eq!(said.lines().collect::<Vec<_>>(), want, "{said}");
}

/// The DOM chromium built from `page`.
fn render(page: &Path, profile: &Path) -> String {
    let mut cmd = Command::new("chromium");
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()));
    let (status, stdout, stderr) = match run_command(cmd, Duration::from_secs(120)) {
        Ok(r) => r,
        Err(e) => panic!(
            "this test renders the HTML in Debian's chromium, which did not run ({e}); \
             install it: apt-get install chromium"
        ),
    };
    assert!(status.success(), "chromium: {stderr}");
    assert!(
        stdout.contains("</html>"),
        "chromium gave no page: {stdout}\n{stderr}"
    );
    stdout
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Every link of DIR/index.html (as chromium rendered it) leads to a page
/// that exists, and each page shows each check's verdict from the JSON.
fn check_html(dir: &Path, summary: &Value, profile: &Path) {
    let index = render(&dir.join("index.html"), profile);
    let links: Vec<String> = index
        .split("href=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    let subs = summary["submissions"].as_array().unwrap();
    assert_eq!(links.len(), subs.len(), "{index}");
    for (link, sub) in links.iter().zip(subs) {
        let page = dir.join(percent_decode(link));
        assert!(page.is_file(), "{link} leads nowhere ({})", page.display());
        let dom = render(&page, profile);
        assert!(
            dom.contains(&format!(">{}</h1>", sub["submission"].as_str().unwrap())),
            "{dom}"
        );
        for c in sub["checks"].as_array().unwrap() {
            let (name, status) = (c["name"].as_str().unwrap(), c["status"].as_str().unwrap());
            let shown = format!(
                "<tr class=\"{status}\" id=\"row-{name}\"><td class=\"verdict\">{status}</td>"
            );
            assert!(
                dom.contains(&shown),
                "{name}: {status} not shown in {link}:\n{dom}"
            );
        }
        if sub["error"].is_null() {
            // The frames of the first check, as trama-tap shows them.
            assert!(
                dom.contains("c2s -&gt; frame 1"),
                "no frames shown in {link}:\n{dom}"
            );
        }
    }
}

#[test]
fn a_batch_of_fixed_port_servers_graded_in_parallel_in_shards_and_in_every_format() {
    require_network_namespaces();
    let root = std::env::temp_dir().join(format!("trama-check-grading-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let subs = submissions(&root);
    let weights = root.join("weights.txt");
    std::fs::write(
        &weights,
        "# the first check is worth more\none-message = 5\n* = 1\n",
    )
    .unwrap();
    let weights_arg = weights.to_string_lossy().to_string();

    // One at a time, then four at once, with every output.
    let (serial_csv, serial, serial_took) = batch(&subs, &root.join("serial"), &["--jobs", "1"]);
    let par = root.join("parallel");
    let gs = par.join("gradescope");
    let junit = par.join("junit.xml");
    let html = par.join("html");
    let (par_csv, parallel, par_took) = batch(
        &subs,
        &par,
        &[
            "--jobs",
            "4",
            "--weights",
            &weights_arg,
            "--gradescope",
            &gs.to_string_lossy(),
            "--junit",
            &junit.to_string_lossy(),
            "--html",
            &html.to_string_lossy(),
        ],
    );
    eprintln!(
        "5 submissions: --jobs 1 took {:.1} s, --jobs 4 took {:.1} s",
        serial_took.as_secs_f64(),
        par_took.as_secs_f64()
    );
    assert_eq!(par_csv, serial_csv);
    assert_eq!(submissions_of(&parallel), submissions_of(&serial));
    // The verdicts are the ones the defects have (e2e.rs), with the port shared.
    let rows: Vec<&str> = serial_csv.lines().collect();
    assert_eq!(rows.len(), 6, "{serial_csv}");
    assert!(rows[1].starts_with("ana,13,0,0,,"), "{serial_csv}");
    assert!(rows[2].starts_with("bea,11,2,0,,"), "{serial_csv}");
    assert!(rows[3].starts_with("cris,10,1,2,,"), "{serial_csv}");
    assert!(rows[4].starts_with("dani,0,0,13,"), "{serial_csv}");
    assert!(rows[5].starts_with("eva,13,0,0,,"), "{serial_csv}");

    // Gradescope: a results.json per submission, with the documented keys.
    let w = [("one-message", 5.0)];
    let ana = check_gradescope(&gs.join("ana").join("results.json"), &w);
    assert_eq!(ana["score"].as_f64().unwrap(), 17.0, "{ana}");
    let dani = check_gradescope(&gs.join("dani").join("results.json"), &w);
    assert_eq!(dani["score"].as_f64().unwrap(), 0.0, "{dani}");
    check_junit(&junit, &parallel);
    let profile = root.join("chromium-profile");
    check_html(&html, &parallel, &profile);

    // Two shards, each with its own files but one HTML folder, then merged.
    let shared_html = root.join("shards-html");
    let mut shard_json = Vec::new();
    for k in 1..=2 {
        let out = root.join(format!("shard{k}"));
        let share = format!("{k}/2");
        let (_, part, _) = batch(
            &subs,
            &out,
            &[
                "--shard",
                &share,
                "--jobs",
                "2",
                "--html",
                &shared_html.to_string_lossy(),
            ],
        );
        let names: Vec<&str> = part["submissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["submission"].as_str().unwrap())
            .collect();
        let want: &[&str] = if k == 1 {
            &["ana", "cris", "eva"]
        } else {
            &["bea", "dani"]
        };
        assert_eq!(names, want);
        shard_json.push(out.join("out.json"));
    }
    let merged = root.join("merged");
    std::fs::create_dir_all(&merged).unwrap();
    let m_csv = merged.join("out.csv");
    let m_json = merged.join("out.json");
    let m_gs = merged.join("gradescope");
    let mut args: Vec<String> = vec!["merge".into()];
    // In the other order: merge sorts by name.
    args.extend(
        shard_json
            .iter()
            .rev()
            .map(|p| p.to_string_lossy().to_string()),
    );
    for (flag, path) in [
        ("--csv", &m_csv),
        ("--json", &m_json),
        ("--gradescope", &m_gs),
        ("--html", &shared_html),
    ] {
        args.push(flag.into());
        args.push(path.to_string_lossy().into());
    }
    args.extend(["--weights".to_string(), weights_arg.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check(&args);
    assert_eq!(std::fs::read_to_string(&m_csv).unwrap(), serial_csv);
    let merged_json: Value = read_json(&m_json);
    assert_eq!(submissions_of(&merged_json), submissions_of(&serial));
    for sub in ["ana", "bea", "cris", "dani", "eva"] {
        let file = Path::new(sub).join("results.json");
        assert_eq!(scores(&m_gs.join(&file)), scores(&gs.join(&file)), "{sub}");
    }
    check_html(&shared_html, &merged_json, &profile);
    std::fs::remove_dir_all(&root).unwrap();
}

/// A single run with `--spawn`: the program runs with the limits asked for
/// and sees no network but its own loopback; the grades of the run go to
/// the Gradescope file, the JUnit file and DIR/index.html.
#[test]
fn a_spawned_program_is_limited_and_alone_on_its_loopback() {
    require_network_namespaces();
    let root = std::env::temp_dir().join(format!("trama-check-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let server = ok(python_script("defects/correct.py"));
    // What the program sees, written before it becomes the server.
    let command = format!(
        "ulimit -n > {files}; ulimit -v > {memory}; cat /proc/net/dev > {net}; \
         exec {python} -u {server} --port 0",
        files = quote(&root.join("files")),
        memory = quote(&root.join("memory")),
        net = quote(&root.join("net")),
        python = python(),
        server = quote(&server),
    );
    let gs = root.join("results.json");
    let html = root.join("html");
    let junit = root.join("junit.xml");
    let (stdout, _) = check(&[
        "--spawn",
        &command,
        "--check",
        "one-message",
        "--check",
        "byte-at-a-time",
        "--limit-files",
        "99",
        "--limit-memory",
        "3GiB",
        "--gradescope",
        &gs.to_string_lossy(),
        "--junit",
        &junit.to_string_lossy(),
        "--html",
        &html.to_string_lossy(),
    ]);
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
    assert_eq!(read("files").trim(), "99");
    assert_eq!(read("memory").trim(), (3u64 << 20).to_string());
    let interfaces: Vec<String> = read("net")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|i| i.trim().to_string())
        .collect();
    assert_eq!(interfaces, ["lo"], "{}", read("net"));
    let v: Value = read_json(&gs);
    assert_eq!(v["score"].as_f64(), Some(2.0), "{v}");
    assert_eq!(v["tests"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<testcase classname=\"trama-check."));
    let dom = render(&html.join("index.html"), &root.join("chromium-profile"));
    assert!(
        dom.contains(
            "<td class=\"verdict\">pass</td><td class=\"name\"><a href=\"#byte-at-a-time\">"
        ),
        "{dom}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
