//! The errors of the git layer. Each says what cairn was doing and keeps the failure
//! underneath (gix's or the operating system's) as its [`source`](std::error::Error::source),
//! so the command line can print the whole chain and callers can still match on it.

use gix::ObjectId;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error gix returns; its types differ per operation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation on the repository failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// gix failed to read or write an object or a ref.
    #[error("{context}")]
    Gix {
        context: String,
        #[source]
        source: BoxError,
    },
    /// A pack index lists an object the object database cannot produce.
    #[error("{context}: object {id} is missing")]
    MissingObject { context: String, id: ObjectId },
    /// A pack being written whose objects do not add up (a bug in the writer's caller).
    #[error("{context}")]
    Pack { context: String },
    /// A pack on disk whose bytes are not what its index says of them.
    #[error("{context}")]
    CorruptPack { context: String },
    /// Another process moved the ref between the caller's read and this write.
    #[error("{name} was moved by another process (expected {expected}, found {found})")]
    ConcurrentUpdate { name: String, expected: String, found: String },
}

impl Error {
    /// Whether the user can act on this error: a ref moved by another process (run the
    /// command again) or a pack damaged on disk; everything else failed underneath.
    pub fn is_user_error(&self) -> bool {
        matches!(self, Error::ConcurrentUpdate { .. } | Error::CorruptPack { .. })
    }
}

/// Attaches what was being done to an error from gix (or any library), keeping it as the
/// source.
pub(crate) trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| Error::Gix { context: context(), source: Box::new(err) })
    }
}

/// Like [`Context`], for I/O errors.
pub(crate) trait IoContext<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { context: context(), source })
    }
}
