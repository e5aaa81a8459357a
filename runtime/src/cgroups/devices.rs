//! `linux.resources.devices` → a BPF_PROG_TYPE_CGROUP_DEVICE program, built in-house (no libbpf, no C):
//! cgroup v2 has no devices.allow/deny files, the kernel asks an attached program instead.
//!
//! Rules are taken as runc takes them: the spec's rules, then an allow (rwm) for every `linux.devices`
//! node, then runc's default allow list. A rule for every device with every access ("a *:* rwm") resets
//! the list and sets the default answer; among the remaining rules the last match wins, so the program
//! tests them from last to first and returns the first match.

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::bpf::{self, Insn};
use super::error::CgroupError;

/// Access bits of `bpf_cgroup_dev_ctx.access_type >> 16`.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
/// Device types of `bpf_cgroup_dev_ctx.access_type & 0xffff`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// For other views of the rules (systemd's DeviceAllow): every access, and the block type.
pub const ACCESS_ALL: i32 = ACC_READ | ACC_WRITE | ACC_MKNOD;
pub const TYPE_BLOCK: i32 = DEV_BLOCK;

/// `r`, `w`, `m` in cgroup v1's order, as systemd's DeviceAllow and the v1 devices.allow write them.
pub fn access_letters(access: i32) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(bit, _)| access & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// One rule after parsing: `None` = wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub typ: Option<i32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: i32,
}

/// runc's `AllowedDevices`: mknod of anything, and the nodes every container gets.
const DEFAULT_ALLOWED: &[(char, i64, i64, &str)] = &[
    ('c', -1, -1, "m"),
    ('b', -1, -1, "m"),
    ('c', 1, 3, "rwm"),    // null
    ('c', 1, 8, "rwm"),    // random
    ('c', 1, 7, "rwm"),    // full
    ('c', 5, 0, "rwm"),    // tty
    ('c', 1, 5, "rwm"),    // zero
    ('c', 1, 9, "rwm"),    // urandom
    ('c', 5, 1, "rwm"),    // console
    ('c', 136, -1, "rwm"), // pts
    ('c', 5, 2, "rwm"),    // ptmx
    ('c', 10, 200, "rwm"), // net/tun
];

fn parse_access(field: &str, s: Option<&str>) -> Result<i32, CgroupError> {
    let s = s.unwrap_or("rwm");
    let mut acc = 0;
    for c in s.chars() {
        acc |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(CgroupError::BadValue {
                    field: field.into(),
                    reason: format!("access {s:?}: only r, w and m are allowed"),
                })
            }
        };
    }
    // An empty access string means all of them in runc.
    Ok(if acc == 0 {
        ACC_READ | ACC_WRITE | ACC_MKNOD
    } else {
        acc
    })
}

fn number(field: &str, what: &str, v: Option<i64>) -> Result<Option<u32>, CgroupError> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(CgroupError::BadValue {
            field: field.into(),
            reason: format!("{what} {n} is not a device number"),
        }),
    }
}

fn type_of(field: &str, t: Option<LinuxDeviceType>) -> Result<Option<i32>, CgroupError> {
    match t {
        None | Some(LinuxDeviceType::A) => Ok(None),
        Some(LinuxDeviceType::B) => Ok(Some(DEV_BLOCK)),
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Ok(Some(DEV_CHAR)),
        Some(LinuxDeviceType::P) => Err(CgroupError::BadValue {
            field: field.into(),
            reason: "type p: FIFOs are not devices the cgroup controls".into(),
        }),
    }
}

