//! The rules, each a plain function of plain values.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::names::*;
use super::receiver::*;
use super::*;

// --- check_name ------------------------------------------------------

fn refusal(name: &str) -> String {
    check_name(name).unwrap_err().to_string()
}

#[test]
fn good_names_pass_unchanged() {
    for name in [
        "a",
        "informe final.pdf",
        ".bashrc",
        "..x",
        "x..y",
        "año_2024 (copia).tar.gz",
        "日本語.txt",
        "console.txt",
        "nul-not.txt",
        "com10",
        "lpt",
        ".trama",
        "trama-x.part",
        &"é".repeat(127), // 254 bytes
    ] {
        assert_eq!(check_name(name), Ok(name), "{name:?}");
    }
}

#[test]
fn empty_and_dots() {
    assert_eq!(check_name(""), Err(NameError::Empty));
    assert_eq!(refusal(""), "the name is empty");
    assert_eq!(refusal("."), "name \".\" means a directory, not a file");
    assert_eq!(refusal(".."), "name \"..\" means a directory, not a file");
}

#[test]
fn separators() {
    assert_eq!(
        refusal("..\\x"),
        "name \"..\\x\" contains a path separator ('\\'); send a bare file name"
    );
    for name in [
        "../etc/passwd",
        "/etc/passwd",
        "a/b",
        "a/",
        "\\\\server\\share",
    ] {
        assert!(
            matches!(check_name(name), Err(NameError::PathSeparator { .. })),
            "{name:?}"
        );
    }
    assert!(refusal("a/b").contains("('/')"));
}

#[test]
fn drives_and_colons() {
    assert_eq!(
        refusal("C:"),
        "name \"C:\" starts with a drive prefix (\"C:\"); send a bare file name"
    );
    assert!(matches!(
        check_name("c:x.txt"),
        Err(NameError::DrivePrefix { .. })
    ));
    // Checked before the separators, the more telling reason.
    assert!(matches!(
        check_name("C:\\Windows"),
        Err(NameError::DrivePrefix { .. })
    ));
    assert_eq!(
        refusal("a.txt:hidden"),
        "name \"a.txt:hidden\" contains ':', which Windows reads as a drive or a hidden \
         data stream"
    );
}

#[test]
fn control_characters_are_named_and_escaped() {
    assert_eq!(
        refusal("a\0b"),
        "name \"a\\u{0}b\" contains the control character U+0000"
    );
    assert_eq!(
        refusal("x\x1b[2J"),
        "name \"x\\u{1b}[2J\" contains the control character U+001B"
    );
    for name in ["tab\there", "new\nline", "del\x7f", "c1\u{85}"] {
        assert!(
            matches!(check_name(name), Err(NameError::ControlCharacter { .. })),
            "{name:?}"
        );
    }
}

#[test]
fn too_long_says_how_long() {
    let long = "a".repeat(256);
    let e = refusal(&long);
    assert!(
        e.ends_with("\" is 256 bytes long; the limit is 255 bytes"),
        "{e}"
    );
    assert!(e.contains("..."), "the quote is cut: {e}");
    assert!(e.len() < 150, "{e}");
    assert!(check_name(&"a".repeat(255)).is_ok());
    // Bytes, not characters: 128 × 'é' is 256 bytes.
    assert_eq!(
        check_name(&"é".repeat(128)),
        Err(NameError::TooLong {
            name: "é".repeat(128),
            len: 256
        })
    );
}

#[test]
fn windows_devices_in_any_case_and_with_extensions() {
    for (name, device) in [
        ("CON", "CON"),
        ("prn", "PRN"),
        ("Aux", "AUX"),
        ("nul.txt", "NUL"),
        ("NUL.tar.gz", "NUL"),
        ("nul .txt", "NUL"),
        ("com1", "COM1"),
        ("COM9.log", "COM9"),
        ("lpt1", "LPT1"),
        ("LPT9.bin", "LPT9"),
        ("com¹", "COM¹"),
        ("conout$", "CONOUT$"),
    ] {
        assert_eq!(
            check_name(name),
            Err(NameError::ReservedDevice {
                name: name.to_string(),
                device: device.to_string()
            }),
            "{name:?}"
        );
    }
    assert_eq!(
        refusal("nul.txt"),
        "name \"nul.txt\" is the Windows device name NUL, not a file"
    );
}

