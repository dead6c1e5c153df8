//! File metadata as the stat cache compares it, and the racy-timestamp rule.
//!
//! A file whose metadata is unchanged since it was hashed is assumed unchanged, the rule
//! git's index and jj's working-copy state use. A file modified within the timestamp
//! granularity of the moment it was hashed could change without its metadata changing, so
//! entries whose mtime is not strictly older than the cache file itself are "racy" and are
//! re-read on the next scan.

use std::fs::Metadata;
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

    /// Whether content hashed with this stat may have changed without the stat changing,
    /// judged against the time the cache was written.
    pub fn is_racy(&self, cache_written: Timestamp) -> bool {
        self.mtime >= cache_written
    }

    pub fn is_executable(&self) -> bool {
        self.mode & 0o100 != 0
    }
}
