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
//! The cache is a base file and a journal beside it (`stat-cache.log`). The base is read
//! in place: it is mapped, checked once from end to end, and each directory's record is
//! decoded only when the scan reaches it, so a scan holds no copy of the tree of names. A
//! scan that changed a few directories appends just their records to the journal, as one
//! checksummed segment per scan (later records win); only when the journal outgrows an
//! eighth of the base, or the rules or the index changed, is the whole cache written anew,
//! to a temporary file renamed over the base, carrying each unchanged record over as the
//! bytes it was read as. A torn or foreign segment is ignored, and segments name the base
//! they extend, so those of a replaced base are ignored too. Each record keeps the time
//! its scan began: a file whose mtime is not older is "racy" and read again (see
//! [`super::stat`]).
//!
//! Nor are the object ids it names trusted: the objects of a scan no step recorded, or of a
//! session since deleted, are unreachable, and `git gc --prune=now` deletes them. The scan
//! checks that each directory's tree id is still in the repository before reusing it (one
//! index probe per directory). A tree that is there vouches for every object below it, the
//! rule git's own cache-tree relies on and git's pruning keeps (an object kept because it is
//! reachable or recent keeps everything it reaches). Where a directory's tree is gone, each
//! blob id of its entries is probed instead, and files whose blob is gone are read again.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice};

use super::stat::{FileStat, Timestamp};

const MAGIC: &[u8; 8] = b"CAIRNSC\x03";
const SEGMENT_MAGIC: &[u8; 4] = b"CSJ\x01";
/// Magic, generation, time, length of the records.
const SEGMENT_HEADER_BYTES: usize = 4 + 8 + 12 + 4;
/// A journal larger than this is not read (nor appended to: the next scan rewrites).
const MAX_JOURNAL_BYTES: u64 = 64 << 20;
/// The journal may grow to this share of the base (1/8), or this many bytes, whichever is
/// larger, before the next scan writes the cache anew.
const JOURNAL_SHARE: u64 = 8;
const JOURNAL_FLOOR_BYTES: u64 = 256 << 10;

/// Encoded size of a [`FileStat`] in the header and a directory's own fields (an entry's
/// is compact, see [`put_entry`]).
const STAT_BYTES: usize = 52;
/// In an entry's first byte, below its kind code (the low four bits): its ctime is its
/// mtime (a file last changed by a write), and its device is its directory's. Together
/// with variable-length numbers these make an entry about 47 bytes instead of 83, and the
/// file a scan maps 10.8 MB rather than 18.4 at 200,000 files.
const KIND_BITS: u8 = 0x0f;
const CTIME_IS_MTIME: u8 = 0x10;
const DEV_IS_DIRS: u8 = 0x20;
/// Smaller caches are read into memory rather than mapped.
const MAP_AT_LEAST: u64 = 64 << 10;

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
    /// An ignored file, or directory, with no tracked path at or below it when listed:
    /// left out of snapshots, and kept so that listing the directory again need not ask
    /// the user's index while it is unchanged.
    Ignored,
}

impl CachedKind {
    pub fn is_dir(self) -> bool {
        matches!(self, CachedKind::Dir | CachedKind::IgnoredDir)
    }

    /// Whether the entry's id names a blob (as opposed to a tree or a gitlink commit).
    pub fn is_blob(self) -> bool {
        matches!(self, CachedKind::File | CachedKind::Executable | CachedKind::Symlink)
    }
}

/// An entry as a scan records it for the next one.
#[derive(Debug, Clone)]
pub struct EntryRecord {
    pub name: BString,
    pub kind: CachedKind,
    pub stat: FileStat,
    /// The blob, subtree or gitlink commit id; null for skipped files and empty directories.
    pub oid: ObjectId,
}

/// An entry as the cache holds it, borrowed from the cache file.
#[derive(Debug, Clone, Copy)]
pub struct CachedEntry<'a> {
    pub name: &'a BStr,
    pub kind: CachedKind,
    pub stat: FileStat,
    pub oid: ObjectId,
}

impl CachedEntry<'_> {
    pub fn to_record(self) -> EntryRecord {
        EntryRecord { name: self.name.to_owned(), kind: self.kind, stat: self.stat, oid: self.oid }
    }
}

/// What the last scan knew of one directory, borrowed from the cache file.
#[derive(Debug, Clone, Copy)]
pub struct DirRecord<'a> {
    /// When the scan that wrote this record began (the racy guard).
    pub written: Timestamp,
    pub stat: FileStat,
    /// Metadata of this directory's `.gitignore`, which decides its entries' fate.
    pub gitignore: Option<FileStat>,
    /// Whether the listing consulted the user's index (an ignored or oversized entry), so
    /// a change to the index means the directory must be listed again.
    pub depends_on_index: bool,
    /// The tree written for this directory; `None` when it holds nothing to snapshot.
    pub tree: Option<ObjectId>,
    entry_count: u32,
    /// The encoded entries, in git tree order.
    entries: &'a [u8],
    /// The whole encoded record, path included, for [`CacheWriter::copy_record`].
    raw: &'a [u8],
}