/// The complete, ordered rule list for a container.
pub fn rules(
    spec_rules: &[LinuxDeviceCgroup],
    nodes: &[LinuxDevice],
) -> Result<Vec<Rule>, CgroupError> {
    let mut out = Vec::new();
    for (i, r) in spec_rules.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        out.push(Rule {
            allow: r.allow(),
            typ: type_of(&field, r.typ())?,
            major: number(&field, "major", r.major())?,
            minor: number(&field, "minor", r.minor())?,
            access: parse_access(&field, r.access().as_deref())?,
        });
    }
    for (i, d) in nodes.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let typ = match d.typ() {
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            _ => continue, // FIFOs need no rule
        };
        out.push(Rule {
            allow: true,
            typ,
            major: number(&field, "major", Some(d.major()))?,
            minor: number(&field, "minor", Some(d.minor()))?,
            access: ACC_READ | ACC_WRITE | ACC_MKNOD,
        });
    }
    for &(t, major, minor, access) in DEFAULT_ALLOWED {
        out.push(Rule {
            allow: true,
            typ: Some(if t == 'b' { DEV_BLOCK } else { DEV_CHAR }),
            major: number("default devices", "major", Some(major))?,
            minor: number("default devices", "minor", Some(minor))?,
            access: parse_access("default devices", Some(access))?,
        });
    }
    Ok(out)
}

fn is_reset(r: &Rule) -> bool {
    r.typ.is_none()
        && r.major.is_none()
        && r.minor.is_none()
        && r.access == ACC_READ | ACC_WRITE | ACC_MKNOD
}

/// The device filter program for `rules`.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // Default deny, as a cgroup starts in runc; "a *:* rwm" rules reset it.
    let mut default_allow = false;
    let mut live: Vec<Rule> = Vec::new();
    for r in rules {
        if is_reset(r) {
            default_allow = r.allow;
            live.clear();
        } else {
            live.push(*r);
        }
    }
    // r2 = type, r3 = access, r4 = major, r5 = minor (ctx is struct bpf_cgroup_dev_ctx).
    let mut prog = vec![
        Insn::ldx_w(2, 1, 0),
        Insn::and32_imm(2, 0xffff),
        Insn::ldx_w(3, 1, 0),
        Insn::rsh32_imm(3, 16),
        Insn::ldx_w(4, 1, 4),
        Insn::ldx_w(5, 1, 8),
    ];
    for r in live.iter().rev() {
        prog.extend(rule_block(r));
    }
    prog.push(Insn::mov64_imm(0, default_allow as i32));
    prog.push(Insn::exit());
    prog
}

/// Checks that fall through to the next block when the rule does not match, then return its answer.
fn rule_block(r: &Rule) -> Vec<Insn> {
    // Jumps are written with target "end of block" (offset patched below).
    let mut b: Vec<Insn> = Vec::new();
    let mut jumps = Vec::new();
    if let Some(t) = r.typ {
        jumps.push(b.len());
        b.push(Insn::jne_imm(2, t, 0));
    }
    if r.access != ACC_READ | ACC_WRITE | ACC_MKNOD {
        b.push(Insn::mov32_reg(1, 3));
        b.push(Insn::and32_imm(1, r.access));
        jumps.push(b.len());
        if r.allow {
            // An allow rule covers a request only if it grants every bit asked for.
            b.push(Insn::jne_reg(1, 3, 0));
        } else {
            // A deny rule refuses a request asking for any bit it names.
            b.push(Insn::jeq_imm(1, 0, 0));
        }
    }
    if let Some(m) = r.major {
        jumps.push(b.len());
        b.push(Insn::jne_imm(4, m as i32, 0));
    }
    if let Some(m) = r.minor {
        jumps.push(b.len());
        b.push(Insn::jne_imm(5, m as i32, 0));
    }
    b.push(Insn::mov64_imm(0, r.allow as i32));
    b.push(Insn::exit());
    let len = b.len();
    for j in jumps {
        b[j].off = (len - j - 1) as i16;
    }
    b
}

/// Load the program for `rules` and attach it to the cgroup open at `cgroup_fd`, then detach whatever
/// filter was there before (an update replaces the old program without a window with none).
pub fn apply(cgroup_fd: std::os::fd::BorrowedFd, rules: &[Rule]) -> Result<(), CgroupError> {
    let insns = program(rules);
    let old = bpf::query_device_progs(cgroup_fd)?;
    let prog = bpf::load_device_prog(&insns)?;
    bpf::attach_device_prog(cgroup_fd, &prog)?;
    for id in old {
        bpf::detach_device_prog_id(cgroup_fd, id)?;
    }
    Ok(())
}