#[test]
fn trailing_dot_or_space() {
    assert_eq!(
        refusal("informe."),
        "name \"informe.\" ends with a dot, which Windows strips"
    );
    assert_eq!(
        refusal("informe "),
        "name \"informe \" ends with a space, which Windows strips"
    );
    assert!(check_name("...").is_err());
}

#[test]
fn temp_prefix_is_reserved_in_any_case() {
    assert_eq!(
        refusal(".trama-x.10.part"),
        "name \".trama-x.10.part\" starts with \".trama-\", which is reserved for the \
         receiver's temporary files"
    );
    assert!(matches!(
        check_name(".TRAMA-x"),
        Err(NameError::TempPrefix { .. })
    ));
    // Every partial name is refused as a name, so no offer can hit one.
    assert!(check_name(&partial_name("a", 1)).is_err());
    assert!(check_name(&partial_name(&"b".repeat(255), 1)).is_err());
}

#[test]
fn quotes_escape_quotes_and_cut_long_names() {
    assert_eq!(quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
    let q = quoted(&"ñ".repeat(100));
    assert_eq!(q.chars().filter(|&c| c == 'ñ').count(), QUOTED_CHARS);
    assert!(q.ends_with("...\""));
}

// --- partial_name ----------------------------------------------------

#[test]
fn partial_names() {
    assert_eq!(partial_name("a.bin", 0), ".trama-a.bin.0.part");
    assert!(is_partial_name(&partial_name("a.bin", 0)));
    assert!(!is_partial_name("a.bin"));
    assert_ne!(partial_name("a", 1), partial_name("a", 2));
    let exactly = "x".repeat(PARTIAL_PLAIN_MAX);
    assert_eq!(
        partial_name(&exactly, u64::MAX),
        format!(".trama-{exactly}.{}.part", u64::MAX)
    );
}

#[test]
fn partial_names_stay_under_255_bytes() {
    for len in [200, 201, 230, 255, 1000] {
        for c in ["x", "é", "日", "😀"] {
            let name: String = c.repeat(len / c.len() + 1);
            let name = prefix_at_most(&name, len);
            for size in [0, 1000, u64::MAX] {
                let part = partial_name(name, size);
                assert!(part.len() <= 250, "{} bytes for {len} × {c}", part.len());
                assert!(part.ends_with(&format!(".{size}.part")));
            }
        }
    }
}

#[test]
fn shortened_partial_names_stay_unique() {
    let a = format!("{}a", "x".repeat(240));
    let b = format!("{}b", "x".repeat(240));
    assert_ne!(partial_name(&a, 5), partial_name(&b, 5));
    assert_ne!(partial_name(&a, 5), partial_name(&a, 6));
    let short = partial_name(&a, 5);
    assert!(short.contains(&format!("~{:016x}.", fnv1a64(a.as_bytes()))));
    // The shortened middle is longer than any whole name that is kept.
    let middle = &short[TEMP_PREFIX.len()..short.len() - ".5.part".len()];
    assert!(middle.len() > PARTIAL_PLAIN_MAX);
}

#[test]
fn fnv1a_matches_the_reference_values() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

// --- plan_receive ----------------------------------------------------

fn facts(final_exists: bool, partial_len: Option<u64>) -> DiskFacts {
    DiskFacts {
        final_exists,
        partial_len,
    }
}

fn ready(offset: u64) -> Answer {
    Answer::Ready { offset }
}

fn reason(answer: Answer) -> String {
    match answer {
        Answer::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn fresh_resume_and_stale() {
    let offer = Offer::new("a.bin", 1000, true);
    assert_eq!(plan_receive(&offer, &facts(false, None), false), ready(0));
    assert_eq!(
        plan_receive(&offer, &facts(false, Some(400)), false),
        ready(400)
    );
    assert_eq!(
        plan_receive(&offer, &facts(false, Some(0)), false),
        ready(0)
    );
    // A complete partial (the connection broke before the verdict):
    // nothing left to send, but the digest is still checked.
    assert_eq!(
        plan_receive(&offer, &facts(false, Some(1000)), false),
        ready(1000)
    );
    assert_eq!(
        plan_receive(&offer, &facts(false, Some(1001)), false),
        ready(0)
    );
    let empty = Offer::new("empty", 0, false);
    assert_eq!(
        plan_receive(&empty, &facts(false, Some(7)), false),
        ready(0)
    );
}

#[test]
fn existing_files_need_overwrite() {
    let offer = Offer::new("a.bin", 1000, false);
    assert_eq!(
        reason(plan_receive(&offer, &facts(true, None), false)),
        "a.bin already exists; the receiver was not started with --overwrite"
    );
    assert_eq!(plan_receive(&offer, &facts(true, None), true), ready(0));
    assert_eq!(
        plan_receive(&offer, &facts(true, Some(10)), true),
        ready(10)
    );
}

#[test]
fn other_versions_are_refused_naming_both() {
    let mut offer = Offer::new("a.bin", 1, false);
    offer.version = 2;
    assert_eq!(
        reason(plan_receive(&offer, &DiskFacts::default(), true)),
        "the sender speaks protocol version 2; this receiver speaks version 1"
    );
    offer.version = 0;
    assert_eq!(
        reason(plan_receive(&offer, &DiskFacts::default(), true)),
        "the offer carries no protocol version; this receiver speaks version 1"
    );
}

#[test]
fn bad_names_are_refused_with_the_reason() {
    let offer = Offer::new("../../etc/passwd", 1, false);
    let r = reason(plan_receive(&offer, &DiskFacts::default(), true));
    assert_eq!(r, check_name("../../etc/passwd").unwrap_err().to_string());
}

#[test]
fn size_limit() {
    let offer = Offer::new("a.bin", 1001, false);
    let none = DiskFacts::default();
    assert_eq!(
        reason(plan_receive_with_limit(&offer, &none, false, Some(1000))),
        "a.bin is 1001 bytes (1001 B); this receiver takes at most 1000 bytes (1000 B)"
    );
    assert_eq!(
        plan_receive_with_limit(&offer, &none, false, Some(1001)),
        ready(0)
    );
    assert_eq!(
        plan_receive_with_limit(&offer, &none, false, None),
        ready(0)
    );
}

// --- judge -----------------------------------------------------------

const D1: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
const D2: &str = "0000000000000000a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

#[test]
fn rate_floor_judges_each_window_of_waiting() {
    let w = Duration::from_secs(10);
    let mut f = RateFloor::new(100, w);
    assert_eq!(f.wait_limit(), w);
    // A fast sender: windows pass and restart.
    for _ in 0..5 {
        assert!(f.record(500, Duration::from_secs(2)).is_ok());
    }
    assert_eq!(f.wait_limit(), w);
    // Silence, one timed-out wait per window: judged at the window's end.
    assert!(f.record(0, Duration::from_secs(4)).is_ok());
    assert_eq!(f.wait_limit(), Duration::from_secs(6));
    let e = f.record(0, Duration::from_secs(6)).unwrap_err();
    assert_eq!((e.bytes, e.waited, e.min), (0, w, 100));
    // Exactly the floor passes; one byte under does not.
    assert!(f.record(1000, w).is_ok());
    assert!(f.record(999, w).is_err());
    // A zero window is one second, not a division by zero.
    let mut z = RateFloor::new(1, Duration::ZERO);
    assert!(z.record(1, Duration::from_secs(1)).is_ok());
}

#[test]
fn judge_sizes() {
    let offer = Offer::new("a.bin", 1000, true);
    let v = judge(&offer, 999, Some(D1), Some(D1));
    assert_eq!(v, Verdict::retry("received 999 of 1000 bytes"));
    assert_eq!(
        judge(&offer, 1001, Some(D1), Some(D1)).message,
        "received 1001 of 1000 bytes"
    );
}

#[test]
fn judge_digests() {
    let offer = Offer::new("a.bin", 1000, true);
    assert_eq!(judge(&offer, 1000, Some(D1), Some(D1)), Verdict::success());
    assert_eq!(judge(&offer, 1000, Some(D1), Some(D1)).message, "Gracias.");
    // Case does not matter.
    let upper = D1.to_ascii_uppercase();
    assert!(judge(&offer, 1000, Some(&upper), Some(D1)).ok);
    assert_eq!(
        judge(&offer, 1000, Some(D1), Some(D2)).message,
        "digest mismatch: the sender has af1349b9f5f9a1a6..., the receiver got \
         0000000000000000..."
    );
    assert_eq!(
        judge(&offer, 1000, None, Some(D1)).message,
        "the sender promised a BLAKE3 digest (verify) but sent none"
    );
    assert_eq!(
        judge(&offer, 1000, Some("xyz"), Some(D1)).message,
        "the sender's digest \"xyz\" is not 64 hex digits"
    );
    let long = "g".repeat(10_000);
    let m = judge(&offer, 1000, Some(&long), Some(D1)).message;
    assert!(m.len() < 80, "{m}");
    assert_eq!(
        judge(&offer, 1000, Some(D1), None).message,
        "the receiver computed no digest to compare with"
    );
}

#[test]
fn judge_without_verify() {
    let offer = Offer::new("a.bin", 1000, false);
    assert!(judge(&offer, 1000, None, None).ok);
    // An unasked digest is ignored unless the receiver hashed too.
    assert!(judge(&offer, 1000, Some(D1), None).ok);
    assert!(!judge(&offer, 1000, Some(D1), Some(D2)).ok);
    assert!(judge(&offer, 1000, Some(D1), Some(D1)).ok);
}

#[test]
fn offsets_past_the_end_are_errors() {
    let offer = Offer::new("a.bin", 1000, false);
    assert_eq!(bytes_to_send(&offer, 0), Ok(1000));
    assert_eq!(bytes_to_send(&offer, 1000), Ok(0));
    let e = bytes_to_send(&offer, 2000).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the receiver asked to resume at byte 2000 of a 1000-byte file"
    );
}

// --- Backoff ---------------------------------------------------------

#[test]
fn backoff_doubles_then_caps() {
    let mut b = Backoff::new(250, 5000);
    let got: Vec<u128> = (0..8).map(|_| b.next_delay(0).as_millis()).collect();
    assert_eq!(got, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    assert_eq!(b.attempt, 8);
    b.reset();
    assert_eq!(b.attempt, 0);
    assert_eq!(b.next_delay(0), Duration::from_millis(250));
}

#[test]
fn backoff_jitter_is_bounded_and_capped() {
    let mut b = Backoff::new(100, 1000);
    assert_eq!(b.next_delay(100), Duration::from_millis(200));
    assert_eq!(b.next_delay(u64::MAX), Duration::from_millis(300));
    for _ in 0..10 {
        b.next_delay(100);
    }
    assert_eq!(b.next_delay(100), Duration::from_millis(1000));
}

#[test]
fn backoff_never_overflows() {
    let mut b = Backoff::new(u64::MAX / 2, u64::MAX);
    for _ in 0..200 {
        b.next_delay(u64::MAX);
    }
    assert_eq!(b.next_delay(0), Duration::from_millis(u64::MAX));
    b.attempt = u32::MAX;
    b.next_delay(0);
    assert_eq!(b.attempt, u32::MAX);
    let mut zero = Backoff::new(0, 1000);
    assert_eq!(zero.next_delay(5), Duration::ZERO);
    let mut inverted = Backoff::new(500, 100);
    assert_eq!(inverted.next_delay(0), Duration::from_millis(100));
}

// --- numbered_name ---------------------------------------------------

#[test]
fn numbered_names() {
    let taken = |list: &'static [&'static str]| move |n: &str| list.contains(&n);
    assert_eq!(numbered_name("recibido.bin", taken(&[])), "recibido.bin");
    assert_eq!(
        numbered_name("recibido.bin", taken(&["recibido.bin"])),
        "recibido-1.bin"
    );
    assert_eq!(
        numbered_name(
            "recibido.bin",
            taken(&["recibido.bin", "recibido-1.bin", "recibido-3.bin"])
        ),
        "recibido-2.bin"
    );
    assert_eq!(numbered_name("notas", taken(&["notas"])), "notas-1");
    assert_eq!(numbered_name(".bashrc", taken(&[".bashrc"])), ".bashrc-1");
    assert_eq!(
        numbered_name("a.tar.gz", taken(&["a.tar.gz"])),
        "a-1.tar.gz"
    );
    assert_eq!(numbered_name("a.b.c", taken(&["a.b.c"])), "a.b-1.c");
    assert_eq!(numbered_name(".tar.gz", taken(&[".tar.gz"])), ".tar-1.gz");
}

#[test]
fn numbered_names_stay_valid_when_long() {
    let name = format!("{}.bin", "é".repeat(125)); // 254 bytes
    let numbered = numbered_name(&name, |n| n == name);
    assert!(numbered.len() <= MAX_NAME_BYTES, "{}", numbered.len());
    assert!(numbered.ends_with("-1.bin"));
    assert_eq!(check_name(&numbered), Ok(numbered.as_str()));
}

/// Found by the `files` fuzz target: an extension of 254 bytes left no
/// room for the number, and the result had 256 bytes.
#[test]
fn numbered_names_fit_when_the_extension_is_most_of_the_name() {
    let name = format!(" . {}", "\u{FFFD}".repeat(84)); // 255 bytes
    assert_eq!(name.len(), MAX_NAME_BYTES);
    let first = numbered_name(&name, |n| n == name);
    let second = numbered_name(&name, |n| n == name || n == first);
    for numbered in [&first, &second] {
        assert!(numbered.len() <= MAX_NAME_BYTES, "{}", numbered.len());
        assert_ne!(numbered, &name);
    }
    assert!(first.ends_with("-1") && second.ends_with("-2"), "{first:?}");
}

// --- Progress and formatting -----------------------------------------

#[test]
fn progress_math() {
    let mut p = Progress::new(1000, 250);
    assert_eq!(p.percent(), 25.0);
    assert_eq!(p.remaining(), 750);
    p.advance(10_000);
    assert!(p.is_complete());
    assert_eq!(p.percent(), 100.0);
    assert_eq!(p.rate_and_eta(1000, 2.0), (500.0, Some(0.0)));
    assert_eq!(Progress::new(0, 0).percent(), 100.0);
    let p = Progress::new(1000, 0);
    assert_eq!(p.rate_and_eta(0, 0.0), (0.0, None));
    assert_eq!(p.rate_and_eta(0, 5.0), (0.0, None));
    assert_eq!(p.rate_and_eta(10, f64::NAN), (0.0, None));
    assert_eq!(p.rate_and_eta(250, 0.5), (500.0, Some(2.0)));
}

#[test]
fn human_sizes() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1024), "1.0 KiB");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
    assert_eq!(human_bytes(5_000_000_000), "4.7 GiB");
    assert_eq!(human_bytes(1 << 40), "1.0 TiB");
    assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
}

