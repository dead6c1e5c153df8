//! New objects reach the repository as one pack per operation, not one file per object.
//!
//! A step that edits ten files writes about thirty objects (blobs, the trees above them,
//! `.cairn` state, the commit). As loose objects that is thirty file creations, and on
//! many filesystems creating a file costs far more than hashing or compressing a small
//! one. So the store's repository handle keeps new objects in memory (gix's object
//! memory, which also serves reads, so a step can build on trees it has just written) and
//! [`persist`] writes those not already in the repository as a single pack with its index
//! — three small files whatever the step's size. Git reads such packs like any other, and
//! `git gc` (or its automatic form, once `gc.autoPackLimit` packs exist) folds them into
//! one delta-compressed pack.
//!
//! Order matters for crash safety: objects are persisted before anything names them (a
//! ref, the stat cache), so a crash leaves at worst an unreferenced pack, never a ref to a
//! missing object. Persisted means durable: a pack and its index are fsynced before they
//! are renamed into place, and the pack directory after (as git does with
//! `core.fsync=pack`), so not even a power cut can leave a ref naming a lost pack.
//!
//! Whether an object is "already there" is asked of the disk as it is now ([`refresh`]):
//! a long-running cairn that had read a pack `git gc` has since deleted must write its
//! objects again rather than trust a stale listing.
//!
//! A pack per step would pile up, and every pack costs each object lookup an index probe
//! (and gix an index slot). So cairn lists the packs it wrote in `<git common
//! dir>/cairn/packs` and, once [`MAX_SMALL_PACKS`] small ones exist, [`consolidate`]s the
//! smallest of them into one: the live pack count stays bounded. The merge copies entries
//! byte for byte and leaves packs that are already large next to the rest alone
//! ([`Merge::Geometric`]), so its cost does not grow with the session. Packs cairn did not
//! write are never touched; `git gc` remains the tool that delta-compresses everything.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use gix::objs::Exists as _;
use gix::odb::pack;
use gix::{ObjectId, objs::Kind};

use super::{Context, Error, IoContext, Result};
use super::{pack as pack_file, temp};

/// How many buffered bytes a long scan may hold before it writes them out (bounded memory
/// on a first snapshot of a large workspace).
pub const FLUSH_BYTES: usize = 32 << 20;

/// This many small packs of cairn's are merged into one.
pub const MAX_SMALL_PACKS: usize = 16;

/// The list of cairn's packs, in `<git common dir>/cairn/`.
pub const REGISTRY: &str = "packs";

/// Held while merging packs, next to the registry.
pub const LOCK_FILE: &str = "packs.lock";

/// Packs larger than this (a first snapshot's) are left as they are when consolidating.
const SMALL_PACK_BYTES: u64 = 8 << 20;

/// A lock on consolidation whose owner cannot be read, older than this, was left by a crash.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(600);

/// Writes every object buffered in `repo`'s object memory that the repository does not
/// already hold into one new pack under `objects/pack`, and empties the memory. Returns
/// the new pack, if anything was new.
pub fn persist(repo: &gix::Repository) -> Result<Option<PathBuf>> {
    let Some(mut storage) = repo.objects.reset_object_memory() else { return Ok(None) };
    refresh(repo);
    let on_disk = presence(repo);
    let mut new: Vec<(ObjectId, Kind, Vec<u8>)> = storage
        .drain()
        .filter(|(id, _)| !on_disk.exists(id))
        .map(|(id, (kind, data))| (id, kind, data))
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    // Level 1, as git uses for loose objects: a step waits on this one.
    write_pack(repo, &mut new, gix::zlib::Compression::BEST_SPEED)
}

/// Writes `objects` as one pack plus index; returns the pack's path.
fn write_pack(
    repo: &gix::Repository,
    objects: &mut [(ObjectId, Kind, Vec<u8>)],
    level: gix::zlib::Compression,
) -> Result<Option<PathBuf>> {
    // A stable order makes the same objects give the same pack.
    objects.sort_unstable_by_key(|(id, _, _)| *id);
    let mut writer = pack_file::Writer::create(&pack_dir(repo), objects.len(), level)?;
    for (id, kind, data) in objects.iter() {
        writer.add(*id, *kind, data)?;
    }
    writer.finish().map(Some)
}

