//! afl wrapper of the `manifest` target (see src/lib.rs): `make fuzz`, or a plain build that replays
//! one input read on stdin.
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::manifest(data));
}
