//! A stand-alone xenstored on a unix socket, for host tools and tests:
//! `cargo run -p xenkvm-xenstore --example xenstored -- /tmp/xs.sock`, then
//! `XENSTORED_PATH=/tmp/xs.sock xenstore-ls /`.

use std::path::PathBuf;

use xenkvm_xenstore::server::{Shared, SocketServer};
use xenkvm_xenstore::{Quotas, Xenstore};

fn main() -> std::io::Result<()> {
    let path: PathBuf =
        std::env::args_os().nth(1).map_or_else(|| std::env::temp_dir().join("xenkvm-xenstored.sock"), PathBuf::from);
    let server = SocketServer::spawn(&path, Shared::new(Xenstore::new(Quotas::default())))?;
    println!("xenstored: listening on {}", server.path().display());
    server.join();
    Ok(())
}
