//! Images: reference parsing, the content store (blobs by digest), the registry client,
//! layer unpacking (whiteouts, ownership, path safety).

pub mod auth;
pub mod blobs;
pub mod reference;
pub mod registry;
pub mod unpack;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}
