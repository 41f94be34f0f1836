//! Stackless connections whose callbacks park (a back end's answer, a WebSocket close waiting
//! for a peer that never answers) do not hold up another connection's frame: a worker is
//! started for the jobs in line while every worker is parked, without the schedule waiting
//! in its poller (for readiness or a timer) before each one (before, a frame waited one such
//! wait per parked job ahead of it: here, until the parks ended).

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fibra::net::{ConnOptions, Factory, Framing, ListenOptions, NetPlugin};
use fibra::net::{Protocol, Server, Transport};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;

/// Parks that have ended, of all connections.
static PARKS_ENDED: AtomicUsize = AtomicUsize::new(0);

struct ParkOrPong;

impl Protocol for ParkOrPong {
    fn frame_received(&mut self, h: &Handle, transport: &Transport, data: &[u8]) {
        match data {
            // Parks its worker for two seconds (as a close waits for a silent peer).
            b"park" => {
                h.sleep(Duration::from_secs(2));
                PARKS_ENDED.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                let _ = transport.send_line("pong");
            }
        }
    }
}

struct Make;

impl Factory for Make {
    type Protocol = ParkOrPong;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<ParkOrPong> {
        Some(ParkOrPong)
    }
}

#[test]
fn frames_do_not_wait_behind_jobs_parked_in_their_callbacks() {
    const PARKERS: usize = 60;
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let mut s = util::net_schedule();
        let options =
            ListenOptions::new().with_conn(ConnOptions::new().with_framing(Framing::Lines));
        let listener = s
            .plugin::<NetPlugin>()
            .unwrap()
            .listen_with("127.0.0.1:0", options)
            .unwrap();
        tx.send(listener.local_addr()).unwrap();
        let server = Server::stackless(listener, Make);
        server.start(&mut *s).unwrap();
        // Waits in the poller when nothing is runnable, as a server does.
        s.run_for(Duration::from_secs(5)).unwrap();
        server.stop();
    });
    let addr = rx.recv().unwrap();
    let mut parkers: Vec<TcpStream> = (0..PARKERS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    for p in &mut parkers {
        p.write_all(b"park\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut pinger = TcpStream::connect(addr).unwrap();
    pinger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    pinger.write_all(b"ping\n").unwrap();
    let mut line = String::new();
    BufReader::new(&pinger).read_line(&mut line).unwrap();
    let ended = PARKS_ENDED.load(Ordering::SeqCst);
    assert_eq!(
        line, "pong\n",
        "no pong (the server's stop closed the connection first)"
    );
    assert_eq!(
        ended, 0,
        "the pong came after {ended} of the {PARKERS} parked callbacks ended: it waited behind them"
    );
    drop(parkers);
    server.join().unwrap();
}
