//! Pack files and their indexes, as cairn writes them.
//!
//! cairn stores every object whole (it writes no deltas), so as it writes an entry it
//! already knows what the entry's index line holds: the object's id, the entry's offset
//! and the CRC-32 of its bytes. [`Writer`] builds the index from those, where a general
//! indexer (`git index-pack`, gix's bundle writer) must decompress and hash every object
//! of the pack again. Merging packs copies entries byte for byte ([`Writer::copy`]) after
//! checking them against the CRC-32 their own index recorded, as `git repack` reuses pack
//! data: nothing is decompressed or compressed twice.
//!
//! Durability and crash safety are [`Writer::finish`]'s: both files are written in a
//! staging directory of their own under their final names, fsynced, then moved into
//! place data first (git reads a pack only once its index exists) and the pack directory
//! fsynced. A kill at any moment leaves that directory, which
//! [`objects::sweep_pack_dir`](super::objects::sweep_pack_dir) removes or finishes.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use gix::ObjectId;
use gix::objs::Kind;
use gix::odb::pack;

use super::temp;
use super::{Context as _, Error, IoContext as _, Result};

/// The first bytes of a version 2 pack index.
const INDEX_V2_MAGIC: [u8; 8] = [0xff, b't', b'O', b'c', 0, 0, 0, 2];

/// Offsets from here up are stored in the index's table of 64-bit offsets.
const LARGE_OFFSET: u64 = 0x8000_0000;

/// What an index says about one entry of its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: ObjectId,
    pub offset: u64,
    pub crc32: u32,
}

/// Writes one pack, entry by entry, and its index at [`finish`](Writer::finish).
pub struct Writer {
    pack_dir: PathBuf,
    staging: PathBuf,
    out: BufWriter<File>,
    hasher: gix::hash::Hasher,
    offset: u64,
    announced: u32,
    index: Vec<IndexEntry>,
    deflate: gix::zlib::stream::deflate::Write<SharedBuffer>,
    compressed: SharedBuffer,
    entry: Vec<u8>,
}

impl Writer {
    /// Starts a pack of `count` objects for `pack_dir`, compressing new ones at `level`.
    pub fn create(pack_dir: &Path, count: usize, level: gix::zlib::Compression) -> Result<Self> {
        let announced = u32::try_from(count).context(|| "counting a pack's objects".into())?;
        std::fs::create_dir_all(pack_dir).io_context(|| "creating objects/pack".into())?;
        let staging = pack_dir.join(temp::name());
        std::fs::create_dir(&staging).io_context(|| format!("creating {}", staging.display()))?;
        let file = File::create(staging.join("pack"));
        let compressed = SharedBuffer::default();
        let mut writer = Writer {
            pack_dir: pack_dir.to_path_buf(),
            out: BufWriter::with_capacity(64 << 10, file.io_context(|| "creating a pack".into())?),
            staging,
            hasher: gix::hash::hasher(gix::hash::Kind::Sha1),
            offset: 0,
            announced,
            index: Vec::with_capacity(count),
            // One compressor for the whole pack: setting one up zeroes a few hundred KiB.
            deflate: gix::zlib::stream::deflate::Write::new(compressed.clone(), level),
            compressed,
            entry: Vec::new(),
        };
        writer.write(&pack::data::header::encode(pack::data::Version::V2, announced))?;
        Ok(writer)
    }

    /// Adds an object, compressed.
    pub fn add(&mut self, id: ObjectId, kind: Kind, data: &[u8]) -> Result<()> {
        let header = match kind {
            Kind::Blob => pack::data::entry::Header::Blob,
            Kind::Tree => pack::data::entry::Header::Tree,
            Kind::Commit => pack::data::entry::Header::Commit,
            Kind::Tag => pack::data::entry::Header::Tag,
        };
        let mut entry = std::mem::take(&mut self.entry);
        entry.clear();
        header.write_to(data.len() as u64, &mut entry).io_context(|| "writing a pack".into())?;
        self.deflate.reset();
        self.deflate
            .write_all(data)
            .and_then(|()| self.deflate.flush())
            .io_context(|| "compressing an object".into())?;
        entry.append(&mut self.compressed.0.borrow_mut());
        let added = self.copy(id, &entry);
        self.entry = entry;
        added
    }

