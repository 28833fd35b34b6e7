//! Implementation detail of the `manhole` crate: its attribute macros `#[manhole::main]` and
//! `#[manhole::expose]` will live here. Depend on `manhole`, not on this crate.
