//! One reactor for every plugin: a user plugin that watches a pipe waits side by side with the
//! network plugin, and a plugin fed by another thread is woken through a `Remote`, under
//! `tick`, `run` and `run_for` alike.
//!
//! Each scenario runs its schedule on a thread of its own and the test waits for it with a
//! bound: a schedule that sleeps in one plugin's wait while another plugin's event is ready
//! would never finish under `run()`, and the bound turns that hang into a failure.

mod util;

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use fibra::net::{NetExt, NetPlugin};
use fibra::rt::{
    Context, Events, Interest, Op, Plugin, Registry, Remote, Router, Schedule, Serves, TaskletId,
};
use fibra::tasks::{TasksExt, TasksPlugin};

/// How the host drives the schedule.
#[derive(Clone, Copy, Debug)]
enum Drive {
    Tick,
    Run,
    RunFor,
}

/// Drives `s` until no tasklet is left.
fn drive(s: &mut Schedule, how: Drive) {
    match how {
        Drive::Tick => {
            for _ in 0..100_000 {
                if !s.tick().unwrap() {
                    return;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            panic!("tasklets left after 100,000 ticks");
        }
        Drive::Run => s.run().unwrap(),
        // Far longer than the test's bound: returning at all means it was woken.
        Drive::RunFor => assert!(!s.run_for(Duration::from_secs(3600)).unwrap()),
    }
}

/// Runs `scenario` on its own thread; fails if it does not end within 30 s.
fn bounded<T: Send + 'static>(name: &str, scenario: impl FnOnce() -> T + Send + 'static) -> T {
    util::on_thread_within(name, 30, scenario)
}

// ----- a plugin that reads a pipe ---------------------------------------------------------

/// Reads what is in the pipe, waiting until something is.
struct ReadPipe;
impl Op for ReadPipe {
    type Output = io::Result<Vec<u8>>;
}

/// Serves `ReadPipe` from the read end of a pipe, registered with the schedule's reactor.
#[derive(Debug)]
struct PipePlugin {
    fd: OwnedFd,
    registry: Option<Registry>,
    waiter: Option<TaskletId>,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(r, 0, "{}", io::Error::last_os_error());
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl PipePlugin {
    fn read(&self) -> Option<io::Result<Vec<u8>>> {
        let mut buf = [0u8; 256];
        // SAFETY: reads into a buffer on this frame, at most its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Some(Ok(buf[..n as usize].to_vec()));
        }
        let e = io::Error::last_os_error();
        (e.kind() != io::ErrorKind::WouldBlock).then_some(Err(e))
    }
}

impl Drop for PipePlugin {
    fn drop(&mut self) {
        if let Some(registry) = &self.registry {
            let _ = registry.deregister(self.fd.as_fd());
        }
    }
}

impl Plugin for PipePlugin {
    fn register(router: &mut Router<Self>) {
        router.op::<ReadPipe>();
    }

    fn poll(&mut self, cx: &mut Context<'_>, events: Events<'_>) -> io::Result<()> {
        for event in events.iter() {
            assert_eq!(event.key(), 7, "only the pipe is registered");
            if let Some(id) = self.waiter {
                if let Some(result) = self.read() {
                    self.waiter = None;
                    let _ = cx.complete::<ReadPipe>(id, result);
                }
            }
        }
        Ok(())
    }

    fn cancel(&mut self, id: TaskletId) {
        if self.waiter == Some(id) {
            self.waiter = None;
        }
    }
}

impl Serves<ReadPipe> for PipePlugin {
    fn submit(
        &mut self,
        _: ReadPipe,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Vec<u8>>> {
        if let Some(result) = self.read() {
            return Poll::Ready(result);
        }
        if self.registry.is_none() {
            let registry = cx.registry();
            // SAFETY: the plugin owns the descriptor and deregisters it in its `Drop`.
            if let Err(e) = unsafe { registry.register(self.fd.as_fd(), 7, Interest::READABLE) } {
                return Poll::Ready(Err(e));
            }
            self.registry = Some(registry);
        }
        self.waiter = Some(from);
        Poll::Pending
    }
}

/// The network waits (a listener nobody connects to) while a tasklet waits for the pipe,
/// which another thread writes to a little later.
fn pipe_beside_network(how: Drive) -> Vec<u8> {
    let (read_end, write_end) = pipe();
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    s.add_plugin(NetPlugin::new().unwrap()).unwrap();
    s.add_plugin(PipePlugin {
        fd: read_end,
        registry: None,
        waiter: None,
    })
    .unwrap();
    let listener = s
        .spawn(|h| {
            let listener = h.listen("127.0.0.1:0").unwrap();
            let _ = h.accept(&listener);
            unreachable!("nobody connects");
        })
        .unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    s.spawn(move |h| {
        *g.borrow_mut() = h.yield_op(ReadPipe).unwrap();
        h.kill(listener);
    })
    .unwrap();
    s.tick().unwrap(); // both wait now
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: writes 5 bytes from a static buffer.
        let n = unsafe { libc::write(write_end.as_raw_fd(), b"hello".as_ptr().cast(), 5) };
        assert_eq!(n, 5);
        write_end // kept open until the reader is done
    });
    drive(&mut s, how);
    drop(writer.join().unwrap());
    assert!(s.is_empty());
    got.take()
}