    /// Adds an entry as another pack stores it (its header and compressed data), which
    /// must be a whole object: a delta's base would be looked for at the wrong offset.
    pub fn copy(&mut self, id: ObjectId, entry: &[u8]) -> Result<()> {
        self.index.push(IndexEntry { id, offset: self.offset, crc32: crc32fast::hash(entry) });
        self.write(entry)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
        self.out.write_all(bytes).io_context(|| "writing a pack".into())
    }

    /// Ends the pack, writes its index and moves both into the pack directory, durably.
    /// Returns the pack's path.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.index.len() != self.announced as usize {
            return Err(Error::Pack {
                context: format!(
                    "{} objects written to a pack announced to hold {}",
                    self.index.len(),
                    self.announced
                ),
            });
        }
        let hasher = std::mem::replace(&mut self.hasher, gix::hash::hasher(gix::hash::Kind::Sha1));
        let checksum = hasher.try_finalize().context(|| "hashing a pack".into())?;
        self.out.write_all(checksum.as_bytes()).io_context(|| "writing a pack".into())?;
        self.out.flush().io_context(|| "writing a pack".into())?;
        self.out.get_ref().sync_all().io_context(|| "syncing a pack".into())?;

        let name = format!("pack-{checksum}");
        let data = self.staging.join(format!("{name}.pack"));
        std::fs::rename(self.staging.join("pack"), &data)
            .io_context(|| format!("naming {}", data.display()))?;
        let index = self.staging.join(format!("{name}.idx"));
        let encoded = encode_index(&mut self.index, &checksum)?;
        write_synced(&index, &encoded).io_context(|| format!("writing {}", index.display()))?;

        let placed = self.pack_dir.join(format!("{name}.pack"));
        for (from, to) in [(&data, &placed), (&index, &placed.with_extension("idx"))] {
            std::fs::rename(from, to).io_context(|| format!("moving {}", to.display()))?;
        }
        temp::sync_dir(&self.pack_dir)
            .io_context(|| format!("syncing {}", self.pack_dir.display()))?;
        Ok(placed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        temp::remove(&self.staging);
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Encodes a version 2 index of a pack whose checksum is `pack_checksum`; sorts `entries`
/// by id, which must be distinct.
fn encode_index(entries: &mut [IndexEntry], pack_checksum: &ObjectId) -> Result<Vec<u8>> {
    entries.sort_unstable_by_key(|entry| entry.id);
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].id == pair[1].id) {
        return Err(Error::Pack { context: format!("object {} twice in one pack", pair[0].id) });
    }
    let mut out = Vec::with_capacity(INDEX_V2_MAGIC.len() + 256 * 4 + entries.len() * 28 + 40);
    out.extend_from_slice(&INDEX_V2_MAGIC);
    let mut fanout = [0u32; 256];
    for entry in entries.iter() {
        fanout[usize::from(entry.id.as_bytes()[0])] += 1;
    }
    let mut below = 0;
    for count in fanout {
        below += count;
        out.extend_from_slice(&below.to_be_bytes());
    }
    for entry in entries.iter() {
        out.extend_from_slice(entry.id.as_bytes());
    }
    for entry in entries.iter() {
        out.extend_from_slice(&entry.crc32.to_be_bytes());
    }
    let mut large = Vec::new();
    for entry in entries.iter() {
        let slot = match u32::try_from(entry.offset).ok().filter(|o| u64::from(*o) < LARGE_OFFSET) {
            Some(offset) => offset,
            None => {
                large.push(entry.offset);
                u32::try_from(large.len() - 1).context(|| "indexing a pack".into())?
                    | LARGE_OFFSET as u32
            }
        };
        out.extend_from_slice(&slot.to_be_bytes());
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum.as_bytes());
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&out);
    let checksum = hasher.try_finalize().context(|| "hashing a pack index".into())?;
    out.extend_from_slice(checksum.as_bytes());
    Ok(out)
}

