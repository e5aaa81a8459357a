use crate::cli::CreateArgs;
use crate::commands::Globals;
use crate::error::Result;
use crate::spawn::{self, Console, CreateOpts};

pub fn console_of(a: &CreateArgs) -> Console {
    match &a.console_socket {
        Some(p) => Console::Socket(p.clone()),
        None => Console::None,
    }
}

pub fn opts<'a>(g: &'a Globals, a: &'a CreateArgs, console: Console) -> CreateOpts<'a> {
    CreateOpts {
        root: &g.root,
        id: &a.id,
        bundle: &a.bundle,
        pid_file: a.pid_file.as_deref(),
        console,
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: g.systemd_cgroup,
    }
}

pub fn run(g: &Globals, a: &CreateArgs) -> Result<()> {
    spawn::create(opts(g, a, console_of(a)))?;
    Ok(())
}
