//! imgtool's error type. (Owned by the pull/store work.)
#[derive(Debug)]
pub enum Error {
    Other(String),
}