/// A byte buffer the compressor writes into, emptied after each object.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn id(data: &[u8], kind: Kind) -> ObjectId {
        gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, data).unwrap()
    }

    #[test]
    fn git_reads_the_pack_and_indexes_it_exactly_as_written() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        let pack_dir = dir.path().join(".git/objects/pack");
        let big: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
        let blobs: [&[u8]; 3] = [b"hello\n", b"", &big];
        let mut writer =
            Writer::create(&pack_dir, blobs.len(), gix::zlib::Compression::BEST_SPEED).unwrap();
        for blob in blobs {
            writer.add(id(blob, Kind::Blob), Kind::Blob, blob).unwrap();
        }
        let pack = writer.finish().unwrap();

        let listed: Vec<String> = std::fs::read_dir(&pack_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(listed.len(), 2, "only the pack and its index remain: {listed:?}");
        git(dir.path(), &["verify-pack", pack.with_extension("idx").to_str().unwrap()]);
        for blob in blobs {
            let shown = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["cat-file", "blob", &id(blob, Kind::Blob).to_string()])
                .output()
                .unwrap();
            assert_eq!(shown.stdout, blob);
        }
        // git's own indexer, given the same pack, writes the same index byte for byte.
        let theirs = dir.path().join("theirs.idx");
        git(dir.path(), &["index-pack", "-o", theirs.to_str().unwrap(), pack.to_str().unwrap()]);
        assert_eq!(
            std::fs::read(&theirs).unwrap(),
            std::fs::read(pack.with_extension("idx")).unwrap()
        );
    }

    #[test]
    fn offsets_past_two_gibibytes_go_to_the_large_offset_table() {
        let at = |byte: u8, offset: u64| IndexEntry {
            id: ObjectId::from_bytes_or_panic(&[byte; 20]),
            offset,
            crc32: u32::from(byte),
        };
        let mut entries =
            [at(9, LARGE_OFFSET), at(1, 12), at(5, LARGE_OFFSET - 1), at(7, u64::MAX >> 1)];
        let checksum = ObjectId::from_bytes_or_panic(&[0xab; 20]);
        let encoded = encode_index(&mut entries, &checksum).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack-test.idx");
        std::fs::write(&path, &encoded).unwrap();

        // An independent reader: git's, which needs no pack for this.
        let out = Command::new("git")
            .arg("show-index")
            .stdin(File::open(&path).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: Vec<(u64, String)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                let mut fields = line.split(' ');
                (fields.next().unwrap().parse().unwrap(), fields.next().unwrap().to_string())
            })
            .collect();
        let expected: Vec<(u64, String)> =
            [at(1, 12), at(5, LARGE_OFFSET - 1), at(7, u64::MAX >> 1), at(9, LARGE_OFFSET)]
                .iter()
                .map(|e| (e.offset, e.id.to_string()))
                .collect();
        assert_eq!(shown, expected);
        let index = pack::index::File::at(&path, gix::hash::Kind::Sha1).unwrap();
        assert_eq!(index.crc32_at_index(3), Some(9));
        assert_eq!(index.pack_offset_at_index(2), u64::MAX >> 1);
    }

    #[test]
    fn a_count_unlike_the_announced_one_and_a_repeated_object_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pack_dir = dir.path().join("pack");
        let level = gix::zlib::Compression::BEST_SPEED;
        let writer = Writer::create(&pack_dir, 2, level).unwrap();
        let err = writer.finish().unwrap_err();
        assert_eq!(err.to_string(), "0 objects written to a pack announced to hold 2");

        let mut writer = Writer::create(&pack_dir, 2, level).unwrap();
        for _ in 0..2 {
            writer.add(id(b"x", Kind::Blob), Kind::Blob, b"x").unwrap();
        }
        let err = writer.finish().unwrap_err();
        assert_eq!(err.to_string(), format!("object {} twice in one pack", id(b"x", Kind::Blob)));
        assert_eq!(std::fs::read_dir(&pack_dir).unwrap().count(), 0, "nothing is left behind");
    }
}
