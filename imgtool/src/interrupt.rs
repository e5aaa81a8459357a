//! Ctrl-C / SIGTERM during an unpack: instead of dying with half a rootfs on disk, the signal
//! only raises a flag that the unpack's entry loop and a reader following a download check, so
//! the unpack fails like any other error and its cleanup removes the partial output. Its own
//! module because both `unpack` and `follow` read the flag and neither owns the other.
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether `sig` is ignored now: a signal ignored when imgtool started was ignored on purpose
/// by whoever started it (`nohup` ignores SIGHUP, a shell ignores SIGINT for `cmd &`), and
/// must stay ignored rather than abort the unpack.
fn ignored(sig: Signal) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `old`, which is zeroed memory
    // of the right type; nothing else is touched.
    let r = unsafe { libc::sigaction(sig as libc::c_int, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: zero-initialised, and filled in by the kernel when sigaction succeeded.
    r == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// From now on SIGINT/SIGTERM/SIGHUP stop the unpack at the next entry instead of killing it;
/// one of them ignored at start stays ignored.
pub fn install() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        if ignored(sig) {
            continue;
        }
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