/// Sweeps up after cairn processes killed while writing a pack: their staging
/// directories go, but an index whose pack already made it into place is moved in too,
/// finishing the move the process began.
pub fn sweep_pack_dir(repo: &gix::Repository) {
    let pack_dir = pack_dir(repo);
    let Ok(entries) = std::fs::read_dir(&pack_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !temp::is_abandoned(name.as_encoded_bytes()) {
            continue;
        }
        let staging = pack_dir.join(&name);
        if let Ok(staged) = std::fs::read_dir(&staging) {
            for file in staged.flatten() {
                let file_name = file.file_name();
                let to = pack_dir.join(&file_name);
                let is_index = file_name.to_str().is_some_and(|n| n.ends_with(".idx"));
                if is_index && to.with_extension("pack").is_file() && !to.exists() {
                    let _ = std::fs::rename(file.path(), &to);
                }
            }
        }
        temp::remove(&staging);
    }
}

/// Makes `repo`'s object store list the object directory again, so that packs deleted
/// since (by `git gc`, `git repack -d`, or cairn's own merging) stop counting as present
/// and new ones are seen. One directory listing; [`presence`] views made after it see
/// the disk as it is now.
pub fn refresh(repo: &gix::Repository) {
    let handle = (**repo.objects).clone();
    // No object has the null id: the miss makes the store load every index and then, with
    // all loaded, re-read the directory (gix's default refresh mode).
    let _ = handle.exists(&ObjectId::null(repo.object_hash()));
}

/// A view of the objects on disk (past the memory proxy) for asking whether objects
/// exist when most do not: a miss does not make it re-read the pack directory, which
/// gix otherwise does on every miss. Call [`refresh`] first to see what changed on disk
/// since the store last looked.
pub fn presence(repo: &gix::Repository) -> impl gix::objs::Exists + use<> {
    let mut on_disk = (**repo.objects).clone();
    on_disk.refresh_never();
    on_disk
}

fn pack_dir(repo: &gix::Repository) -> PathBuf {
    repo.objects.store_ref().path().join("pack")
}

/// Notes `pack` in the list of cairn's packs kept in `registry`.
pub fn register(registry: &Path, pack: &Path) -> Result<()> {
    let Some(name) = pack.file_name().and_then(|n| n.to_str()) else { return Ok(()) };
    if let Some(dir) = registry.parent() {
        std::fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    }
    // One short line in append mode: concurrent writers do not interleave.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(registry)
        .io_context(|| format!("opening {}", registry.display()))?;
    file.write_all(format!("{name}\n").as_bytes())
        .io_context(|| format!("writing {}", registry.display()))
}

/// The packs listed in `registry` that still exist, with their sizes; nothing when fewer
/// than `at_least` are listed (every step asks, and then no pack needs a `stat`).
fn registered_packs(
    repo: &gix::Repository,
    registry: &Path,
    at_least: usize,
) -> Vec<(String, u64)> {
    let Ok(list) = std::fs::read_to_string(registry) else { return Vec::new() };
    let mut seen = HashSet::new();
    let names: Vec<&str> =
        list.lines().filter(|name| is_pack_name(name) && seen.insert(*name)).collect();
    if names.len() < at_least {
        return Vec::new();
    }
    let dir = pack_dir(repo);
    names
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), std::fs::metadata(dir.join(name)).ok()?.len())))
        .collect()
}

