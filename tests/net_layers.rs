//! fibra-net's callback framework (`fibra-net/src/callback/`) is built on the crate's public
//! API alone. This test crate compiles those very files a second time, as a module of its
//! own, in a crate whose root holds nothing but `fibra_net`'s public items: any
//! crate-private item they named (a `pub(crate)` method, an engine type, a private module)
//! would not compile here. Then the copy serves a connection, to show it is a working
//! framework and not only a compiling one.
#![allow(dead_code, unreachable_pub, missing_docs)]

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;

use fibra::rt::Handle;

// What the callback files see as `crate::`: fibra-net's public items (the glob), with the
// callback framework's own names taken by the copy below (explicit names beat the glob).
pub use fibra_net::*;

#[path = "../fibra-net/src/callback/mod.rs"]
mod callback;

pub use callback::{
    ClientEvent, ClientState, Ended, Factory, Member, Pool, PoolStats, Protocol,
    ReconnectingClient, Server, Service, Spawner, Target, Transport,
};

/// Echoes each line back, upper-cased.
struct Shout;

impl Protocol for Shout {
    fn frame_received(&mut self, _h: &Handle, transport: &Transport, frame: &[u8]) {
        let line = String::from_utf8_lossy(frame).to_uppercase();
        transport.send_line(&line).unwrap();
    }
}

struct Shouts;

impl Factory for Shouts {
    type Protocol = Shout;

    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Shout> {
        Some(Shout)
    }
}

#[test]
fn the_callback_framework_compiles_and_serves_on_the_public_api_alone() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let server = Server::new(listener, Shouts);
    server.start(&mut *s).unwrap();
    let peer = util::peer(server.local_addr(), |mut stream| {
        stream.write_all(b"hello\n").unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    });
    util::run_until(&mut s, "the peer's answer", || peer.is_finished());
    assert_eq!(peer.join().unwrap(), "HELLO\n");
    server.stop();
}
