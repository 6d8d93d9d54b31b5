//! Files, stdin and stdout: reading inputs, atomic output files, terminal detection.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::exit::user;

/// Largest input kage reads (a Secret is at most 1 MiB; base64 and YAML add a little).
pub const MAX_INPUT: u64 = 64 * 1024 * 1024;

/// One input: a file or stdin.
pub struct Input {
    /// The file, or `None` for stdin.
    pub path: Option<PathBuf>,
    /// The bytes read.
    pub bytes: Vec<u8>,
}

impl Input {
    /// `stdin` or the path, for messages.
    pub fn name(&self) -> String {
        display_name(self.path.as_deref())
    }
}

/// `stdin` or the path, for messages.
pub fn display_name(path: Option<&Path>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "stdin".to_string(),
    }
}

/// Whether a path argument means stdin/stdout.
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<Input> {
    if is_dash(path) {
        return read_stdin();
    }
    let bytes = read_file(path)?;
    Ok(Input {
        path: Some(path.to_path_buf()),
        bytes,
    })
}

/// Reads stdin to the end.
pub fn read_stdin() -> Result<Input> {
    let mut bytes = Vec::new();
    io::stdin()
        .lock()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .context("reading stdin")?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(user(format!("stdin is larger than {} MiB", MAX_INPUT >> 20)).into());
    }
    Ok(Input { path: None, bytes })
}

/// Reads a file with a size limit.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let ctx = || format!("reading {}", path.display());
    let file = fs::File::open(path).with_context(ctx)?;
    // sized from the metadata: no regrowing (and no copies) for large inputs
    let len = file.metadata().map_or(0, |m| m.len()).min(MAX_INPUT);
    let mut bytes = Vec::with_capacity(len as usize + 1);
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .with_context(ctx)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(
            anyhow::Error::new(user(format!("larger than {} MiB", MAX_INPUT >> 20))).context(ctx()),
        );
    }
    Ok(bytes)
}

/// What an output file holds, which decides its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// Plaintext secrets: always 0600.
    Plaintext,
    /// Encrypted or public content: keeps the mode of the file it replaces, else 0644.
    Public,
}

/// Writes `bytes` to the output `path`, by the rules of docs/cli.md ("Output paths"):
/// - a new path or a regular file: atomically, through a temp file in the same directory and a
///   rename; the target is untouched unless everything succeeded;
/// - a symlink: followed; its final target is replaced atomically (the link stays), a dangling
///   link is refused;
/// - a character device (`/dev/null`, a terminal) or a FIFO: written through, never replaced;
/// - anything else (a directory, a socket, a block device) is refused.
pub fn write_atomic(path: &Path, bytes: &[u8], sensitivity: Sensitivity) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    match output_node(path)? {
        OutputNode::Stream => {
            // opened as the shell's `>` would, minus creating or truncating: the node stays
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(ctx)?;
            f.write_all(bytes).and_then(|_| f.flush()).with_context(ctx)
        }
        OutputNode::File(real) => replace_file(path, &real, bytes, sensitivity),
    }
}

/// Writes `real` (the output `shown`, symlinks followed) through a temp file and a rename.
fn replace_file(shown: &Path, real: &Path, bytes: &[u8], sensitivity: Sensitivity) -> Result<()> {
    let ctx = || format!("writing {}", shown.display());
    let dir = match real.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(crate::exit::user(format!(
            "writing {}: directory {} does not exist",
            shown.display(),
            dir.display()
        ))
        .hint(format!("create it first: mkdir -p {}", dir.display()))
        .into());
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".kage-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(ctx)?;
    // a signal that ends kage mid-write removes it (it may hold plaintext)
    let _cleanup = crate::signals::Cleanup::register(tmp.path());
    set_mode(tmp.as_file(), real, sensitivity).with_context(ctx)?;
    // No fsync: the rename keeps readers from ever seeing a partial file, and a per-file fsync
    // would make sealing a thousand files take seconds.
    tmp.write_all(bytes).with_context(ctx)?;
    tmp.persist(real).map_err(|e| e.error).with_context(ctx)?;
    Ok(())
}

/// What an output path names, symlinks followed.
enum OutputNode {
    /// A regular file or nothing yet: this path (the final target of any symlinks) is replaced.
    File(PathBuf),
    /// A character device or a FIFO: written through.
    Stream,
}

