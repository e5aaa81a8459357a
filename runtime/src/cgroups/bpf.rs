//! The few bpf(2) commands the device filter needs (the raw call is in sys.rs): load a CGROUP_DEVICE program,
//! attach it to a cgroup, list and detach the programs already there. Instructions are encoded by hand
//! (struct bpf_insn) — a handful of opcodes, not worth a C library.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use super::error::CgroupError;

use crate::sys::{
    self, BpfAttr, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_PROG_ATTACH, BPF_PROG_DETACH,
    BPF_PROG_GET_FD_BY_ID, BPF_PROG_LOAD, BPF_PROG_QUERY, BPF_PROG_TYPE_CGROUP_DEVICE,
};

/// struct bpf_insn.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0xf),
            off,
            imm,
        }
    }
    /// dst = *(u32 *)(src + off)
    pub const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x61, dst, src, off, 0)
    }
    /// dst = (u32)dst & imm
    pub const fn and32_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0x54, dst, 0, 0, imm)
    }
    /// dst = (u32)dst >> imm
    pub const fn rsh32_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0x74, dst, 0, 0, imm)
    }
    /// dst = (u32)src
    pub const fn mov32_reg(dst: u8, src: u8) -> Insn {
        Insn::new(0xbc, dst, src, 0, 0)
    }
    /// dst = imm
    pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0xb7, dst, 0, 0, imm)
    }
    /// if dst != imm: pc += off
    pub const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(0x55, dst, 0, off, imm)
    }
    /// if dst == imm: pc += off
    pub const fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(0x15, dst, 0, off, imm)
    }
    /// if dst != src: pc += off
    pub const fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x5d, dst, src, off, 0)
    }
    pub const fn exit() -> Insn {
        Insn::new(0x95, 0, 0, 0, 0)
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

// SAFETY: each is #[repr(C)] and laid out as the prefix of `union bpf_attr` for its command
// (include/uapi/linux/bpf.h): PROG_LOAD, PROG_ATTACH/DETACH, PROG_QUERY, PROG_GET_FD_BY_ID.
unsafe impl BpfAttr for ProgLoadAttr {}
// SAFETY: as above.
unsafe impl BpfAttr for AttachAttr {}
// SAFETY: as above.
unsafe impl BpfAttr for QueryAttr {}
// SAFETY: as above.
unsafe impl BpfAttr for GetFdAttr {}

fn bpf_err(step: &'static str, errno: Errno) -> CgroupError {
    CgroupError::Bpf {
        step,
        errno,
        log: String::new(),
    }
}

/// Load the device filter; on failure, load it again with the verifier log on, to say why.
pub fn load_device_prog(insns: &[Insn]) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"gruntime_devs");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    match sys::bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(fd),
        Err(e) if e != Errno::EINVAL && e != Errno::EACCES => {
            return Err(bpf_err("load the device filter program", e))
        }
        Err(_) => {}
    }
    let mut log = vec![0u8; 64 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    let errno = match sys::bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    Err(CgroupError::Bpf {
        step: "load the device filter program",
        errno,
        log: String::from_utf8_lossy(&log[..end]).into_owned(),
    })
}

pub fn attach_device_prog(cgroup: BorrowedFd, prog: &OwnedFd) -> Result<(), CgroupError> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    sys::bpf(BPF_PROG_ATTACH, &mut attr)
        .map(|_| ())
        .map_err(|e| bpf_err("attach the device filter to the cgroup", e))
}

/// Ids of the device programs attached to the cgroup itself (not inherited ones).
pub fn query_device_progs(cgroup: BorrowedFd) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    sys::bpf(BPF_PROG_QUERY, &mut attr)
        .map_err(|e| bpf_err("list the cgroup's device filters", e))?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

pub fn detach_device_prog_id(cgroup: BorrowedFd, id: u32) -> Result<(), CgroupError> {
    let mut get = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    let prog = sys::bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut get)
        .map_err(|e| bpf_err("open the old device filter", e))?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    sys::bpf(BPF_PROG_DETACH, &mut attr)
        .map(|_| ())
        .map_err(|e| bpf_err("detach the old device filter", e))
}