impl<'a> DirRecord<'a> {
    /// The entries in git tree order.
    pub fn entries(&self) -> CachedEntries<'a> {
        CachedEntries {
            input: Reader { bytes: self.entries, pos: 0 },
            dir_dev: self.stat.dev,
            left: self.entry_count,
        }
    }

    pub fn entry_count(&self) -> usize {
        self.entry_count as usize
    }
}

/// The entries of a [`DirRecord`], decoded one at a time.
pub struct CachedEntries<'a> {
    input: Reader<'a>,
    /// The directory's device, which an entry's stat names only when it differs.
    dir_dev: u64,
    left: u32,
}

impl<'a> Iterator for CachedEntries<'a> {
    type Item = CachedEntry<'a>;

    fn next(&mut self) -> Option<CachedEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Every record was checked when the cache was loaded, so this only fails on a
        // cache that was not: the listing then ends early, which costs a re-read.
        self.input.entry(self.dir_dev)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

/// The bytes of a cache file.
enum Bytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Read(bytes) => bytes,
        }
    }
}

/// Where a directory's record lies in the cache file.
#[derive(Debug, Clone)]
struct RecordSpan {
    in_journal: bool,
    written: Timestamp,
    raw: Range<usize>,
    body: Range<usize>,
}

#[derive(Default)]
pub struct StatCache {
    /// A hash of everything outside the workspace that decides what is snapshotted
    /// (global ignore rules, the index, the size limit). A mismatch means listings are
    /// re-read, though unchanged files still keep their blob ids.
    pub rules: Option<ObjectId>,
    /// The metadata of the user's index when the cache was written.
    pub index: Option<FileStat>,
    /// Names the base, so that a journal segment extends only the base it was written for.
    generation: u64,
    base: Option<Bytes>,
    journal: Vec<u8>,
    /// The journal holds bytes past its last whole segment (a torn append, or damage):
    /// segments appended after them could not be read, so the next cache is a new base.
    journal_damaged: bool,
    /// Keyed by the directory's path relative to the workspace root (`""` is the root).
    dirs: HashMap<BString, RecordSpan>,
}

impl StatCache {
    /// Reads the cache at `path` (and its journal), or returns an empty one if the base is
    /// missing, unreadable or not wholly well-formed. Of the journal, the segments that
    /// are whole and extend this base are used.
    pub fn load(path: &Path) -> StatCache {
        let Some(base) = read_base(path) else { return StatCache::default() };
        let Some(header) = index_base(&base) else { return StatCache::default() };
        let mut cache = StatCache {
            rules: header.rules,
            index: header.index,
            generation: header.generation,
            base: Some(base),
            journal: Vec::new(),
            journal_damaged: false,
            dirs: header.dirs,
        };
        let journal = journal_path(path);
        if std::fs::symlink_metadata(&journal).is_ok_and(|m| m.len() <= MAX_JOURNAL_BYTES)
            && let Ok(bytes) = std::fs::read(&journal)
        {
            let (records, whole) = index_journal(&bytes, cache.generation);
            for (path, span) in records {
                cache.dirs.insert(path, span);
            }
            cache.journal = bytes;
            cache.journal_damaged = !whole;
        }
        cache
    }

    /// The record of the directory at `rel` (`""` is the root).
    pub fn dir(&self, rel: &[u8]) -> Option<DirRecord<'_>> {
        let span = self.dirs.get(rel.as_bstr())?;
        let bytes = if span.in_journal { &self.journal[..] } else { self.base.as_deref()? };
        record(span.written, &bytes[span.raw.clone()], &bytes[span.body.clone()])
    }

    /// Whether the next cache can extend this one with a journal segment: there is a base,
    /// written under the same rules and index, and the journal has room.
    fn extendable(&self, rules: Option<ObjectId>, index: Option<FileStat>) -> bool {
        let base_len = self.base.as_deref().map_or(0, <[u8]>::len) as u64;
        self.base.is_some()
            && !self.journal_damaged
            && self.rules == rules
            && self.index == index
            && (self.journal.len() as u64) < (base_len / JOURNAL_SHARE).max(JOURNAL_FLOOR_BYTES)
    }
}

/// The paths of the directories the cache at `path` holds (in no order, possibly twice),
/// read as a stream of record headers without mapping or checking the records: a list of
/// what to watch needs neither, and mapping would cost the process the cache's size in
/// memory. Paths that are not plain relative ones are left out.
pub fn list_dirs(path: &Path) -> Vec<BString> {
    let mut dirs = Vec::new();
    let Ok(file) = std::fs::File::open(path) else { return dirs };
    let Some(records_end) = file.metadata().ok().and_then(|m| m.len().checked_sub(8)) else {
        return dirs;
    };
    let mut input = std::io::BufReader::with_capacity(64 << 10, file);
    let Some(generation) = list_base_dirs(&mut input, records_end, &mut dirs) else {
        return dirs;
    };
    let journal = journal_path(path);
    if std::fs::symlink_metadata(&journal).is_ok_and(|m| m.len() <= MAX_JOURNAL_BYTES)
        && let Ok(bytes) = std::fs::read(&journal)
    {
        dirs.extend(index_journal(&bytes, generation).0.into_iter().map(|(path, _)| path));
    }
    dirs.retain(|dir| is_plain_relative(dir));
    dirs
}

