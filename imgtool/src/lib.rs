//! imgtool's library: every module of the image tool. The binary (main.rs) is its command line;
//! the fuzz targets (fuzz/) call the pure entry points (references, manifests, auth files, layer
//! application) directly.
#[macro_use]
pub mod output;

pub mod accept;
pub mod auth;
pub mod bundle;
pub mod bundle_dir;
pub mod commands;
pub mod context;
pub mod copy;
pub mod error;
pub mod follow;
pub mod fsck;
pub mod image;
pub mod interrupt;
pub mod manifest;
pub mod progress;
pub mod reference;
pub mod registries_conf;
pub mod snapshot;
pub mod store;
pub mod transport;
pub mod trust;
pub mod unpack;
pub mod verify;
pub mod whole_file;
