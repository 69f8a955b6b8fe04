//! One solution per chapter exercise of the guide, with the test the
//! chapter shows (the `guide` test checks the chapter's copy matches).
//!
//! A student writes their own before looking; `cargo test -p
//! trama-guide-tests` keeps these working as the crates change.

pub mod file;
pub mod greeter;
pub mod json;
pub mod peers;
pub mod persona;
pub mod servers;
