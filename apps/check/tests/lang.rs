//! trama-check speaks Spanish or English (`--lang`, or the locale) and
//! teaches: a failure against a Python server with a classic defect
//! (`tests/python/defects`) comes with the hint that names the cause, the
//! fix and the section of the notes, on its own line.

mod common;

use common::{check_command, defect, ok, python_command, FAST, RUN_DEADLINE};
use trama_test_support::run_command;

/// Run trama-check with `args` (and the locale `locale`, if any; none
/// otherwise): its exit code and stdout.
fn check(args: &[&str], locale: Option<&str>) -> (i32, String) {
    let mut cmd = check_command();
    if let Some(l) = locale {
        cmd.env("LANG", l);
    }
    cmd.args(FAST).args(args);
    let (status, stdout, stderr) = ok(run_command(cmd, RUN_DEADLINE));
    assert!(!stdout.is_empty(), "no report; stderr:\n{stderr}");
    (status.code().unwrap_or(-1), stdout)
}

fn single_recv(lang: &[&str], locale: Option<&str>) -> (i32, String) {
    let server = defect("single_recv");
    let mut args = vec!["--spawn", server.as_str(), "--check", "byte-at-a-time"];
    args.extend_from_slice(lang);
    check(&args, locale)
}

#[test]
#[cfg_attr(
    windows,
    ignore = "--spawn needs sh, and python3 cannot be started under wine"
)]
fn a_single_recv_gets_its_hint_in_spanish() {
    let (code, out) = single_recv(&["--lang", "es"], None);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("  falla    byte-at-a-time  la respuesta: llegaron"),
        "{out}"
    );
    assert!(out.contains("llegaron 0 bytes en vez de"), "{out}");
    assert!(
        out.contains("\n           pista: un solo recv(4) para el encabezado"),
        "{out}"
    );
    assert!(out.contains("exactamente n bytes"), "{out}");
    assert!(out.contains("(apuntes: «Envío de muchos datos»)"), "{out}");
    assert!(
        out.contains("bien: 0, fallan: 1, omitidas: 0 (fallan: byte-at-a-time)"),
        "{out}"
    );
}

#[test]
#[cfg_attr(
    windows,
    ignore = "--spawn needs sh, and python3 cannot be started under wine"
)]
fn a_single_recv_gets_its_hint_in_english() {
    let (code, out) = single_recv(&["--lang", "en"], Some("es_CL.UTF-8"));
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("  fail  byte-at-a-time  the answer: got 0 bytes instead of"),
        "{out}"
    );
    assert!(
        out.contains("\n        hint: a single recv(4) for the header"),
        "{out}"
    );
    assert!(out.contains("loop until exactly n bytes"), "{out}");
    assert!(out.contains("(notes: \"Envío de muchos datos\")"), "{out}");
    assert!(!out.contains("pista"), "{out}");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "--spawn needs sh, and python3 cannot be started under wine"
)]
fn the_locale_chooses_spanish_without_lang() {
    let (_, out) = single_recv(&[], Some("es_ES.UTF-8"));
    assert!(out.contains("pista: "), "{out}");
    let (_, out) = single_recv(&[], None);
    assert!(out.contains("hint: "), "{out}");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "--spawn needs sh, and python3 cannot be started under wine"
)]
fn the_json_has_the_hint_and_english_status() {
    let (_, out) = single_recv(&["--lang", "es", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let c = &v["checks"][0];
    assert_eq!(c["status"], "fail", "{out}");
    assert!(
        c["reason"].as_str().unwrap().contains("instead of"),
        "{out}"
    );
    assert!(c["hint"].as_str().unwrap().contains("recv(4)"), "{out}");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "--spawn needs sh, and python3 cannot be started under wine"
)]
fn a_spin_gets_the_b_empty_hint() {
    let server = defect("spin");
    let args = [
        "--spawn",
        server.as_str(),
        "--check",
        "one-message",
        "--check",
        "idle-cpu",
    ];
    let mut es = args.to_vec();
    es.extend(["--lang", "es"]);
    let (code, out) = check(&es, None);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("pista: recv devolvió b''"), "{out}");
    assert!(
        out.contains("sal del ciclo cuando recv devuelva b''"),
        "{out}"
    );
    let mut en = args.to_vec();
    en.extend(["--lang", "en"]);
    let (_, out) = check(&en, None);
    assert!(out.contains("hint: recv returned b''"), "{out}");
    assert!(
        out.contains("leave the loop when recv returns b''"),
        "{out}"
    );
}

#[test]
#[cfg_attr(
    windows,
    ignore = "--spawn needs sh, and python3 cannot be started under wine"
)]
fn a_spin_after_a_client_left_mid_message_is_told_in_spanish() {
    let server = defect("spin");
    let (code, out) = check(
        &[
            "--spawn",
            server.as_str(),
            "--check",
            "one-message",
            "--check",
            "mid-message-disconnect",
            "--lang",
            "es",
        ],
        None,
    );
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("pero después de que el cliente se fue a medio mensaje el servidor usó ")
            && out.contains(" ms de CPU en "),
        "{out}"
    );
    assert!(
        out.contains("pista: el servidor siguió gastando CPU"),
        "{out}"
    );
    assert!(out.contains("cuando recv devuelva b''"), "{out}");
}

#[test]
fn list_speaks_spanish() {
    let (_, out) = check(&["--list", "--lang", "es"], None);
    assert!(out.contains("detecta: un solo recv()"), "{out}");
    let (_, out) = check(&["--list", "--lang", "en"], None);
    assert!(out.contains("catches: a single recv()"), "{out}");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "--spawn needs sh, and python3 cannot be started under wine"
)]
fn replies_checked_as_echoes_suggest_expect_reply() {
    let server = python_command("notes_server.py", "0 1");
    let args = [
        "--raw",
        "--spawn",
        server.as_str(),
        "--check",
        "one-message",
    ];
    let mut en = args.to_vec();
    en.extend(["--lang", "en"]);
    let (code, out) = check(&en, None);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("hint: the answer is not the message sent back"),
        "{out}"
    );
    assert!(out.contains("`--expect reply`"), "{out}");
    let mut es = args.to_vec();
    es.extend(["--lang", "es"]);
    let (_, out) = check(&es, None);
    assert!(
        out.contains("pista: la respuesta no es el mensaje devuelto"),
        "{out}"
    );
}