/// Reads the base's header and the path of each record into `dirs`, skipping the bodies;
/// returns the base's generation, or `None` where the bytes are no cache.
fn list_base_dirs(
    input: &mut std::io::BufReader<std::fs::File>,
    records_end: u64,
    dirs: &mut Vec<BString>,
) -> Option<u64> {
    use std::io::Read as _;
    let mut fixed = [0u8; 8 + 8 + 12];
    input.read_exact(&mut fixed).ok()?;
    if &fixed[..8] != MAGIC {
        return None;
    }
    let generation = u64::from_le_bytes(fixed[8..16].try_into().ok()?);
    let mut pos = fixed.len() as u64;
    for present_len in [20, STAT_BYTES] {
        let mut flag = [0u8; 1];
        input.read_exact(&mut flag).ok()?;
        pos += 1;
        if flag[0] == 1 {
            input.seek_relative(present_len as i64).ok()?;
            pos += present_len as u64;
        }
    }
    let mut len = [0u8; 4];
    while pos < records_end {
        input.read_exact(&mut len).ok()?;
        let path_len = u32::from_le_bytes(len) as usize;
        // No directory path is this long; bytes that say so are no cache.
        if path_len > 1 << 16 {
            return Some(generation);
        }
        let mut path = vec![0; path_len];
        input.read_exact(&mut path).ok()?;
        input.read_exact(&mut len).ok()?;
        let body_len = u32::from_le_bytes(len);
        input.seek_relative(i64::from(body_len)).ok()?;
        pos += 8 + path_len as u64 + u64::from(body_len);
        dirs.push(BString::from(path));
    }
    Some(generation)
}

/// Whether `path` is a relative path of plain components (no `..`, no root, no empty one).
fn is_plain_relative(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').all(|part| !part.is_empty() && part != b"." && part != b"..")
}

fn read_base(path: &Path) -> Option<Bytes> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len >= MAP_AT_LEAST {
        // SAFETY: a cache file is only ever replaced by renaming a new file over it,
        // never written in place, so the mapped file does not change while mapped.
        // (One that is truncated under us by another program faults the process, as
        // git's and gix's mapped packs would.)
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        Some(Bytes::Mapped(map))
    } else {
        let mut bytes = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut &file, &mut bytes).ok()?;
        Some(Bytes::Read(bytes))
    }
}

/// The journal of the cache at `path`.
fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".log");
    path.with_file_name(name)
}

struct BaseHeader {
    generation: u64,
    rules: Option<ObjectId>,
    index: Option<FileStat>,
    dirs: HashMap<BString, RecordSpan>,
}

/// Reads the base's header, then every record once, checking each from end to end.
fn index_base(bytes: &[u8]) -> Option<BaseHeader> {
    let mut input = Reader { bytes, pos: 0 };
    if input.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let generation = input.u64()?;
    let written = input.timestamp()?;
    let rules = input.oid_opt()?;
    let index = input.stat_opt()?;
    let trailer = bytes.len().checked_sub(8)?;
    let mut records = Reader { bytes: &bytes[..trailer], pos: input.pos };
    let mut dirs = HashMap::new();
    while records.pos < trailer {
        let (path, span) = next_record(&mut records, false, written)?;
        if dirs.insert(path, span).is_some() {
            return None;
        }
    }
    input.pos = trailer;
    let count = input.u64()?;
    (count == dirs.len() as u64).then_some(BaseHeader { generation, rules, index, dirs })
}

/// The records of the journal's whole segments that extend the base `generation`, in
/// order (a later one replaces an earlier one of the same directory), and whether the
/// journal was whole segments from end to end.
fn index_journal(bytes: &[u8], generation: u64) -> (Vec<(BString, RecordSpan)>, bool) {
    let mut out = Vec::new();
    let mut input = Reader { bytes, pos: 0 };
    while input.pos < bytes.len() {
        let start = input.pos;
        let Some(segment) = (|| {
            if input.take(SEGMENT_MAGIC.len())? != SEGMENT_MAGIC {
                return None;
            }
            let segment_generation = input.u64()?;
            let written = input.timestamp()?;
            let len = input.u32()? as usize;
            let records_start = input.pos;
            input.take(len)?;
            let checksum = input.u32()?;
            let covered = &bytes[start..records_start + len];
            (crc32fast::hash(covered) == checksum).then_some((
                segment_generation,
                written,
                records_start..records_start + len,
            ))
        })() else {
            // A torn last segment (a crash mid-append) or bytes that are no journal.
            return (out, false);
        };
        let (segment_generation, written, range) = segment;
        if segment_generation != generation {
            continue;
        }
        let mut records = Reader { bytes: &bytes[..range.end], pos: range.start };
        let mut parsed = Vec::new();
        while records.pos < range.end {
            match next_record(&mut records, true, written) {
                Some(record) => parsed.push(record),
                None => return (out, false),
            }
        }
        out.extend(parsed);
    }
    (out, true)
}

