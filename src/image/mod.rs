//! Images: reference parsing, the content store (blobs by digest), the registry client,
//! layer unpacking (whiteouts, ownership, path safety), the layer writer, image archives.

pub mod archive;
pub mod auth;
pub mod blobs;
pub mod pack;
pub mod reference;
pub mod registry;
pub mod tarwrite;
pub mod unpack;

#[cfg(test)]
mod testutil;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}
