//! Another agent's transcript, stored with a step as `.cairn/state/transcript.json` or
//! `.cairn/state/transcript.jsonl` (`cairn checkpoint --transcript`, `cairn hook
//! --with-transcript`). It must parse as one JSON document or as JSON Lines; the step
//! writer redacts secrets in it value by value, like everything else it stores.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where transcripts go in a step's `.cairn/` tree.
pub const JSON_STATE_PATH: &str = "state/transcript.json";
pub const JSONL_STATE_PATH: &str = "state/transcript.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Jsonl,
}

/// A transcript read and checked, ready to store.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub format: Format,
    pub bytes: Vec<u8>,
}

impl Transcript {
    /// The `.cairn/`-relative path this transcript is stored at.
    pub fn state_path(&self) -> &'static str {
        match self.format {
            Format::Json => JSON_STATE_PATH,
            Format::Jsonl => JSONL_STATE_PATH,
        }
    }

    /// The state files a step records: this transcript, and no stale one of the other form.
    pub fn state_files(self) -> Vec<(String, Option<Vec<u8>>)> {
        let other = match self.format {
            Format::Json => JSONL_STATE_PATH,
            Format::Jsonl => JSON_STATE_PATH,
        };
        vec![(other.to_string(), None), (self.state_path().to_string(), Some(self.bytes))]
    }
}

#[derive(Debug)]
pub enum Error {
    Read { path: PathBuf, source: std::io::Error },
    Empty { path: PathBuf },
    Invalid { path: PathBuf, reason: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => {
                write!(f, "cannot read the transcript {}: {source}", path.display())
            }
            Error::Empty { path } => write!(f, "the transcript {} is empty", path.display()),
            Error::Invalid { path, reason } => {
                write!(
                    f,
                    "the transcript {} is neither JSON nor JSON Lines: {reason}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// The largest transcript cairn reads.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Reads and checks the transcript at `path`, keeping its bytes as they are.
pub fn load(path: &Path) -> Result<Transcript, Error> {
    let bytes = read_regular(path, MAX_BYTES)
        .map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let invalid = |reason: String| Error::Invalid { path: path.to_owned(), reason };
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("it is not UTF-8".into()))?;
    if text.trim().is_empty() {
        return Err(Error::Empty { path: path.to_owned() });
    }
    if serde_json::from_str::<Value>(text).is_ok() {
        return Ok(Transcript { format: Format::Json, bytes });
    }
    for (number, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            serde_json::from_str::<Value>(line)
                .map_err(|err| invalid(format!("line {}: {err}", number + 1)))?;
        }
    }
    Ok(Transcript { format: Format::Jsonl, bytes })
}

/// The bytes of the regular file at `path`, refusing anything else: the path comes from a
/// hook payload, and a FIFO or device there must not hang the hook or fill its memory. The
/// file is opened without blocking and checked once open, so it cannot be swapped in
/// between; more than `max_bytes` is an error.
pub(crate) fn read_regular(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error as IoError, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(IoError::new(ErrorKind::InvalidInput, "it is not a regular file"));
    }
    if meta.len() > max_bytes {
        return Err(IoError::new(
            ErrorKind::InvalidData,
            format!("it is larger than {} MiB", max_bytes / (1024 * 1024)),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Capped again while reading: the file may grow after it was measured.
    file.take(max_bytes).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), content).unwrap();
        file
    }

    #[test]
    fn json_lines_keep_their_bytes() {
        let text =
            "{\"type\":\"user\",  \"text\":\"hi\"}\r\n\n{\"key\":\"AKIAIOSFODNN7EXAMPLE\"}\n";
        let file = write(text);
        let loaded = load(file.path()).unwrap();
        assert_eq!((loaded.format, loaded.bytes.as_slice()), (Format::Jsonl, text.as_bytes()));
    }

    #[test]
    fn one_json_document_is_json_and_anything_else_is_refused() {
        let file = write("{\n  \"messages\": []\n}\n");
        assert_eq!(load(file.path()).unwrap().format, Format::Json);
        let bad = write("{\"ok\":1}\nnot json\n");
        let err = load(bad.path()).unwrap_err().to_string();
        assert!(err.contains("neither JSON nor JSON Lines: line 2"), "{err}");
        assert!(matches!(load(write(" \n").path()), Err(Error::Empty { .. })));
        let missing = load(Path::new("/nonexistent/transcript.jsonl")).unwrap_err();
        assert!(missing.to_string().starts_with("cannot read the transcript /nonexistent"));
    }

    #[test]
    fn only_a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // A FIFO with no writer would block a plain open forever.
        let err = load(&fifo).unwrap_err().to_string();
        assert!(err.ends_with("it is not a regular file"), "{err}");
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cannot read the transcript"), "{err}");
        let big = write(&"x".repeat(100));
        let err = read_regular(big.path(), 10).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        assert_eq!(
            read_regular(Path::new("/dev/zero"), 10).unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
}