/// Reads one record (path, body length, body) and checks its body from end to end.
fn next_record(
    input: &mut Reader<'_>,
    in_journal: bool,
    written: Timestamp,
) -> Option<(BString, RecordSpan)> {
    let start = input.pos;
    let path = input.bytes()?;
    let body_len = input.u32()? as usize;
    let body_start = input.pos;
    input.take(body_len)?;
    let span =
        RecordSpan { in_journal, written, raw: start..input.pos, body: body_start..input.pos };
    let record = record(written, &input.bytes[span.raw.clone()], &input.bytes[span.body.clone()])?;
    let mut entries = record.entries();
    for _ in 0..record.entry_count {
        entries.next()?;
    }
    (entries.input.pos == record.entries.len()).then(|| (BString::from(path), span))
}

/// The record whose encoded body is `body` (within `raw`, the whole record).
fn record<'a>(written: Timestamp, raw: &'a [u8], body: &'a [u8]) -> Option<DirRecord<'a>> {
    let mut input = Reader { bytes: body, pos: 0 };
    let stat = input.stat()?;
    let gitignore = input.stat_opt()?;
    let depends_on_index = match input.u8()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let tree = input.oid_opt()?;
    let entry_count = input.u32()?;
    let entries = &body[input.pos..];
    Some(DirRecord { written, stat, gitignore, depends_on_index, tree, entry_count, entries, raw })
}

/// Writes the next cache while a scan builds its trees, a directory at a time: as a
/// journal segment of the records that changed when the cache read can be extended, else
/// as a new base streamed to a temporary file. Write errors are remembered, not raised: a
/// cache that cannot be written only costs speed next time.
pub struct CacheWriter<'c> {
    path: PathBuf,
    /// When the scan began, by the file system's clock (see [`scan_clock`]).
    written: Timestamp,
    rules: Option<ObjectId>,
    index: Option<FileStat>,
    /// The cache being extended, while the records that changed still fit its journal.
    extending: Option<&'c StatCache>,
    /// Records carried over unchanged, while extending: a new base needs them.
    carried: Vec<&'c [u8]>,
    /// Records that changed, while extending.
    changed: Vec<u8>,
    /// A new base being written, once not extending.
    base: Option<BufWriter<tempfile::NamedTempFile>>,
    count: u64,
    failed: bool,
    scratch: Vec<u8>,
}

impl<'c> CacheWriter<'c> {
    /// Starts the cache that will follow `old`, the one at `path`; `written` is when the
    /// scan began.
    pub fn create(
        path: &Path,
        old: &'c StatCache,
        written: Timestamp,
        rules: Option<ObjectId>,
        index: Option<FileStat>,
    ) -> CacheWriter<'c> {
        let mut writer = CacheWriter {
            path: path.to_owned(),
            written,
            rules,
            index,
            extending: old.extendable(rules, index).then_some(old),
            carried: Vec::new(),
            changed: Vec::new(),
            base: None,
            count: 0,
            failed: false,
            scratch: Vec::with_capacity(4096),
        };
        if writer.extending.is_none() {
            writer.start_base();
        }
        writer
    }

    /// Carries a directory's record over from the old cache unchanged.
    pub fn copy_record(&mut self, record: &DirRecord<'c>) {
        self.count += 1;
        match self.extending {
            Some(_) => self.carried.push(record.raw),
            None => self.write_base(record.raw),
        }
    }

    /// Writes a directory's record; `entries` in git tree order.
    pub fn write_dir(&mut self, rel: &[u8], head: &DirHead, entries: &[EntryRecord]) {
        let mut record = std::mem::take(&mut self.scratch);
        record.clear();
        let encoded = encode_record(&mut record, rel, head, entries);
        self.count += 1;
        match (encoded, self.extending) {
            (None, _) => self.failed = true,
            (Some(()), Some(old)) => {
                self.changed.extend_from_slice(&record);
                if (old.journal.len() + self.changed.len()) as u64
                    >= (old.base.as_deref().map_or(0, <[u8]>::len) as u64 / JOURNAL_SHARE)
                        .max(JOURNAL_FLOOR_BYTES)
                {
                    self.start_base();
                }
            }
            (Some(()), None) => self.write_base(&record),
        }
        self.scratch = record;
    }

    /// Stops extending: a new base is written, starting with what was collected.
    fn start_base(&mut self) {
        self.extending = None;
        let created = (|| {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let file =
                tempfile::Builder::new().prefix(&crate::git::temp::prefix()).tempfile_in(dir)?;
            let mut out = BufWriter::with_capacity(1 << 16, file);
            let mut header = Vec::with_capacity(128);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&fastrand::u64(..).to_le_bytes());
            put_timestamp(&mut header, self.written);
            put_oid(&mut header, self.rules);
            put_stat_opt(&mut header, self.index.as_ref());
            out.write_all(&header)?;
            for record in std::mem::take(&mut self.carried) {
                out.write_all(record)?;
            }
            out.write_all(&std::mem::take(&mut self.changed))?;
            std::io::Result::Ok(out)
        })();
        match created {
            Ok(out) => self.base = Some(out),
            Err(_) => self.failed = true,
        }
    }

    fn write_base(&mut self, bytes: &[u8]) {
        if let Some(out) = &mut self.base
            && out.write_all(bytes).is_err()
        {
            self.failed = true;
        }
    }

    /// Completes the cache; [`PendingCache::save`] then puts it in place. `None` when
    /// there is nothing to write (nothing changed) or it could not be written.
    pub fn finish(self) -> Option<PendingCache> {
        if self.failed {
            return None;
        }
        let journal = journal_path(&self.path);
        if let Some(old) = self.extending {
            if self.changed.is_empty() {
                return None;
            }
            let mut segment = Vec::with_capacity(SEGMENT_HEADER_BYTES + self.changed.len() + 4);
            segment.extend_from_slice(SEGMENT_MAGIC);
            segment.extend_from_slice(&old.generation.to_le_bytes());
            put_timestamp(&mut segment, self.written);
            segment.extend_from_slice(&u32::try_from(self.changed.len()).ok()?.to_le_bytes());
            segment.extend_from_slice(&self.changed);
            let checksum = crc32fast::hash(&segment);
            segment.extend_from_slice(&checksum.to_le_bytes());
            return Some(PendingCache::Append { journal, segment });
        }
        let mut out = self.base?;
        out.write_all(&self.count.to_le_bytes()).ok()?;
        let file = out.into_inner().ok()?;
        Some(PendingCache::Replace { file, path: self.path, journal })
    }
}

