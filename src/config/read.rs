//! Reading input files without trusting them: regular files only, never blocking, bounded.
//!
//! Owns the step from a path to bytes. A FIFO would block a plain `read` forever, a symlink
//! to `/dev/zero` would fill memory, a device may have side effects on open: none of them is
//! input, so each is refused with an error naming it. Must not parse anything.
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use super::error::ConfigError;

/// Default bound of one input file (the 10,000-rule Route of the corpus is about 0.4 MiB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 20;
/// Default bound of one whole input (every file of every path of one load).
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 << 20;

/// Size bounds of one load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A file larger than this is refused (and nothing of it loads).
    pub max_file_bytes: u64,
    /// Once the files read so far add up to this, the remaining files are refused.
    pub max_input_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
        }
    }
}

/// What a non-regular file is, in the words `ls -l` users know.
pub(crate) fn file_kind(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Refuses anything but a regular file (symlinks are followed: ConfigMap volumes are
/// symlinks to regular files).
#[allow(
    clippy::result_large_err,
    reason = "once per file; the error carries its path inline, like the loader's"
)]
pub(crate) fn check_regular(path: &Path) -> Result<u64, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ConfigError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(&meta.file_type()),
        });
    }
    Ok(meta.len())
}

/// The bytes of `path`, at most `limit` of them.
///
/// Checked twice: by path before opening (a device is never opened), and on the open file
/// (the path may have been swapped in between). The open is non-blocking, so even a FIFO
/// that slipped through cannot hang the caller, and the read stops one byte past `limit`,
/// so a file that grows (or lies about its size, as /proc files do) is still bounded.
#[allow(
    clippy::result_large_err,
    reason = "once per file; the error carries its path inline, like the loader's"
)]
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ConfigError> {
    let too_large = |size: u64| ConfigError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit,
    };
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = check_regular(path)?;
    if size > limit {
        return Err(too_large(size));
    }
    let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(ConfigError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(&meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_large_files_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let e = read_bounded(&fifo, 100).expect_err("a FIFO is not input");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: not a regular file: a FIFO (named pipe); skipped",
                fifo.display()
            )
        );
        let zero = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        let e = read_bounded(&zero, 100).expect_err("/dev/zero is not input");
        assert!(e.to_string().contains("a character device"), "{e}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; 101]).expect("write");
        let e = read_bounded(&big, 100).expect_err("over the limit");
        assert!(
            e.to_string()
                .contains("101 bytes, more than the limit of 100"),
            "{e}"
        );
        assert_eq!(read_bounded(&big, 101).expect("at the limit").len(), 101);
    }
}
