//! A file written outside the store (`save -o FILE`) that appears at its path whole or not at
//! all, whatever ends the writer. It is written unnamed (`O_TMPFILE` in the destination's
//! directory, so a kill leaves nothing to clean up), then linked under a temp name and renamed
//! over the destination. On a filesystem without `O_TMPFILE` it is written under the temp name
//! from the start. Either way the temp name carries the writer's pid, and the next writer into
//! the directory removes those of dead writers.
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

const PREFIX: &str = ".imgtool-partial-";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct WholeFile {
    file: File,
    dest: PathBuf,
    /// Set while the file has a (temp) name: removed if the file is dropped unfinished.
    named: Option<PathBuf>,
}

fn temp_name(dir: &Path) -> PathBuf {
    dir.join(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ))
}

/// Remove the temp files dead writers left in `dir`.
fn sweep(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| !crate::store::process_alive(p)) {
            let _ = fs::remove_file(e.path());
        }
    }
}

impl WholeFile {
    /// Start writing what will become `dest`.
    pub fn create(dest: &Path) -> Result<WholeFile> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sweep(dir);
        let unnamed = OpenOptions::new()
            .write(true)
            .read(true)
            .mode(0o666)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        let (file, named) = match unnamed {
            Ok(f) => (f, None),
            // EOPNOTSUPP (and, from older kernels, EISDIR): a filesystem without O_TMPFILE.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EISDIR)
                ) =>
            {
                let p = temp_name(dir);
                let f = OpenOptions::new()
                    .write(true)
                    .read(true)
                    .create_new(true)
                    .mode(0o666)
                    .open(&p)
                    .map_err(Error::io("create", &p))?;
                (f, Some(p))
            }
            Err(e) => return Err(Error::io("create a file in", dir)(e)),
        };
        Ok(WholeFile {
            file,
            dest: dest.to_path_buf(),
            named,
        })
    }

    /// fsync and put the file at its destination (replacing what was there).
    pub fn persist(mut self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(Error::io("fsync", &self.dest))?;
        let dir = self
            .dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let tmp = match self.named.clone() {
            Some(p) => p,
            None => {
                let p = temp_name(&dir);
                link_unnamed(&self.file, &p).map_err(Error::io("link", &p))?;
                self.named = Some(p.clone());
                p
            }
        };
        fs::rename(&tmp, &self.dest).map_err(Error::io("rename into place", &self.dest))?;
        self.named = None;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Give an `O_TMPFILE` file the name `to`: by its fd (needs CAP_DAC_READ_SEARCH), else through
/// /proc/self/fd.
fn link_unnamed(file: &File, to: &Path) -> std::io::Result<()> {
    let to_c = std::ffi::CString::new(to.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the fd is open for the duration of the call, both paths are NUL-terminated
    // strings that outlive it, and linkat only reads them.
    let r = unsafe {
        libc::linkat(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let proc = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: as above.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Writes whose errors name the destination (a full disk is about that file, not a temp one).
impl std::io::Write for WholeFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(|e| self.named_error(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| self.named_error(e))
    }
}

impl WholeFile {
    fn named_error(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("{}: {e}", self.dest.display()))
    }
}

impl Drop for WholeFile {
    fn drop(&mut self) {
        if let Some(p) = &self.named {
            let _ = fs::remove_file(p);
        }
    }
}
