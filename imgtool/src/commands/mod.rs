//! One file per imgtool command: parse its flags, call the store/transport layer, print.
pub mod copy;
pub mod delete;
pub mod fsck;
pub mod generate_sigstore_key;
pub mod images;
pub mod inspect;
pub mod inspect_remote;
pub mod list_tags;
pub mod load;
pub mod login;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod save;
pub mod tag;
pub mod unpack;
