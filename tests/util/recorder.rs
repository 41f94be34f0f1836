//! A `Protocol` that records every callback per connection and does what each frame says,
//! a `Server` of it on 127.0.0.1 (stackful or stackless), and the ways a peer ends a
//! connection with the reason `connection_lost` must hear (tests/protocol.rs,
//! tests/net_stackless*.rs).

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{ConnOptions, Ended, Factory, ListenOptions, Lost, Protocol, Server, Transport};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;

/// What the protocols of one test saw, in order, per connection.
pub(crate) type Log = Rc<RefCell<Vec<(u64, String)>>>;

/// Records every callback; on a frame, does what the frame says.
pub(crate) struct Recorder {
    n: u64,
    log: Log,
    drops: Rc<Cell<u32>>,
}

impl Recorder {
    fn note(&self, what: String) {
        self.log.borrow_mut().push((self.n, what));
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, h: &Handle, t: &Transport) {
        self.note("made".into());
        let guard = super::DropCounter(self.drops.clone());
        // An inner tasklet that would live for an hour: ended with its connection.
        t.spawn_inner(h, move |h| {
            let _guard = guard;
            h.sleep(Duration::from_secs(3600));
        })
        .unwrap();
    }

    fn frame_received(&mut self, h: &Handle, t: &Transport, frame: &[u8]) {
        let text = String::from_utf8(frame.to_vec()).unwrap();
        self.note(format!("frame {text}"));
        match text.as_str() {
            "close" => t.close(),
            "bye" => {
                let _ = t.send_and_close(b"goodbye");
            }
            "abort" => t.abort(),
            "panic" => {
                // On purpose: the test checks that it ends this connection alone.
                super::panics_expected();
                panic!("asked to")
            }
            "deadline" => t.set_read_deadline(Some(Duration::from_millis(100))),
            "slow" => {
                h.sleep(Duration::from_millis(150)); // parks: this connection pauses
                let _ = t.send_line("slow done");
            }
            other => {
                let _ = t.send_line(other);
            }
        }
    }

    fn eof_received(&mut self, _h: &Handle, t: &Transport) -> bool {
        self.note("eof".into());
        // Keeps the half-closed connection to say one more thing, then closes.
        let _ = t.send_and_close(b"after eof");
        true
    }

    fn connection_lost(&mut self, reason: &Ended) {
        self.note(format!("lost {reason:?}"));
    }
}

/// Builds a [`Recorder`] per connection, numbered from 1, but for a peer at `refuse`.
pub(crate) struct Recorders {
    pub(crate) next: u64,
    pub(crate) log: Log,
    pub(crate) drops: Rc<Cell<u32>>,
    pub(crate) refuse: Option<SocketAddr>,
}

impl Factory for Recorders {
    type Protocol = Recorder;

    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Recorder> {
        if self.refuse == Some(peer) {
            return None;
        }
        self.next += 1;
        Some(Recorder {
            n: self.next,
            log: self.log.clone(),
            drops: self.drops.clone(),
        })
    }
}

/// A started server of [`Recorder`]s and what a test reads of it.
pub(crate) struct Setup {
    pub(crate) s: super::TestSchedule,
    pub(crate) server: Server,
    pub(crate) addr: SocketAddr,
    pub(crate) log: Log,
    /// Inner tasklets ended.
    pub(crate) drops: Rc<Cell<u32>>,
}

/// A server of [`Recorder`]s on a free port, frames up to `max_frame`; `stackless` picks
/// `Server::stackless` over `Server::new`.
pub(crate) fn setup(max_frame: usize, stackless: bool) -> Setup {
    let mut s = super::net_schedule();
    let options = ListenOptions::new().with_conn(ConnOptions::new().with_max_frame(max_frame));
    let listener = super::listen_with(&s, options);
    let addr = listener.local_addr();
    let log = Log::default();
    let drops = Rc::new(Cell::new(0));
    let factory = Recorders {
        next: 0,
        log: log.clone(),
        drops: drops.clone(),
        refuse: None,
    };
    let server = if stackless {
        Server::stackless(listener, factory)
    } else {
        Server::new(listener, factory)
    };
    server.start(&mut *s).unwrap();
    Setup {
        s,
        server,
        addr,
        log,
        drops,
    }
}

