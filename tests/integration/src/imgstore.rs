//! An imgtool store for the store tests (`imgtool_store`, `imgtool_soak`): the commands run on
//! it with no credentials or settings of the machine's leaking in, `imgtool fsck`'s report
//! parsed, and the files an interrupted command may leave, listed.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{imgtool_bin, run, stderr, stdout};

pub struct ImgStore {
    pub dir: PathBuf,
}

/// One line of `imgtool fsck`: `KIND PATH: what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: String,
    pub path: PathBuf,
    pub what: String,
}

/// `imgtool fsck`'s output, and how it ended.
#[derive(Debug)]
pub struct Fsck {
    pub problems: Vec<Problem>,
    /// The summary line.
    pub summary: String,
    pub code: Option<i32>,
    pub stderr: String,
}

impl Fsck {
    pub fn of(&self, kind: &str) -> Vec<&Problem> {
        self.problems.iter().filter(|p| p.kind == kind).collect()
    }

    /// Nothing at all to report, exit 0.
    pub fn assert_clean(&self) {
        assert!(
            self.problems.is_empty() && self.code == Some(0),
            "fsck is not clean (exit {:?}): {:#?}\n{}",
            self.code,
            self.problems,
            self.stderr
        );
    }
}

impl ImgStore {
    pub fn at(dir: &Path) -> ImgStore {
        ImgStore {
            dir: dir.to_path_buf(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(imgtool_bin());
        c.arg("--store").arg(&self.dir).args(args);
        c.env_remove("IMGTOOL_STORE");
        // No stray credentials from the machine running the tests.
        c.env("HOME", self.dir.with_extension("home"));
        c.env_remove("REGISTRY_AUTH_FILE");
        c.env_remove("DOCKER_CONFIG");
        c.env_remove("XDG_RUNTIME_DIR");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "imgtool {args:?} failed ({}): {}{}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Run and require exit 1 with exactly one line on stderr, `imgtool: ...`; returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        let err = stderr(&o);
        assert_eq!(
            o.status.code(),
            Some(1),
            "imgtool {args:?} should fail: {}{err}",
            stdout(&o)
        );
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("imgtool: "),
            "one error line expected from imgtool {args:?}: {err}"
        );
        lines[0].to_string()
    }

    pub fn fsck(&self, extra: &[&str]) -> Fsck {
        let mut args = vec!["fsck"];
        args.extend_from_slice(extra);
        parse_fsck(&self.run(&args))
    }

    pub fn blobs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join("blobs/sha256"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// `images --format json`, as values.
    pub fn images(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["images", "--format", "json"])).unwrap()
    }

    /// Temp files and extraction dirs an interrupted command leaves in the store: everything
    /// in `.imgtool/tmp`, `*.tmp-*` beside index.json and the diff_id records, and `.tmp-*`
    /// layers of the overlay cache.
    pub fn debris(&self) -> Vec<PathBuf> {
        let mut out = vec![];
        let list = |d: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(d)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        out.extend(list(&self.dir.join(".imgtool/tmp")));
        for d in [self.dir.clone(), self.dir.join(".imgtool/diffids")] {
            out.extend(
                list(&d)
                    .into_iter()
                    .filter(|p| p.to_string_lossy().contains(".tmp-")),
            );
        }
        out.extend(
            list(&self.dir.join("snapshots/layers"))
                .into_iter()
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
                }),
        );
        out
    }
}

pub fn parse_fsck(o: &Output) -> Fsck {
    let out = stdout(o);
    let mut problems = vec![];
    let mut summary = String::new();
    for line in out.lines() {
        if line.starts_with("checked ") {
            summary = line.to_string();
            continue;
        }
        if line.starts_with("note: ") {
            continue;
        }
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (path, what) = rest.split_once(": ").unwrap_or((rest, ""));
        problems.push(Problem {
            kind: kind.to_string(),
            path: PathBuf::from(path),
            what: what.to_string(),
        });
    }
    assert!(
        !summary.is_empty(),
        "fsck printed no summary: {out}{}",
        stderr(o)
    );
    Fsck {
        problems,
        summary,
        code: o.status.code(),
        stderr: stderr(o),
    }
}

/// The pid of a process that has just ended (for temp names of a "dead writer").
pub fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}
