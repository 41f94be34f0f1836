//! `Sim`: simulated hosts, each with its own schedule, driven on one thread by one seed.

use std::cell::{Ref, RefCell};
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra_net::NetPlugin;
use fibra_rt::{Handle, Schedule, TaskletId};
use fibra_tasks::TasksPlugin;

use crate::host::HostPort;
use crate::net::Net;
use crate::trace::{Trace, What};
use crate::{Faults, Latency};

/// A host of a [`Sim`], as [`Sim::host`] returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub usize);

/// Why [`Sim::run_until`] stopped before its condition held.
#[derive(Debug)]
pub enum SimError {
    /// The simulated deadline came first.
    TimedOut {
        /// The simulated time then.
        at: Duration,
    },
    /// Nothing could ever happen again: no host has work, no segment is on the wire, no
    /// timer is set (a tasklet waits for something that cannot come).
    Quiet {
        /// The simulated time then.
        at: Duration,
    },
    /// A host's schedule failed (a plugin's fatal error).
    Host {
        /// The host.
        host: HostId,
        /// Its schedule's error.
        error: fibra_rt::Error,
    },
    /// Too many rounds without simulated time moving (a tasklet spinning on `yield_now`).
    Livelock {
        /// The simulated time then.
        at: Duration,
    },
    /// One [`Sim::run_until`] ran its budget of rounds ([`Sim::set_max_rounds`]) while
    /// simulated time crawled (a tasklet that sleeps a microsecond in a loop).
    Budget {
        /// The simulated time then.
        at: Duration,
        /// The rounds it ran.
        rounds: u64,
    },
    /// A tasklet spawned with [`Sim::spawn`] panicked (an assertion in it failed).
    Panicked {
        /// Its host.
        host: HostId,
        /// Its name.
        name: String,
        /// The panic's message.
        message: String,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::TimedOut { at } => write!(f, "simulated deadline reached at {at:?}"),
            SimError::Quiet { at } => write!(
                f,
                "nothing left to happen at {at:?}: every tasklet waits for something that cannot come"
            ),
            SimError::Host { host, error } => write!(f, "host {}: {error}", host.0),
            SimError::Livelock { at } => {
                write!(f, "livelock at {at:?}: rounds go on and simulated time stands still")
            }
            SimError::Budget { at, rounds } => write!(
                f,
                "{rounds} rounds in one run and simulated time only at {at:?}: a tasklet that \
                 wakes too often (a sleep of a microsecond in a loop?); Sim::set_max_rounds \
                 raises the budget"
            ),
            SimError::Panicked {
                host,
                name,
                message,
            } => write!(f, "tasklet {name:?} on host {} panicked: {message}", host.0),
        }
    }
}

impl std::error::Error for SimError {}

type Boot = Rc<dyn Fn(&mut Schedule)>;

struct Host {
    name: String,
    schedule: Option<Schedule>,
    boots: Vec<Boot>,
}

