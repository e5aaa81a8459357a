//! `--snapshot overlay`: per-layer cache directories in the store and overlay-mounted bundles.
