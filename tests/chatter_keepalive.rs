//! The chatter turns TCP keepalive on for its members: a member whose host crashed while the
//! room was quiet (nothing comes: no FIN, no RST) is found out and leaves, freeing its handle.
//! Before, such a member stayed for good and its handle could never be taken again (found by
//! fibra-sim: `a_member_whose_host_crashed_in_a_quiet_room_gets_its_handle_back` in
//! fibra-sim/tests/sim_chatter.rs). A crash cannot be staged on 127.0.0.1; this checks, on
//! the server's real socket, that the kernel probes idle members.

mod chat;
mod util;

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use chat::{Config, TestServer};

/// The server's end of the connection whose peer is `client`: a descriptor of this process
/// (the chatter runs in-process).
fn server_end(client: SocketAddr) -> BorrowedFd<'static> {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(fd) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: the descriptor is only looked at (getpeername, getsockopt) while the
        // server holds it open; a test failure happens long before it closes.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let peer = socket2::SockRef::from(&borrowed).peer_addr();
        if peer.ok().and_then(|p| p.as_socket()) == Some(client) {
            return borrowed;
        }
    }
    panic!("no server socket whose peer is {client}");
}

#[test]
fn the_chatter_probes_idle_members_with_tcp_keepalive() {
    let server = TestServer::start(Config::default());
    let ann = server.join("ann");
    let fd = server_end(ann.stream.local_addr().unwrap());
    let socket = socket2::SockRef::from(&fd);
    assert!(
        socket.keepalive().unwrap(),
        "SO_KEEPALIVE on the member's connection"
    );
    assert_eq!(socket.tcp_keepalive_time().unwrap().as_secs(), 60);
    assert!(socket.tcp_keepalive_retries().unwrap() > 0);
    drop(ann);
    server.stop();
}
