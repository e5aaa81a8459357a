//! The SIGKILL soak: imgtool killed at random moments of pull, unpack (copy and overlay), save,
//! load, rmi and bundle rm against a local docker-registry, again and again. After each kill
//! the next command must work and leave no temp or partial file behind, fsck must never find
//! damage, and at the end the store must check clean once its orphans are repaired away, with
//! no mount left.
//!
//! `IMGTOOL_SOAK_ITERATIONS` (default 300) and `IMGTOOL_SOAK_SEED` (default: from the clock) set
//! the run; the seed is printed first and in every failure, and a replay with it runs the same
//! commands with the same choices, each killed at the same fraction of its measured duration
//! (what the process is doing at that moment still depends on the machine's timing).
//! Everything but the registry lives on a tmpfs of the test's own mount namespace: creating a
//! file on a virtual machine's ext4 can take half a millisecond (it does where this was
//! written), which would make the unpacks of a few hundred files most of the run.
//! Needs (root): docker-registry, skopeo, overlayfs.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use integration::imgstore::ImgStore;
use integration::private_tmpfs::with_tmpfs;
use integration::registry::{Comp, Flavor, LayerSpec, Layout, TestRegistry};

/// splitmix64: small, good enough, and the same everywhere for a given seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Pull,
    UnpackCopy,
    UnpackOverlay,
    Save,
    Load,
    Rmi,
    BundleRm,
    /// `bundle prune`: not in the list, but it is what makes the overlay layer cache
    /// cold again (so overlay unpacks have layers to extract), and it removes layers itself.
    Prune,
}

/// How often each command is picked (the unpacks and the pull do the most).
const OPS: &[(Op, u64)] = &[
    (Op::Pull, 3),
    (Op::UnpackCopy, 3),
    (Op::UnpackOverlay, 3),
    (Op::Save, 2),
    (Op::Load, 2),
    (Op::Rmi, 2),
    (Op::BundleRm, 2),
    (Op::Prune, 1),
];

/// An image of the soak: its name in the registry, its ID, and the paths of its rootfs.
struct Image {
    name: String,
    id: String,
    tree: Vec<String>,
}

struct Soak {
    /// Where everything but the registry lives (a tmpfs: unpacks make many files).
    root: PathBuf,
    store: ImgStore,
    images: Vec<Image>,
    /// docker-archive and oci-archive of all images, for `load`.
    archives: Vec<PathBuf>,
    /// Finished bundles, with their image.
    bundles: Vec<(PathBuf, usize)>,
    next_bundle: usize,
    /// How long each command took the last time it ran to its end, and the longest: the
    /// ranges its next kill delay is drawn from (a warm layer cache makes an overlay unpack
    /// instant, a cold one does not).
    duration: BTreeMap<Op, (Duration, Duration)>,
    context: String,
}

/// A layer of many small files: what makes an unpack (and its removal) take a while.
fn many_files(tag: &str) -> LayerSpec {
    LayerSpec {
        files: (0..300)
            .map(|i| {
                (
                    format!("{tag}/d{}/f{i}", i % 20),
                    format!("{tag} {i}").into_bytes(),
                )
            })
            .collect(),
        busybox: false,
        comp: Comp::Gzip,
    }
}

/// Half a MiB that does not compress, shared by both images: what makes a pull take a while
/// (and gives rmi a blob that another image still uses).
fn noise() -> LayerSpec {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..512 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    LayerSpec {
        files: [("noise".to_string(), data)].into_iter().collect(),
        busybox: false,
        comp: Comp::Gzip,
    }
}

