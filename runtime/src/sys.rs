//! The kernel seam: every raw syscall gruntime makes itself (those nix and libc have no safe wrapper for), with
//! the kernel ABI structs and constants they take. This is the only file that calls `libc::syscall`; the rest
//! of the runtime calls these small safe functions, so the rules around them (what to mount, which ids to map,
//! which limits to set) can be read, and unit-tested, without the unsafe plumbing in the way.
//!
//! Each wrapper returns `nix::Result` and does nothing but the call: errors are named by the caller, which
//! knows the step and the config field.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sched::CloneFlags;

fn cstring(p: &Path) -> nix::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)
}

/// A descriptor a syscall just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: only called with the non-negative result of a syscall that returns a new descriptor, which
    // nothing else owns yet.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

// ---- processes: clone3, pidfd ----

/// `struct clone_args` (include/uapi/linux/sched.h), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3 like fork(2) (no new stack: the child continues on a copy of ours), with all new namespaces at once
/// and, given a cgroup fd, born inside the container's cgroup. Falls back to clone(2) on kernels without clone3.
/// Returns 0 in the child.
pub fn clone3(flags: CloneFlags, cgroup_fd: Option<RawFd>) -> nix::Result<i32> {
    let mut args = CloneArgs {
        flags: flags.bits() as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: we are single-threaded (gruntime starts no threads), so the child gets a consistent copy of the
    // address space, as with fork(2). args is a valid clone_args of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(r) {
        Ok(pid) => Ok(pid as i32),
        Err(Errno::ENOSYS) if cgroup_fd.is_none() => {
            // SAFETY: the raw clone syscall without CLONE_VM and a null stack behaves like fork.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            Errno::result(r).map(|p| p as i32)
        }
        Err(e) => Err(e),
    }
}

/// Wait until a process (not necessarily our child) is gone, by polling its pidfd. `Ok(true)` once it is gone
/// (or was already), `Ok(false)` when `timeout` passed first.
pub fn wait_pid_gone(pid: i32, timeout: Duration) -> nix::Result<bool> {
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Ok(true);
    }
    let fd = owned(fd);
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: pfd is one valid pollfd for the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    Errno::result(r).map(|n| n > 0)
}

// ---- file descriptors ----

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC): every fd from `first` up is closed by the next execve. Needs no
/// /proc, which a container that joins a mount namespace without one may not have. Linux 5.11+.
pub fn cloexec_from(first: RawFd) -> nix::Result<()> {
    // SAFETY: close_range takes integers; with CLOSE_RANGE_CLOEXEC it only sets flags on our own fds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(r).map(drop)
}

// ---- files and mounts: openat2, open_tree, move_mount, mount_setattr ----

/// openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): `path` is looked up as if `root`
/// were `/`, so no symlink or `..` can leave it.
pub fn openat2_in_root(root: RawFd, path: &Path, flags: nix::fcntl::OFlag) -> nix::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: open_how is plain data; all-zero is its valid default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | nix::fcntl::OFlag::O_CLOEXEC).bits() as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: c is NUL-terminated, how is a valid open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    Errno::result(fd).map(owned)
}

/// mount_setattr(2) attributes (include/uapi/linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const AT_EMPTY_PATH: libc::c_uint = 0x1000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
#[derive(Default)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

fn mount_setattr(
    dirfd: RawFd,
    path: &CStr,
    flags: libc::c_uint,
    attr: &MountAttr,
) -> nix::Result<()> {
    // SAFETY: path is a valid NUL-terminated string and attr a valid mount_attr of the size passed, both
    // outliving the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// mount_setattr(path, AT_RECURSIVE): set and clear attributes on a whole mounted subtree.
pub fn mount_setattr_recursive(path: &Path, attr: &MountAttr) -> nix::Result<()> {
    mount_setattr(libc::AT_FDCWD, &cstring(path)?, AT_RECURSIVE, attr)
}

/// mount_setattr on a detached tree (an open_tree fd).
pub fn mount_setattr_fd(tree: BorrowedFd, recursive: bool, attr: &MountAttr) -> nix::Result<()> {
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    mount_setattr(tree.as_raw_fd(), c"", flags, attr)
}

/// open_tree(OPEN_TREE_CLONE): a detached copy of the mount (or the whole subtree) at `source`.
pub fn open_tree_clone(source: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let c = cstring(source)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: c is NUL-terminated; open_tree returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    Errno::result(fd).map(owned)
}

/// move_mount: attach a detached tree onto `target` (an O_PATH fd of the mount point).
pub fn move_mount_onto(tree: BorrowedFd, target: BorrowedFd) -> nix::Result<()> {
    // SAFETY: both fds are valid and "" is a valid C string; move_mount only attaches the detached tree.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

// ---- the user process: capabilities, I/O priority, scheduling, memory policy ----

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// One 32-bit word of the three capability sets.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CapData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

/// capset(2) of this thread, v3 layout: 64-bit sets as two words, low word first.
pub fn capset(data: [CapData; 2]) -> nix::Result<()> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: hdr and data are the v3 layout capset(2) expects (one header, two data words).
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    Errno::result(r).map(drop)
}

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: u32 = 13;

/// ioprio_set(IOPRIO_WHO_PROCESS, self) with a class (1 RT, 2 BE, 3 IDLE) and a level.
pub fn ioprio_set_self(class: libc::c_int, level: libc::c_int) -> nix::Result<()> {
    let value = (class << IOPRIO_CLASS_SHIFT) | level;
    // SAFETY: ioprio_set takes three integers and changes only this process's I/O priority.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    Errno::result(r).map(drop)
}

/// `struct sched_attr` (include/uapi/linux/sched/types.h), with the utilisation clamps.
#[repr(C)]
#[derive(Default)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

/// sched_setattr(2) of this process; `size` is filled in here.
pub fn sched_setattr_self(mut attr: SchedAttr) -> nix::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: attr is a valid sched_attr of the size it declares; pid 0 is this process.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    Errno::result(r).map(drop)
}