#[test]
fn a_pipe_plugin_and_the_network_wait_side_by_side_under_tick() {
    assert_eq!(
        bounded("tick", || pipe_beside_network(Drive::Tick)),
        b"hello"
    );
}

#[test]
fn a_pipe_plugin_and_the_network_wait_side_by_side_under_run() {
    assert_eq!(bounded("run", || pipe_beside_network(Drive::Run)), b"hello");
}

#[test]
fn a_pipe_plugin_and_the_network_wait_side_by_side_under_run_for() {
    let got = bounded("run_for", || pipe_beside_network(Drive::RunFor));
    assert_eq!(got, b"hello");
}

// ----- a plugin fed by another thread --------------------------------------------------------

/// Takes the next value another thread handed over.
struct Take;
impl Op for Take {
    type Output = u64;
}

/// Values from another thread, handed over through a mutex and announced with
/// [`Remote::wake`].
#[derive(Debug, Default)]
struct Inbox {
    values: Arc<Mutex<Vec<u64>>>,
    waiter: Option<TaskletId>,
}

impl Plugin for Inbox {
    fn register(router: &mut Router<Self>) {
        router.op::<Take>();
    }

    fn poll(&mut self, cx: &mut Context<'_>, _: Events<'_>) -> io::Result<()> {
        if let Some(id) = self.waiter {
            if let Some(v) = self.values.lock().unwrap().pop() {
                self.waiter = None;
                let _ = cx.complete::<Take>(id, v);
            }
        }
        Ok(())
    }

    fn cancel(&mut self, id: TaskletId) {
        if self.waiter == Some(id) {
            self.waiter = None;
        }
    }
}

impl Serves<Take> for Inbox {
    fn submit(&mut self, _: Take, from: TaskletId, _: &mut Context<'_>) -> Poll<u64> {
        match self.values.lock().unwrap().pop() {
            Some(v) => Poll::Ready(v),
            None => {
                self.waiter = Some(from);
                Poll::Pending
            }
        }
    }
}

/// The network waits (an idle listener); another thread hands the inbox a value and wakes
/// the schedule through its remote.
fn inbox_beside_network(how: Drive) -> u64 {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    s.add_plugin(NetPlugin::new().unwrap()).unwrap();
    let values = Arc::new(Mutex::new(Vec::new()));
    s.add_plugin(Inbox {
        values: values.clone(),
        waiter: None,
    })
    .unwrap();
    let listener = s
        .spawn(|h| {
            let listener = h.listen("127.0.0.1:0").unwrap();
            let _ = h.accept(&listener);
        })
        .unwrap();
    let got = Rc::new(RefCell::new(0));
    let g = got.clone();
    s.spawn(move |h| {
        *g.borrow_mut() = h.yield_op(Take);
        h.kill(listener);
    })
    .unwrap();
    s.tick().unwrap();
    let remote: Remote = s.remote();
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        values.lock().unwrap().push(42);
        remote.wake();
    });
    drive(&mut s, how);
    feeder.join().unwrap();
    got.take()
}

