// #[manhole::main] first: it installs at the start of the async body, inside the runtime.
#[manhole::main(socket_path = "/tmp/manhole-trybuild-tokio-inside.sock", verbose = false)]
#[tokio::main]
async fn main() -> Result<(), String> {
    tokio::task::yield_now().await;
    Ok(())
}
