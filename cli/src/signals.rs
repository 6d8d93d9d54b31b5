//! SIGINT: exit 130 at once (fd's convention), except while `kage edit` waits for the editor,
//! which gets the Ctrl-C itself; kage then removes its plaintext temporary file and stops.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

struct Flags {
    /// When set, SIGINT ends the process with 130.
    exit_on_signal: Arc<AtomicBool>,
    /// Set by every SIGINT.
    interrupted: Arc<AtomicBool>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

/// Installs the handlers (once, from `main`). Without them SIGINT keeps its default action.
pub fn install() {
    let flags = Flags {
        exit_on_signal: Arc::new(AtomicBool::new(true)),
        interrupted: Arc::new(AtomicBool::new(false)),
    };
    use signal_hook::consts::SIGINT;
    let ok = signal_hook::flag::register_conditional_shutdown(
        SIGINT,
        130,
        Arc::clone(&flags.exit_on_signal),
    )
    .and_then(|_| signal_hook::flag::register(SIGINT, Arc::clone(&flags.interrupted)));
    if ok.is_ok() {
        let _ = FLAGS.set(flags);
    }
}

/// While alive, SIGINT does not end kage (the editor in the foreground handles it).
pub struct EditorRunning(());

impl EditorRunning {
    /// Starts ignoring SIGINT for the process's own exit.
    pub fn start() -> EditorRunning {
        if let Some(f) = FLAGS.get() {
            f.interrupted.store(false, Ordering::SeqCst);
            f.exit_on_signal.store(false, Ordering::SeqCst);
        }
        EditorRunning(())
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
            f.exit_on_signal.store(true, Ordering::SeqCst);
        }
    }
}