/// A deterministic simulation: hosts with their own addresses and schedules (each with a
/// simulated [`NetPlugin`] and a [`TasksPlugin`]), one in-memory network, one simulated
/// clock, all on the calling thread, every choice drawn from one seed.
///
/// Tasklets are the same code as on real sockets: `h.listen`, `h.accept`, `h.connect`,
/// `h.receive`, `h.send`, `Group`, `h.sleep`... The clock jumps to the next deadline (a
/// sleep, a read timeout, a segment's arrival) whenever no host can run.
///
/// ```
/// use std::time::Duration;
/// use fibra_net::NetExt;
/// use fibra_sim::Sim;
///
/// let mut sim = Sim::new(7);
/// let server = sim.host("10.0.0.1");
/// let client = sim.host("10.0.0.2");
/// sim.spawn(server, "echo", |h| {
///     let listener = h.listen("0.0.0.0:7").unwrap();
///     let (conn, _) = h.accept(&listener).unwrap();
///     while let Ok(line) = h.receive(&conn) {
///         h.send_frame(&conn, &line).unwrap();
///     }
/// });
/// let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let seen = got.clone();
/// sim.spawn(client, "client", move |h| {
///     let conn = h.connect("10.0.0.1:7").unwrap();
///     h.send_frame(&conn, b"hello").unwrap();
///     *seen.borrow_mut() = h.receive(&conn).unwrap();
/// });
/// sim.run_until(|_| !got.borrow().is_empty(), Duration::from_secs(10))?;
/// assert_eq!(*got.borrow(), b"hello");
/// # Ok::<(), fibra_sim::SimError>(())
/// ```
pub struct Sim {
    seed: u64,
    net: Rc<RefCell<Net>>,
    hosts: Vec<Host>,
    base: Instant,
    /// Repairs of partitions the faults made: (when, from, to).
    repairs: Vec<(Duration, usize, usize)>,
    /// The directions cut on demand ([`Sim::partition_one_way`]), until [`Sim::repair`]: a
    /// drawn partition's repair leaves them cut.
    user_cuts: std::collections::BTreeSet<(usize, usize)>,
    /// The most rounds in a row at one simulated instant.
    max_rounds_still: u64,
    /// The most rounds one `run_until` runs.
    max_rounds: u64,
    /// Tasklets spawned by [`Sim::spawn`], watched for a panic: (host, id, name).
    watched: Vec<(usize, TaskletId, String)>,
    /// Where its stream of [`fibra_rt::time::entropy`] stands: its own, so that two
    /// simulations alive on one thread do not draw from one stream.
    entropy: u64,
    /// Its seed and replay command, for a stack overflow's report (the process aborts).
    note: &'static str,
}

