// New error variants may come in minor releases: a match without a wildcard must not compile.
fn describe(err: &manhole::Error) -> &'static str {
    match err {
        manhole::Error::AlreadyInstalled { .. } => "already",
        manhole::Error::ConfigurationConflict { .. } => "conflict",
        manhole::Error::InvalidSignal { .. } => "signal",
        manhole::Error::NotSupported { .. } => "not yet",
        manhole::Error::SocketPathInUse { .. } => "in use",
        manhole::Error::SocketPathTooLong { .. } => "too long",
        manhole::Error::Io { .. } => "io",
    }
}

fn main() {
    let _ = describe;
}
