//! Everything imgtool prints on stdout goes through `outln!`, so that a reader who stops
//! reading (`imgtool images | grep -q name`, `| head -1`) ends the output, not the command.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe is an EPIPE error, and `outln!` turns it
//! into a panic. Restoring SIGPIPE's default (as gruntime does) would instead kill imgtool at
//! its next write, and imgtool prints while it still holds temp blobs, layer dirs and bundles
//! half made: a pull prints the image ID only after its commit, but nothing keeps a later
//! change from printing earlier. So EPIPE only stops the printing; the work finishes, its
//! cleanup runs, and the exit status is the work's.
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static CLOSED: AtomicBool = AtomicBool::new(false);
static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

/// `outln!` that never panics: see the module comment.
macro_rules! outln {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

/// `errln!` that never panics: with stderr gone (`2>&1 | head -1`) there is no one left to
/// tell, and the work still has to finish or clean up.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_err_line(format_args!($($arg)*))
    };
}

pub fn write_err_line(args: std::fmt::Arguments) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

pub fn write_line(args: std::fmt::Arguments) {
    if CLOSED.load(Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        CLOSED.store(true, Ordering::SeqCst);
        if e.kind() != io::ErrorKind::BrokenPipe {
            let mut failed = FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert(e);
        }
    }
}

/// A write to stdout that failed for another reason than a reader gone away (a full disk
/// behind `> file`): the output is incomplete, which the exit status must say.
pub fn failure() -> Option<io::Error> {
    FAILED.lock().unwrap_or_else(|p| p.into_inner()).take()
}
