//! The metadata of one tar entry as the applier needs it: header fields merged with the pax
//! extensions that override them (ids, nanosecond times, `SCHILY.xattr.*`), and, rootless, the
//! owner kept in the `user.rootlesscontainers` xattr. Its own module because both the applier
//! and the writer threads that finish files read a `Meta`.
use std::ffi::CString;
use std::io::{self, Read};

use nix::sys::time::TimeSpec;

/// The header fields a pax extension may override, merged.
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: TimeSpec,
    pub atime: Option<TimeSpec>,
    pub xattrs: Vec<(CString, Vec<u8>)>,
}

fn parse_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some(TimeSpec::new(secs, nanos))
}

pub fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mut m = Meta {
        mode: h.mode()? & 0o7777,
        uid: h.uid()?,
        gid: h.gid()?,
        mtime: TimeSpec::new(h.mtime()? as i64, 0),
        atime: None,
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let key = ext.key_bytes();
            let val = ext.value_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if let Ok(n) = CString::new(name) {
                    m.xattrs.push((n, val.to_vec()));
                }
            } else if key == b"uid" {
                if let Some(v) = std::str::from_utf8(val).ok().and_then(|s| s.parse().ok()) {
                    m.uid = v;
                }
            } else if key == b"gid" {
                if let Some(v) = std::str::from_utf8(val).ok().and_then(|s| s.parse().ok()) {
                    m.gid = v;
                }
            } else if key == b"mtime" {
                if let Some(t) = parse_time(val) {
                    m.mtime = t;
                }
            } else if key == b"atime" {
                m.atime = parse_time(val);
            }
        }
    }
    Ok(m)
}

/// Rootless, every file belongs to the caller: keep the owner the layer gave it in the
/// `user.rootlesscontainers` xattr, as umoci does (a protobuf `Resource { uint32 uid = 1; uint32 gid = 2; }`).
/// The caller is root in the container, so an id of 0 is "no change" (NoopID, 2^32-1) and root:root needs
/// no xattr at all.
pub fn record_rootless_owner(meta: &mut Meta) {
    if meta.uid == 0 && meta.gid == 0 {
        return;
    }
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut pb = Vec::new();
    const NOOP_ID: u64 = 0xffff_ffff;
    for (tag, v) in [(0x08u8, meta.uid), (0x10u8, meta.gid)] {
        pb.push(tag);
        varint(&mut pb, if v == 0 { NOOP_ID } else { v & 0xffff_ffff });
    }
    let name = CString::new("user.rootlesscontainers").expect("no NUL");
    meta.xattrs.retain(|(k, _)| *k != name);
    meta.xattrs.push((name, pb));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: u64, gid: u64) -> Meta {
        Meta {
            mode: 0o644,
            uid,
            gid,
            mtime: TimeSpec::new(0, 0),
            atime: None,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn owner_is_recorded_as_umocis_protobuf() {
        let mut m = meta(1000, 300);
        record_rootless_owner(&mut m);
        assert_eq!(m.xattrs.len(), 1);
        assert_eq!(m.xattrs[0].0.to_str().unwrap(), "user.rootlesscontainers");
        // field 1 varint 1000 = e8 07, field 2 varint 300 = ac 02
        assert_eq!(m.xattrs[0].1, vec![0x08, 0xe8, 0x07, 0x10, 0xac, 0x02]);
        let mut g = meta(0, 5);
        record_rootless_owner(&mut g);
        assert_eq!(
            g.xattrs[0].1,
            vec![0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x10, 0x05]
        );
        let mut r = meta(0, 0);
        record_rootless_owner(&mut r);
        assert!(r.xattrs.is_empty());
    }

    #[test]
    fn a_pax_time_keeps_its_fraction_as_nanoseconds() {
        assert_eq!(
            parse_time(b"1600000000.5"),
            Some(TimeSpec::new(1_600_000_000, 500_000_000))
        );
        assert_eq!(parse_time(b"42"), Some(TimeSpec::new(42, 0)));
    }

    #[test]
    fn a_pax_time_finer_than_nanoseconds_is_cut_not_rounded() {
        assert_eq!(
            parse_time(b"7.1234567899"),
            Some(TimeSpec::new(7, 123_456_789))
        );
    }

    #[test]
    fn a_malformed_pax_time_is_ignored() {
        for bad in [&b"soon"[..], b"1.x", b"", b"\xff"] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }
}
