//! The gruntime chaos soak: create, start, exec, kill and delete again and again in the VM, half of
//! the commands with a SIGKILL at a random moment for a random gruntime process or the container's
//! init (the driver is `src/bin/chaos_driver.rs`, which says what it checks). Afterwards `list`
//! must agree with the kernel, `delete --force` must clean every id, and no cgroup, mount, state
//! dir, fd, process or zombie may be left.
//!
//! `GRUNTIME_CHAOS_ITERATIONS` (default 300: about 3 minutes of the VM, what `make test` runs) and
//! `GRUNTIME_CHAOS_SEED` (default: from the clock, printed first) set the run; `make chaos` runs it
//! alone with 1000 iterations (about 9 minutes on an idle host, 15 beside compilers).
//!
//! The same soak runs with `--systemd-cgroup` in the systemd-booted guest (a third of the iterations:
//! each create and delete is a round trip to systemd), where no `gruntime-*` unit may be left either.
use std::time::Duration;

use integration::cgroups::make_bundle;
use integration::vm::{Init, Vm};
use integration::{gruntime_bin, make_busybox_rootfs};

/// Run the driver in a guest of `init` for `iterations` and check its summary.
fn soak(init: Init, iterations: u64) {
    let share = tempfile::Builder::new()
        .prefix("gruntime-chaos-")
        .tempdir()
        .expect("temp dir");
    let rootfs = share.path().join("rootfs");
    make_busybox_rootfs(&rootfs);
    let bundle = share.path().join("bundle");
    make_bundle(&bundle, &rootfs, &["sleep", "100000"], |_| {});
    let mut vm = Vm::new()
        .init(init)
        .share(share.path())
        .env("GRUNTIME", gruntime_bin().display().to_string())
        .env("CHAOS_DRIVER", env!("CARGO_BIN_EXE_chaos_driver"))
        .env("CHAOS_BUNDLE", bundle.display().to_string())
        .env("CHAOS_ROOT", "/run/gruntime-chaos")
        .env("CHAOS_ITERATIONS", iterations.to_string())
        // Bound: about 0.5 s per iteration under TCG, 0.9 s with compilers beside it, plus the boot.
        .timeout(Duration::from_secs(180 + iterations * 3 / 2));
    if init == Init::Systemd {
        vm = vm.env("CHAOS_SYSTEMD", "1");
    }
    if let Ok(seed) = std::env::var("GRUNTIME_CHAOS_SEED") {
        vm = vm.env("CHAOS_SEED", seed);
    }
    let out = match vm.run(r#""$CHAOS_DRIVER""#) {
        Ok(out) => out,
        Err(e) => panic!("the chaos VM batch failed: {e}"),
    };
    eprintln!("{}", out.stdout);
    assert_eq!(out.status, 0, "the chaos soak found defects:\n{out}");
    let summary = out.section("summary");
    assert!(
        summary
            .lines()
            .any(|l| l == format!("iterations {iterations}")),
        "no summary:\n{out}"
    );
}

fn iterations() -> u64 {
    std::env::var("GRUNTIME_CHAOS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
fn gruntime_killed_at_random_moments_leaves_a_list_that_matches_the_kernel_and_nothing_behind() {
    soak(Init::Busybox, iterations());
}

#[test]
fn under_the_systemd_driver_killed_commands_leave_no_scope_unit_or_cgroup_behind() {
    soak(Init::Systemd, iterations() / 3);
}
