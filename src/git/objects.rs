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
//! dir>/cairn/packs` and, once [`MAX_SMALL_PACKS`] small ones exist, [`consolidate`]s them
//! into one: the live pack count stays bounded. Packs cairn did not write are never
//! touched; `git gc` remains the tool that delta-compresses everything.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;

use gix::objs::Exists as _;
use gix::odb::pack;
use gix::{ObjectId, objs::Kind};

use super::temp;
use super::{Context, Error, IoContext, Result};

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
    let bytes = encode_pack(objects, level)?;
    let pack_dir = pack_dir(repo);
    std::fs::create_dir_all(&pack_dir).io_context(|| "creating objects/pack".into())?;
    // Written in a directory of its own first (gix's temporary files, the `.keep` it
    // guards a fresh pack with), then moved into place: a kill at any moment leaves only
    // that directory, which the next run sweeps up (see `sweep_pack_dir`).
    let staging = pack_dir.join(temp::name());
    std::fs::create_dir(&staging).io_context(|| format!("creating {}", staging.display()))?;
    let written = pack::Bundle::write_to_directory(
        &mut bytes.as_slice(),
        Some(&staging),
        &mut gix::progress::Discard,
        &AtomicBool::new(false),
        None::<gix::objs::find::Never>,
        gix::hash::Kind::Sha1,
        pack::bundle::write::Options { thread_limit: Some(1), ..Default::default() },
    )
    .context(|| "writing a pack".into())
    .and_then(|outcome| {
        let (Some(data), Some(index)) = (outcome.data_path, outcome.index_path) else {
            return Ok(None);
        };
        // Durable before any name for them is: the rename publishes them.
        for file in [&data, &index] {
            temp::sync_file(file).io_context(|| format!("syncing {}", file.display()))?;
        }
        // Data before index, as git does: git only reads a pack once its index exists.
        let mut placed = None;
        for from in [data, index] {
            let to = pack_dir.join(from.file_name().unwrap_or_default());
            std::fs::rename(&from, &to).io_context(|| format!("moving {}", to.display()))?;
            placed.get_or_insert(to);
        }
        temp::sync_dir(&pack_dir).io_context(|| format!("syncing {}", pack_dir.display()))?;
        Ok(placed)
    });
    temp::remove(&staging);
    written
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

/// Merges cairn's small packs into one once there are `at_least` of them; returns how
/// many were merged (0 when there was nothing to do, or another process is merging).
pub fn consolidate(repo: &gix::Repository, registry: &Path, at_least: usize) -> Result<usize> {
    let at_least = at_least.max(2);
    let (small, large): (Vec<_>, Vec<_>) = registered_packs(repo, registry, at_least)
        .into_iter()
        .partition(|(_, size)| *size <= SMALL_PACK_BYTES);
    if small.len() < at_least {
        return Ok(0);
    }
    let lock_path = registry.with_file_name(LOCK_FILE);
    let Some(_lock) = temp::PidLock::try_acquire(&lock_path, STALE_LOCK)
        .io_context(|| format!("locking {}", lock_path.display()))?
    else {
        return Ok(0);
    };

    let dir = pack_dir(repo);
    let mut objects = Vec::new();
    let mut seen = HashSet::new();
    let mut buf = Vec::new();
    for (name, _) in &small {
        let idx_path = dir.join(name).with_extension("idx");
        let index = pack::index::File::at(&idx_path, repo.object_hash())
            .context(|| format!("reading {}", idx_path.display()))?;
        for entry in index.iter() {
            if !seen.insert(entry.oid) {
                continue;
            }
            let object = gix::objs::Find::try_find(&**repo.objects, &entry.oid, &mut buf)
                .context(|| format!("reading object {}", entry.oid))?
                .ok_or_else(|| Error::MissingObject {
                    context: format!("consolidating {name}"),
                    id: entry.oid,
                })?;
            objects.push((entry.oid, object.kind, object.data.to_vec()));
        }
    }
    let merged = write_pack(repo, &mut objects, gix::zlib::Compression::DEFAULT)?;

    // The list first (so no crash leaves it naming deleted packs as cairn's only record of
    // the new one), then the old packs, index before data as git does.
    let mut names: Vec<String> = large.into_iter().map(|(name, _)| name).collect();
    let merged_name = merged.as_deref().and_then(Path::file_name).and_then(|n| n.to_str());
    names.extend(merged_name.map(str::to_owned));
    let mut list = tempfile::Builder::new()
        .prefix(&temp::prefix())
        .tempfile_in(registry.parent().unwrap_or(Path::new(".")))
        .io_context(|| "creating the pack list".into())?;
    list.write_all(names.iter().map(|n| format!("{n}\n")).collect::<String>().as_bytes())
        .io_context(|| "writing the pack list".into())?;
    list.persist(registry)
        .map_err(|err| err.error)
        .io_context(|| "replacing the pack list".into())?;
    for (name, _) in &small {
        if Some(name.as_str()) == merged_name {
            continue;
        }
        let pack = dir.join(name);
        let _ = std::fs::remove_file(pack.with_extension("idx"));
        let _ = std::fs::remove_file(&pack);
    }
    Ok(small.len())
}

/// The pack format (version 2): a header, each object as a type-and-size header plus its
/// zlib-deflated data, and a SHA-1 of all that.
fn encode_pack(
    objects: &[(ObjectId, Kind, Vec<u8>)],
    level: gix::zlib::Compression,
) -> Result<Vec<u8>> {
    let count = u32::try_from(objects.len()).context(|| "counting a pack's objects".into())?;
    let capacity =
        pack::data::header::SIZE + objects.iter().map(|(_, _, d)| d.len() / 2 + 16).sum::<usize>();
    let out = SharedBuffer::default();
    out.0.borrow_mut().reserve(capacity);
    out.0
        .borrow_mut()
        .extend_from_slice(&pack::data::header::encode(pack::data::Version::V2, count));
    // One compressor for the whole pack: setting one up zeroes a few hundred KiB.
    let mut deflate = gix::zlib::stream::deflate::Write::new(out.clone(), level);
    for (_, kind, data) in objects {
        let header = match kind {
            Kind::Blob => pack::data::entry::Header::Blob,
            Kind::Tree => pack::data::entry::Header::Tree,
            Kind::Commit => pack::data::entry::Header::Commit,
            Kind::Tag => pack::data::entry::Header::Tag,
        };
        header
            .write_to(data.len() as u64, &mut *out.0.borrow_mut())
            .io_context(|| "writing a pack".into())?;
        deflate.reset();
        std::io::Write::write_all(&mut deflate, data)
            .and_then(|()| std::io::Write::flush(&mut deflate))
            .io_context(|| "compressing an object".into())?;
    }
    drop(deflate);
    let mut out = out.0.take();
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&out);
    let checksum = hasher.try_finalize().context(|| "hashing a pack".into())?;
    out.extend_from_slice(checksum.as_bytes());
    Ok(out)
}

/// A byte buffer the compressor writes into while entry headers are added between objects.
#[derive(Default, Clone)]
struct SharedBuffer(Rc<RefCell<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
