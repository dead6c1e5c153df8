//! The user's index, read lazily: which paths it tracks, and the blob ids it can vouch for.

use std::path::PathBuf;
use std::sync::OnceLock;

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice};

use super::stat::{FileStat, Timestamp};
use super::stat_cache::CachedKind;

/// The user's index, read only when a decision needs it (an ignored or oversized entry,
/// or a file the stat cache has never seen).
pub(super) struct LazyIndex {
    pub(super) path: PathBuf,
    pub(super) index: OnceLock<Option<(gix::index::File, Timestamp)>>,
}

impl LazyIndex {
    pub(super) fn new(path: PathBuf) -> Self {
        LazyIndex { path, index: OnceLock::new() }
    }

    pub(super) fn get(&self) -> Option<&(gix::index::File, Timestamp)> {
        self.index
            .get_or_init(|| {
                let written = FileStat::from_metadata(&std::fs::metadata(&self.path).ok()?).mtime;
                // The checksum is skipped: a damaged index only costs re-hashing, since
                // every id taken from it must also match the file's stat.
                let options = gix::index::decode::Options::default();
                let file =
                    gix::index::File::at(&self.path, gix::hash::Kind::Sha1, true, options).ok()?;
                Some((file, written))
            })
            .as_ref()
    }

    pub(super) fn is_tracked(&self, path: &BStr) -> bool {
        self.get().is_some_and(|(index, _)| index.entry_by_path(path).is_some())
    }

    pub(super) fn has_tracked_below(&self, dir: &BStr) -> bool {
        let Some((index, _)) = self.get() else { return false };
        let mut prefix = BString::from(dir);
        prefix.push(b'/');
        index.prefixed_entries(prefix.as_bstr()).is_some_and(|entries| !entries.is_empty())
    }

    /// The blob id the index records for `path`, if its stat still matches the file.
    pub(super) fn blob_if_unchanged(
        &self,
        path: &BStr,
        stat: &FileStat,
        kind: CachedKind,
    ) -> Option<ObjectId> {
        let (index, written) = self.get()?;
        let entry = index.entry_by_path(path)?;
        let mode_matches = match kind {
            CachedKind::File => entry.mode == gix::index::entry::Mode::FILE,
            CachedKind::Executable => entry.mode == gix::index::entry::Mode::FILE_EXECUTABLE,
            CachedKind::Symlink => entry.mode == gix::index::entry::Mode::SYMLINK,
            _ => false,
        };
        let s = &entry.stat;
        let same = mode_matches
            && i64::from(s.mtime.secs) == stat.mtime.secs
            && s.mtime.nsecs == stat.mtime.nanos
            && s.size == stat.size as u32
            && s.ino == stat.ino as u32
            && !stat.is_racy(*written);
        same.then_some(entry.id)
    }
}