/// The time a scan begins, by the clock the kernel stamps files with (the coarse real
/// time clock, behind the precise one by up to a tick): a file changed at or after it has
/// an mtime no older, and so is racy.
pub fn scan_clock() -> Timestamp {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to fill in.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } == 0;
    if ok {
        Timestamp { secs: now.tv_sec, nanos: now.tv_nsec as u32 }
    } else {
        // Without that clock, nothing is vouched for by time: every entry is racy.
        Timestamp::default()
    }
}

/// A complete next cache, not yet in place: it is saved only once the objects it names
/// are persisted.
pub enum PendingCache {
    /// A segment for the journal of the base it extends.
    Append { journal: PathBuf, segment: Vec<u8> },
    /// A new base, with the journal of the old one to remove.
    Replace { file: tempfile::NamedTempFile, path: PathBuf, journal: PathBuf },
}

impl PendingCache {
    pub fn save(self) -> std::io::Result<()> {
        match self {
            PendingCache::Append { journal, segment } => {
                // One `write` of the whole segment: appends of other processes cannot
                // interleave with it, and a torn one fails its checksum.
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(&journal)?;
                file.write_all(&segment)
            }
            PendingCache::Replace { file, path, journal } => {
                // The old journal first: a crash between leaves the old base alone, which
                // is stale but true.
                match std::fs::remove_file(&journal) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                    _ => {}
                }
                file.persist(&path).map_err(|err| err.error)?;
                Ok(())
            }
        }
    }
}

/// A directory's own fields in its record (see [`DirRecord`]).
pub struct DirHead {
    pub stat: FileStat,
    pub gitignore: Option<FileStat>,
    pub depends_on_index: bool,
    pub tree: Option<ObjectId>,
}

/// Encodes one directory's record (path, body length, body) onto `out`; `None` when a
/// length does not fit the format.
fn encode_record(
    out: &mut Vec<u8>,
    rel: &[u8],
    head: &DirHead,
    entries: &[EntryRecord],
) -> Option<()> {
    out.extend_from_slice(&u32::try_from(rel.len()).ok()?.to_le_bytes());
    out.extend_from_slice(rel);
    let body_len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let body_start = out.len();
    put_stat(out, &head.stat);
    put_stat_opt(out, head.gitignore.as_ref());
    out.push(u8::from(head.depends_on_index));
    put_oid(out, head.tree);
    out.extend_from_slice(&u32::try_from(entries.len()).ok()?.to_le_bytes());
    for entry in entries {
        put_entry(out, entry, head.stat.dev);
    }
    let body_len = u32::try_from(out.len() - body_start).ok()?;
    out[body_len_at..body_start].copy_from_slice(&body_len.to_le_bytes());
    Some(())
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
        CachedKind::Ignored => 7,
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
        7 => CachedKind::Ignored,
        _ => return None,
    })
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

fn put_timestamp(out: &mut Vec<u8>, time: Timestamp) {
    out.extend_from_slice(&time.secs.to_le_bytes());
    out.extend_from_slice(&time.nanos.to_le_bytes());
}

