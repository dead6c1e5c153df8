//! The private stat cache: what the last full scan saw, so the next one re-reads only
//! what changed.
//!
//! For every directory it keeps the directory's own metadata, its tree id and its entries
//! (name, kind, metadata, blob id). A directory whose metadata is unchanged has the same
//! names in it (creating, deleting or renaming an entry updates the directory's mtime), so
//! the scan skips its `readdir` and only `lstat`s the entries it already knows. A file whose
//! metadata is unchanged keeps its blob id; a directory whose entries all kept theirs keeps
//! its tree id. The cache lives under `<git common dir>/cairn/` and is only a cache: a
//! missing, stale or corrupt file is ignored and rebuilt, never trusted.
//!
//! Nor are the object ids it names: the objects of a scan no step recorded, or of a session
//! since deleted, are unreachable, and `git gc --prune=now` deletes them. So
//! [`StatCache::load_verified`] checks that each id is still in the repository (one index
//! probe per id) and forgets those that are not: their files are read again and their
//! trees written again, and a step never names a missing object.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use gix::ObjectId;
use gix::bstr::BString;

use super::stat::{FileStat, Timestamp};

const MAGIC: &[u8; 8] = b"CAIRNSC\x01";

/// What a directory entry was when last scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedKind {
    File,
    Executable,
    Symlink,
    Dir,
    /// An ignored directory listed only for the tracked files inside it.
    IgnoredDir,
    /// A nested repository or submodule, stored as a gitlink.
    Gitlink,
    /// An untracked file over the size limit, left out of snapshots.
    TooLarge,
}

#[derive(Debug, Clone)]
pub struct EntryRecord {
    pub name: BString,
    pub kind: CachedKind,
    pub stat: FileStat,
    /// The blob, subtree or gitlink commit id; null for skipped files and empty directories.
    pub oid: ObjectId,
}

impl CachedKind {
    pub fn is_dir(self) -> bool {
        matches!(self, CachedKind::Dir | CachedKind::IgnoredDir)
    }
}

#[derive(Debug, Clone)]
pub struct DirRecord {
    pub stat: FileStat,
    /// Metadata of this directory's `.gitignore`, which decides its entries' fate.
    pub gitignore: Option<FileStat>,
    /// Whether the listing consulted the user's index (an ignored or oversized entry), so
    /// a change to the index means the directory must be listed again.
    pub depends_on_index: bool,
    /// The tree written for this directory; `None` when it holds nothing to snapshot.
    pub tree: Option<ObjectId>,
    /// Entries in git tree order.
    pub entries: Vec<EntryRecord>,
}

#[derive(Debug, Default)]
pub struct StatCache {
    /// When the cache file was written, by the file system's clock (the racy guard).
    pub written: Timestamp,
    /// A hash of everything outside the workspace that decides what is snapshotted
    /// (global ignore rules, the index, the size limit). A mismatch means listings are
    /// re-read, though unchanged files still keep their blob ids.
    pub rules: Option<ObjectId>,
    /// The metadata of the user's index when the cache was written.
    pub index: Option<FileStat>,
    /// Keyed by the directory's path relative to the workspace root (`""` is the root).
    pub dirs: HashMap<BString, DirRecord>,
}

impl StatCache {
    /// Reads the cache at `path`, or returns an empty one if it is missing or unreadable.
    pub fn load(path: &Path) -> StatCache {
        let Ok(bytes) = std::fs::read(path) else { return StatCache::default() };
        let Ok(meta) = std::fs::metadata(path) else { return StatCache::default() };
        let written = FileStat::from_metadata(&meta).mtime;
        match decode(&bytes) {
            Some((rules, index, dirs)) => StatCache { written, rules, index, dirs },
            None => StatCache::default(),
        }
    }

    /// [`StatCache::load`], then [`StatCache::forget_missing`] against `on_disk`.
    pub fn load_verified(path: &Path, on_disk: &dyn gix::objs::Exists) -> StatCache {
        let mut cache = StatCache::load(path);
        cache.forget_missing(on_disk);
        cache
    }

