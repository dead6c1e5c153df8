//! File metadata as the stat cache compares it, and the racy-timestamp rule.
//!
//! A file whose metadata is unchanged since it was hashed is assumed unchanged, the rule
//! git's index and jj's working-copy state use. A file modified within the timestamp
//! granularity of the moment it was hashed could change without its metadata changing, so
//! entries whose mtime is not strictly older than the cache file itself are "racy" and are
//! re-read on the next scan.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

/// A nanosecond timestamp, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// The metadata that changes when a file's content or kind changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStat {
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub ino: u64,
    pub dev: u64,
    pub size: u64,
    pub mode: u32,
}

impl FileStat {
    pub fn from_metadata(meta: &Metadata) -> Self {
        FileStat {
            mtime: Timestamp { secs: meta.mtime(), nanos: meta.mtime_nsec() as u32 },
            ctime: Timestamp { secs: meta.ctime(), nanos: meta.ctime_nsec() as u32 },
            ino: meta.ino(),
            dev: meta.dev(),
            size: meta.size(),
            mode: meta.mode(),
        }
    }

    fn from_stat(stat: &rustix::fs::Stat) -> Self {
        FileStat {
            mtime: Timestamp { secs: stat.st_mtime, nanos: stat.st_mtime_nsec as u32 },
            ctime: Timestamp { secs: stat.st_ctime, nanos: stat.st_ctime_nsec as u32 },
            ino: stat.st_ino,
            dev: stat.st_dev,
            size: stat.st_size as u64,
            mode: stat.st_mode,
        }
    }

    /// The kind of file this stat describes.
    pub fn file_type(&self) -> rustix::fs::FileType {
        rustix::fs::FileType::from_raw_mode(self.mode as rustix::fs::RawMode)
    }

    /// Whether content hashed with this stat may have changed without the stat changing,
    /// judged against the time the cache was written.
    pub fn is_racy(&self, cache_written: Timestamp) -> bool {
        self.mtime >= cache_written
    }

    pub fn is_executable(&self) -> bool {
        self.mode & 0o100 != 0
    }
}

/// A directory opened once so that its entries are `lstat`ed by name relative to it
/// (`fstatat`), not by absolute path: the kernel then resolves one component per entry
/// instead of the whole path, which a large scan otherwise spends a tenth of its time on.
/// Opened without following a symlink; when it cannot be opened, entries are `lstat`ed
/// by absolute path as before.
pub struct DirStat {
    fd: Option<rustix::fd::OwnedFd>,
    path: std::path::PathBuf,
}

impl DirStat {
    pub fn open(path: &std::path::Path) -> DirStat {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        DirStat { fd: rustix::fs::open(path, flags, Mode::empty()).ok(), path: path.to_owned() }
    }

    /// The `lstat` of the entry `name` of this directory.
    pub fn lstat(&self, name: &[u8]) -> std::io::Result<FileStat> {
        let name = std::ffi::OsStr::from_bytes(name);
        match &self.fd {
            Some(fd) => rustix::fs::statat(fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .map(|stat| FileStat::from_stat(&stat))
                .map_err(std::io::Error::from),
            None => std::fs::symlink_metadata(self.path.join(name))
                .map(|meta| FileStat::from_metadata(&meta)),
        }
    }
}