/// An entry: its name's length and the name, a byte of kind and flags, its stat in
/// variable-length numbers (ctime and device only where the flags do not stand for them),
/// and its object id.
fn put_entry(out: &mut Vec<u8>, entry: &EntryRecord, dir_dev: u64) {
    let stat = &entry.stat;
    put_varint(out, entry.name.len() as u64);
    out.extend_from_slice(&entry.name);
    let ctime_is_mtime = stat.ctime == stat.mtime;
    let dev_is_dirs = stat.dev == dir_dev;
    let mut first = kind_code(entry.kind);
    if ctime_is_mtime {
        first |= CTIME_IS_MTIME;
    }
    if dev_is_dirs {
        first |= DEV_IS_DIRS;
    }
    out.push(first);
    put_varint(out, zigzag(stat.mtime.secs));
    put_varint(out, u64::from(stat.mtime.nanos));
    if !ctime_is_mtime {
        put_varint(out, zigzag(stat.ctime.secs));
        put_varint(out, u64::from(stat.ctime.nanos));
    }
    if !dev_is_dirs {
        put_varint(out, stat.dev);
    }
    put_varint(out, stat.ino);
    put_varint(out, stat.size);
    put_varint(out, u64::from(stat.mode));
    out.extend_from_slice(entry.oid.as_bytes());
}

