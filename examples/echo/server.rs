//! The echo server's tasklets: an acceptor, and one tasklet per connection that sends back
//! every byte it receives.

use fibra::net::{ConnOptions, Framing, ListenOptions, Listener, NetExt};
use fibra::tasks::TasksExt;
use fibra::{Handle, SpawnOptions};

/// Options of the echo server's sockets: raw bytes, the default send limit.
pub(crate) fn listen_options(write_through: bool) -> ListenOptions {
    // One send answers each read: written through at once, as it is at hand (no trip
    // through the output buffer and the end-of-round write).
    ListenOptions::new().with_conn(
        ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_write_through(write_through),
    )
}

/// Accepts connections on `listener` for ever, one echo tasklet each.
pub(crate) fn accept_loop(h: &Handle, listener: &Listener) {
    loop {
        let (conn, peer) = match h.accept(listener) {
            Ok(accepted) => accepted,
            Err(e) => {
                log::warn!(target: "echo", "accept: {e}");
                continue;
            }
        };
        log::debug!(target: "echo", "{peer} connected");
        let spawned = h.spawn_detached_with(SpawnOptions::new().name("echo"), move |h| {
            // Empty until the first bytes come: an idle connection holds no buffer.
            let mut buf = Vec::new();
            // `send` waits while the peer is not reading: memory stays bounded.
            while h.receive_into(&conn, &mut buf).is_ok() {
                if h.send(&conn, &buf).is_err() {
                    break;
                }
            }
            log::debug!(target: "echo", "{peer} left");
        });
        if let Err(e) = spawned {
            log::warn!(target: "echo", "no tasklet for {peer}: {e}");
        }
    }
}
