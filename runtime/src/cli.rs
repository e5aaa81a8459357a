//! runc's command line: global flags before or after the subcommand, `--flag value` and `--flag=value`,
//! options after the container id, and Go-style single-dash long flags (`-no-subreaper`, `-bundle x`).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "gruntime",
    about = "An OCI container runtime with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state (default /run/gruntime, or $XDG_RUNTIME_DIR/gruntime when not root).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// true, false or auto (as runc); `spec --rootless` alone means true.
    #[arg(long, global = true, value_parser = ["true", "false", "auto"], num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// The criu binary for checkpoint/restore (default: criu from PATH).
    #[arg(long, global = true, default_value = "criu")]
    pub criu: PathBuf,
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    /// Path to the bundle directory (default: the current directory).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a container (the init waits for `start`).
    Create(CreateArgs),
    /// Run the user process of a created container.
    Start { id: String },
    /// Create and start a container, wait for it and exit with its status.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short = 'd', long)]
        detach: bool,
        /// Do not delete the container after it exits.
        #[arg(long)]
        keep: bool,
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
    },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        id: String,
        signal: Option<String>,
        /// Signal every process of the container.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Delete a container (refused while it runs unless --force).
    Delete {
        id: String,
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the runtime-spec features JSON.
    Features,
    /// Print the processes of a container.
    Ps {
        id: String,
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Container events and resource statistics.
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Change the resources of a running container.
    Update(UpdateArgs),
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Checkpoint a running container with CRIU.
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint.
    Restore(RestoreArgs),
}

/// The flags `checkpoint` and `restore` share (runc's names and meanings).
#[derive(Args, Debug)]
pub struct CriuArgs {
    /// Directory of the CRIU images (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's log and temporary files (default: the image directory).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow a shell job (a session leader whose terminal is outside the container).
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// soft, full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Namespace CRIU leaves empty instead of dumping/restoring it (network, …).
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory pages against the parent images.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Not supported (CRIU's lazy-pages daemon): an error.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// Not supported (goes with --lazy-pages): an error.
    #[arg(long = "status-fd")]
    pub status_fd: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump memory only, for a later dump with --parent-path.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// A previous (pre-)dump's images, relative to the image directory.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Not supported (a CRIU page server): an error.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Skip in-flight TCP connections.
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    /// Remap unlinked open files with a link.
    #[arg(long = "link-remap")]
    pub link_remap: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the bundle directory (default: the current directory).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted as runc does; CRIU makes the restored root itself.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// An LSM profile for the restored process: an error on a host without AppArmor or SELinux.
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// An LSM mount context: an error on a host without SELinux.
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// A linux.resources JSON file, or - for stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    /// Memory limit in bytes (units k, m, g accepted; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-shares", alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    #[arg(long = "cpu-idle")]
    pub cpu_idle: Option<i64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long)]
    pub apparmor: Option<String>,
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    #[arg(long)]
    pub cgroup: Option<String>,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Every long flag name clap knows, for the Go single-dash rewrite.
fn long_names() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            if let Some(l) = a.get_long() {
                out.push(l.to_string());
            }
        }
        for s in cmd.get_subcommands() {
            walk(s, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &mut out);
    out
}

/// `-no-subreaper` → `--no-subreaper`, `-bundle=x` → `--bundle=x`, for known long names only, and never
/// inside `exec`'s trailing process arguments.
pub fn normalize_args(args: Vec<String>) -> Vec<String> {
    // Building clap's command tree just to list names costs time and memory on every call: only do it when
    // some argument could be a Go-style flag.
    if !args
        .iter()
        .skip(1)
        .any(|a| a.len() > 2 && a.starts_with('-') && !a.starts_with("--"))
    {
        return args;
    }
    let names = long_names();
    let mut out = Vec::with_capacity(args.len());
    let mut in_exec = false;
    let mut positional_after_exec = 0;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || in_exec && positional_after_exec >= 1 {
            out.push(a);
            continue;
        }
        if a == "exec" && !in_exec {
            in_exec = true;
            out.push(a);
            continue;
        }
        if in_exec && !a.starts_with('-') {
            positional_after_exec += 1;
        }
        if a.len() > 2 && a.starts_with('-') && !a.starts_with("--") {
            let name = a[1..].split('=').next().unwrap_or("");
            if names.iter().any(|n| n == name) {
                out.push(format!("-{a}"));
                continue;
            }
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn go_style_single_dash_flags_become_long_flags() {
        assert_eq!(
            normalize_args(v("gruntime -root /r run -no-subreaper -bundle=/b x")),
            v("gruntime --root /r run --no-subreaper --bundle=/b x")
        );
    }

    #[test]
    fn exec_process_arguments_are_left_alone() {
        assert_eq!(
            normalize_args(v("gruntime exec -t c1 ls -root")),
            v("gruntime exec --tty c1 ls -root")
                .iter()
                .map(|s| if s == "--tty" {
                    "-t".to_string()
                } else {
                    s.clone()
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn options_after_the_id_and_global_flags_after_the_subcommand_parse() {
        let c = Cli::try_parse_from(normalize_args(v(
            "gruntime create c1 --bundle /b --root /r --pid-file p",
        )))
        .unwrap();
        assert_eq!(c.root.as_deref(), Some(std::path::Path::new("/r")));
        match c.cmd {
            Some(Cmd::Create(a)) => {
                assert_eq!(a.id, "c1");
                assert_eq!(a.bundle, PathBuf::from("/b"));
            }
            other => panic!("{other:?}"),
        }
    }
}
