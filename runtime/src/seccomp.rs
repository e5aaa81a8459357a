//! linux.seccomp → BPF (seccompiler) and its installation with seccomp(2). Owned by the seccomp work.
