//! Signals (docs/cli.md, "Signals").
//!
//! - SIGINT: exit 130 at once (fd's convention), except while `kage edit` waits for the editor,
//!   which gets the Ctrl-C itself; kage then removes its plaintext temporary file and stops.
//! - SIGTERM, SIGHUP, SIGQUIT: a running editor (and the shell running it) is sent SIGTERM
//!   (SIGHUP for SIGHUP), the files registered with [`Cleanup`] (the editor's plaintext, a
//!   half-written output) are removed, and kage exits with 128 + the signal number. SIGQUIT
//!   never dumps core: the memory holds plaintext.
//!
//! The handlers only set flags and wake a thread (signal-hook's iterator); the removing happens
//! on that thread, outside the signal handler.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

struct Flags {
    /// Set while the editor runs: SIGINT does not end kage then.
    editing: AtomicBool,
    /// Set by every SIGINT.
    interrupted: Arc<AtomicBool>,
    /// The editor's process id while it runs (0: none).
    editor: AtomicU32,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

/// Set once a signal is ending kage: the main thread must then not exit (or write) on its own.
static TERMINATING: AtomicBool = AtomicBool::new(false);

/// Paths to remove when a signal ends kage: plaintext temporary files and directories.
static CLEANUP: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Installs the handlers (once, from `main`). Without them the signals keep their default
/// actions.
pub fn install() {
    let flags = Flags {
        editing: AtomicBool::new(false),
        interrupted: Arc::new(AtomicBool::new(false)),
        editor: AtomicU32::new(0),
    };
    if signal_hook::flag::register(SIGINT, Arc::clone(&flags.interrupted)).is_err() {
        return;
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
    else {
        return;
    };
    if FLAGS.set(flags).is_err() {
        return;
    }
    // If no thread can be made, the closure and its handlers are dropped (unregistered).
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let Some(f) = FLAGS.get() else { continue };
                if sig == SIGINT && f.editing.load(Ordering::SeqCst) {
                    continue; // the editor handles its Ctrl-C; `interrupted` is set
                }
                terminate(f, sig);
            }
        });
}

/// Ends kage for `sig`: stop the editor, remove the registered files, exit 128 + `sig`.
fn terminate(f: &Flags, sig: i32) -> ! {
    TERMINATING.store(true, Ordering::SeqCst);
    let editor = f.editor.load(Ordering::SeqCst);
    if editor != 0 && sig != SIGINT {
        let forward = if sig == SIGHUP {
            rustix::process::Signal::HUP
        } else {
            rustix::process::Signal::TERM
        };
        for p in process_tree(editor) {
            if let Some(pid) = rustix::process::Pid::from_raw(p as i32) {
                let _ = rustix::process::kill_process(pid, forward);
            }
        }
    }
    let paths = CLEANUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    // The editor may still write (a swap file) while it exits: try again for a moment.
    for _ in 0..50 {
        if paths.iter().all(|p| !remove(p)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::exit(128 + sig)
}

/// `root` and its descendants: kage runs the editor through `sh`, which (dash) does not exec
/// it, so the editor is a grandchild. Elsewhere than Linux, `root` alone.
fn process_tree(root: u32) -> Vec<u32> {
    let mut tree = vec![root];
    #[cfg(target_os = "linux")]
    {
        // (pid, ppid) of every process, from /proc/PID/stat: "pid (comm) state ppid …"
        let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                let ppid = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                Some((pid, ppid))
            })
            .collect();
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i];
            tree.extend(
                parents
                    .iter()
                    .filter(|(_, pp)| *pp == parent)
                    .map(|(p, _)| *p),
            );
            i += 1;
        }
    }
    tree
}

/// Blocks for good when a signal is ending kage, so that the signal's thread (which exits with
/// 128 + the signal) wins over the main thread's own exit or next step. Called by `main` before
/// it returns and after the editor returns.
pub fn settle() {
    while TERMINATING.load(Ordering::SeqCst) {
        std::thread::park();
    }
}

/// Removes a file or directory tree; whether something is still there.
fn remove(p: &Path) -> bool {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).is_err(),
        Ok(_) => std::fs::remove_file(p).is_err(),
        Err(_) => false,
    }
}

/// While alive, a signal that ends kage removes this path first.
pub struct Cleanup(PathBuf);

impl Cleanup {
    /// Registers `path` (a file or a directory).
    pub fn register(path: &Path) -> Cleanup {
        let path = path.to_path_buf();
        CLEANUP
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(path.clone());
        Cleanup(path)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut paths = CLEANUP
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(i) = paths.iter().rposition(|p| *p == self.0) {
            paths.swap_remove(i);
        }
    }
}

/// While alive, SIGINT does not end kage (the editor in the foreground handles it), and the
/// signals that end kage stop the editor first.
pub struct EditorRunning(());

impl EditorRunning {
    /// Starts ignoring SIGINT for the process's own exit.
    pub fn start() -> EditorRunning {
        if let Some(f) = FLAGS.get() {
            f.interrupted.store(false, Ordering::SeqCst);
            f.editing.store(true, Ordering::SeqCst);
        }
        EditorRunning(())
    }

    /// Records the editor's process id (0 once it was waited for).
    pub fn editor(&self, pid: u32) {
        if let Some(f) = FLAGS.get() {
            f.editor.store(pid, Ordering::SeqCst);
        }
    }

    /// Whether a SIGINT arrived meanwhile.
    pub fn interrupted(&self) -> bool {
        FLAGS
            .get()
            .is_some_and(|f| f.interrupted.load(Ordering::SeqCst))
    }
}

impl Drop for EditorRunning {
    fn drop(&mut self) {
        if let Some(f) = FLAGS.get() {
            f.editor.store(0, Ordering::SeqCst);
            f.editing.store(false, Ordering::SeqCst);
            // a Ctrl-C that arrived while the editor ran is not acted upon later
            f.interrupted.store(false, Ordering::SeqCst);
        }
    }
}
