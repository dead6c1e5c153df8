//! Whether the user's index can stand in for hashing: not when git converts content
//! (`core.autocrlf`, `.gitattributes`) as it adds it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice;

use super::walk::ScannedDir;

/// Whether the blob ids in the user's index hash the bytes on disk. Not when git converts
/// content as it adds it — line endings under `core.autocrlf`, or whatever
/// `.gitattributes` asks for (`text`, `eol`, `filter`, `ident`, `working-tree-encoding`):
/// the index then holds the converted blob, and a snapshot taking its id would record,
/// and a rewind write back, other bytes than the user's.
pub(super) fn index_holds_raw_bytes(
    repo: &gix::Repository,
    root: &Path,
    scanned: &ScannedDir,
) -> bool {
    let config = repo.config_snapshot();
    let autocrlf = config.string("core.autocrlf").map(|v| v.to_ascii_lowercase());
    if autocrlf.is_some_and(|v| !matches!(v.as_slice(), b"false" | b"no" | b"off" | b"0")) {
        return false;
    }
    let mut files: Vec<PathBuf> = vec![repo.common_dir().join("info/attributes")];
    match config.trusted_path("core.attributesFile").ok().flatten() {
        Some(path) => files.push(path),
        None => files.extend(super::ignore::config_home().map(|dir| dir.join("git/attributes"))),
    }
    let mut in_workspace = Vec::new();
    scanned.attribute_files(&mut in_workspace);
    files.extend(in_workspace.iter().map(|rel| root.join(OsStr::from_bytes(rel))));
    !files.iter().any(|file| std::fs::read(file).is_ok_and(|text| asks_for_conversion(&text)))
}

/// Whether `.gitattributes` text sets an attribute that makes git convert content.
pub(super) fn asks_for_conversion(text: &[u8]) -> bool {
    const CONVERTING: [&[u8]; 6] =
        [b"text", b"eol", b"crlf", b"filter", b"ident", b"working-tree-encoding"];
    text.lines().any(|line| {
        line.fields().skip(1).any(|attribute| {
            // `-text` and `!text` turn conversion off; `binary` is `-diff -merge -text`.
            let name = attribute.split(|&b| b == b'=').next().unwrap_or_default();
            CONVERTING.contains(&name)
        })
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn attributes_that_convert_content_are_told_from_those_that_do_not() {
        for converting in [
            &b"*.txt text\n"[..],
            b"* text=auto\n",
            b"*.sh eol=lf\n",
            b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
            b"*.c ident\n",
            b"*.ps1 working-tree-encoding=UTF-16LE\n",
            b"[attr]mine text\n",
        ] {
            assert!(asks_for_conversion(converting), "{}", converting.as_bstr());
        }
        for plain in
            [&b"*.png binary\n"[..], b"*.txt -text\n", b"docs/** linguist-documentation\n", b""]
        {
            assert!(!asks_for_conversion(plain), "{}", plain.as_bstr());
        }
    }
}
