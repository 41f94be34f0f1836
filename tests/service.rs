//! `Service`: named servers and clients; notify one, several or all, in order, through each
//! member's own tasklet; a member that does not handle notifications ignores them; names are
//! unique; remove stops; start and stop all.

mod util;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{
    Backoff, ConnOptions, Factory, Member, NetError, Protocol, ReconnectingClient, Server, Service,
    Target, Transport,
};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;

/// Who heard what: (member, message).
type Heard = Rc<RefCell<Vec<(&'static str, String)>>>;

struct Quiet {
    name: &'static str,
    heard: Heard,
}

impl Protocol for Quiet {
    fn frame_received(&mut self, _h: &Handle, _t: &Transport, _frame: &[u8]) {}

    fn on_notify(&mut self, _h: &Handle, _t: &Transport, message: &str) {
        self.heard
            .borrow_mut()
            .push((self.name, format!("protocol {message}")));
    }
}

/// Records notifications, parking a little on each (they stay in order anyway).
struct Listening {
    name: &'static str,
    heard: Heard,
}

impl Factory for Listening {
    type Protocol = Quiet;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Quiet> {
        Some(Quiet {
            name: self.name,
            heard: self.heard.clone(),
        })
    }
    fn on_notify(&mut self, h: &Handle, message: &str, connections: &[Transport]) {
        h.sleep(Duration::from_millis(1));
        self.heard.borrow_mut().push((
            self.name,
            format!("{message} ({} connected)", connections.len()),
        ));
    }
}

/// Handles no notification: the defaults ignore them.
struct Deaf;
struct DeafProtocol;
impl Protocol for DeafProtocol {
    fn frame_received(&mut self, _h: &Handle, _t: &Transport, _frame: &[u8]) {}
}
impl Factory for Deaf {
    type Protocol = DeafProtocol;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<DeafProtocol> {
        Some(DeafProtocol)
    }
}

fn heard_by(heard: &Heard, name: &str) -> Vec<String> {
    heard
        .borrow()
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, m)| m.clone())
        .collect()
}

#[test]
fn notify_reaches_one_several_or_all_in_order_and_the_deaf_ignore_it() {
    let mut s = util::net_schedule();
    let heard = Heard::default();
    let a = util::listen(&s);
    let addr_a = a.local_addr();
    let b = util::listen(&s);
    let deaf = util::listen(&s);
    let mut service = Service::new();
    let listening = |name| Listening {
        name,
        heard: heard.clone(),
    };
    service.add("a", Server::new(a, listening("a"))).unwrap();
    service.add("b", Server::new(b, listening("b"))).unwrap();
    service.add("deaf", Server::new(deaf, Deaf)).unwrap();
    // A client of `a`: connected, its notifications go to its protocol.
    let backoff = Backoff::new()
        .with_initial(Duration::from_millis(10))
        .with_seed(1);
    let client = ReconnectingClient::new(addr_a, ConnOptions::new(), backoff, listening("c"));
    service.add("c", client.clone()).unwrap();
    assert_eq!(service.len(), 4);

    // Names are unique, and nothing changes on a duplicate.
    let again = Server::new(util::listen(&s), Deaf);
    let err = service.add("a", again).unwrap_err();
    assert!(
        matches!(&err, NetError::NameTaken { name } if name == "a"),
        "{err}"
    );
    assert_eq!(service.len(), 4);

    service.start_all(&mut *s).unwrap();
    assert!(service
        .names()
        .all(|n| service.get(n).unwrap().is_running()));
    util::run_until(&mut s, "the client's connection", || {
        matches!(client.state(), fibra::net::ClientState::Connected { .. })
    });

    assert_eq!(service.notify("a", "one").unwrap(), 1);
    assert_eq!(service.notify(Target::Some(&["a", "b"]), "two").unwrap(), 2);
    assert_eq!(service.notify("*", "three").unwrap(), 4);
    for i in 0..5 {
        service.notify(Target::One("b"), &format!("b{i}")).unwrap();
    }
    // An unknown name tells nobody.
    let err = service
        .notify(Target::Some(&["a", "nobody"]), "lost")
        .unwrap_err();
    assert!(
        matches!(&err, NetError::UnknownName { name } if name == "nobody"),
        "{err}"
    );

    util::run_until(&mut s, "every notification", || {
        heard.borrow().len() == 1 + 2 + 3 + 5
    });
    // `a` serves the client's connection, so its factory sees one transport.
    assert_eq!(
        heard_by(&heard, "a"),
        [
            "one (1 connected)",
            "two (1 connected)",
            "three (1 connected)"
        ]
    );
    assert_eq!(
        heard_by(&heard, "b"),
        [
            "two (0 connected)",
            "three (0 connected)",
            "b0 (0 connected)",
            "b1 (0 connected)",
            "b2 (0 connected)",
            "b3 (0 connected)",
            "b4 (0 connected)"
        ]
    );
    assert_eq!(heard_by(&heard, "c"), ["protocol three"]);
    // The deaf server ignored its notification and still serves.
    assert!(service.get("deaf").unwrap().is_running());
    std::net::TcpStream::connect(match service.get("deaf").unwrap() {
        Member::Server(server) => server.local_addr(),
        Member::Client(_) => unreachable!(),
    })
    .unwrap();

    // Remove stops; stop_all stops the rest.
    let removed = service.remove("b").unwrap();
    assert!(!removed.is_running());
    assert!(service.get("b").is_none());
    service.stop_all();
    assert!(service
        .names()
        .all(|n| !service.get(n).unwrap().is_running()));
    s.run_for(Duration::from_millis(50)).unwrap();
    assert!(s.is_empty(), "{:?}", s.tasklets().collect::<Vec<_>>());
}

