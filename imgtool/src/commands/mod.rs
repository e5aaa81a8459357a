//! One file per imgtool command: parse its flags, call the store/transport layer, print.
pub mod fsck;
pub mod images;
pub mod inspect;
pub mod load;
pub mod login;
pub mod pull;
pub mod rmi;
pub mod save;
pub mod tag;
pub mod unpack;