/// The events of connection `n`.
pub(crate) fn events(log: &Log, n: u64) -> Vec<String> {
    log.borrow()
        .iter()
        .filter(|(c, _)| *c == n)
        .map(|(_, e)| e.clone())
        .collect()
}

/// How many times connection `n` was told `connection_lost`.
pub(crate) fn lost_count(log: &Log, n: u64) -> usize {
    events(log, n)
        .iter()
        .filter(|e| e.starts_with("lost"))
        .count()
}

/// A blocking client of `addr`, with a 10 s read timeout.
pub(crate) fn client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// (a name, what the peer does, the reason `connection_lost` must hear)
pub(crate) type Ending = (&'static str, Box<dyn Fn(&mut TcpStream) + Send>, Ended);

/// Every way of ending a connection both kinds of server are told alike (a server with
/// frames up to 64 bytes).
pub(crate) fn endings() -> Vec<Ending> {
    vec![
        (
            "peer reset",
            Box::new(|c: &mut TcpStream| {
                socket2::SockRef::from(&*c)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }),
            Ended::Lost(Lost::Reset),
        ),
        (
            "local close",
            Box::new(|c: &mut TcpStream| c.write_all(b"close\n").unwrap()),
            Ended::Lost(Lost::Closed),
        ),
        (
            "send_and_close",
            Box::new(|c: &mut TcpStream| c.write_all(b"bye\n").unwrap()),
            Ended::Lost(Lost::Closed),
        ),
        (
            "abort",
            Box::new(|c: &mut TcpStream| c.write_all(b"abort\n").unwrap()),
            Ended::Lost(Lost::Aborted),
        ),
        (
            "read deadline",
            Box::new(|c: &mut TcpStream| c.write_all(b"deadline\n").unwrap()),
            Ended::Lost(Lost::TimedOut),
        ),
        (
            "frame too long",
            Box::new(|c: &mut TcpStream| c.write_all(&[b'x'; 200]).unwrap()),
            Ended::Lost(Lost::TooLong { limit: 64 }),
        ),
        (
            "panic in a callback",
            Box::new(|c: &mut TcpStream| c.write_all(b"panic\n").unwrap()),
            Ended::Panicked("asked to".into()),
        ),
    ]
}

/// Ends one new connection of `setup`'s fresh server per ending, in turn (connections 1,
/// 2, …): each is told `connection_lost` once, with its reason, and its inner tasklet ends.
pub(crate) fn end_each(setup: &mut Setup, endings: Vec<Ending>) {
    let Setup {
        s,
        addr,
        log,
        drops,
        ..
    } = setup;
    for (n, (what, act, reason)) in endings.into_iter().enumerate() {
        let n = n as u64 + 1;
        let mut peer = client(*addr);
        super::run_until(s, what, || events(log, n).contains(&"made".into()));
        // The peer acts, then reads until the connection ends (EOF or reset), on a thread of
        // its own while the schedule runs here.
        let peer = std::thread::spawn(move || {
            act(&mut peer);
            if what == "peer reset" {
                return Ok(Vec::new());
            }
            let mut rest = Vec::new();
            peer.read_to_end(&mut rest).map(|_| rest)
        });
        super::run_until(s, what, || lost_count(log, n) == 1);
        let rest = peer.join().unwrap();
        match what {
            "send_and_close" => assert_eq!(
                rest.unwrap(),
                b"goodbye\n",
                "{what}: queued output still leaves"
            ),
            "end of stream" => assert_eq!(rest.unwrap(), b"after eof\n", "{what}"),
            _ => {
                if let Err(e) = rest {
                    assert_ne!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock,
                        "{what}: left open"
                    );
                }
            }
        }
        s.run_for(Duration::from_millis(20)).unwrap();
        let seen = events(log, n);
        assert_eq!(lost_count(log, n), 1, "{what}: {seen:?}");
        assert_eq!(seen.last().unwrap(), &format!("lost {reason:?}"), "{what}");
        assert_eq!(
            drops.get(),
            n as u32,
            "{what}: its inner tasklet was killed"
        );
    }
}
