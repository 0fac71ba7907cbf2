//! Reading a file an operator names (the policy config and the role files and Rego modules it
//! names, the CA bundle, the web identity token): never more than a limit, whatever the path
//! turns out to be.
//!
//! A size check before reading is not enough: `/dev/zero`, a FIFO, `/dev/stdin` or a file
//! under `/proc` report a length of 0 and then never end, and a regular file can grow between
//! the check and the read. So the read itself stops one byte past the limit, and that extra
//! byte means "too large".

use std::fmt;
use std::io::Read;
use std::path::Path;

/// Largest operator file accepted (the policy config's per-document limit; the CA bundle and
/// the web identity token are far smaller in practice: ~160 KB and ~1 KB).
pub(crate) const MAX_OPERATOR_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Why an operator file could not be read.
#[derive(Debug)]
pub(crate) enum FileError {
    /// Opening or reading failed (missing, no permission, a directory, not UTF-8 text).
    Unreadable(std::io::Error),
    /// More than `limit` bytes (or a device or pipe that does not end).
    TooLarge { limit: usize },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Unreadable(e) => write!(f, "cannot be read: {e}"),
            FileError::TooLarge { limit } => write!(
                f,
                "is larger than the limit of {limit} bytes (or a device or pipe that does not end)"
            ),
        }
    }
}

/// The bytes of `path`, at most `limit` of them; `TooLarge` past that.
pub(crate) fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, FileError> {
    let file = std::fs::File::open(path).map_err(FileError::Unreadable)?;
    let meta = file.metadata().map_err(FileError::Unreadable)?;
    // A regular file's length is known: refuse before reading a byte of it.
    if meta.is_file() && meta.len() > limit as u64 {
        return Err(FileError::TooLarge { limit });
    }
    let capacity = if meta.is_file() {
        meta.len() as usize
    } else {
        0
    };
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::Unreadable)?;
    if bytes.len() > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok(bytes)
}

/// [`read_bounded`] for a text file: UTF-8 or `Unreadable`.
pub(crate) fn read_text_bounded(path: &Path, limit: usize) -> Result<String, FileError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        FileError::Unreadable(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({e})"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_never_ends_is_refused_after_the_limit() {
        match read_bounded(Path::new("/dev/zero"), 1024) {
            Err(FileError::TooLarge { limit: 1024 }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_at_the_limit_is_read_and_one_past_it_is_refused() {
        let dir = std::env::temp_dir().join(format!("docauth-opfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, vec![b'x'; 100]).unwrap();
        assert_eq!(read_bounded(&path, 100).unwrap().len(), 100);
        assert!(matches!(
            read_bounded(&path, 99),
            Err(FileError::TooLarge { limit: 99 })
        ));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let e = read_text_bounded(&path, 100).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        assert!(read_bounded(&dir, 100).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
