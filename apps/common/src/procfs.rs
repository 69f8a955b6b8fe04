//! What Linux's `/proc` says about a process: the fields of
//! `/proc/PID/status` (resident memory and its peak, data size, threads) and
//! the open descriptors in `/proc/PID/fd`. trama-check, trama-bench and the
//! hardening tests all read them here.
//!
//! The parser is a plain function over the text, tested anywhere. The
//! readers return `None` on other systems (no `/proc`) and once the process
//! is gone.

/// The text of `/proc/PID/status`, or `None` off Linux or if there is no such process.
pub fn status(pid: u32) -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

/// The number of field `name` in a `/proc/PID/status` text, in the unit the
/// kernel writes: KiB for `VmRSS`, `VmHWM` and `VmData`, a count for `Threads`.
pub fn parse_status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Field `name` of process `pid`'s `/proc/PID/status` (see [`parse_status_field`]).
pub fn status_field(pid: u32, name: &str) -> Option<u64> {
    parse_status_field(&status(pid)?, name)
}

/// Open file descriptors of process `pid`, from `/proc/PID/fd`.
pub fn open_fds(pid: u32) -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_status_text() {
        let text = "Name:\tpython3\nVmPeak:\t  300000 kB\nVmHWM:\t   20480 kB\n\
                    VmRSS:\t   10240 kB\nVmData:\t  9000 kB\nThreads:\t3\n";
        assert_eq!(parse_status_field(text, "VmHWM"), Some(20480));
        assert_eq!(parse_status_field(text, "VmRSS"), Some(10240));
        assert_eq!(parse_status_field(text, "VmData"), Some(9000));
        assert_eq!(parse_status_field(text, "Threads"), Some(3));
        assert_eq!(parse_status_field(text, "VmSwap"), None);
        // A prefix of another field's name is not that field.
        assert_eq!(parse_status_field(text, "Vm"), None);
        assert_eq!(parse_status_field("VmRSS:\tlots kB\n", "VmRSS"), None);
        assert_eq!(parse_status_field("", "VmRSS"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_threads_and_files() {
        let me = std::process::id();
        assert!(status_field(me, "VmRSS").is_some_and(|k| k > 0));
        assert!(status_field(me, "VmHWM").is_some_and(|k| k > 0));
        assert!(status_field(me, "Threads").is_some_and(|n| n >= 1));
        assert!(open_fds(me).is_some_and(|n| n >= 1));
    }

    #[test]
    fn a_process_that_is_not_there_has_nothing() {
        // Above the largest pid Linux allows (2^22).
        let gone = 1 << 23;
        assert_eq!(status(gone), None);
        assert_eq!(status_field(gone, "VmRSS"), None);
        assert_eq!(open_fds(gone), None);
    }
}
