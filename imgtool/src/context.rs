//! What every command gets: the store location and registry options. (Owned by the pull/store work.)
#[allow(dead_code)]
pub struct Context {
    pub store_dir: std::path::PathBuf,
}