/// set_mempolicy(2): `mask` holds the node bits (empty for modes without nodes), `maxnode` its bit count + 1.
pub fn set_mempolicy(
    mode: libc::c_int,
    mask: &[libc::c_ulong],
    maxnode: libc::c_ulong,
) -> nix::Result<()> {
    let ptr = if mask.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    // SAFETY: ptr is null or points to mask, which holds at least maxnode-1 bits and outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    Errno::result(r).map(drop)
}

// ---- seccomp(2) ----

/// `struct sock_fprog` from linux/filter.h.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const seccompiler::sock_filter,
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog): the raw return value (a listener fd with NEW_LISTENER, the
/// tid TSYNC could not synchronise, or 0).
pub fn seccomp_set_filter(
    prog: &[seccompiler::sock_filter],
    flags: libc::c_ulong,
) -> std::io::Result<libc::c_long> {
    let fprog = SockFprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr(),
    };
    // SAFETY: fprog points at prog, alive for the call; the kernel copies the program and keeps no pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Whether the running kernel knows a seccomp return action (SECCOMP_GET_ACTION_AVAIL).
pub fn seccomp_action_available(action: u32) -> bool {
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 from the pointer, which is valid.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    rc == 0
}

/// Whether the running kernel knows a SECCOMP_SET_MODE_FILTER flag. The kernel checks the flags before
/// reading the program, so a NULL program gives EFAULT for a known flag and EINVAL for an unknown one, without
/// installing anything (the probe libseccomp uses).
pub fn seccomp_flag_known(flags: libc::c_ulong) -> bool {
    // SAFETY: a NULL program is never dereferenced by the kernel: it fails with EFAULT or EINVAL.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<SockFprog>(),
        )
    };
    rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

// ---- bpf(2), for the cgroup device filter ----

pub const BPF_PROG_LOAD: libc::c_int = 5;
pub const BPF_PROG_ATTACH: libc::c_int = 8;
pub const BPF_PROG_DETACH: libc::c_int = 9;
pub const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
pub const BPF_PROG_QUERY: libc::c_int = 16;
pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const BPF_CGROUP_DEVICE: u32 = 6;
/// Lets nested cgroups (a container that manages its own) attach their own filters below ours.
pub const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `union bpf_attr` variants gruntime uses: each is a prefix of the union, zero-padded.
///
/// # Safety
/// Implementors must be `#[repr(C)]` structs laid out as the prefix of `union bpf_attr` for their command.
pub unsafe trait BpfAttr {}

/// bpf(cmd, attr, sizeof attr): the raw return value.
pub fn bpf<T: BpfAttr>(cmd: libc::c_int, attr: &mut T) -> nix::Result<libc::c_long> {
    // SAFETY: attr is a bpf_attr variant for `cmd` (the BpfAttr contract), valid for the call; the kernel
    // reads (and for QUERY writes) at most size_of::<T>() bytes of it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    Errno::result(r)
}

/// A bpf(2) command that returns a new descriptor (PROG_LOAD, PROG_GET_FD_BY_ID).
pub fn bpf_fd<T: BpfAttr>(cmd: libc::c_int, attr: &mut T) -> nix::Result<OwnedFd> {
    bpf(cmd, attr).map(owned)
}

// ---- namespaces, time namespace ----

/// ioctl(NS_GET_NSTYPE) on a namespace fd: its CLONE_NEW* type.
pub fn ns_get_type(fd: BorrowedFd) -> nix::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument and returns an int; fd is a valid descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE as _) };
    Errno::result(r)
}
