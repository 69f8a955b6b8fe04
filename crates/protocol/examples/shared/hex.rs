//! How the examples show bytes; included with `#[path]` by those that do.

/// Bytes as space-separated hex pairs.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