thread_local! {
    /// Simulations alive on this thread: the last one to go clears the thread's clock.
    static LIVE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("now", &self.now())
            .field(
                "hosts",
                &self.hosts.iter().map(|h| &h.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Rounds in a row at one simulated instant before [`run_until`](Self::run_until) calls
    /// it a livelock, by default: the test suites here never go past 2,000 (a round is one
    /// host's tick); a spinning tasklet is reported after a second or two of a debug build.
    pub const LIVELOCK_ROUNDS: u64 = 100_000;

    /// Rounds one [`run_until`](Self::run_until) (or [`run_for`](Self::run_for)) runs
    /// before it stops with [`SimError::Budget`], by default: simulated time that crawls (a
    /// tasklet that sleeps a microsecond in a loop) would otherwise run for hours of wall
    /// time before the simulated deadline. About 10 s of a debug build.
    pub const MAX_ROUNDS: u64 = 2_000_000;

    /// The calendar date at a simulation's start, in seconds since the Unix epoch
    /// ([`fibra_rt::time::system_now`]: an HTTP `Date`, say), the same in every run:
    /// 2030-01-01 00:00:00 UTC.
    pub const CALENDAR_START: u64 = 1_893_456_000;

    fn calendar_start() -> std::time::SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(Sim::CALENDAR_START)
    }

    /// A simulation from `seed`, with no hosts yet and no faults ([`Faults::none`]); the
    /// links' latency is drawn from the seed.
    pub fn new(seed: u64) -> Sim {
        // Far from the wall clock: an instant a tasklet takes from `Instant::now()` instead of
        // `fibra_rt::time::now()` lies ten years in the simulation's past, so a deadline made
        // from it has passed at once, in every run alike, rather than landing a few
        // microseconds of wall time (a different few in each run) after the simulated one.
        let base = Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600);
        let entropy = seed ^ 0x5eed_5eed_5eed_5eed;
        fibra_rt::time::set_virtual_now(Some(base));
        fibra_rt::time::set_virtual_wall(Some((base, Sim::calendar_start())));
        fibra_rt::time::set_entropy(Some(entropy));
        LIVE.with(|l| l.set(l.get() + 1));
        // A tasklet's stack overflow aborts the process, past `for_seeds`: its report names
        // the seed then. One short line per simulation, kept for the thread's life.
        let note: &'static str =
            Box::leak(format!("{}\n", crate::replay_line(seed)).into_boxed_str());
        fibra_rt::set_overflow_note(Some(note));
        Sim {
            seed,
            net: Rc::new(RefCell::new(Net::new(seed, 256))),
            hosts: Vec::new(),
            base,
            repairs: Vec::new(),
            user_cuts: std::collections::BTreeSet::new(),
            max_rounds_still: Sim::LIVELOCK_ROUNDS,
            max_rounds: Sim::MAX_ROUNDS,
            watched: Vec::new(),
            entropy,
            note,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Rounds in a row at one simulated instant before a livelock is reported
    /// ([`LIVELOCK_ROUNDS`](Self::LIVELOCK_ROUNDS) by default): more for a simulation of
    /// thousands of hosts that all work at one instant.
    pub fn set_livelock_rounds(&mut self, rounds: u64) {
        self.max_rounds_still = rounds;
    }

    /// Rounds one [`run_until`](Self::run_until) runs before it stops with
    /// [`SimError::Budget`] ([`MAX_ROUNDS`](Self::MAX_ROUNDS) by default).
    pub fn set_max_rounds(&mut self, rounds: u64) {
        self.max_rounds = rounds;
    }

    /// Sets the faults the simulation injects by itself.
    pub fn set_faults(&mut self, faults: Faults) {
        self.net.borrow_mut().faults = faults;
    }

    /// Draws a mix of faults from the seed ([`Faults::random`]), sets and returns it.
    pub fn random_faults(&mut self) -> Faults {
        let mut net = self.net.borrow_mut();
        let faults = Faults::random(&mut net.rng);
        net.faults = faults.clone();
        faults
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.net.borrow().faults.clone()
    }

    /// A number from the simulation's generator, for tests that choose by the seed too.
    pub fn random(&mut self, n: u64) -> u64 {
        self.net.borrow_mut().rng.below(n)
    }

    /// Keeps the last `n` trace entries for [`trace`](Self::trace) (256 by default); the
    /// hash covers every entry whatever `n`.
    pub fn keep_trace(&mut self, n: usize) {
        self.net.borrow_mut().trace.set_keep(n);
    }

    /// Simulated time since the start.
    pub fn now(&self) -> Duration {
        self.net.borrow().now
    }

    /// Makes the thread's clock and entropy stream this simulation's (another may have
    /// run on this thread since).
    fn set_clock(&self) {
        fibra_rt::time::set_virtual_now(Some(self.base + self.now()));
        fibra_rt::time::set_virtual_wall(Some((self.base, Sim::calendar_start())));
        fibra_rt::time::set_entropy(Some(self.entropy));
        fibra_rt::set_overflow_note(Some(self.note));
    }

    /// Keeps where its entropy stream stands after its code ran.
    fn keep_entropy(&mut self) {
        if let Some(state) = fibra_rt::time::entropy_state() {
            self.entropy = state;
        }
    }

    /// Adds a host with address `ip` (an IPv4 or IPv6 literal), up, with an empty schedule.
    ///
    /// # Panics
    ///
    /// When `ip` is not an address, or another host has it.
    pub fn host(&mut self, ip: &str) -> HostId {
        let addr: IpAddr = ip
            .parse()
            .unwrap_or_else(|_| panic!("{ip:?} is not an IP address"));
        let index = {
            let mut net = self.net.borrow_mut();
            assert!(
                net.hosts.iter().all(|h| h.ip != addr),
                "two hosts have the address {ip}"
            );
            net.add_host(addr)
        };
        self.hosts.push(Host {
            name: ip.to_string(),
            schedule: None,
            boots: Vec::new(),
        });
        self.set_clock();
        self.hosts[index].schedule = Some(self.new_schedule(index));
        HostId(index)
    }

    fn new_schedule(&self, host: usize) -> Schedule {
        let (life, budget) = {
            let mut net = self.net.borrow_mut();
            let budget = net.rng.between(1, 64) as usize;
            (net.hosts[host].life, budget)
        };
        let mut schedule = Schedule::builder()
            .step_budget(budget)
            .stall_reports(false)
            .build();
        let port = HostPort {
            net: Rc::clone(&self.net),
            host,
            life,
        };
        schedule
            .add_plugin(NetPlugin::simulated(Rc::new(port)))
            .expect("a fresh schedule takes the network plugin");
        schedule
            .add_plugin(TasksPlugin::new())
            .expect("a fresh schedule takes the tasks plugin");
        schedule
    }

    /// The host's schedule (`None` while it is down), to spawn with options or read state.
    pub fn schedule(&mut self, host: HostId) -> Option<&mut Schedule> {
        self.hosts[host.0].schedule.as_mut()
    }

    /// Spawns a tasklet named `name` on `host`; it first runs in the host's next round. If it
    /// panics (an assertion in it fails), [`run_until`](Self::run_until) stops with
    /// [`SimError::Panicked`]; tasklets it spawns are not watched (join them).
    ///
    /// # Panics
    ///
    /// When the host is down, or no stack can be mapped.
    pub fn spawn<F>(&mut self, host: HostId, name: &str, f: F) -> TaskletId
    where
        F: FnOnce(&Handle) + 'static,
    {
        let schedule = self.hosts[host.0]
            .schedule
            .as_mut()
            .expect("the host is up");
        let id = schedule
            .spawn_named(name.to_string(), f)
            .expect("spawn a tasklet");
        schedule.watch_exit(id);
        self.watched.push((host.0, id, name.to_string()));
        id
    }

    /// Runs `boot` on the host's schedule now and again at each [`restart`](Self::restart):
    /// the host's services (spawn its server tasklets there).
    pub fn on_boot(&mut self, host: HostId, boot: impl Fn(&mut Schedule) + 'static) {
        let boot: Boot = Rc::new(boot);
        self.set_clock();
        if let Some(schedule) = self.hosts[host.0].schedule.as_mut() {
            boot(schedule);
        }
        self.keep_entropy();
        self.hosts[host.0].boots.push(boot);
    }

    // ----- faults on demand --------------------------------------------------------

    /// Sets the latency of the link `from` → `to`.
    pub fn set_latency(&mut self, from: HostId, to: HostId, latency: Latency) {
        self.net.borrow_mut().set_latency(from.0, to.0, latency);
    }

    /// Sets the latency of every link without one of its own.
    pub fn set_default_latency(&mut self, latency: Latency) {
        self.net.borrow_mut().set_default_latency(latency);
    }

    /// Cuts the link `from` → `to` (one way): its segments are held until it is repaired
    /// ([`repair`](Self::repair): a partition the faults drew on the same link and repair
    /// later leaves it cut), or fail their sender with `ETIMEDOUT` after
    /// [`Faults::give_up`].
    pub fn partition_one_way(&mut self, from: HostId, to: HostId) {
        self.user_cuts.insert((from.0, to.0));
        let mut net = self.net.borrow_mut();
        net.record(from.0, What::Fault(format!("cut h{} -> h{}", from.0, to.0)));
        net.cut(from.0, to.0);
    }

    /// Cuts both directions between `a` and `b`.
    pub fn partition(&mut self, a: HostId, b: HostId) {
        self.partition_one_way(a, b);
        self.partition_one_way(b, a);
    }

    /// Repairs both directions between `a` and `b`; held segments go on their way.
    pub fn repair(&mut self, a: HostId, b: HostId) {
        self.user_cuts.remove(&(a.0, b.0));
        self.user_cuts.remove(&(b.0, a.0));
        let mut net = self.net.borrow_mut();
        net.record(a.0, What::Fault(format!("repair h{} <-> h{}", a.0, b.0)));
        net.repair(a.0, b.0);
        net.repair(b.0, a.0);
    }

    /// Resets one open connection chosen by the seed; returns whether there was one.
    pub fn reset_one(&mut self) -> bool {
        let mut net = self.net.borrow_mut();
        match net.reset_random() {
            Some(what) => {
                net.record(0, What::Fault(what));
                true
            }
            None => false,
        }
    }

    /// Crashes `host`: its tasklets end (their destructors run, as a kill's), its sockets
    /// vanish without a FIN or RST, segments to it are held until it restarts, and what it
    /// sent into a cut link (its kernel's retransmissions) never arrives.
    pub fn crash(&mut self, host: HostId) {
        {
            let mut net = self.net.borrow_mut();
            net.record(host.0, What::Fault("crash".into()));
            net.crash(host.0);
        }
        self.set_clock();
        self.watched.retain(|w| w.0 != host.0);
        drop(self.hosts[host.0].schedule.take());
        self.keep_entropy();
    }

    /// Restarts a crashed `host` with a fresh schedule, and runs its
    /// [`on_boot`](Self::on_boot) functions. Connections of its former life are gone: their
    /// peers' segments get a RST. A host that is up is crashed first (a power cycle).
    pub fn restart(&mut self, host: HostId) {
        if self.is_up(host) {
            self.crash(host);
        }
        {
            let mut net = self.net.borrow_mut();
            net.record(host.0, What::Fault("restart".into()));
            net.restart(host.0);
        }
        self.set_clock();
        let mut schedule = self.new_schedule(host.0);
        for boot in &self.hosts[host.0].boots {
            boot(&mut schedule);
        }
        self.keep_entropy();
        self.hosts[host.0].schedule = Some(schedule);
    }

    /// Whether `host` is up.
    pub fn is_up(&self, host: HostId) -> bool {
        self.hosts[host.0].schedule.is_some()
    }

    // ----- running -----------------------------------------------------------------

    /// The trace so far: its hash, and its last entries.
    pub fn trace(&self) -> Ref<'_, Trace> {
        Ref::map(self.net.borrow(), |n| &n.trace)
    }

    /// The hash of the whole trace: equal for two runs of one seed.
    pub fn trace_hash(&self) -> u64 {
        self.net.borrow().trace.hash()
    }

    /// Open connection ends in the network now.
    pub fn open_connections(&self) -> usize {
        self.net.borrow().open_streams()
    }

    /// Runs until `done` holds (it is asked before each round), or until simulated time
    /// reaches `limit` (since the start).
    ///
    /// # Errors
    ///
    /// [`SimError::TimedOut`] at `limit`, [`SimError::Quiet`] when nothing can happen any
    /// more, [`SimError::Host`] when a schedule fails, [`SimError::Livelock`] when rounds
    /// go on without simulated time moving, [`SimError::Budget`] when it ran
    /// [`set_max_rounds`](Self::set_max_rounds) rounds.
    pub fn run_until(
        &mut self,
        mut done: impl FnMut(&Sim) -> bool,
        limit: Duration,
    ) -> Result<(), SimError> {
        let mut still = 0u64;
        let mut rounds = 0u64;
        loop {
            self.set_clock();
            self.apply_repairs();
            self.net.borrow_mut().deliver_due();
            if done(self) {
                return Ok(());
            }
            let now = self.now();
            let ready = self.ready_hosts(now);
            if !ready.is_empty() {
                let pick = ready[self.random(ready.len() as u64) as usize];
                self.round(pick)?;
                rounds += 1;
                if rounds >= self.max_rounds {
                    return Err(SimError::Budget { at: now, rounds });
                }
                still += 1;
                if still > self.max_rounds_still {
                    return Err(SimError::Livelock { at: now });
                }
                continue;
            }
            let Some(next) = self.next_due(now) else {
                return Err(SimError::Quiet { at: now });
            };
            if next > limit {
                self.net.borrow_mut().now = limit.max(now);
                self.set_clock();
                return Err(SimError::TimedOut { at: limit.max(now) });
            }
            if next > now {
                still = 0;
                self.net.borrow_mut().now = next;
            }
        }
    }

    /// Runs for `d` of simulated time (or until nothing can happen any more).
    ///
    /// # Errors
    ///
    /// [`SimError::Host`], [`SimError::Livelock`] and [`SimError::Budget`] as
    /// [`run_until`](Self::run_until).
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimError> {
        let until = self.now() + d;
        match self.run_until(|sim| sim.now() >= until, until) {
            Ok(()) | Err(SimError::TimedOut { .. }) => Ok(()),
            Err(SimError::Quiet { .. }) => {
                // Nothing happens meanwhile: the clock moves on all the same.
                self.net.borrow_mut().now = until;
                self.set_clock();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn ready_hosts(&self, now: Duration) -> Vec<usize> {
        let at = self.base + now;
        let net = self.net.borrow();
        self.hosts
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                h.schedule.as_ref().is_some_and(|s| {
                    !net.hosts[*i].events.is_empty() || s.next_deadline().is_some_and(|d| d <= at)
                })
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn next_due(&self, now: Duration) -> Option<Duration> {
        let net = self.net.borrow();
        let hosts = self.hosts.iter().filter_map(|h| {
            let d = h.schedule.as_ref()?.next_deadline()?;
            Some(d.saturating_duration_since(self.base).max(now))
        });
        let repairs = self.repairs.iter().map(|r| r.0);
        hosts.chain(repairs).chain(net.next_due()).min()
    }

    fn apply_repairs(&mut self) {
        let now = self.now();
        let mut i = 0;
        while i < self.repairs.len() {
            if self.repairs[i].0 <= now {
                let (_, from, to) = self.repairs.swap_remove(i);
                if self.user_cuts.contains(&(from, to)) {
                    // Cut on demand as well: it stays cut until `repair`.
                    continue;
                }
                let mut net = self.net.borrow_mut();
                net.record(from, What::Fault(format!("repair h{from} -> h{to}")));
                net.repair(from, to);
            } else {
                i += 1;
            }
        }
    }

    /// One round of host `i`, after the faults the seed draws for it.
    fn round(&mut self, i: usize) -> Result<(), SimError> {
        self.inject_faults();
        self.net.borrow_mut().record(i, What::Tick);
        let Some(schedule) = self.hosts[i].schedule.as_mut() else {
            return Ok(());
        };
        let ticked = schedule.tick();
        self.keep_entropy();
        ticked.map_err(|error| SimError::Host {
            host: HostId(i),
            error,
        })?;
        let mut k = 0;
        while k < self.watched.len() {
            let (host, id, _) = &self.watched[k];
            let exit = match self.hosts[*host].schedule.as_mut() {
                Some(schedule) if *host == i => schedule.take_exit(*id),
                _ => None,
            };
            match exit {
                None => k += 1,
                Some(fibra_rt::Exit::Panicked(message)) => {
                    let (host, _, name) = self.watched.swap_remove(k);
                    return Err(SimError::Panicked {
                        host: HostId(host),
                        name,
                        message,
                    });
                }
                Some(_) => {
                    self.watched.swap_remove(k);
                }
            }
        }
        Ok(())
    }

    fn inject_faults(&mut self) {
        let hosts = self.hosts.len();
        let mut net = self.net.borrow_mut();
        let (reset, partition, max) = (
            net.faults.reset,
            net.faults.partition,
            net.faults.partition_max,
        );
        if net.rng.chance(reset) {
            if let Some(what) = net.reset_random() {
                net.record(0, What::Fault(what));
            }
        }
        if hosts >= 2 && net.rng.chance(partition) {
            let a = net.rng.below(hosts as u64) as usize;
            let b = (a + 1 + net.rng.below(hosts as u64 - 1) as usize) % hosts;
            let both = net.rng.chance(0.5);
            let spell = net.rng.duration(Duration::from_millis(1), max);
            let until = net.now + spell;
            let mut cut = |net: &mut Net, from: usize, to: usize| {
                if !net.is_cut(from, to) {
                    net.record(
                        from,
                        What::Fault(format!("cut h{from} -> h{to} for {spell:?}")),
                    );
                    net.cut(from, to);
                    self.repairs.push((until, from, to));
                }
            };
            cut(&mut net, a, b);
            if both {
                cut(&mut net, b, a);
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // The schedules end first, on the simulated clock (their tasklets' destructors run).
        self.set_clock();
        for host in &mut self.hosts {
            drop(host.schedule.take());
        }
        // The last simulation alive on this thread gives it back its real clock.
        if LIVE.with(|l| {
            l.set(l.get() - 1);
            l.get() == 0
        }) {
            fibra_rt::time::set_virtual_now(None);
            fibra_rt::time::set_virtual_wall(None);
            fibra_rt::time::set_entropy(None);
            fibra_rt::set_overflow_note(None);
        }
    }
}