/// The kind of file a path names (following symlinks), `None` when nothing is there; a dangling
/// symlink and the kinds kage never writes are errors.
fn output_node(path: &Path) -> Result<OutputNode> {
    let ctx = || format!("writing {}", path.display());
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(OutputNode::File(path.to_path_buf()));
        }
        Err(e) => return Err(e).with_context(ctx),
    };
    let meta = if link.file_type().is_symlink() {
        match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let to = fs::read_link(path).unwrap_or_default();
                return Err(user(format!(
                    "writing {}: a symlink to {}, which does not exist",
                    path.display(),
                    to.display()
                ))
                .hint("kage writes through a symlink only to an existing file; remove the link or create its target")
                .into());
            }
            Err(e) => return Err(e).with_context(ctx),
        }
    } else {
        link.clone()
    };
    match node_kind(&meta.file_type()) {
        NodeKind::File if link.file_type().is_symlink() => {
            Ok(OutputNode::File(fs::canonicalize(path).with_context(ctx)?))
        }
        NodeKind::File => Ok(OutputNode::File(path.to_path_buf())),
        NodeKind::Stream => Ok(OutputNode::Stream),
        NodeKind::Other(what) => Err(user(format!("writing {}: is {what}", path.display()))
            .hint("kage writes regular files, character devices (such as /dev/null) and FIFOs")
            .into()),
    }
}

enum NodeKind {
    File,
    Stream,
    Other(&'static str),
}

#[cfg(unix)]
fn node_kind(ft: &fs::FileType) -> NodeKind {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        NodeKind::File
    } else if ft.is_char_device() || ft.is_fifo() {
        NodeKind::Stream
    } else if ft.is_dir() {
        NodeKind::Other("a directory")
    } else if ft.is_socket() {
        NodeKind::Other("a socket")
    } else if ft.is_block_device() {
        NodeKind::Other("a block device")
    } else {
        NodeKind::Other("not a regular file")
    }
}

#[cfg(not(unix))]
fn node_kind(ft: &fs::FileType) -> NodeKind {
    if ft.is_file() {
        NodeKind::File
    } else if ft.is_dir() {
        NodeKind::Other("a directory")
    } else {
        NodeKind::Other("not a regular file")
    }
}

/// Which file a path names, to compare inputs and outputs: the inode of an existing regular
/// file (symlinks followed, so links and hard links compare equal), else the absolute path of
/// the file to be created; `None` for devices and FIFOs, which are never compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileId {
    Inode(u64, u64),
    New(PathBuf),
}

fn file_id(path: &Path) -> Option<FileId> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Some(inode(&m)),
        Ok(_) => None,
        Err(_) => {
            // not there yet: its directory's real path and its name
            let abs = crate::config::absolute(path).ok()?;
            let real = match (abs.parent(), abs.file_name()) {
                (Some(dir), Some(name)) => fs::canonicalize(dir)
                    .map(|d| d.join(name))
                    .unwrap_or(abs.clone()),
                _ => abs,
            };
            Some(FileId::New(real))
        }
    }
}

#[cfg(unix)]
fn inode(m: &fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    FileId::Inode(m.dev(), m.ino())
}

#[cfg(not(unix))]
fn inode(_: &fs::Metadata) -> FileId {
    FileId::New(PathBuf::new())
}

#[cfg(unix)]
fn set_mode(file: &fs::File, target: &Path, sensitivity: Sensitivity) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match sensitivity {
        Sensitivity::Plaintext => 0o600,
        Sensitivity::Public => match fs::metadata(target) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(_) => 0o644,
        },
    };
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &fs::File, _: &Path, _: Sensitivity) -> io::Result<()> {
    Ok(())
}

/// Writes to stdout (a broken pipe surfaces as an `io::Error` that `main` turns into exit 0).
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes).context("writing stdout")?;
    out.flush().context("writing stdout")?;
    Ok(())
}

/// Whether stderr is a terminal (progress bars).
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// Maps `f` over `items` on up to `available_parallelism` threads (in contiguous chunks), keeping
/// the order of the results. Few items run on the calling thread.
pub fn map_ordered<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads <= 1 || items.len() < 16 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    })
}

