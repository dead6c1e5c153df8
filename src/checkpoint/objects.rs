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
//! missing object.

use std::sync::atomic::AtomicBool;

use gix::objs::Exists as _;
use gix::odb::pack;
use gix::{ObjectId, objs::Kind};

use super::error::{Context, IoContext, Result};

/// How many buffered bytes a long scan may hold before it writes them out (bounded memory
/// on a first snapshot of a large workspace).
pub const FLUSH_BYTES: usize = 32 << 20;

/// What [`persist`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Persisted {
    /// Objects written (those the repository already had are left out).
    pub objects: usize,
    /// Bytes of the pack file, 0 when nothing was new.
    pub pack_bytes: u64,
}

/// Writes every object buffered in `repo`'s object memory that the repository does not
/// already hold into one new pack under `objects/pack`, and empties the memory.
pub fn persist(repo: &gix::Repository) -> Result<Persisted> {
    let Some(mut storage) = repo.objects.reset_object_memory() else {
        return Ok(Persisted::default());
    };
    // Deref past the memory proxy: only objects on disk count as present.
    let on_disk = &**repo.objects;
    let mut new: Vec<(ObjectId, Kind, Vec<u8>)> = storage
        .drain()
        .filter(|(id, _)| !on_disk.exists(id))
        .map(|(id, (kind, data))| (id, kind, data))
        .collect();
    if new.is_empty() {
        return Ok(Persisted::default());
    }
    // A stable order makes the same objects give the same pack.
    new.sort_unstable_by_key(|(id, _, _)| *id);
    let bytes = encode_pack(&new)?;
    let pack_dir = repo.objects.store_ref().path().join("pack");
    std::fs::create_dir_all(&pack_dir).io_context(|| "creating objects/pack".into())?;
    let outcome = pack::Bundle::write_to_directory(
        &mut bytes.as_slice(),
        Some(&pack_dir),
        &mut gix::progress::Discard,
        &AtomicBool::new(false),
        None::<gix::objs::find::Never>,
        gix::hash::Kind::Sha1,
        pack::bundle::write::Options { thread_limit: Some(1), ..Default::default() },
    )
    .context(|| "writing a pack".into())?;
    // The `.keep` guards a fetched pack until refs point into it. Unreferenced objects
    // are safe from `git gc` for two weeks anyway (gc.pruneExpire), which covers the
    // moment between this and the ref update.
    if let Some(keep) = outcome.keep_path {
        let _ = std::fs::remove_file(keep);
    }
    Ok(Persisted { objects: new.len(), pack_bytes: bytes.len() as u64 })
}

/// The pack format (version 2): a header, each object as a type-and-size header plus its
/// zlib-deflated data, and a SHA-1 of all that.
fn encode_pack(objects: &[(ObjectId, Kind, Vec<u8>)]) -> Result<Vec<u8>> {
    let count = u32::try_from(objects.len()).context(|| "counting a pack's objects".into())?;
    let mut out = Vec::with_capacity(
        pack::data::header::SIZE + objects.iter().map(|(_, _, d)| d.len() / 2 + 16).sum::<usize>(),
    );
    out.extend_from_slice(&pack::data::header::encode(pack::data::Version::V2, count));
    for (_, kind, data) in objects {
        let header = match kind {
            Kind::Blob => pack::data::entry::Header::Blob,
            Kind::Tree => pack::data::entry::Header::Tree,
            Kind::Commit => pack::data::entry::Header::Commit,
            Kind::Tag => pack::data::entry::Header::Tag,
        };
        header.write_to(data.len() as u64, &mut out).io_context(|| "writing a pack".into())?;
        let mut deflate =
            gix::zlib::stream::deflate::Write::new(&mut out, gix::zlib::Compression::BEST_SPEED);
        std::io::Write::write_all(&mut deflate, data)
            .and_then(|()| std::io::Write::flush(&mut deflate))
            .io_context(|| "compressing an object".into())?;
    }
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&out);
    let checksum = hasher.try_finalize().context(|| "hashing a pack".into())?;
    out.extend_from_slice(checksum.as_bytes());
    Ok(out)
}
