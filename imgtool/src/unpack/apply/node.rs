//! Device nodes and FIFOs; rootless, devices cannot be made and are skipped with a warning.
use std::os::fd::BorrowedFd;

use nix::sys::stat::{fchmodat, mknodat, FchmodatFlags, Mode, SFlag};
use tar::EntryType;

use super::applier::{Applier, Ctx};
use super::attrs::set_times_at;
use crate::unpack::error::UnpackError;
use crate::unpack::meta::Meta;
use crate::unpack::resolve;

impl Applier {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn make_node(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        kind: EntryType,
        major: u32,
        minor: u32,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let sflag = match kind {
            EntryType::Char => SFlag::S_IFCHR,
            EntryType::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        if self.opts.rootless && kind != EntryType::Fifo {
            self.warn_once(format!(
                "layer {}: device node {:?} skipped: creating devices needs root",
                cx.layer, cx.entry
            ));
            return Ok(());
        }
        let dev = libc::makedev(major, minor);
        mknodat(
            dir,
            resolve::os(name),
            sflag,
            Mode::from_bits_truncate(0o600),
            dev,
        )
        .map_err(cx.apply("create device node"))?;
        self.set_owner_at(cx, dir, name, meta)?;
        // The node was just created by us and is not a symlink, so following is safe here.
        fchmodat(
            dir,
            resolve::os(name),
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(cx.apply("set mode"))?;
        self.set_xattrs_at(cx, dir, name, meta)?;
        set_times_at(cx, dir, name, meta, "set times")
    }
}
