// #[tokio::main] first: tokio builds a sync main that keeps #[manhole::main], which then installs
// before the runtime starts.
#[tokio::main]
#[manhole::main(socket_path = "/tmp/manhole-trybuild-tokio-outside.sock", verbose = false)]
async fn main() {
    tokio::task::yield_now().await;
}