// --- The wire --------------------------------------------------------

/// Just the tag of an encoded [`Answer`].
#[derive(Deserialize)]
struct Tag {
    #[serde(rename = "type")]
    kind: String,
}

#[test]
fn messages_round_trip_in_msgpack() {
    let offer = Offer::new("año.bin", u64::MAX, true);
    let bytes = CODEC.to_vec(&offer).unwrap();
    assert_eq!(bytes[0], 0x84, "a map of four fields");
    assert_eq!(CODEC.decode::<Offer>(&bytes).unwrap(), offer);

    for answer in [
        Answer::Ready { offset: 0 },
        Answer::Ready { offset: u64::MAX },
        Answer::Refused {
            reason: "no".into(),
        },
    ] {
        let bytes = CODEC.to_vec(&answer).unwrap();
        assert_eq!(CODEC.decode::<Answer>(&bytes).unwrap(), answer);
    }

    for done in [
        Done { digest: None },
        Done {
            digest: Some(D1.into()),
        },
    ] {
        let bytes = CODEC.to_vec(&done).unwrap();
        assert_eq!(CODEC.decode::<Done>(&bytes).unwrap(), done);
    }

    for verdict in [
        Verdict::success(),
        Verdict::failure("received 1 of 2 bytes"),
    ] {
        let bytes = CODEC.to_vec(&verdict).unwrap();
        assert_eq!(CODEC.decode::<Verdict>(&bytes).unwrap(), verdict);
    }
}