/// LEB128: seven bits a byte, low bits first, the high bit set on all but the last.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Maps signed to unsigned so that numbers near zero either side stay short.
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_stat(out: &mut Vec<u8>, stat: &FileStat) {
    put_timestamp(out, stat.mtime);
    put_timestamp(out, stat.ctime);
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

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn oid(&mut self) -> Option<ObjectId> {
        Some(ObjectId::from(self.array::<20>()?))
    }

    fn oid_opt(&mut self) -> Option<Option<ObjectId>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.oid()?)),
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

    fn timestamp(&mut self) -> Option<Timestamp> {
        Some(Timestamp { secs: self.i64()?, nanos: self.u32()? })
    }

    fn stat(&mut self) -> Option<FileStat> {
        let mtime = self.timestamp()?;
        let ctime = self.timestamp()?;
        Some(FileStat {
            mtime,
            ctime,
            ino: self.u64()?,
            dev: self.u64()?,
            size: self.u64()?,
            mode: self.u32()?,
        })
    }

    /// A number [`put_varint`] wrote; `None` past the end or beyond 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn varint_u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    fn varint_timestamp(&mut self) -> Option<Timestamp> {
        Some(Timestamp { secs: unzigzag(self.varint()?), nanos: self.varint_u32()? })
    }

    /// An entry as [`put_entry`] wrote it, in a directory on device `dir_dev`.
    fn entry(&mut self, dir_dev: u64) -> Option<CachedEntry<'a>> {
        let name_len = usize::try_from(self.varint()?).ok()?;
        let name = self.take(name_len)?.as_bstr();
        let first = self.u8()?;
        if first & !(KIND_BITS | CTIME_IS_MTIME | DEV_IS_DIRS) != 0 {
            return None;
        }
        let kind = kind_from_code(first & KIND_BITS)?;
        let mtime = self.varint_timestamp()?;
        let ctime = if first & CTIME_IS_MTIME != 0 { mtime } else { self.varint_timestamp()? };
        let dev = if first & DEV_IS_DIRS != 0 { dir_dev } else { self.varint()? };
        let stat = FileStat {
            mtime,
            ctime,
            dev,
            ino: self.varint()?,
            size: self.varint()?,
            mode: self.varint_u32()?,
        };
        let oid = self.oid()?;
        Some(CachedEntry { name, kind, stat, oid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64) -> FileStat {
        FileStat {
            mtime: Timestamp { secs: 10, nanos: 5 },
            ctime: Timestamp { secs: 11, nanos: 6 },
            ino,
            dev: 8,
            size: 9,
            mode: 0o100755,
        }
    }

    fn blob() -> ObjectId {
        ObjectId::empty_blob(gix::hash::Kind::Sha1)
    }

    fn plain_head() -> DirHead {
        DirHead { stat: stat(5), gitignore: None, depends_on_index: false, tree: None }
    }

    const WRITTEN: Timestamp = Timestamp { secs: 100, nanos: 1 };

    fn rules() -> Option<ObjectId> {
        Some(ObjectId::empty_tree(gix::hash::Kind::Sha1))
    }

    /// Writes `src` (one file whose inode is `ino`) and the root, carrying records over
    /// from `old` where it has them and `ino` is unchanged.
    fn scan(path: &Path, ino: u64, written: Timestamp) -> Option<PendingCache> {
        let old = StatCache::load(path);
        let mut writer = CacheWriter::create(path, &old, written, rules(), Some(stat(1)));
        let unchanged =
            old.dir(b"src").filter(|src| src.entries().next().is_some_and(|e| e.stat.ino == ino));
        match unchanged {
            Some(src) => writer.copy_record(&src),
            None => {
                let entries = vec![
                    EntryRecord {
                        name: "a b\n".into(),
                        kind: CachedKind::Executable,
                        stat: stat(ino),
                        oid: blob(),
                    },
                    EntryRecord {
                        name: b"\xff".as_slice().into(),
                        kind: CachedKind::Dir,
                        stat: stat(2),
                        oid: blob(),
                    },
                ];
                let head = DirHead {
                    stat: stat(3),
                    gitignore: Some(stat(4)),
                    depends_on_index: true,
                    tree: Some(blob()),
                };
                writer.write_dir(b"src", &head, &entries);
            }
        }
        match old.dir(b"") {
            Some(root) => writer.copy_record(&root),
            None => writer.write_dir(b"", &plain_head(), &[]),
        }
        writer.finish()
    }

    fn file_ino(cache: &StatCache) -> u64 {
        let src = cache.dir(b"src").expect("src");
        src.entries().next().expect("an entry").stat.ino
    }

    #[test]
    fn round_trips_every_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        scan(&path, 7, WRITTEN).expect("a first cache").save().expect("saved");
        let cache = StatCache::load(&path);
        assert_eq!(cache.rules, rules());
        assert_eq!(cache.index, Some(stat(1)));
        assert_eq!(cache.dirs.len(), 2);
        let src = cache.dir(b"src").expect("src");
        let entries: Vec<_> = src.entries().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "a b\n");
        assert_eq!(entries[0].kind, CachedKind::Executable);
        assert_eq!(entries[0].stat, stat(7));
        assert_eq!(entries[1].name, b"\xff".as_slice());
        assert_eq!(entries[1].kind, CachedKind::Dir);
        assert_eq!((src.stat, src.gitignore, src.written), (stat(3), Some(stat(4)), WRITTEN));
        assert!(src.depends_on_index);
        assert_eq!(src.tree, Some(blob()));
        let root = cache.dir(b"").expect("root");
        assert!(root.tree.is_none());
        assert_eq!(root.entries().count(), 0);
    }

    #[test]
    fn entries_round_trip_at_the_edges_of_the_compact_stat() {
        let dir_stat = stat(5);
        let common = FileStat {
            mtime: Timestamp { secs: 1_764_870_000, nanos: 999_999_999 },
            ctime: Timestamp { secs: 1_764_870_000, nanos: 999_999_999 },
            ino: 3_000_000,
            dev: dir_stat.dev,
            size: 4096,
            mode: 0o100644,
        };
        let edges = FileStat {
            mtime: Timestamp { secs: i64::MIN, nanos: u32::MAX },
            ctime: Timestamp { secs: i64::MAX, nanos: 0 },
            ino: u64::MAX,
            dev: u64::MAX,
            size: u64::MAX,
            mode: u32::MAX,
        };
        let entries: Vec<EntryRecord> = [("f00.rs", common), ("odd", edges)]
            .into_iter()
            .map(|(name, stat)| EntryRecord {
                name: name.into(),
                kind: CachedKind::Symlink,
                stat,
                oid: blob(),
            })
            .collect();
        let head = DirHead { stat: dir_stat, ..plain_head() };
        let mut common_only = Vec::new();
        encode_record(&mut common_only, b"d", &head, &entries[..1]).expect("encoded");
        let mut both = Vec::new();
        encode_record(&mut both, b"d", &head, &entries).expect("encoded");
        // The common case: the name and its length, the kind byte, five numbers (mtime
        // seconds and nanoseconds, inode, size, mode) and the id; 47 bytes here, where a
        // fixed layout takes 83.
        let empty = {
            let mut out = Vec::new();
            encode_record(&mut out, b"d", &head, &[]).expect("encoded");
            out.len()
        };
        assert_eq!(common_only.len() - empty, 1 + 6 + 1 + 5 + 5 + 4 + 2 + 3 + 20);

        let span = |raw: &[u8]| {
            let mut input = Reader { bytes: raw, pos: 0 };
            next_record(&mut input, false, WRITTEN).expect("a well-formed record").1
        };
        let span = span(&both);
        let record = record(WRITTEN, &both[span.raw], &both[span.body]).expect("a record");
        let read: Vec<_> = record.entries().map(CachedEntry::to_record).collect();
        assert_eq!(read.len(), 2);
        for (read, wrote) in read.iter().zip(&entries) {
            assert_eq!((&read.name, read.kind, read.stat), (&wrote.name, wrote.kind, wrote.stat));
        }
    }

    #[test]
    fn varints_past_64_bits_or_the_end_are_refused() {
        let read = |bytes: &[u8]| Reader { bytes, pos: 0 }.varint();
        let mut max = Vec::new();
        put_varint(&mut max, u64::MAX);
        assert_eq!(read(&max), Some(u64::MAX));
        assert_eq!(read(&[0x80, 0x01]), Some(128));
        // Ten bytes whose last carries more than the one bit left, or an eleventh.
        let mut over = max.clone();
        *over.last_mut().expect("a byte") = 0x02;
        assert_eq!(read(&over), None);
        let mut longer = max.clone();
        *longer.last_mut().expect("a byte") |= 0x80;
        longer.push(0x00);
        assert_eq!(read(&longer), None);
        assert_eq!(read(&[0x80, 0x80]), None, "ends inside a number");
    }

    #[test]
    fn a_scan_that_changed_nothing_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        scan(&path, 7, WRITTEN).expect("a first cache").save().expect("saved");
        assert!(scan(&path, 7, WRITTEN).is_none());
    }

    #[test]
    fn changed_records_go_to_the_journal_and_win_over_the_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        scan(&path, 7, WRITTEN).expect("a first cache").save().expect("saved");
        let base = std::fs::read(&path).expect("base");
        let later = Timestamp { secs: 200, nanos: 0 };
        let pending = scan(&path, 8, later).expect("a change");
        assert!(matches!(pending, PendingCache::Append { .. }));
        pending.save().expect("appended");
        assert_eq!(std::fs::read(&path).expect("base"), base, "the base was rewritten");
        let cache = StatCache::load(&path);
        assert_eq!(file_ino(&cache), 8);
        assert_eq!(cache.dir(b"src").expect("src").written, later);
        assert_eq!(cache.dir(b"").expect("root").written, WRITTEN);

        // A second segment wins over the first.
        scan(&path, 9, later).expect("a change").save().expect("appended");
        assert_eq!(file_ino(&StatCache::load(&path)), 9);
    }

    #[test]
    fn a_torn_or_foreign_segment_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        let journal = journal_path(&path);
        scan(&path, 7, WRITTEN).expect("a first cache").save().expect("saved");
        scan(&path, 8, WRITTEN).expect("a change").save().expect("appended");
        let whole = std::fs::read(&journal).expect("journal");
        for cut in [1, 4, whole.len() / 2, whole.len() - 1] {
            std::fs::write(&journal, &whole[..cut]).expect("cut");
            let cache = StatCache::load(&path);
            assert_eq!(file_ino(&cache), 7, "used a segment cut at {cut}");
            assert!(!cache.extendable(rules(), Some(stat(1))), "would append after torn bytes");
        }
        let mut flipped = whole.clone();
        let at = flipped.len() - 30;
        flipped[at] ^= 0x40;
        std::fs::write(&journal, &flipped).expect("flip");
        assert_eq!(file_ino(&StatCache::load(&path)), 7, "used a segment failing its checksum");

        // A segment of another base: the base is replaced by a scan under other rules.
        std::fs::write(&journal, &whole).expect("restore");
        let old = StatCache::load(&path);
        let mut writer = CacheWriter::create(&path, &old, WRITTEN, None, None);
        writer.write_dir(b"", &plain_head(), &[]);
        writer.finish().expect("a new base").save().expect("saved");
        assert!(!journal.exists(), "the old base's journal was kept");
        std::fs::write(&journal, &whole).expect("an old segment back");
        let cache = StatCache::load(&path);
        assert!(cache.dir(b"src").is_none(), "used a segment of another base");
        assert!(cache.dir(b"").is_some());
    }

    #[test]
    fn dirs_are_listed_from_the_base_and_the_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        scan(&path, 7, WRITTEN).expect("a first cache").save().expect("saved");
        // The root ("") is left out, as no plain relative path.
        assert_eq!(list_dirs(&path), vec![BString::from("src")]);
        let old = StatCache::load(&path);
        let mut writer = CacheWriter::create(&path, &old, WRITTEN, rules(), Some(stat(1)));
        for rel in ["src/new", "../outside", "/etc", "a//b"] {
            writer.write_dir(rel.as_bytes(), &plain_head(), &[]);
        }
        writer.finish().expect("a segment").save().expect("appended");
        let mut listed = list_dirs(&path);
        listed.sort();
        assert_eq!(listed, vec![BString::from("src"), BString::from("src/new")]);
        assert!(list_dirs(&dir.path().join("missing")).is_empty());
        std::fs::write(&path, [&MAGIC[..], b" but then nothing"].concat()).expect("write");
        assert!(list_dirs(&path).is_empty());
    }

    #[test]
    fn rejects_truncated_or_foreign_bases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        scan(&path, 7, WRITTEN).expect("a first cache").save().expect("saved");
        let bytes = std::fs::read(&path).expect("read");
        for cut in [0, 3, MAGIC.len(), bytes.len() / 2, bytes.len() - 9, bytes.len() - 1] {
            assert!(index_base(&bytes[..cut]).is_none(), "accepted a cache cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(index_base(&extra).is_none(), "accepted trailing garbage");
        let mut bad_kind = bytes.clone();
        // The first entry's kind code sits after its name; 0xee is no kind.
        let name_at = bad_kind.windows(3).position(|w| w == b"a b").expect("name");
        bad_kind[name_at + 4] = 0xee;
        assert!(index_base(&bad_kind).is_none(), "accepted an unknown kind");
        assert!(index_base(b"not a cache at all").is_none());
        assert!(index_base(&bytes).is_some());
    }
}
