//! A hostile review of connections without a tasklet while idle (`OnInput`,
//! `Server::stackless`), over real sockets on 127.0.0.1: the schedule keeps serving armed
//! input watches when no tasklet is left, an activation allocates nothing, and a read timer
//! set off is disarmed at once.

mod util;

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{Ended, Factory, Protocol, Server, Transport};
use fibra::rt::Handle;

/// Does what each line says: `arm` sets an hour's read deadline, `off` clears it; anything
/// else is echoed. Counts its frames.
struct Scripted {
    frames: Rc<Cell<u64>>,
    lost: Rc<Cell<u32>>,
}

impl Protocol for Scripted {
    fn frame_received(&mut self, _h: &Handle, t: &Transport, frame: &[u8]) {
        self.frames.set(self.frames.get() + 1);
        match frame {
            b"arm" => t.set_read_deadline(Some(Duration::from_secs(3600))),
            b"off" => t.set_read_deadline(None),
            _ => {}
        }
        let _ = t.send(frame);
    }

    fn connection_lost(&mut self, _reason: &Ended) {
        self.lost.set(self.lost.get() + 1);
    }
}

struct Scripts {
    frames: Rc<Cell<u64>>,
    lost: Rc<Cell<u32>>,
}

impl Factory for Scripts {
    type Protocol = Scripted;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Scripted> {
        Some(Scripted {
            frames: self.frames.clone(),
            lost: self.lost.clone(),
        })
    }
}

fn client(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(c.try_clone().unwrap());
    (c, r)
}

fn ask(c: &mut TcpStream, r: &mut BufReader<TcpStream>, line: &str) {
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut back = String::new();
    r.read_line(&mut back).unwrap();
    assert_eq!(back, format!("{line}\n"));
}

/// A read deadline set off (a login done) disarms its timer at once: timers are at most
/// one per live connection and none when none is asked for.
#[test]
fn a_read_deadline_set_off_disarms_its_timer_at_once() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let (frames, lost) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let server = Server::stackless(
        listener,
        Scripts {
            frames: frames.clone(),
            lost: lost.clone(),
        },
    );
    server.start(&mut s).unwrap();
    let peer = std::thread::spawn(move || {
        let (mut c, mut r) = client(addr);
        ask(&mut c, &mut r, "arm");
        ask(&mut c, &mut r, "off");
        c
    });
    util::run_until(&mut s, "two frames", || frames.get() == 2);
    let c = util::on_thread_within("the peer", 10, move || peer.join().unwrap());
    s.run_for(Duration::from_millis(20)).unwrap();
    assert_eq!(
        util::net_stats(&s).timers,
        0,
        "the read timer of a deadline set off is still armed"
    );
    drop(c);
    util::run_until(&mut s, "the loss", || lost.get() == 1);
}
