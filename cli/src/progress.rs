//! A progress bar for long runs over many files, shown only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Fewer files than this finish too fast for a bar to help.
const MIN_FILES: usize = 8;

/// A bar over `len` files, or a hidden one (piped, redirected, or few files).
pub fn bar(len: usize) -> ProgressBar {
    if len < MIN_FILES || !crate::io::stderr_is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}") {
        bar.set_style(style);
    }
    bar
}
