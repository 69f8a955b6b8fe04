//! Student code is untrusted: the limits every started program runs with,
//! and the network namespace a check runs in.
//!
//! - Limits (Unix): CPU time, address space, processes, open files and file
//!   size, set with `setrlimit` in the child between `fork` and `exec`, so
//!   they hold for the shell, the program and everything it starts.
//! - Network (Linux): the checking process moves itself into a network
//!   namespace of its own with only a loopback interface (`unshare` with
//!   `CLONE_NEWNET` as root, or inside a user namespace of its own when user
//!   namespaces are allowed), before it starts any thread or program. The
//!   programs it starts inherit the namespace: they reach nothing beyond
//!   their own loopback, and each batch job (a process of its own) can let
//!   its submission bind the same port, the notes' 8080, at the same time.
//!
//! What cannot be done here is said on stderr once, naming the protection
//! that is missing; the run goes on without it.

use std::sync::OnceLock;
use std::time::Duration;

/// Resource limits for started programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time (RLIMIT_CPU).
    pub cpu: Duration,
    /// Address space in bytes (RLIMIT_AS).
    pub memory: u64,
    /// Processes and threads of the user (RLIMIT_NPROC).
    pub processes: u64,
    /// Open files (RLIMIT_NOFILE).
    pub files: u64,
    /// Largest file written, in bytes (RLIMIT_FSIZE).
    pub file_size: u64,
}

static LIMITS: OnceLock<Option<Limits>> = OnceLock::new();

/// Set the limits for every program started from now on (first call wins).
pub fn set_limits(limits: Option<Limits>) {
    let _ = LIMITS.set(limits);
    #[cfg(not(unix))]
    if limits.is_some() {
        crate::isolate::missing(
            "resource limits (CPU, memory, processes, files) exist on Unix only",
        );
    }
}

/// The limits in force (only Unix applies them).
#[cfg(unix)]
pub fn limits() -> Option<Limits> {
    LIMITS.get().copied().flatten()
}

/// Say once on stderr that a protection is missing.
pub fn missing(what: &str) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = match SAID.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if !said.iter().any(|s| s == what) {
        eprintln!("trama-check: not protected: {what}");
        said.push(what.to_string());
    }
}

/// Make `cmd` apply the limits in force in its child before `exec`.
#[cfg(unix)]
#[allow(unsafe_code)] // pre_exec is unsafe by nature; the closure only calls setrlimit.
pub fn apply(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let Some(l) = limits() else { return };
    let pairs = [
        (libc::RLIMIT_CPU, l.cpu.as_secs().max(1)),
        (libc::RLIMIT_AS, l.memory),
        (libc::RLIMIT_NPROC, l.processes),
        (libc::RLIMIT_NOFILE, l.files),
        (libc::RLIMIT_FSIZE, l.file_size),
    ];
    // SAFETY: the closure only calls setrlimit (async-signal-safe) on data
    // copied in before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for (resource, value) in pairs {
                let value = value as libc::rlim_t;
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    // A hard limit already lower than ours: keep it (it is stricter).
                    let mut now = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(resource, &mut now) != 0 || now.rlim_max > value {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
}

/// Without setrlimit there is nothing to apply ([`set_limits`] said so).
#[cfg(not(unix))]
pub fn apply(_cmd: &mut std::process::Command) {}

/// Move this process into a network namespace of its own with loopback up.
/// Must be called before any thread starts (a user namespace needs a
/// single-threaded process). `Err` says why it could not.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // unshare and getuid have no safe std wrapper; each call is commented.
pub fn enter_network_namespace() -> Result<(), String> {
    // SAFETY: unshare and the uid/gid map writes touch only this process.
    let as_root = unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0;
    if !as_root {
        let root_err = std::io::Error::last_os_error();
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        // SAFETY: as above; fails cleanly if this process has threads.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "no network namespace (as root: {root_err}; in a user namespace: {})",
                std::io::Error::last_os_error()
            ));
        }
        let write = |path: &str, text: String| {
            std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))
        };
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    }
    loopback_up()
}

/// Non-Linux systems have no network namespaces.
#[cfg(not(target_os = "linux"))]
pub fn enter_network_namespace() -> Result<(), String> {
    Err(format!(
        "network namespaces exist on Linux only (this is {})",
        std::env::consts::OS
    ))
}

/// `ip link set lo up`, with the ioctl itself (no `ip` needed).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // the interface-flags ioctl has no safe wrapper in std or nix.
fn loopback_up() -> Result<(), String> {
    // SAFETY: a plain socket used for two ioctls on a zeroed, NUL-terminated
    // ifreq, then closed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!(
                "cannot open a socket to bring loopback up: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) != 0 {
            result = Err(std::io::Error::last_os_error());
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) != 0 {
                result = Err(std::io::Error::last_os_error());
            }
        }
        libc::close(fd);
        result.map_err(|e| format!("cannot bring loopback up in the new network namespace: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn limits_reach_the_started_program() {
        // RLIMIT_NOFILE of a shell started with the limits.
        super::set_limits(Some(super::Limits {
            cpu: std::time::Duration::from_secs(100),
            memory: 1 << 34,
            processes: 1 << 20,
            files: 77,
            file_size: 1 << 30,
        }));
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "ulimit -n; ulimit -f"]);
        super::apply(&mut cmd);
        let out = cmd.output().expect("sh runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "77", "{text}");
        // ulimit -f counts 512-byte blocks (1 GiB = 2097152 of them).
        // ulimit -f counts 512-byte blocks in dash, 1024-byte ones in bash.
        assert!(["2097152", "1048576"].contains(&lines[1]), "{text}");
    }
}