impl Soak {
    fn new(reg: &TestRegistry, root: &Path) -> Soak {
        let layout = Layout::create(&root.join("layout"));
        let mut images = vec![];
        for tag in ["alpha", "beta"] {
            let marker = format!("{tag}/marker");
            let files = many_files(tag);
            // What every bundle of it must hold, to the last file and directory.
            let mut tree: std::collections::BTreeSet<String> =
                ["noise".to_string(), marker.clone()]
                    .into_iter()
                    .chain(files.files.keys().cloned())
                    .collect();
            for p in tree.clone() {
                let mut parent = Path::new(&p).parent();
                while let Some(d) = parent.filter(|d| !d.as_os_str().is_empty()) {
                    tree.insert(d.to_string_lossy().into_owned());
                    parent = d.parent();
                }
            }
            let built = layout.tagged_image(
                tag,
                Flavor::Oci,
                &[
                    noise(),
                    files,
                    LayerSpec::files(Comp::Gzip, &[(marker.as_str(), tag.as_bytes())]),
                ],
                tag,
            );
            reg.push(&layout.dir, tag, "soak/img", tag);
            images.push(Image {
                name: format!("{}/soak/img:{tag}", reg.addr),
                id: built
                    .config_digest
                    .trim_start_matches("sha256:")
                    .to_string(),
                tree: tree.into_iter().collect(),
            });
        }
        for d in ["bundles", "archives", "out"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        let store = ImgStore::at(&root.join("store"));
        let mut soak = Soak {
            root: root.to_path_buf(),
            store,
            images,
            archives: vec![],
            bundles: vec![],
            next_bundle: 0,
            duration: BTreeMap::new(),
            context: "setup".into(),
        };
        for i in 0..soak.images.len() {
            soak.ensure_present(i);
        }
        let all: Vec<String> = soak.images.iter().map(|i| i.name.clone()).collect();
        for format in ["docker-archive", "oci-archive"] {
            let a = soak.path("archives").join(format!("all.{format}.tar"));
            let mut args = vec!["save", "--format", format, "-o", a.to_str().unwrap()];
            args.extend(all.iter().map(String::as_str));
            soak.ok(&args);
            soak.archives.push(a);
        }
        soak
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p)
    }