#[test]
fn answers_are_maps_tagged_by_type() {
    let bytes = CODEC.to_vec(&Answer::Ready { offset: 0 }).unwrap();
    // fixmap of 2: "type" -> "Ready", "offset" -> 0, as Python's msgpack
    // packs {"type": "Ready", "offset": 0}.
    let mut python = vec![0x82, 0xa4];
    python.extend_from_slice(b"type");
    python.push(0xa5);
    python.extend_from_slice(b"Ready");
    python.push(0xa6);
    python.extend_from_slice(b"offset");
    python.push(0x00);
    assert_eq!(bytes, python);
    assert_eq!(CODEC.decode::<Tag>(&bytes).unwrap().kind, "Ready");

    let refused = CODEC
        .to_vec(&Answer::Refused { reason: "x".into() })
        .unwrap();
    assert_eq!(CODEC.decode::<Tag>(&refused).unwrap().kind, "Refused");
    let as_map: std::collections::BTreeMap<String, String> = CODEC.decode(&refused).unwrap();
    assert_eq!(as_map["reason"], "x");
}

#[test]
fn python_shaped_messages_decode() {
    // {"offset": 7, "type": "Ready"}: key order does not matter.
    let mut bytes = vec![0x82, 0xa6];
    bytes.extend_from_slice(b"offset");
    bytes.push(0x07);
    bytes.push(0xa4);
    bytes.extend_from_slice(b"type");
    bytes.push(0xa5);
    bytes.extend_from_slice(b"Ready");
    assert_eq!(
        CODEC.decode::<Answer>(&bytes).unwrap(),
        Answer::Ready { offset: 7 }
    );

    // An offer without version or verify, plus an unknown field.
    #[derive(Serialize)]
    struct Old<'a> {
        name: &'a str,
        size: u64,
        extra: bool,
    }
    let old = CODEC
        .to_vec(&Old {
            name: "a",
            size: 3,
            extra: true,
        })
        .unwrap();
    let offer: Offer = CODEC.decode(&old).unwrap();
    assert_eq!(
        offer,
        Offer {
            version: 0,
            name: "a".into(),
            size: 3,
            verify: false
        }
    );
    assert!(matches!(
        plan_receive(&offer, &DiskFacts::default(), false),
        Answer::Refused { .. }
    ));

    // {"digest": nil} and {} are both "no digest".
    assert_eq!(
        CODEC
            .decode::<Done>(&[0x81, 0xa6, b'd', b'i', b'g', b'e', b's', b't', 0xc0])
            .unwrap(),
        Done { digest: None }
    );
    assert_eq!(
        CODEC.decode::<Done>(&[0x80]).unwrap(),
        Done { digest: None }
    );

    // An unknown answer type is an error, not a guess.
    let mut unknown = vec![0x81, 0xa4];
    unknown.extend_from_slice(b"type");
    unknown.push(0xa5);
    unknown.extend_from_slice(b"Maybe");
    assert!(CODEC.decode::<Answer>(&unknown).is_err());
}
