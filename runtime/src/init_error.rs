//! Errors of steps that run inside the container's init: a step description and an errno, which cross the
//! sync socket to the parent and reach the user as one line ("mount /proc on /x/rootfs/proc: Permission denied").

#[derive(Debug)]
pub struct InitError {
    pub step: String,
    pub errno: i32,
}

pub type InitResult<T> = Result<T, InitError>;

pub fn fail(step: impl Into<String>) -> InitError {
    InitError {
        step: step.into(),
        errno: 0,
    }
}

pub trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> InitResult<T>;
}

impl<T> Step<T> for nix::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> InitResult<T> {
        self.map_err(|e| InitError {
            step: what(),
            errno: e as i32,
        })
    }
}

impl<T> Step<T> for std::io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> InitResult<T> {
        self.map_err(|e| InitError {
            step: what(),
            errno: e.raw_os_error().unwrap_or(0),
        })
    }
}