#[test]
fn a_plugin_fed_by_another_thread_is_woken_under_tick() {
    assert_eq!(bounded("tick", || inbox_beside_network(Drive::Tick)), 42);
}

#[test]
fn a_plugin_fed_by_another_thread_is_woken_under_run() {
    assert_eq!(bounded("run", || inbox_beside_network(Drive::Run)), 42);
}

#[test]
fn a_plugin_fed_by_another_thread_is_woken_under_run_for() {
    assert_eq!(
        bounded("run_for", || inbox_beside_network(Drive::RunFor)),
        42
    );
}

/// `Remote::unpark` from another thread makes a parked tasklet runnable while `run()` blocks,
/// with no other source at all.
#[test]
fn a_remote_unpark_wakes_a_blocked_run() {
    let order = bounded("remote unpark", || {
        let mut s = Schedule::new();
        let remote = s.remote();
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        let id = s
            .spawn(move |h| {
                o.borrow_mut().push("parked");
                h.park();
                o.borrow_mut().push("unparked");
            })
            .unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            remote.unpark(id);
        });
        s.run().unwrap();
        t.join().unwrap();
        order.take()
    });
    assert_eq!(order, ["parked", "unparked"]);
}

/// With no remote left but its own and nothing else to wake it, a parked tasklet is a
/// deadlock, and `run()` says so instead of blocking forever.
#[test]
fn a_schedule_whose_remotes_are_gone_reports_a_stall() {
    let mut s = Schedule::new();
    s.spawn(|h| h.park()).unwrap();
    let remote = s.remote();
    drop(remote);
    let err = s.run().unwrap_err();
    assert!(err.is_stalled(), "{err}");
}

/// Registering a key the reactor cannot carry is refused with a clear error.
#[test]
fn a_key_above_the_limit_is_refused() {
    struct Probe;
    impl Op for Probe {
        type Output = io::Result<()>;
    }
    #[derive(Debug)]
    struct Registrar;
    impl Plugin for Registrar {
        fn register(router: &mut Router<Self>) {
            router.op::<Probe>();
        }
    }
    impl Serves<Probe> for Registrar {
        fn submit(&mut self, _: Probe, _: TaskletId, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let (read_end, _write_end) = pipe();
            // SAFETY: the registration is refused, so nothing outlives the descriptor.
            let r = unsafe {
                cx.registry()
                    .register(read_end.as_fd(), usize::MAX, Interest::BOTH)
            };
            Poll::Ready(r)
        }
    }
    let mut s = Schedule::new();
    s.add_plugin(Registrar).unwrap();
    let err = Rc::new(RefCell::new(None));
    let e = err.clone();
    s.spawn(move |h| *e.borrow_mut() = h.yield_op(Probe).err())
        .unwrap();
    s.run().unwrap();
    let err = err.take().expect("refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("key must be at most"), "{err}");
}

/// What crosses threads is `Send + Sync`; the schedule side is not (a compile-time check).
#[test]
fn remotes_and_remote_senders_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Remote>();
    send_sync::<fibra::tasks::RemoteSender<Vec<u8>>>();
}

/// A remote that outlives its schedule does nothing, and says so.
#[test]
fn a_remote_outliving_its_schedule_is_inert() {
    let mut s = Schedule::new();
    let id = s.spawn(|h| h.park()).unwrap();
    let remote = s.remote();
    assert!(remote.is_alive());
    drop(s);
    assert!(!remote.is_alive());
    for _ in 0..1000 {
        remote.unpark(id); // queued nowhere: no memory grows
        remote.wake();
    }
}
