//! File-transfer metadata a sender or receiver controls: any bytes as an
//! `Offer`, `Answer`, `Done` or `Verdict` frame, and whatever decodes as an
//! offer run through the receiver's and the sender's decisions with facts
//! about the disk taken from the input. Checks the promises the receiver
//! relies on: a file is taken only under a safe name and the protocol's
//! version, a resume starts inside the file, temporary names stay short and
//! are never names a sender may offer, and success means every byte came.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use trama_backend::files::{
    bytes_to_send, check_name, human_bytes, is_digest, is_partial_name, judge, numbered_name,
    partial_name, plan_receive_with_limit, Answer, DiskFacts, Done, Offer, Verdict, CODEC,
    MAX_NAME_BYTES, PROTOCOL_VERSION,
};

fn offer_checks(u: &mut Unstructured<'_>, offer: &Offer) -> Result<()> {
    let facts = DiskFacts {
        final_exists: u.arbitrary()?,
        partial_len: u.arbitrary()?,
    };
    let overwrite: bool = u.arbitrary()?;
    let max_size: Option<u64> = u.arbitrary()?;
    match plan_receive_with_limit(offer, &facts, overwrite, max_size) {
        Answer::Ready { offset } => {
            assert_eq!(offer.version, PROTOCOL_VERSION);
            assert_eq!(check_name(&offer.name), Ok(offer.name.as_str()));
            assert!(offset <= offer.size);
            assert!(max_size.is_none_or(|m| offer.size <= m));
            assert!(overwrite || !facts.final_exists);
            assert_eq!(bytes_to_send(offer, offset), Ok(offer.size - offset));
        }
        // A refusal (or any later "not now") says why.
        other => assert!(format!("{other:?}").contains("reason")),
    }

    // Temporary names: short, recognisable, never offerable.
    let partial = partial_name(&offer.name, offer.size);
    assert!(partial.len() <= 250, "{} bytes", partial.len());
    assert!(is_partial_name(&partial));
    assert!(check_name(&partial).is_err());

    if check_name(&offer.name).is_ok() {
        // A numbered name for a taken one is a different name that fits,
        // and so is the next one when that is taken too.
        let first = numbered_name(&offer.name, |n| n == offer.name);
        let second = numbered_name(&offer.name, |n| n == offer.name || n == first);
        for numbered in [&first, &second] {
            assert_ne!(numbered, &offer.name);
            assert!(
                numbered.len() <= MAX_NAME_BYTES,
                "{} bytes for {:?}",
                numbered.len(),
                offer.name
            );
        }
        assert_ne!(first, second);
    } else if let Err(e) = check_name(&offer.name) {
        assert!(!e.to_string().is_empty());
    }

    // The verdict: success only when every byte came and digests agree.
    let received: u64 = u.arbitrary()?;
    let done: Option<Done> = match u.arbitrary::<&[u8]>()? {
        b if b.is_empty() => None,
        b => CODEC.decode(b).ok(),
    };
    let expected = done.as_ref().and_then(|d| d.digest.as_deref());
    let actual: Option<String> = u.arbitrary()?;
    let verdict = judge(offer, received, expected, actual.as_deref());
    if verdict.ok {
        assert_eq!(received, offer.size);
        if offer.verify {
            let (e, a) = (expected.unwrap(), actual.as_deref().unwrap());
            assert!(is_digest(e) && e.eq_ignore_ascii_case(a));
        }
    } else {
        assert!(!verdict.message.is_empty());
    }
    let _ = human_bytes(received);
    Ok(())
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let kind: u8 = u.int_in_range(0..=4)?;
    let bytes: &[u8] = u.arbitrary()?;
    match kind {
        0 => {
            if let Ok(offer) = CODEC.decode::<Offer>(bytes) {
                offer_checks(u, &offer)?;
            }
        }
        1 => {
            // Offers built field by field reach the rules more often than
            // MessagePack found by chance.
            let offer = Offer {
                version: if u.ratio(7, 8)? {
                    PROTOCOL_VERSION
                } else {
                    u.arbitrary()?
                },
                name: String::from_utf8_lossy(bytes).into_owned(),
                size: u.arbitrary()?,
                verify: u.arbitrary()?,
            };
            // What the sender encodes, the receiver decodes unchanged.
            let wire = CODEC.to_vec(&offer).unwrap();
            assert_eq!(CODEC.decode::<Offer>(&wire).unwrap(), offer);
            offer_checks(u, &offer)?;
        }
        2 => {
            if let Ok(answer) = CODEC.decode::<Answer>(bytes) {
                let wire = CODEC.to_vec(&answer).unwrap();
                assert_eq!(CODEC.decode::<Answer>(&wire).unwrap(), answer);
            }
        }
        3 => {
            if let Ok(done) = CODEC.decode::<Done>(bytes) {
                let wire = CODEC.to_vec(&done).unwrap();
                assert_eq!(CODEC.decode::<Done>(&wire).unwrap(), done);
            }
        }
        _ => {
            if let Ok(verdict) = CODEC.decode::<Verdict>(bytes) {
                let wire = CODEC.to_vec(&verdict).unwrap();
                assert_eq!(CODEC.decode::<Verdict>(&wire).unwrap(), verdict);
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
