//! Compile-pass and compile-fail tests of manhole's public API (and, as they arrive, its
//! macros). The cases live in `tests/ui/`; regenerate expected errors with
//! `TRYBUILD=overwrite cargo test -p manhole-trybuild` and review the diff like code.
