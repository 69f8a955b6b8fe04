//! Whatever trama prints, trama reads back as the same value.

use proptest::prelude::*;
use trama_units::{parse_duration, parse_size, Duration, Size};

proptest! {
    #[test]
    fn durations_round_trip(secs in 0u64..=u64::MAX / 4, nanos in 0u32..1_000_000_000) {
        let d = std::time::Duration::new(secs, nanos);
        let shown = Duration(d).to_string();
        prop_assert_eq!(parse_duration(&shown), Ok(d), "{}", shown);
    }

    #[test]
    fn short_durations_round_trip(nanos in 0u64..10_000_000_000_000) {
        let d = std::time::Duration::from_nanos(nanos);
        prop_assert_eq!(parse_duration(&Duration(d).to_string()), Ok(d));
    }

    #[test]
    fn sizes_round_trip(n in any::<u64>()) {
        let shown = Size(n).to_string();
        prop_assert_eq!(parse_size(&shown), Ok(n), "{}", shown);
    }

    #[test]
    fn binary_sizes_round_trip(k in 0u64..1 << 20, shift in prop::sample::select(vec![0u32, 10, 20, 30, 40])) {
        let n = k << shift;
        prop_assert_eq!(parse_size(&Size(n).to_string()), Ok(n));
    }

    #[test]
    fn parsing_never_panics(s in "\\PC{0,24}") {
        let _ = parse_duration(&s);
        let _ = parse_size(&s);
    }
}