/// Where the results of a multi-file command go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Everything to stdout (multi-document YAML).
    Stdout,
    /// One file.
    File(PathBuf),
    /// One file per input, same file name, in this directory.
    Dir(PathBuf),
    /// Replace each input.
    InPlace,
}

impl Destination {
    /// Resolves `-o` / `--in-place` for `n` inputs.
    pub fn resolve(output: Option<&Path>, in_place: bool, inputs: &[PathBuf]) -> Result<Self> {
        if in_place {
            if inputs.is_empty() || inputs.iter().any(|p| is_dash(p)) {
                return Err(user("--in-place needs file arguments, not stdin")
                    .exit(crate::exit::Exit::Usage)
                    .into());
            }
            if let Some(p) = inputs
                .iter()
                .find(|p| fs::metadata(p).is_ok_and(|m| !m.is_file()))
            {
                return Err(user(format!(
                    "--in-place needs regular files; {} is not one",
                    p.display()
                ))
                .exit(crate::exit::Exit::Usage)
                .into());
            }
            return Ok(Destination::InPlace);
        }
        match output {
            None => Ok(Destination::Stdout),
            Some(p) if is_dash(p) => Ok(Destination::Stdout),
            Some(p) if p.is_dir() => Ok(Destination::Dir(p.to_path_buf())),
            Some(p) if inputs.len() > 1 => Err(user(format!(
                "{} is not a directory, and there are {} inputs",
                p.display(),
                inputs.len()
            ))
            .hint("with several inputs, -o must name an existing directory")
            .exit(crate::exit::Exit::Usage)
            .into()),
            Some(p) => Ok(Destination::File(p.to_path_buf())),
        }
    }

    /// Refuses, before anything is read or written, outputs that would destroy a file: an
    /// output that is one of the inputs (except each input's own with `--in-place`), and two
    /// inputs whose outputs are the same file. `over_input` words the refusal of the first case.
    pub fn check(
        &self,
        inputs: &[PathBuf],
        over_input: &dyn Fn(&Path) -> crate::exit::UserError,
    ) -> Result<()> {
        let ids: Vec<(&Path, Option<FileId>)> = inputs
            .iter()
            .filter(|p| !is_dash(p))
            .map(|p| {
                (
                    p.as_path(),
                    file_id(p).filter(|id| matches!(id, FileId::Inode(..))),
                )
            })
            .collect();
        let mut outputs: Vec<(&Path, FileId)> = Vec::new();
        for (input, _) in &ids {
            let Some(target) = self.target(Some(input))? else {
                continue;
            };
            let Some(out_id) = file_id(&target) else {
                continue;
            };
            if let Some((other, _)) = outputs.iter().find(|(_, id)| *id == out_id) {
                return Err(user(format!(
                    "{} and {} would both be written to {}",
                    other.display(),
                    input.display(),
                    target.display()
                ))
                .hint("nothing was written; give the inputs different file names, or run once per input")
                .exit(crate::exit::Exit::Usage)
                .into());
            }
            // in place, each output is its input: one file given twice is the collision above
            if let Some((same, _)) = ids
                .iter()
                .filter(|_| !matches!(self, Destination::InPlace))
                .find(|(_, id)| id.as_ref() == Some(&out_id))
            {
                return Err(over_input(same).exit(crate::exit::Exit::Usage).into());
            }
            outputs.push((input, out_id));
        }
        Ok(())
    }

    /// The output file for one input (`None`: stdout).
    pub fn target(&self, input: Option<&Path>) -> Result<Option<PathBuf>> {
        match self {
            Destination::Stdout => Ok(None),
            Destination::File(p) => Ok(Some(p.clone())),
            Destination::InPlace => Ok(input.map(Path::to_path_buf)),
            Destination::Dir(dir) => match input.and_then(Path::file_name) {
                Some(name) => Ok(Some(dir.join(name))),
                None => Err(
                    user("stdin has no file name to use in the output directory")
                        .hint("use -o FILE for stdin")
                        .exit(crate::exit::Exit::Usage)
                        .into(),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_plaintext_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.yaml");
        write_atomic(&p, b"a: b\n", Sensitivity::Plaintext).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"a: b\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // only the target is left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_keeps_mode_of_public_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.yaml");
        fs::write(&p, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
            write_atomic(&p, b"new", Sensitivity::Public).unwrap();
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640);
        }
    }
}