/// Evaluate `rules` in userspace the way the program does: the reference the unit tests compare with.
#[cfg(test)]
fn decide(rules: &[Rule], typ: i32, major: u32, minor: u32, access: i32) -> bool {
    let mut default_allow = false;
    let mut live = Vec::new();
    for r in rules {
        if is_reset(r) {
            default_allow = r.allow;
            live.clear();
        } else {
            live.push(*r);
        }
    }
    for r in live.iter().rev() {
        let t = r.typ.is_none_or(|t| t == typ);
        let a = if r.allow {
            access & r.access == access
        } else {
            access & r.access != 0
        };
        if t && a && r.major.is_none_or(|m| m == major) && r.minor.is_none_or(|m| m == minor) {
            return r.allow;
        }
    }
    default_allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    /// A tiny interpreter for the instructions we emit, so the program itself is tested, not just the rules.
    fn run(prog: &[Insn], typ: i32, major: u32, minor: u32, access: i32) -> bool {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => r[d] = ctx[i.off as usize / 4] as u64,
                0x54 => r[d] = (r[d] as u32 & i.imm as u32) as u64,
                0x74 => r[d] = ((r[d] as u32) >> i.imm) as u64,
                0xbc => r[d] = r[s] as u32 as u64,
                0xb7 => r[d] = i.imm as i64 as u64,
                0x55 => {
                    if r[d] != i.imm as u64 {
                        pc += i.off as usize
                    }
                }
                0x15 => {
                    if r[d] == i.imm as u64 {
                        pc += i.off as usize
                    }
                }
                0x5d => {
                    if r[d] != r[s] {
                        pc += i.off as usize
                    }
                }
                0x95 => return r[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn program_agrees_with_the_rule_semantics() {
        let sets = [
            r#"[{"allow":false,"access":"rwm"}]"#,
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]"#,
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"b","major":8,"access":"w"}]"#,
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":4,"access":"rw"},{"allow":false,"type":"c","major":4,"minor":1,"access":"w"}]"#,
        ];
        for s in sets {
            let rs = rules(&spec_rules(s), &[]).unwrap();
            let prog = program(&rs);
            for typ in [DEV_BLOCK, DEV_CHAR] {
                for (major, minor) in [
                    (1, 3),
                    (1, 5),
                    (4, 1),
                    (4, 2),
                    (8, 0),
                    (8, 1),
                    (136, 7),
                    (99, 99),
                ] {
                    for access in 1..8 {
                        assert_eq!(
                            run(&prog, typ, major, minor, access),
                            decide(&rs, typ, major, minor, access),
                            "{s}: type {typ} {major}:{minor} access {access}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn deny_all_then_defaults_behaves_like_runc() {
        let rs = rules(&spec_rules(r#"[{"allow":false,"access":"rwm"}]"#), &[]).unwrap();
        let prog = program(&rs);
        assert!(run(&prog, DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE)); // /dev/null
        assert!(!run(&prog, DEV_CHAR, 1, 1, ACC_READ)); // /dev/mem
        assert!(run(&prog, DEV_CHAR, 1, 1, ACC_MKNOD)); // runc allows mknod of anything
        assert!(!run(&prog, DEV_BLOCK, 8, 0, ACC_READ));
        assert!(run(&prog, DEV_CHAR, 136, 4, ACC_READ | ACC_WRITE)); // a pty
    }

    #[test]
    fn bad_access_is_an_error_naming_the_rule() {
        let e = rules(&spec_rules(r#"[{"allow":true,"access":"rwx"}]"#), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.devices[0]: access \"rwx\": only r, w and m are allowed"
        );
    }
}