fn is_pack_name(name: &str) -> bool {
    name.strip_prefix("pack-")
        .and_then(|rest| rest.strip_suffix(".pack"))
        .is_some_and(|hex| hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Which of cairn's small packs a merge takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// After a step, once [`MAX_SMALL_PACKS`] exist: the smallest, as few as leave every
    /// other pack at least twice the size of all smaller ones together (git's `repack
    /// --geometric=2`). A merge then rarely copies the big packs, and each object is
    /// copied a logarithmic number of times over its life instead of once per merge.
    Geometric,
    /// All of them, when at least two exist (`cairn gc`).
    All,
}

/// Merges cairn's small packs as `merge` says; returns how many were merged (0 when there
/// was nothing to do, or another process is merging). Entries are copied as they are
/// stored, each checked against the CRC-32 its index holds: a pack whose bytes do not
/// match fails the merge, and no pack is removed.
pub fn consolidate(repo: &gix::Repository, registry: &Path, merge: Merge) -> Result<usize> {
    let at_least = match merge {
        Merge::Geometric => MAX_SMALL_PACKS,
        Merge::All => 2,
    };
    let (mut small, large): (Vec<_>, Vec<_>) = registered_packs(repo, registry, at_least)
        .into_iter()
        .partition(|(_, size)| *size <= SMALL_PACK_BYTES);
    if small.len() < at_least {
        return Ok(0);
    }
    small.sort_by_key(|(_, size)| *size);
    let merged_count = match merge {
        Merge::Geometric => {
            geometric_split(&small.iter().map(|(_, size)| *size).collect::<Vec<_>>())
        }
        Merge::All => small.len(),
    };
    let lock_path = registry.with_file_name(LOCK_FILE);
    let Some(_lock) = temp::PidLock::try_acquire(&lock_path, STALE_LOCK)
        .io_context(|| format!("locking {}", lock_path.display()))?
    else {
        return Ok(0);
    };

    let dir = pack_dir(repo);
    let (merging, kept) = small.split_at(merged_count);
    let sources = merging
        .iter()
        .map(|(name, _)| SourcePack::open(repo, &dir.join(name)))
        .collect::<Result<Vec<_>>>()?;
    let mut seen = HashSet::new();
    let count =
        sources.iter().flat_map(|source| &source.entries).filter(|e| seen.insert(e.oid)).count();
    let mut writer = pack_file::Writer::create(&dir, count, gix::zlib::Compression::BEST_SPEED)?;
    let mut buf = Vec::new();
    seen.clear();
    for source in &sources {
        for entry in source.entries.iter().filter(|e| seen.insert(e.oid)) {
            match source.whole_entry(entry)? {
                Some(bytes) => writer.copy(entry.oid, bytes)?,
                None => {
                    // Not cairn's doing, but a delta cannot move: resolved, it is stored whole.
                    let object = gix::objs::Find::try_find(&**repo.objects, &entry.oid, &mut buf)
                        .context(|| format!("reading object {}", entry.oid))?
                        .ok_or_else(|| Error::MissingObject {
                            context: format!("consolidating {}", source.path.display()),
                            id: entry.oid,
                        })?;
                    writer.add(entry.oid, object.kind, object.data)?;
                }
            }
        }
    }
    drop(sources);
    let merged = writer.finish()?;

    // The list first (so no crash leaves it naming deleted packs as cairn's only record of
    // the new one), then the old packs, index before data as git does.
    let merged_name = merged.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let mut names: Vec<&str> = large.iter().chain(kept).map(|(name, _)| name.as_str()).collect();
    names.push(merged_name);
    let mut list = tempfile::Builder::new()
        .prefix(&temp::prefix())
        .tempfile_in(registry.parent().unwrap_or(Path::new(".")))
        .io_context(|| "creating the pack list".into())?;
    list.write_all(names.iter().map(|n| format!("{n}\n")).collect::<String>().as_bytes())
        .io_context(|| "writing the pack list".into())?;
    list.persist(registry)
        .map_err(|err| err.error)
        .io_context(|| "replacing the pack list".into())?;
    for (name, _) in merging {
        if name == merged_name {
            continue;
        }
        let pack = dir.join(name);
        let _ = std::fs::remove_file(pack.with_extension("idx"));
        let _ = std::fs::remove_file(&pack);
    }
    Ok(merged_count)
}

/// How many of the packs whose sizes are `ascending` a geometric merge takes (see
/// [`Merge::Geometric`]): every pack after them is at least twice all before it. At least
/// two, so that each merge lowers the count.
fn geometric_split(ascending: &[u64]) -> usize {
    let mut split = 0;
    let mut below = 0u64;
    for (at, size) in ascending.iter().enumerate() {
        if *size < below.saturating_mul(2) {
            split = at + 1;
        }
        below = below.saturating_add(*size);
    }
    split.max(2).min(ascending.len())
}

/// One of the packs being merged: its data and its entries in pack order.
struct SourcePack {
    path: PathBuf,
    data: pack::data::File,
    entries: Vec<pack::index::Entry>,
}

impl SourcePack {
    fn open(repo: &gix::Repository, path: &Path) -> Result<Self> {
        let idx_path = path.with_extension("idx");
        let index = pack::index::File::at(&idx_path, repo.object_hash())
            .context(|| format!("reading {}", idx_path.display()))?;
        let data = pack::data::File::at(path, repo.object_hash())
            .context(|| format!("reading {}", path.display()))?;
        let mut entries: Vec<_> = index.iter().collect();
        entries.sort_unstable_by_key(|entry| entry.pack_offset);
        Ok(SourcePack { path: path.to_path_buf(), data, entries })
    }

    /// The bytes of `entry` (one of [`SourcePack::entries`]) if it is a whole object and
    /// they match its index's CRC-32; `None` for a delta.
    fn whole_entry(&self, entry: &pack::index::Entry) -> Result<Option<&[u8]>> {
        let corrupt = |what: &str| Error::CorruptPack {
            context: format!("{}: object {} {what}", self.path.display(), entry.oid),
        };
        let at = self.entries.partition_point(|e| e.pack_offset <= entry.pack_offset);
        let end = self.entries.get(at).map_or(self.data.pack_end() as u64, |next| next.pack_offset);
        let bytes = self
            .data
            .entry_slice(entry.pack_offset..end)
            .filter(|bytes| !bytes.is_empty())
            .ok_or_else(|| corrupt("lies outside the pack"))?;
        if entry.crc32 != Some(crc32fast::hash(bytes)) {
            return Err(corrupt("does not match the CRC-32 its index holds"));
        }
        let header = self
            .data
            .entry(entry.pack_offset)
            .context(|| format!("reading {}", self.path.display()))?;
        Ok(header.header.is_base().then_some(bytes))
    }
}

/// The blob at `path` in `tree`, or `None` if there is none.
pub fn blob_at(repo: &gix::Repository, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>> {
    let tree = repo.find_tree(tree).context(|| format!("reading tree {tree}"))?;
    let Some(entry) = tree.lookup_entry_by_path(path).context(|| format!("looking up {path}"))?
    else {
        return Ok(None);
    };
    let blob = repo.find_blob(entry.oid()).context(|| format!("reading {path}"))?;
    Ok(Some(blob.data.clone()))
}

/// The user from `repo`'s git config, falling back to cairn itself when none is set: the
/// committer of every commit cairn writes.
pub fn committer(repo: &gix::Repository) -> gix::actor::Signature {
    let now = gix::date::Time::now_local_or_utc();
    match repo.committer() {
        Some(Ok(user)) => gix::actor::Signature {
            name: user.name.to_owned(),
            email: user.email.to_owned(),
            time: now,
        },
        _ => gix::actor::Signature { name: "cairn".into(), email: CAIRN_EMAIL.into(), time: now },
    }
}

/// The e-mail address of the identities cairn commits as when it records for itself.
pub const CAIRN_EMAIL: &str = "cairn@localhost";

/// Serializes an object id as hex text (serde's `serialize_with`).
pub fn serialize_hex<S: serde::Serializer>(
    id: &ObjectId,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

#[cfg(test)]
mod tests {
    use super::geometric_split;

    #[test]
    fn a_geometric_merge_takes_the_smallest_packs_until_the_rest_double() {
        // Sixteen steps' packs of about the same size: all of them.
        assert_eq!(geometric_split(&[10; 16]), 16);
        // Fifteen new ones beside a merged pack over twice their sum: only the new ones.
        let mut sizes = vec![10; 15];
        sizes.push(310);
        assert_eq!(geometric_split(&sizes), 15);
        // ... and one that is not: it joins them.
        sizes[15] = 290;
        assert_eq!(geometric_split(&sizes), 16);
        // A progression already: the two smallest, so the count still falls.
        assert_eq!(geometric_split(&[1, 2, 6, 20, 60]), 2);
        // A pack under twice those below it takes them all along, however small they are.
        assert_eq!(geometric_split(&[1, 100, 150, 1000]), 3);
    }
}
