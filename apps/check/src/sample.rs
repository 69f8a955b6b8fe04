//! What only the server's process shows: the CPU time, memory and threads
//! of every process that belongs to the server `--spawn` started.
//!
//! The processes and their numbers come from the `sysinfo` crate, on Linux,
//! macOS and Windows alike: each process's parent, start time, CPU time
//! (user plus system) and resident size. Which of them are the server's: on
//! Unix, those in the process group `--spawn` made, so a shell script that
//! starts the real server, or a server that forks, is measured whole; on
//! Windows, which has no process groups, the started process and its
//! descendants.
//!
//! Two numbers sysinfo does not give come from Linux's `/proc/PID/status`
//! (`trama_cli::procfs`): the peak resident size (`VmHWM`) and the thread
//! count. Elsewhere they are unknown, and the checks say so:
//! `memory-bounded` watches the resident size alone, sampled as it waits,
//! and `threads-released` is skipped with that reason.
//!
//! Choosing the server's processes and adding up their numbers are plain
//! functions ([`members`], [`GroupSample::of`]), tested anywhere.

use std::collections::{HashMap, HashSet};
use std::io;

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
use trama_cli::procfs;

use crate::plan::Measures;

/// One process, as sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcInfo {
    /// Process id.
    pub pid: u32,
    /// Parent's process id, if it has one.
    pub parent: Option<u32>,
    /// Process group (Unix; read only when groups are what is measured).
    pub group: Option<i64>,
    /// When it started, in seconds since the epoch.
    pub start: u64,
    /// User plus system CPU time, in milliseconds.
    pub cpu_ms: u64,
    /// Resident memory, in bytes.
    pub rss: u64,
    /// Peak resident memory, in bytes, where the system gives it (Linux).
    pub peak_rss: Option<u64>,
    /// Threads, where the system gives them (Linux).
    pub threads: Option<u64>,
}

/// Whose processes are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Every process in this process group (Unix).
    Group(i64),
    /// This process and its descendants (Windows).
    Tree(u32),
}

impl Owner {
    /// The processes of the server `--spawn` started: its process group on
    /// Unix (the started process leads it), the started process and its
    /// descendants on Windows.
    pub fn server(pgid: i64) -> Owner {
        if cfg!(unix) {
            Owner::Group(pgid)
        } else {
            // The id came from a u32 (`Child::id`).
            Owner::Tree(u32::try_from(pgid).unwrap_or(u32::MAX))
        }
    }
}

/// The processes of `procs` that belong to `owner`.
pub fn members(procs: &[ProcInfo], owner: Owner) -> Vec<&ProcInfo> {
    match owner {
        Owner::Group(group) => procs.iter().filter(|p| p.group == Some(group)).collect(),
        Owner::Tree(root) => {
            let mut children: HashMap<u32, Vec<&ProcInfo>> = HashMap::new();
            for p in procs {
                if let Some(parent) = p.parent.filter(|&parent| parent != p.pid) {
                    children.entry(parent).or_default().push(p);
                }
            }
            let mut found: Vec<&ProcInfo> = procs.iter().filter(|p| p.pid == root).collect();
            let mut seen: HashSet<u32> = found.iter().map(|p| p.pid).collect();
            let mut next = 0;
            while let Some(&p) = found.get(next) {
                next += 1;
                for &child in children.get(&p.pid).into_iter().flatten() {
                    // Windows keeps a dead parent's id in its children's
                    // records, and may give that id to a new process: a
                    // "child" older than its parent is not one.
                    if child.start >= p.start && seen.insert(child.pid) {
                        found.push(child);
                    }
                }
            }
            found
        }
    }
}

/// The numbers of a set of processes at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSample {
    /// CPU time in milliseconds, per process id.
    pub cpu_ms: HashMap<u32, u64>,
    /// Threads over all the processes, if the system gives every count.
    pub threads: Option<u64>,
    /// Peak resident memory summed over the processes, in bytes, if the
    /// system gives every peak.
    pub peak_rss: Option<u64>,
    /// Resident memory summed over the processes, in bytes.
    pub rss: u64,
}

impl GroupSample {
    /// The sums over `members`.
    pub fn of(members: &[&ProcInfo]) -> GroupSample {
        GroupSample {
            cpu_ms: members.iter().map(|p| (p.pid, p.cpu_ms)).collect(),
            threads: members.iter().map(|p| p.threads).sum(),
            peak_rss: members.iter().map(|p| p.peak_rss).sum(),
            rss: members.iter().map(|p| p.rss).sum(),
        }
    }

    /// CPU milliseconds used between `earlier` and `self` by the processes
    /// present in both (a process that exited in between cannot be counted).
    pub fn cpu_ms_since(&self, earlier: &GroupSample) -> u64 {
        self.cpu_ms
            .iter()
            .filter_map(|(pid, now)| {
                earlier
                    .cpu_ms
                    .get(pid)
                    .map(|then| now.saturating_sub(*then))
            })
            .sum()
    }
}