    /// Forgets what the cache knows of every blob and tree that `on_disk` does not hold:
    /// such a file's recorded metadata is cleared (no file has all-zero metadata, so the
    /// next scan reads and hashes it again), and such a directory's tree id dropped (so its
    /// tree is written again). Returns how many ids were forgotten.
    pub fn forget_missing(&mut self, on_disk: &dyn gix::objs::Exists) -> usize {
        let mut forgotten = 0;
        for dir in self.dirs.values_mut() {
            if dir.tree.is_some_and(|tree| !on_disk.exists(&tree)) {
                dir.tree = None;
                forgotten += 1;
            }
            for entry in &mut dir.entries {
                let is_blob = matches!(
                    entry.kind,
                    CachedKind::File | CachedKind::Executable | CachedKind::Symlink
                );
                if is_blob && !entry.oid.is_null() && !on_disk.exists(&entry.oid) {
                    entry.stat = FileStat::default();
                    forgotten += 1;
                }
            }
        }
        forgotten
    }

    /// Writes the cache atomically (temporary file, then rename), streaming it: at 100,000
    /// files the encoded cache is about 9 MiB that need not sit in memory at once.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let file = tempfile::Builder::new().prefix(&crate::git::temp::prefix()).tempfile_in(dir)?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 16, file);
        encode(&mut writer, self.rules, self.index, &self.dirs)?;
        let file = writer.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        file.persist(path).map_err(|err| err.error)?;
        Ok(())
    }
}

fn encode(
    writer: &mut impl Write,
    rules: Option<ObjectId>,
    index: Option<FileStat>,
    dirs: &HashMap<BString, DirRecord>,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(MAGIC);
    put_oid(&mut out, rules);
    put_stat_opt(&mut out, index.as_ref());
    out.extend_from_slice(&(dirs.len() as u64).to_le_bytes());
    for (path, dir) in dirs {
        put_bytes(&mut out, path);
        put_stat(&mut out, &dir.stat);
        put_stat_opt(&mut out, dir.gitignore.as_ref());
        out.push(u8::from(dir.depends_on_index));
        put_oid(&mut out, dir.tree);
        out.extend_from_slice(&(dir.entries.len() as u64).to_le_bytes());
        for entry in &dir.entries {
            put_bytes(&mut out, &entry.name);
            out.push(kind_code(entry.kind));
            put_stat(&mut out, &entry.stat);
            out.extend_from_slice(entry.oid.as_bytes());
        }
        writer.write_all(&out)?;
        out.clear();
    }
    writer.write_all(&out)
}

type Decoded = (Option<ObjectId>, Option<FileStat>, HashMap<BString, DirRecord>);

fn decode(bytes: &[u8]) -> Option<Decoded> {
    let mut input = Reader { bytes, pos: 0 };
    if input.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let rules = input.oid_opt()?;
    let index = input.stat_opt()?;
    let dir_count = input.u64()? as usize;
    let mut dirs = HashMap::with_capacity(dir_count.min(1 << 20));
    for _ in 0..dir_count {
        let path = BString::from(input.bytes()?);
        let stat = input.stat()?;
        let gitignore = input.stat_opt()?;
        let depends_on_index = match input.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let tree = input.oid_opt()?;
        let entry_count = input.u64()? as usize;
        let mut entries = Vec::with_capacity(entry_count.min(1 << 20));
        for _ in 0..entry_count {
            let name = BString::from(input.bytes()?);
            let kind = kind_from_code(input.u8()?)?;
            let stat = input.stat()?;
            let oid = ObjectId::try_from(input.take(20)?).ok()?;
            entries.push(EntryRecord { name, kind, stat, oid });
        }
        dirs.insert(path, DirRecord { stat, gitignore, depends_on_index, tree, entries });
    }
    (input.pos == bytes.len()).then_some((rules, index, dirs))
}

fn kind_code(kind: CachedKind) -> u8 {
    match kind {
        CachedKind::File => 0,
        CachedKind::Executable => 1,
        CachedKind::Symlink => 2,
        CachedKind::Dir => 3,
        CachedKind::Gitlink => 4,
        CachedKind::TooLarge => 5,
        CachedKind::IgnoredDir => 6,
    }
}