#[test]
fn a_waiting_client_hands_notifications_to_its_factory_and_a_server_starts_once() {
    let mut s = util::net_schedule();
    let heard = Heard::default();
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let backoff = Backoff::new()
        .with_initial(Duration::from_millis(200))
        .with_seed(3);
    let client = ReconnectingClient::new(
        nowhere,
        ConnOptions::new(),
        backoff,
        Listening {
            name: "c",
            heard: heard.clone(),
        },
    );
    let server = Server::new(util::listen(&s), Deaf);
    let mut service = Service::new();
    service.add("c", client.clone()).unwrap();
    service.add("s", server.clone()).unwrap();
    // Started from a tasklet this time.
    let started = Rc::new(RefCell::new(None));
    let result = started.clone();
    let service = Rc::new(service);
    let from_tasklet = service.clone();
    s.spawn(move |h| *result.borrow_mut() = Some(from_tasklet.start_all(h)))
        .unwrap();
    util::run_until(&mut s, "a wait", || {
        matches!(client.state(), fibra::net::ClientState::Waiting { .. })
    });
    assert!(started.borrow_mut().take().unwrap().is_ok());
    service.notify("c", "while waiting").unwrap();
    util::run_until(&mut s, "the notification", || heard.borrow().len() == 1);
    assert_eq!(heard_by(&heard, "c"), ["while waiting (0 connected)"]);

    // A server starts once: a stopped one's listener is closed.
    server.stop();
    let err = server.start(&mut *s).unwrap_err();
    assert!(matches!(err, NetError::NotStartable { .. }), "{err}");
    service.stop_all();
    s.run_for(Duration::from_millis(20)).unwrap();
    assert!(s.is_empty());
}

#[test]
fn a_member_that_is_not_running_misses_notifications() {
    let mut s = util::net_schedule();
    let heard = Heard::default();
    let mut service = Service::new();
    let server = Server::new(
        util::listen(&s),
        Listening {
            name: "a",
            heard: heard.clone(),
        },
    );
    service.add("a", server.clone()).unwrap();
    assert_eq!(service.notify("a", "too early").unwrap(), 0, "not started");
    server.start(&mut *s).unwrap();
    assert_eq!(
        service.notify("a", "on time").unwrap(),
        1,
        "queued before its first step"
    );
    util::run_until(&mut s, "the notification", || heard.borrow().len() == 1);
    server.stop();
    assert_eq!(service.notify("*", "too late").unwrap(), 0, "stopped");
    s.run_for(Duration::from_millis(20)).unwrap();
    assert_eq!(heard_by(&heard, "a"), ["on time (0 connected)"]);
}
