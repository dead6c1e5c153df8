//! The git layer: what cairn reads from and writes to a repository, checked at the
//! boundary. It starts with [`path`], the only way a tree entry's name becomes a path in
//! the workspace; the object store is to move here later.

pub mod path;
