//! What a server process costs, read from Linux's `/proc` (`--server-pid`).
//!
//! Memory per idle connection is the figure that decides how many clients
//! one machine holds, and only the server's own accounting shows it. Other
//! systems have no `/proc`: these return `None` there, and the figures are
//! left out of the report.

/// Resident memory of process `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, "VmRSS:")
}

/// Threads of process `pid`.
pub fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, "Threads:")
}

/// The first number after `name` in a `/proc/PID/status` text.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_status_text() {
        let text = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\nThreads:\t3\n";
        assert_eq!(status_field(text, "VmRSS:"), Some(1234));
        assert_eq!(status_field(text, "Threads:"), Some(3));
        assert_eq!(status_field(text, "VmSwap:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_and_threads() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(threads(me).is_some_and(|n| n >= 1));
    }
}