/// What this system lets the process checks measure.
pub fn measures() -> Measures {
    // Linux's /proc as the peak and thread counts are read from it.
    let procfs = procfs::status(std::process::id()).is_some();
    Measures {
        cpu_and_memory: sysinfo::IS_SUPPORTED_SYSTEM,
        peak_memory: procfs,
        threads: procfs,
    }
}

/// Samples processes. One lives for a whole run: sysinfo keeps what it
/// listed and refreshes it.
pub struct Sampler {
    system: System,
}

impl Default for Sampler {
    fn default() -> Sampler {
        Sampler::new()
    }
}

impl Sampler {
    /// A sampler that has listed nothing yet.
    pub fn new() -> Sampler {
        Sampler {
            system: System::new(),
        }
    }

    /// The processes of `owner` right now.
    pub fn sample(&mut self, owner: Owner) -> io::Result<GroupSample> {
        if !sysinfo::IS_SUPPORTED_SYSTEM {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sysinfo cannot list the processes of this system",
            ));
        }
        // Threads are not listed as processes of their own (Linux would).
        let what = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .without_tasks();
        self.system
            .refresh_processes_specifics(ProcessesToUpdate::All, true, what);
        let procs: Vec<ProcInfo> = self
            .system
            .processes()
            .values()
            .map(|p| {
                let pid = p.pid().as_u32();
                ProcInfo {
                    pid,
                    parent: p.parent().map(|q| q.as_u32()),
                    group: match owner {
                        Owner::Group(_) => process_group(pid),
                        Owner::Tree(_) => None,
                    },
                    start: p.start_time(),
                    cpu_ms: p.accumulated_cpu_time(),
                    rss: p.memory(),
                    peak_rss: None,
                    threads: None,
                }
            })
            .collect();
        let mut found: Vec<ProcInfo> = members(&procs, owner).into_iter().copied().collect();
        // A process gone since the listing is left out, as one that exited before it.
        found.retain_mut(add_proc_status);
        Ok(GroupSample::of(&found.iter().collect::<Vec<_>>()))
    }
}

/// The process group of `pid`, if it can be read.
#[cfg(unix)]
fn process_group(pid: u32) -> Option<i64> {
    use nix::unistd::{getpgid, Pid};
    // getpgid(0) would be this tool's own group.
    let pid = i32::try_from(pid).ok().filter(|&p| p > 0)?;
    getpgid(Some(Pid::from_raw(pid)))
        .ok()
        .map(|g| i64::from(g.as_raw()))
}

/// Windows has no process groups (the tree is measured there).
#[cfg(not(unix))]
fn process_group(_pid: u32) -> Option<i64> {
    None
}

