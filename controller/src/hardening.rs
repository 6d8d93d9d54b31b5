//! Process hardening at start-up: no core dumps.
//!
//! The controller holds the cluster's private keys and decrypted values in memory; a core dump
//! (a crash, or `kill -QUIT`) would write them to the node's disk, and a dumpable process can be
//! read by `ptrace` from the same user. Key holders (ssh-agent, gpg-agent) switch both off.
//! `rustix` gives safe wrappers of `setrlimit` and `prctl`: the workspace forbids `unsafe_code`,
//! which calling `libc` directly would need.

/// Set `RLIMIT_CORE` to 0 (soft and hard: it cannot be raised again) and, on Linux, mark the
/// process not dumpable (`PR_SET_DUMPABLE` 0: no core file, no `ptrace` attach by the same user,
/// `/proc/self/mem` closed to others).
pub fn disable_core_dumps() -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary's own limits change: both values only go down, which harms no other test.
    #[test]
    fn core_dumps_are_off_after_start_up() {
        disable_core_dumps().unwrap();
        let core = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!(core.current, Some(0));
        assert_eq!(core.maximum, Some(0));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                rustix::process::dumpable_behavior().unwrap(),
                rustix::process::DumpableBehavior::NotDumpable
            );
            let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
            let line = limits
                .lines()
                .find(|l| l.starts_with("Max core file size"))
                .unwrap();
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "Max core file size  0  0  bytes"
            assert_eq!(
                &fields[fields.len() - 3..fields.len() - 1],
                ["0", "0"],
                "{line}"
            );
        }
    }
}
