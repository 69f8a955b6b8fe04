//! What Linux's `/proc` says about a process: the fields of
//! `/proc/PID/status` (resident memory and its peak, data size, threads),
//! its state and CPU ticks in `/proc/PID/stat`, its threads' names and the
//! open descriptors in `/proc/PID/fd`. trama-check, trama-bench and the
//! tests all read `/proc` here, and nowhere else, so one parser is tested
//! once. (trama-check lists processes on every system with `sysinfo`, which
//! has no peak memory or thread count: those two come from here.)
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

/// What `/proc/PID/stat` says about a process: its state and the CPU time it
/// used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The state letter: `R` running, `S` sleeping, `Z` a zombie (ended,
    /// not yet reaped), ...
    pub state: char,
    /// CPU time in user mode, in clock ticks (USER_HZ, 100 a second on every
    /// Linux).
    pub user_ticks: u64,
    /// CPU time in the kernel, in clock ticks.
    pub system_ticks: u64,
}

impl Stat {
    /// User plus system time, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.user_ticks.saturating_add(self.system_ticks)
    }

    /// Ended but not yet reaped: gone for every purpose but its pid.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Read a `/proc/PID/stat` text. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so the fields are
/// counted after its last `)`: state is field 3, user and system time 14
/// and 15.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let mut state_field = fields.next()?.chars();
    let state = state_field.next()?;
    if state_field.next().is_some() {
        return None;
    }
    // Fields 4 to 13 come between the state and user time.
    let mut rest = fields.skip(10);
    let user_ticks = rest.next()?.parse().ok()?;
    let system_ticks = rest.next()?.parse().ok()?;
    Some(Stat {
        state,
        user_ticks,
        system_ticks,
    })
}

/// Process `pid`'s `/proc/PID/stat` (see [`parse_stat`]).
pub fn stat(pid: u32) -> Option<Stat> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The names of process `pid`'s threads (`/proc/PID/task/*/comm`), for a
/// message that says which threads there are.
pub fn thread_names(pid: u32) -> Option<Vec<String>> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect(),
    )
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

    #[test]
    fn fields_of_a_stat_text() {
        // A command name with a space and a parenthesis of its own.
        let text = "4242 (py (x) 3) S 1 4242 4242 0 -1 4194304 900 0 0 0 \
                    125 37 0 0 20 0 3 0 1000 300000 2560 18446744073709551615\n";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!((s.user_ticks, s.system_ticks), (125, 37));
        assert_eq!(s.cpu_ticks(), 162);
        assert!(!s.is_zombie());
        let zombie = "7 (sh) Z 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 0 0 0\n";
        assert!(parse_stat(zombie).unwrap().is_zombie());
        assert_eq!(parse_stat("7 (sh) Z 1 2 3"), None, "cut short");
        assert_eq!(parse_stat("7 (sh) ZZ 1 7 7 0 -1 0 0 0 0 0 3 4"), None);
        assert_eq!(
            parse_stat("7 sh S 1 7 7 0 -1 0 0 0 0 0 3 4"),
            None,
            "no name"
        );
        assert_eq!(parse_stat(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_threads_and_files() {
        let me = std::process::id();
        assert!(status_field(me, "VmRSS").is_some_and(|k| k > 0));
        assert!(status_field(me, "VmHWM").is_some_and(|k| k > 0));
        assert!(status_field(me, "Threads").is_some_and(|n| n >= 1));
        assert!(open_fds(me).is_some_and(|n| n >= 1));
        // The state is the main thread's, which may be asleep waiting for this one.
        assert!(stat(me).is_some_and(|s| "RS".contains(s.state)));
        // Names are cut to 15 bytes by the kernel; this thread is one of them.
        let names = thread_names(me).unwrap();
        assert!(
            !names.is_empty() && names.iter().all(|n| n.len() <= 15),
            "{names:?}"
        );
    }

    #[test]
    fn a_process_that_is_not_there_has_nothing() {
        // Above the largest pid Linux allows (2^22).
        let gone = 1 << 23;
        assert_eq!(status(gone), None);
        assert_eq!(status_field(gone, "VmRSS"), None);
        assert_eq!(open_fds(gone), None);
        assert_eq!(stat(gone), None);
        assert_eq!(thread_names(gone), None);
    }
}
