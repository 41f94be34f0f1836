//! fibra's `hertz`: a tasklet ticking at a fixed rate ([`Ticker`], 30 Hz by default) beside
//! an echo server on the same thread, printing each second the rate it measured and its
//! worst lateness; the echo traffic does not push its ticks off the grid.
//!
//! ```text
//! cargo run --release --example hertz                    # echo on 127.0.0.1:7003
//! cargo run --release --example hertz -- --hz 60 --missed burst --seconds 5
//! ```
//!
//! `--missed skip|burst|delay` picks what happens to ticks missed while the thread was
//! stalled (skip, the default: the late tick once, then back on the grid). `--seconds N`
//! stops after N seconds with a summary; otherwise Ctrl-C stops it.

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{ConnOptions, Framing, ListenOptions, NetExt, NetPlugin};
use fibra::rt::{Either, Park, Unparker};
use fibra::signal::{Signal, SignalExt};
use fibra::tasks::ops::Sleep;
use fibra::tasks::{MissedTicks, TasksExt, Ticker};
use fibra::Handle;

const HELP: &str = "hertz: a tasklet ticking at a fixed rate beside an echo server; prints its \
rate and lateness

usage: hertz [--addr HOST:PORT] [--hz RATE] [--missed skip|burst|delay] [--seconds N]
  --addr     where the echo server listens (default 127.0.0.1:7003)
  --hz       ticks a second (default 30)
  --missed   what to do with missed ticks: skip, burst or delay (default skip)
  --seconds  stop after N seconds (default: at Ctrl-C)";

struct Config {
    addr: String,
    hz: f64,
    missed: MissedTicks,
    seconds: Option<f64>,
}

fn parse_args() -> Config {
    let mut config = Config {
        addr: "127.0.0.1:7003".to_owned(),
        hz: 30.0,
        missed: MissedTicks::Skip,
        seconds: None,
    };
    let mut args = cli::Args::new("hertz", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => config.addr = args.value(f),
            "--hz" => {
                config.hz = args.parse(f);
                if let Err(e) = Ticker::hertz(config.hz) {
                    args.fail(format!("--hz: {e}"));
                }
            }
            "--missed" => {
                config.missed = match args.value(f).as_str() {
                    "skip" => MissedTicks::Skip,
                    "burst" => MissedTicks::Burst,
                    "delay" => MissedTicks::Delay,
                    other => args.fail(format!("--missed `{other}`: skip, burst or delay")),
                }
            }
            "--seconds" => {
                let secs: f64 = args.parse(f);
                if !(secs > 0.0 && secs <= 86_400.0) {
                    args.fail(format!("--seconds `{secs}`: from above 0 to 86400"));
                }
                config.seconds = Some(secs);
            }
            _ => args.unknown(f),
        }
    }
    config
}

fn main() -> Result<(), cli::Failure> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = parse_args();
    let ticker = Ticker::hertz(config.hz)?.with_missed(config.missed);
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    let options = ListenOptions::new().with_conn(ConnOptions::new().with_framing(Framing::Raw));
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen_with(config.addr.as_str(), options)
        .map_err(|e| format!("cannot serve echo on `{}`: {e}", config.addr))?;
    log::info!(target: "hertz", "echo server listening on {}; ticking at {} Hz", listener.local_addr(), config.hz);
    schedule.spawn(move |h| loop {
        let Ok((conn, _)) = h.accept(&listener) else {
            continue;
        };
        let _ = h.spawn_detached(move |h| {
            while let Ok(bytes) = h.receive(&conn) {
                if h.send(&conn, &bytes).is_err() {
                    return;
                }
            }
        });
    })?;
    // Ctrl-C ends the tick loop at once, however far its next tick is (the end of
    // `--seconds`, at its last tick): the signal's tasklet wakes it from its wait.
    let stopping = Rc::new(Cell::new(None));
    let waiting: Rc<Cell<Option<Unparker>>> = Rc::new(Cell::new(None));
    let (flag, waker) = (Rc::clone(&stopping), Rc::clone(&waiting));
    schedule.spawn(move |h| {
        if let Ok(signal) = h.signals(&[Signal::INT, Signal::TERM]) {
            flag.set(Some(signal));
            if let Some(tick_loop) = waker.take() {
                tick_loop.unpark();
            }
        }
    })?;
    let stop = config
        .seconds
        .map(|secs| Instant::now() + Duration::from_secs_f64(secs));
    let all = schedule.block_on(move |h| {
        waiting.set(Some(h.unparker()));
        tick_loop(h, ticker, stop, &stopping)
    })?;
    // The rate between the first tick given and the last.
    let rate = all.ticks.saturating_sub(1) as f64 / all.elapsed.as_secs_f64().max(1e-9);
    stop_signals::say!(
        "hertz: done: {} ticks, {} skipped in {:.3} s: {rate:.2} ticks/s, worst lateness \
         {:.3} ms",
        all.ticks,
        all.skipped,
        all.elapsed.as_secs_f64(),
        all.worst.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Ticks until `stop`, Ctrl-C or for ever, printing each second's rate (the ticks whose
/// deadlines fell in that second) and worst lateness; returns the whole run's figures.
fn tick_loop(
    h: &Handle,
    mut ticker: Ticker,
    stop: Option<Instant>,
    stopping: &Cell<Option<Signal>>,
) -> Figures {
    let mut all = Figures::default();
    let mut second = Figures::default();
    // About a second, in whole periods (so that a 30 Hz grid puts 30 ticks in each).
    let per_window = (1.0 / ticker.period().as_secs_f64()).round().max(1.0) as u32;
    let span = ticker.period() * per_window;
    let mut window: Option<Instant> = None;
    let mut first_given = None;
    let mut last_given = Instant::now();
    loop {
        if let Some(signal) = stopping.get() {
            log::info!(target: "hertz", "{signal}: stopping");
            break;
        }
        if stop.is_some_and(|stop| ticker.next_deadline().is_some_and(|d| d >= stop)) {
            break;
        }
        // The wait for the next tick, or a wake from the signal's tasklet (then the loop
        // looks at `stopping` again).
        if let Some(due) = ticker.next_deadline().filter(|&d| d > Instant::now()) {
            if let Either::Second(()) = h.select(Sleep(due), Park) {
                continue;
            }
        }
        let tick = ticker.tick(h);
        last_given = Instant::now();
        first_given.get_or_insert(last_given);
        let start = *window.get_or_insert(tick.deadline);
        if tick.deadline >= start + span {
            second.print();
            second = Figures::default();
            window = Some(start + span);
        }
        for f in [&mut all, &mut second] {
            f.ticks += 1;
            f.skipped += tick.skipped;
            f.worst = f.worst.max(tick.late);
        }
        // A tick already due returns without yielding: when the rate is more than this
        // thread can keep up with, let the echo server and the signals tasklet (Ctrl-C) run.
        if ticker.next_deadline().is_some_and(|d| d <= Instant::now()) {
            h.yield_now();
        }
    }
    all.elapsed = last_given - first_given.unwrap_or(last_given);
    all
}

#[derive(Default)]
struct Figures {
    ticks: u64,
    skipped: u64,
    worst: Duration,
    elapsed: Duration,
}

impl Figures {
    fn print(&self) {
        stop_signals::say!(
            "hertz: {} ticks in the last second, worst lateness {:.3} ms, {} skipped",
            self.ticks,
            self.worst.as_secs_f64() * 1e3,
            self.skipped
        );
    }
}
