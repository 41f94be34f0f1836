//! fibra inside someone else's loop: a 60 Hz "game loop" that updates its own world each
//! frame and calls `Schedule::tick()` once per frame to serve the chatter at the same time.
//!
//! ```text
//! cargo run --release --example host_loop                  # chat on 127.0.0.1:1981
//! cargo run --release --example host_loop -- --hz 120 --secs 30 --addr 127.0.0.1:4000
//! ```
//!
//! Every few seconds it prints how much of the frame `tick()` used (mean and max µs), how
//! many tasklets are alive and how many members are chatting. `tick()` never blocks: with
//! nothing to do it returns in about a microsecond, and a busy room costs the frame only the
//! work that is ready. Ctrl-C stops it cleanly.

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/stop_signals.rs"]
mod stop_signals;
// The chatter's room on one thread, telnet only (the web page and the threads' reach are
// the chatter example's): what it serves is used in part.
#[path = "chatter/alone.rs"]
mod alone;
#[path = "chatter/config.rs"]
mod config;
#[path = "chatter/member.rs"]
mod member;
#[path = "chatter/protocol.rs"]
mod protocol;
#[allow(dead_code)]
#[path = "chatter/reach.rs"]
mod reach;
#[allow(dead_code)]
#[path = "chatter/room.rs"]
mod room;
#[allow(dead_code)]
#[path = "chatter/server.rs"]
mod server;
#[allow(dead_code)]
#[path = "chatter/session.rs"]
mod session;
#[allow(dead_code)]
#[path = "chatter/shutdown.rs"]
mod shutdown;
#[path = "chatter/signal.rs"]
mod signal;
#[allow(dead_code)]
#[path = "chatter/stackless.rs"]
mod stackless;

use std::time::{Duration, Instant};

use fibra::net::NetPlugin;
use fibra::signal::SignalPlugin;
use fibra::tasks::TasksPlugin;
use fibra::Schedule;

const HELP: &str = "host_loop: the chatter served from a 60 Hz game loop that calls tick() \
once a frame

usage: host_loop [--addr HOST:PORT] [--hz N] [--secs N] [--report SECS]
  --addr    where the chatter listens (default 127.0.0.1:1981)
  --hz      frames per second (default 60)
  --secs    stop after this many seconds (default: run until Ctrl-C)
  --report  seconds between reports (default 5)";

/// The host's own state: a few particles bouncing in a box, stepped each frame.
struct World {
    particles: Vec<[f64; 4]>,
}

impl World {
    fn new() -> World {
        let particles = (0..1000)
            .map(|i| {
                let f = i as f64;
                [
                    f % 100.0,
                    (f * 7.0) % 100.0,
                    (f % 13.0) - 6.0,
                    (f % 7.0) - 3.0,
                ]
            })
            .collect();
        World { particles }
    }

    fn step(&mut self, dt: f64) {
        for p in &mut self.particles {
            for axis in 0..2 {
                p[axis] += p[axis + 2] * dt;
                if !(0.0..=100.0).contains(&p[axis]) {
                    p[axis + 2] = -p[axis + 2];
                    p[axis] = p[axis].clamp(0.0, 100.0);
                }
            }
        }
    }

    /// Where the particles are on average: proof the world kept moving.
    fn centre(&self) -> (f64, f64) {
        let n = self.particles.len() as f64;
        let (x, y) = self
            .particles
            .iter()
            .fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
        (x / n, y / n)
    }
}

/// Frame and tick timings over one report period.
#[derive(Default)]
struct Period {
    frames: u32,
    tick_total: Duration,
    tick_max: Duration,
    late_frames: u32,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        // Said whatever RUST_LOG lets through: the process ends on it.
        eprintln!("host_loop: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr = "127.0.0.1:1981".to_owned();
    let mut hz: u32 = 60;
    let mut secs: Option<u64> = None;
    let mut report = 5u64;
    let mut args = cli::Args::new("host_loop", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            "--hz" => hz = args.number(f, 1, 10_000) as u32,
            "--secs" => secs = Some(args.number(f, 1, 31_536_000)),
            "--report" => report = args.number(f, 1, 86_400),
            _ => args.unknown(f),
        }
    }

    let mut schedule = Schedule::new();
    let catches_signals = signal::catch_stop(&mut schedule)?;
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;
    let chatter = server::Chatter::start(&mut schedule, &addr, config::Config::default())
        .map_err(|e| format!("cannot serve the chat on `{addr}`: {e}"))?;
    log::info!(target: "host_loop", "{hz} Hz host loop; chatter on {}", chatter.local_addr());

    let frame = Duration::from_secs(1) / hz;
    let started = Instant::now();
    let end = secs.map(|s| started + Duration::from_secs(s));
    let mut world = World::new();
    let mut period = Period::default();
    let mut next_report = started + Duration::from_secs(report);
    let mut next_frame = started;
    while end.is_none_or(|e| next_frame < e) {
        // Ctrl-C or SIGTERM, asked from the host once a frame (one non-blocking read).
        if catches_signals {
            let signals = schedule
                .plugin_mut::<SignalPlugin>()
                .ok_or("no signal plugin")?;
            if let Some(signal) = signals.take_pending(&signal::STOP)? {
                log::info!(target: "host_loop", "{signal}: stopping");
                break;
            }
        }
        // The host's own work for this frame.
        world.step(frame.as_secs_f64());

        // fibra's share of the frame: whatever is ready, never a wait.
        let before = Instant::now();
        schedule.tick()?;
        let spent = before.elapsed();
        period.frames += 1;
        period.tick_total += spent;
        period.tick_max = period.tick_max.max(spent);

        let now = Instant::now();
        if now >= next_report {
            let (x, y) = world.centre();
            let stats = chatter.stats();
            stop_signals::say!(
                "{:>6.1} s  {} frames  tick mean {:.1} µs, max {} µs ({:.2}% of a {:.1} ms frame)  \
                 {} late  {} tasklets  {} chatting  world centre ({x:.1}, {y:.1})",
                now.duration_since(started).as_secs_f64(),
                period.frames,
                period.tick_total.as_secs_f64() * 1e6 / f64::from(period.frames),
                period.tick_max.as_micros(),
                100.0 * period.tick_total.as_secs_f64()
                    / (f64::from(period.frames) * frame.as_secs_f64()),
                frame.as_secs_f64() * 1e3,
                period.late_frames,
                schedule.len(),
                stats.members,
            );
            period = Period::default();
            next_report += Duration::from_secs(report);
        }

        // Sleep until the next frame; a frame that ran over starts the next one at once.
        next_frame += frame;
        match next_frame.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => {
                period.late_frames += 1;
                next_frame = Instant::now();
            }
        }
    }
    chatter.shutdown(&mut schedule, Duration::from_secs(2));
    log::info!(target: "host_loop", "stopped after {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