    /// `imgtool ARGS` (with `--plain-http`), which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = vec!["--plain-http"];
        all.extend_from_slice(args);
        let o = self.store.run(&all);
        assert!(
            o.status.success(),
            "{}: the next command, imgtool {args:?}, failed ({}): {}{}",
            self.context,
            o.status,
            integration::stdout(&o),
            integration::stderr(&o)
        );
        integration::stdout(&o)
    }

    /// Whether the image has its name in the store.
    fn present(&self, i: usize) -> bool {
        let o = self.store.run(&["images", "--format", "json"]);
        assert!(o.status.success(), "{}: images", self.context);
        let listed: Vec<serde_json::Value> =
            serde_json::from_slice(&o.stdout).expect("images --format json");
        listed
            .iter()
            .any(|e| e["Name"] == self.images[i].name.as_str())
    }

    fn ensure_present(&self, i: usize) {
        if !self.present(i) {
            let id = self.ok(&["pull", "-q", &self.images[i].name]);
            assert_eq!(id.trim(), self.images[i].id, "{}", self.context);
        }
    }

    /// The image gone altogether: its name, and any nameless copy of it a load left (a
    /// docker-archive's image has a manifest of its own), so that a pull has work to do.
    fn ensure_absent(&self, i: usize) {
        for _ in 0..4 {
            let o = self.store.run(&["images", "-q", "--no-trunc"]);
            if !integration::stdout(&o).contains(&self.images[i].id) {
                return;
            }
            self.ok(&["rmi", "-f", &self.images[i].id]);
        }
        panic!(
            "{}: image {} cannot be removed",
            self.context, self.images[i].name
        );
    }

    fn timed(&mut self, op: Op, took: Duration) {
        let e = self.duration.entry(op).or_default();
        *e = (took, e.1.max(took));
    }

    /// A kill delay for `op`: up to 1.2 × its last or its longest complete run.
    /// `draw` picks the range and the point in it, so a replay kills at the same fraction of
    /// the command's measured time.
    fn kill_delay(&self, op: Op, draw: u64) -> Duration {
        let (last, longest) = self.duration[&op];
        let range = if draw & 1 == 0 { last } else { longest };
        let range = range.as_micros() as u64 * 6 / 5;
        Duration::from_micros(range * ((draw >> 1) % 1001) / 1000)
    }

    fn new_bundle_dir(&mut self) -> PathBuf {
        self.next_bundle += 1;
        self.path("bundles").join(format!("b{}", self.next_bundle))
    }

    /// The command line of `op`, after setting up what it needs; and what the next command
    /// must check.
    fn prepare(&mut self, op: Op, rng: &mut Rng) -> (Vec<String>, Next) {
        let i = rng.below(self.images.len() as u64) as usize;
        let name = self.images[i].name.clone();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match op {
            Op::Pull => {
                self.ensure_absent(i);
                // Next: the pull again, or an unpack that has to finish the pull itself.
                let next = match rng.below(3) {
                    0 => Next::Unpack(i, self.new_bundle_dir(), "copy"),
                    1 => Next::Unpack(i, self.new_bundle_dir(), "overlay"),
                    _ => Next::Pull(i),
                };
                (s(&["pull", "-q", &name]), next)
            }
            Op::UnpackCopy | Op::UnpackOverlay => {
                // Half the time the image is pulled by the unpack itself (read while it
                // downloads).
                if rng.below(2) == 0 {
                    self.ensure_absent(i);
                } else {
                    self.ensure_present(i);
                }
                let dir = self.new_bundle_dir();
                let mode = if op == Op::UnpackCopy {
                    "copy"
                } else {
                    "overlay"
                };
                let args = s(&[
                    "unpack",
                    "-q",
                    "--snapshot",
                    mode,
                    &name,
                    dir.to_str().unwrap(),
                ]);
                // Next: the unpack again into the same directory (which takes over what the
                // killed one left), or bundle rm of it.
                let next = match rng.below(3) {
                    0 => Next::BundleRm(dir, Some((i, mode))),
                    _ => Next::Unpack(i, dir, mode),
                };
                (args, next)
            }
            Op::Save => {
                self.ensure_present(i);
                let format = ["docker-archive", "oci-archive"][rng.below(2) as usize];
                let out = self.path("out").join("saved.tar");
                let args = s(&[
                    "save",
                    "--format",
                    format,
                    "-o",
                    out.to_str().unwrap(),
                    &name,
                ]);
                (args, Next::Same)
            }
            Op::Load => {
                if rng.below(2) == 0 {
                    self.ensure_absent(i);
                }
                let a = self.archives[rng.below(self.archives.len() as u64) as usize].clone();
                (s(&["load", "-q", "-i", a.to_str().unwrap()]), Next::Same)
            }
            Op::Rmi => {
                self.ensure_present(i);
                let next = match rng.below(2) {
                    0 => Next::Pull(i),
                    _ => Next::Rmi(i),
                };
                (s(&["rmi", &name]), next)
            }
            Op::BundleRm => {
                if self.bundles.is_empty() {
                    let dir = self.new_bundle_dir();
                    let mode = ["copy", "overlay"][rng.below(2) as usize];
                    self.ensure_present(i);
                    self.ok(&[
                        "unpack",
                        "-q",
                        "--snapshot",
                        mode,
                        &name,
                        dir.to_str().unwrap(),
                    ]);
                    self.bundles.push((dir, i));
                }
                let k = rng.below(self.bundles.len() as u64) as usize;
                let (dir, _) = self.bundles.remove(k);
                (
                    s(&["bundle", "rm", dir.to_str().unwrap()]),
                    Next::BundleRm(dir, None),
                )
            }
            Op::Prune => {
                // Free some layers first, so that there is something to prune.
                if !self.bundles.is_empty() && rng.below(2) == 0 {
                    let (dir, _) = self.bundles.remove(0);
                    self.ok(&["bundle", "rm", dir.to_str().unwrap()]);
                }
                // Next: prune again, or an overlay unpack, which must not take a layer the
                // killed prune was removing for a whole one.
                let next = match rng.below(2) {
                    0 => Next::Unpack(i, self.new_bundle_dir(), "overlay"),
                    _ => Next::Same,
                };
                (s(&["bundle", "prune"]), next)
            }
        }
    }

    /// Run `args` and SIGKILL it after `delay` (if it is still running then); whether it was
    /// killed, and how long it ran.
    fn run_killed(&self, args: &[String], delay: Duration) -> (bool, Duration) {
        let start = Instant::now();
        let mut child = self
            .store
            .cmd(&["--plain-http"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                // Finished before the kill: it must have succeeded.
                assert!(
                    st.success(),
                    "{}: imgtool {args:?} failed on its own: {st}",
                    self.context
                );
                return (false, start.elapsed());
            }
            if start.elapsed() >= delay {
                break;
            }
            std::thread::sleep(Duration::from_millis(1).min(delay));
        }
        let _ = child.kill();
        child.wait().unwrap();
        (true, start.elapsed())
    }

    /// The next command after a kill: it must work, and leave the state consistent. When it
    /// is the killed command again, run to its end, its time is a range for the next kill.
    fn recover(&mut self, op: Op, next: Next, args: &[String]) {
        let next = match next {
            Next::BundleRm(d, Some((i, mode))) if !d.exists() => Next::Unpack(i, d, mode),
            n => n,
        };
        let start = Instant::now();
        let same = matches!(
            (&next, op),
            (Next::Same, _)
                | (Next::Pull(_), Op::Pull)
                | (Next::Unpack(..), Op::UnpackCopy | Op::UnpackOverlay)
        );
        match next {
            Next::Pull(i) => {
                let id = self.ok(&["pull", "-q", &self.images[i].name]);
                assert_eq!(id.trim(), self.images[i].id, "{}", self.context);
            }
            Next::Unpack(i, dir, mode) => {
                let finished = dir.join("imgtool-bundle.json").exists()
                    && !dir.join(".imgtool-unpacking").exists();
                if !finished {
                    // Into the same directory: a dead unpack's leftovers are taken over.
                    let name = self.images[i].name.clone();
                    self.ok(&[
                        "unpack",
                        "-q",
                        "--snapshot",
                        mode,
                        &name,
                        dir.to_str().unwrap(),
                    ]);
                }
                assert!(
                    dir.join("config.json").is_file(),
                    "{}: bundle {} has no config.json",
                    self.context,
                    dir.display()
                );
                let tree = rootfs_tree(&dir.join("rootfs"));
                assert!(
                    tree == self.images[i].tree,
                    "{}: bundle {} does not hold the image's tree: {} paths, {} expected",
                    self.context,
                    dir.display(),
                    tree.len(),
                    self.images[i].tree.len()
                );
                self.bundles.push((dir, i));
            }
            Next::Rmi(i) => {
                if self.present(i) {
                    self.ok(&["rmi", &self.images[i].name]);
                }
                assert!(!self.present(i), "{}", self.context);
            }
            Next::BundleRm(dir, _) => {
                if dir.exists() {
                    self.ok(&["bundle", "rm", dir.to_str().unwrap()]);
                }
                assert!(
                    !dir.exists(),
                    "{}: {} still there",
                    self.context,
                    dir.display()
                );
            }
            Next::Same => {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                self.ok(&a);
            }
        }
        if same {
            self.timed(op, start.elapsed());
        }
    }

    /// No temp or partial file anywhere: in the store, beside the archives, in bundles.
    fn assert_no_leftovers(&self) {
        let debris = self.store.debris();
        assert!(
            debris.is_empty(),
            "{}: left in the store: {debris:?}",
            self.context
        );
        for d in ["out", "archives", "bundles"] {
            for e in std::fs::read_dir(self.path(d)).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                assert!(
                    n.starts_with("saved.tar") || n.starts_with("all.") || n.starts_with('b'),
                    "{}: left in {d}: {n}",
                    self.context
                );
            }
        }
        for (b, _) in &self.bundles {
            assert!(
                !b.join(".imgtool-unpacking").exists(),
                "{}: {} unfinished",
                self.context,
                b.display()
            );
        }
        let listed: Vec<PathBuf> = self.bundles.iter().map(|(b, _)| b.clone()).collect();
        for e in std::fs::read_dir(self.path("bundles")).unwrap().flatten() {
            assert!(
                listed.contains(&e.path()),
                "{}: stray bundle {}",
                self.context,
                e.path().display()
            );
        }
    }

    /// fsck finds no damage and no debris (orphans are allowed: a killed pull leaves whole
    /// blobs for the next one).
    fn assert_sound(&self) {
        let r = self.store.fsck(&[]);
        let bad: Vec<_> = r.problems.iter().filter(|p| p.kind != "orphan").collect();
        assert!(
            r.code == Some(0) && bad.is_empty(),
            "{}: fsck (exit {:?}): {bad:#?}\n{}",
            self.context,
            r.code,
            r.stderr
        );
    }

    /// Mounts below the soak's root (the overlay rootfses of live bundles).
    fn mounts(&self) -> Vec<String> {
        let base = self.root.to_string_lossy().into_owned();
        // This thread's own mount namespace (see `with_tmpfs`), not the process's.
        std::fs::read_to_string("/proc/thread-self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|mp| mp.starts_with(&base) && mp != base)
            })
            .map(String::from)
            .collect()
    }
}