/// Add the peak resident size and the thread count from Linux's
/// `/proc/PID/status`; false if the process is gone. Elsewhere there is
/// nothing to add, and they stay unknown.
fn add_proc_status(p: &mut ProcInfo) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let Some(status) = procfs::status(p.pid) else {
        return false;
    };
    // A zombie has no memory lines: it holds none.
    let peak_kib = procfs::parse_status_field(&status, "VmHWM").unwrap_or(0);
    p.peak_rss = Some(peak_kib.saturating_mul(1024));
    p.threads = Some(procfs::parse_status_field(&status, "Threads").unwrap_or(0));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, parent: u32, group: i64, start: u64) -> ProcInfo {
        ProcInfo {
            pid,
            parent: Some(parent),
            group: Some(group),
            start,
            ..ProcInfo::default()
        }
    }

    fn pids(found: &[&ProcInfo]) -> Vec<u32> {
        let mut v: Vec<u32> = found.iter().map(|p| p.pid).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_group_is_every_process_in_it() {
        let procs = [
            proc(10, 1, 10, 100),
            proc(11, 10, 10, 101),
            // Its parent exited; it is still in the group.
            proc(12, 1, 10, 102),
            // Left the group (setsid) but is still a child.
            proc(13, 10, 13, 103),
            proc(20, 1, 20, 100),
        ];
        assert_eq!(pids(&members(&procs, Owner::Group(10))), [10, 11, 12]);
        assert_eq!(pids(&members(&procs, Owner::Group(99))), [] as [u32; 0]);
    }

    #[test]
    fn a_tree_is_the_process_and_its_descendants() {
        let procs = [
            proc(10, 1, 0, 100),
            proc(11, 10, 0, 101),
            proc(12, 11, 0, 102),
            proc(13, 12, 0, 103),
            // A sibling of the root.
            proc(20, 1, 0, 100),
            // Claims a parent id that was reused: older than that parent.
            proc(30, 11, 0, 50),
            // Its own parent (some systems list the idle process so).
            proc(0, 0, 0, 0),
        ];
        assert_eq!(pids(&members(&procs, Owner::Tree(10))), [10, 11, 12, 13]);
        assert_eq!(pids(&members(&procs, Owner::Tree(12))), [12, 13]);
        assert_eq!(pids(&members(&procs, Owner::Tree(0))), [0]);
        assert_eq!(pids(&members(&procs, Owner::Tree(99))), [] as [u32; 0]);
    }

    #[test]
    fn a_tree_with_a_cycle_ends() {
        // Two records naming each other (pids reused while listing).
        let procs = [proc(10, 11, 0, 100), proc(11, 10, 0, 100)];
        assert_eq!(pids(&members(&procs, Owner::Tree(10))), [10, 11]);
    }

    #[test]
    fn sums_know_what_every_process_gives() {
        let a = ProcInfo {
            pid: 1,
            cpu_ms: 30,
            rss: 1000,
            peak_rss: Some(5000),
            threads: Some(3),
            ..ProcInfo::default()
        };
        let b = ProcInfo {
            pid: 2,
            cpu_ms: 70,
            rss: 24,
            peak_rss: Some(24),
            threads: Some(1),
            ..ProcInfo::default()
        };
        let s = GroupSample::of(&[&a, &b]);
        assert_eq!(s.rss, 1024);
        assert_eq!(s.peak_rss, Some(5024));
        assert_eq!(s.threads, Some(4));
        assert_eq!(s.cpu_ms, HashMap::from([(1, 30), (2, 70)]));
        // Where the system gives no thread count or peak (macOS, Windows).
        let c = ProcInfo {
            pid: 3,
            rss: 1,
            ..ProcInfo::default()
        };
        let s = GroupSample::of(&[&a, &c]);
        assert_eq!((s.threads, s.peak_rss, s.rss), (None, None, 1001));
    }

    #[test]
    fn cpu_since_counts_processes_present_in_both() {
        let earlier = GroupSample {
            cpu_ms: HashMap::from([(1, 100), (2, 50)]),
            ..GroupSample::default()
        };
        let now = GroupSample {
            cpu_ms: HashMap::from([(1, 400), (3, 10_000)]),
            ..GroupSample::default()
        };
        assert_eq!(now.cpu_ms_since(&earlier), 300);
        assert_eq!(earlier.cpu_ms_since(&now), 0);
    }

    #[test]
    fn own_process_is_found() {
        let me = std::process::id();
        #[cfg(unix)]
        let owner = Owner::Group(process_group(me).unwrap());
        #[cfg(not(unix))]
        let owner = Owner::Tree(me);
        let mut sampler = Sampler::new();
        let s = sampler.sample(owner).unwrap();
        assert!(s.rss > 0);
        assert!(s.cpu_ms.contains_key(&me));
        let m = measures();
        assert_eq!(s.threads.is_some(), m.threads);
        assert_eq!(s.peak_rss.is_some(), m.peak_memory);
        if m.threads {
            assert!(s.threads.unwrap() >= 1);
            assert!(s.peak_rss.unwrap() >= s.rss / 2);
        }
        // CPU time only grows.
        let burn = std::time::Instant::now();
        while burn.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        let later = sampler.sample(owner).unwrap();
        assert!(later.cpu_ms[&me] >= s.cpu_ms[&me]);
    }

    /// CPU ticks (user plus system) of this process, from `/proc`.
    #[cfg(target_os = "linux")]
    fn own_ticks() -> u64 {
        procfs::stat(std::process::id()).unwrap().cpu_ticks()
    }

    /// On Linux the numbers are what `/proc` said before sysinfo read it:
    /// CPU ticks of 10 ms (USER_HZ is 100 on every Linux), `VmRSS`.
    #[cfg(target_os = "linux")]
    #[test]
    fn on_linux_the_numbers_are_those_of_proc() {
        let me = std::process::id();
        let burn = std::time::Instant::now();
        while burn.elapsed() < std::time::Duration::from_millis(100) {
            std::hint::black_box(0u64);
        }
        let mut sampler = Sampler::new();
        let before = own_ticks();
        let rss_kib = procfs::status_field(me, "VmRSS").unwrap();
        let s = sampler.sample(Owner::Tree(me)).unwrap();
        let after = own_ticks();
        let ms = s.cpu_ms[&me];
        assert!(
            before * 10 <= ms && ms <= after * 10,
            "{before} {ms} {after}"
        );
        assert!(ms > 0);
        // Memory moves a little between the two reads.
        let rss = rss_kib * 1024;
        assert!(s.rss.abs_diff(rss) < 4 << 20, "{} {rss}", s.rss);
        // Other tests' threads come and go: the count itself is `Threads` of /proc/PID/status.
        assert!(s.threads.is_some_and(|n| n >= 1));
    }
}
