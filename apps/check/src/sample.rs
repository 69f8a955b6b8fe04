//! What only the server's process shows: CPU time, memory and threads of
//! every process in the group `--spawn` created, read from Linux's `/proc`.
//!
//! The parsers are plain functions over the text of `/proc/PID/stat` and
//! `/proc/PID/status`, so they are tested anywhere; reading `/proc` itself is
//! Linux only, and elsewhere [`available`] is false and the checks that need
//! it are skipped with that reason.

use std::collections::HashMap;

/// One process's numbers from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcStat {
    /// Process group id.
    pub pgrp: i64,
    /// User plus system CPU time, in clock ticks.
    pub ticks: u64,
    /// Threads.
    pub threads: u64,
}

/// The numbers of a whole process group at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSample {
    /// CPU ticks per process id.
    pub ticks: HashMap<i64, u64>,
    /// Threads over all the group's processes.
    pub threads: u64,
    /// Peak resident memory (`VmHWM`) summed over the group, in bytes.
    pub peak_rss: u64,
    /// Current resident memory (`VmRSS`) summed over the group, in bytes.
    pub rss: u64,
}

impl GroupSample {
    /// CPU ticks used between `earlier` and `self` by the processes present
    /// in both (a process that exited in between cannot be counted).
    pub fn ticks_since(&self, earlier: &GroupSample) -> u64 {
        self.ticks
            .iter()
            .filter_map(|(pid, now)| earlier.ticks.get(pid).map(|then| now.saturating_sub(*then)))
            .sum()
    }
}

/// Parse the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15) ... num_threads(20).
    let field = |n: usize| fields.get(n - 3).copied();
    let utime: u64 = field(14)?.parse().ok()?;
    let stime: u64 = field(15)?.parse().ok()?;
    Some(ProcStat {
        pgrp: field(5)?.parse().ok()?,
        ticks: utime.saturating_add(stime),
        threads: field(20)?.parse().ok()?,
    })
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn parse_status_bytes(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// Whether this system has the `/proc` these measurements read.
pub fn available() -> bool {
    cfg!(target_os = "linux") && std::path::Path::new("/proc/self/stat").is_file()
}

/// Every process in group `pgid` right now.
#[cfg(target_os = "linux")]
pub fn sample_group(pgid: i64) -> std::io::Result<GroupSample> {
    let mut sample = GroupSample::default();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        // A process may exit between listing and reading: skip it then.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(stat) = parse_stat(&stat) else {
            continue;
        };
        if stat.pgrp != pgid {
            continue;
        }
        sample.ticks.insert(pid, stat.ticks);
        sample.threads += stat.threads;
        if let Ok(status) = std::fs::read_to_string(entry.path().join("status")) {
            sample.peak_rss += parse_status_bytes(&status, "VmHWM").unwrap_or(0);
            sample.rss += parse_status_bytes(&status, "VmRSS").unwrap_or(0);
        }
    }
    Ok(sample)
}

/// Every process in group `pgid` right now (not on this system).
#[cfg(not(target_os = "linux"))]
pub fn sample_group(_pgid: i64) -> std::io::Result<GroupSample> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "process sampling reads /proc, which only Linux has",
    ))
}

/// Clock ticks per second, the unit of CPU times in `/proc/PID/stat`.
pub fn ticks_per_second() -> u64 {
    #[cfg(unix)]
    {
        use nix::unistd::{sysconf, SysconfVar};
        if let Ok(Some(n)) = sysconf(SysconfVar::CLK_TCK) {
            if let Ok(n) = u64::try_from(n) {
                if n > 0 {
                    return n;
                }
            }
        }
    }
    // Linux reports USER_HZ, which is 100 on every architecture it runs on.
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces_and_parens() {
        let text = "4242 (python3 (a) b) S 1 4240 4240 0 -1 4194304 1234 0 0 0 \
                    57 13 0 0 20 0 3 0 98765 123456789 2345 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.pgrp, 4240);
        assert_eq!(s.ticks, 70);
        assert_eq!(s.threads, 3);
    }

    #[test]
    fn stat_that_is_cut_short_is_none() {
        assert_eq!(parse_stat("4242 (x) S 1 4240"), None);
        assert_eq!(parse_stat("no parens at all"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn status_kb_lines() {
        let text = "Name:\tpython3\nVmPeak:\t  300000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(parse_status_bytes(text, "VmHWM"), Some(20480 * 1024));
        assert_eq!(parse_status_bytes(text, "VmRSS"), Some(10240 * 1024));
        assert_eq!(parse_status_bytes(text, "VmSwap"), None);
        assert_eq!(parse_status_bytes("VmRSS:\tlots kB\n", "VmRSS"), None);
    }

    #[test]
    fn ticks_since_counts_processes_present_in_both() {
        let earlier = GroupSample {
            ticks: HashMap::from([(1, 10), (2, 5)]),
            ..GroupSample::default()
        };
        let now = GroupSample {
            ticks: HashMap::from([(1, 40), (3, 1000)]),
            ..GroupSample::default()
        };
        assert_eq!(now.ticks_since(&earlier), 30);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_group_is_found() {
        let pgid = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| parse_stat(&t))
            .unwrap()
            .pgrp;
        let s = sample_group(pgid).unwrap();
        assert!(s.threads >= 1);
        assert!(s.rss > 0);
        assert!(s.ticks.contains_key(&i64::from(std::process::id())));
    }
}
