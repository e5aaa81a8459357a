//! Making a container's processes: `create` clones the init with all its namespaces at once (create.rs, parent
//! side), the init sets the container up in spec order (init.rs, child side), the two talk only through the typed
//! messages of sync.rs, and `exec` (exec.rs) reuses the same clone + handshake to start a process inside a running
//! container. console.rs holds both ends of the pty.

pub mod console;
pub mod create;
pub mod exec;
pub mod init;
pub mod sync;

pub use console::Console;
pub use create::{check_passed_fds, create, listener_of, start_init, CreateOpts};