impl Drop for Soak {
    fn drop(&mut self) {
        // Overlay bundles a failed run left mounted must not keep the temp dir busy.
        for (b, _) in &self.bundles {
            let _ = nix::mount::umount2(&b.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        }
        for l in self.mounts() {
            match l.split(' ').nth(4) {
                Some(mp) if Path::new(mp) != self.root => {
                    let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
                }
                _ => {}
            }
        }
    }
}

/// Every path below `root`, relative, sorted.
fn rootfs_tree(root: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What the command after a kill does and checks.
enum Next {
    Pull(usize),
    Unpack(usize, PathBuf, &'static str),
    Rmi(usize),
    /// `bundle rm DIR`; if the killed command was an unpack that never made DIR, the unpack
    /// of that image in that mode again (no one runs bundle rm on nothing).
    BundleRm(PathBuf, Option<(usize, &'static str)>),
    /// Run the same command again, to completion.
    Same,
}

fn pick(draw: u64) -> Op {
    let total: u64 = OPS.iter().map(|(_, w)| w).sum();
    let mut r = draw % total;
    for (op, w) in OPS {
        if r < *w {
            return *op;
        }
        r -= w;
    }
    unreachable!()
}

#[test]
fn imgtool_killed_at_random_moments_leaves_a_store_that_works_and_checks_clean() {
    let iterations = env_u64("IMGTOOL_SOAK_ITERATIONS").unwrap_or(300);
    let seed = env_u64("IMGTOOL_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!(
        "imgtool soak: seed {seed}, {iterations} iterations \
         (IMGTOOL_SOAK_SEED={seed} IMGTOOL_SOAK_ITERATIONS={iterations} to replay)"
    );
    let started = Instant::now();
    let reg = TestRegistry::plain();
    let tmp = tempfile::Builder::new()
        .prefix("imgtool-soak")
        .tempdir()
        .unwrap();
    with_tmpfs(&[tmp.path()], "1g", || {
        let mut soak = Soak::new(&reg, tmp.path());
        let mut rng = Rng(seed);
        // Each iteration takes the same three draws from the seed's stream (what to run, where
        // to kill it, and a stream of its own for its choices), so however many choices an
        // iteration makes, a replay runs the same commands with the same choices.
        let mut iteration_draws = || (rng.next(), rng.next(), Rng(rng.next()));

        // How long each command takes unkilled: the first ranges for kill delays.
        for (op, _) in OPS {
            soak.context = format!("seed {seed}, timing {op:?}");
            let (_, _, mut choices) = iteration_draws();
            let (args, next) = soak.prepare(*op, &mut choices);
            let (_, took) = soak.run_killed(&args, Duration::from_secs(600));
            soak.timed(*op, took);
            soak.recover(*op, next, &args);
        }

        let mut killed: BTreeMap<Op, (u32, u32)> = BTreeMap::new();
        for n in 1..=iterations {
            let (which, when, mut choices) = iteration_draws();
            let op = pick(which);
            let (args, next) = soak.prepare(op, &mut choices);
            let delay = soak.kill_delay(op, when);
            soak.context = format!(
                "seed {seed}, iteration {n}: imgtool {} killed after {delay:?}",
                args.join(" ")
            );
            let (was_killed, took) = soak.run_killed(&args, delay);
            if !was_killed {
                soak.timed(op, took);
            }
            let e = killed.entry(op).or_default();
            e.0 += 1;
            e.1 += u32::from(was_killed);
            soak.recover(op, next, &args);
            soak.assert_no_leftovers();
            if n % 10 == 0 {
                soak.assert_sound();
            }
            // Keep a handful of bundles alive, so refs, mounts and removals overlap.
            while soak.bundles.len() > 4 {
                let (b, _) = soak.bundles.remove(0);
                soak.ok(&["bundle", "rm", b.to_str().unwrap()]);
            }
        }

        soak.context = format!("seed {seed}, at the end");
        soak.assert_sound();
        for (b, _) in std::mem::take(&mut soak.bundles) {
            soak.ok(&["bundle", "rm", b.to_str().unwrap()]);
        }
        assert!(soak.mounts().is_empty(), "mounts left: {:?}", soak.mounts());
        let r = soak.store.fsck(&["--repair"]);
        assert_eq!(r.code, Some(0), "{r:?}");
        soak.store.fsck(&[]).assert_clean();
        for i in 0..soak.images.len() {
            soak.ensure_present(i);
        }
        soak.store.fsck(&[]).assert_clean();
        let summary: Vec<String> = killed
            .iter()
            .map(|(op, (runs, k))| format!("{op:?} {k}/{runs} killed"))
            .collect();
        eprintln!(
            "imgtool soak: seed {seed}, {iterations} iterations in {:?}: {}",
            started.elapsed(),
            summary.join(", ")
        );
    });
}