fn kind_from_code(code: u8) -> Option<CachedKind> {
    Some(match code {
        0 => CachedKind::File,
        1 => CachedKind::Executable,
        2 => CachedKind::Symlink,
        3 => CachedKind::Dir,
        4 => CachedKind::Gitlink,
        5 => CachedKind::TooLarge,
        6 => CachedKind::IgnoredDir,
        _ => return None,
    })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_oid(out: &mut Vec<u8>, oid: Option<ObjectId>) {
    match oid {
        Some(oid) => {
            out.push(1);
            out.extend_from_slice(oid.as_bytes());
        }
        None => out.push(0),
    }
}

fn put_stat_opt(out: &mut Vec<u8>, stat: Option<&FileStat>) {
    match stat {
        Some(stat) => {
            out.push(1);
            put_stat(out, stat);
        }
        None => out.push(0),
    }
}

fn put_stat(out: &mut Vec<u8>, stat: &FileStat) {
    for time in [stat.mtime, stat.ctime] {
        out.extend_from_slice(&time.secs.to_le_bytes());
        out.extend_from_slice(&time.nanos.to_le_bytes());
    }
    out.extend_from_slice(&stat.ino.to_le_bytes());
    out.extend_from_slice(&stat.dev.to_le_bytes());
    out.extend_from_slice(&stat.size.to_le_bytes());
    out.extend_from_slice(&stat.mode.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(slice)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn oid_opt(&mut self) -> Option<Option<ObjectId>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(ObjectId::try_from(self.take(20)?).ok()?)),
            _ => None,
        }
    }

    fn stat_opt(&mut self) -> Option<Option<FileStat>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.stat()?)),
            _ => None,
        }
    }

    fn stat(&mut self) -> Option<FileStat> {
        let mtime = Timestamp { secs: self.i64()?, nanos: self.u32()? };
        let ctime = Timestamp { secs: self.i64()?, nanos: self.u32()? };
        Some(FileStat {
            mtime,
            ctime,
            ino: self.u64()?,
            dev: self.u64()?,
            size: self.u64()?,
            mode: self.u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HashMap<BString, DirRecord> {
        let stat = FileStat {
            mtime: Timestamp { secs: 10, nanos: 5 },
            ctime: Timestamp { secs: 11, nanos: 6 },
            ino: 7,
            dev: 8,
            size: 9,
            mode: 0o100755,
        };
        let oid = ObjectId::empty_blob(gix::hash::Kind::Sha1);
        let entries = vec![
            EntryRecord { name: "a b\n".into(), kind: CachedKind::Executable, stat, oid },
            EntryRecord { name: b"\xff".as_slice().into(), kind: CachedKind::Dir, stat, oid },
        ];
        let mut dirs = HashMap::new();
        dirs.insert(
            BString::from("src"),
            DirRecord {
                stat,
                gitignore: Some(stat),
                depends_on_index: true,
                tree: Some(oid),
                entries,
            },
        );
        dirs.insert(
            BString::from(""),
            DirRecord {
                stat,
                gitignore: None,
                depends_on_index: false,
                tree: None,
                entries: vec![],
            },
        );
        dirs
    }

    fn encoded(
        rules: Option<ObjectId>,
        index: Option<FileStat>,
        dirs: &HashMap<BString, DirRecord>,
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode(&mut bytes, rules, index, dirs).expect("writing to memory");
        bytes
    }

    #[test]
    fn round_trips_every_field() {
        let dirs = sample();
        let rules = Some(ObjectId::empty_tree(gix::hash::Kind::Sha1));
        let index = Some(dirs[&BString::from("src")].stat);
        let (decoded_rules, decoded_index, decoded) =
            decode(&encoded(rules, index, &dirs)).expect("decodes");
        assert_eq!(decoded_rules, rules);
        assert_eq!(decoded_index, index);
        assert_eq!(decoded.len(), 2);
        let src = &decoded[&BString::from("src")];
        assert_eq!(src.entries.len(), 2);
        assert_eq!(src.entries[0].name, "a b\n");
        assert_eq!(src.entries[0].kind, CachedKind::Executable);
        assert_eq!(src.entries[1].name, b"\xff".as_slice());
        assert_eq!(src.stat, dirs[&BString::from("src")].stat);
        assert_eq!(src.gitignore, Some(src.stat));
        assert!(src.depends_on_index);
        assert!(decoded[&BString::from("")].tree.is_none());
    }

    #[test]
    fn rejects_truncated_or_foreign_bytes() {
        let bytes = encoded(None, None, &sample());
        for cut in [0, 3, MAGIC.len(), bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_none(), "accepted a cache cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).is_none(), "accepted trailing garbage");
        assert!(decode(b"not a cache at all").is_none());
    }
}
