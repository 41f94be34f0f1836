//! One schedule on the main thread serves the whole room: the host loop, Ctrl-C, and the
//! counters logged every second.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::NetPlugin;
use fibra::signal::SignalExt;
use fibra::tasks::TasksPlugin;
use fibra::Schedule;

use super::flags::Flags;
use super::server::Chatter;
use super::{signal, REPORT_EVERY};

/// Serves the chat on this thread until Ctrl-C or SIGTERM, then stops it: no new connection,
/// everyone told, connections closed gracefully.
pub(crate) fn run(flags: Flags) -> Result<(), Box<dyn std::error::Error>> {
    let Flags {
        addr,
        web_addr,
        config,
        tls,
        redis,
        ..
    } = flags;
    let mut schedule = Schedule::new();
    let catches_signals = signal::catch_stop(&mut schedule)?;
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;
    let started = match &redis {
        Some(redis) => Chatter::start_federated(&mut schedule, &addr, config, redis),
        None => Chatter::start(&mut schedule, &addr, config),
    };
    let mut chatter = started.map_err(|e| format!("cannot serve the chat on `{addr}`: {e}"))?;
    log::info!(target: "chatter", "listening on {} (telnet or nc to chat; Ctrl-C stops)",
        chatter.local_addr());
    // A listener that cannot be made ends the start: the room's tasklets, which never ran,
    // are ended with it.
    if let Err(e) = serve_more(&mut chatter, &mut schedule, web_addr, tls) {
        chatter.abandon(&mut schedule);
        return Err(e);
    }
    // A tasklet parks until Ctrl-C or SIGTERM; the host loop then stops the room.
    let stop = Rc::new(Cell::new(false));
    if catches_signals {
        let stop = Rc::clone(&stop);
        schedule.spawn_named("signals", move |h| {
            if let Ok(signal) = h.signals(&signal::STOP) {
                log::info!(target: "chatter", "{signal}: stopping (once more to force)");
                stop.set(true);
                for signal in signal::STOP {
                    let _ = h.stop_catching(signal);
                }
            }
        })?;
    }
    // Sleeps in the poller while idle; returns after each round, so the stop is seen at once.
    let mut next_report = Instant::now() + REPORT_EVERY;
    while !stop.get() {
        schedule.tick_within(REPORT_EVERY)?;
        if log::log_enabled!(target: "chatter::stats", log::Level::Debug)
            && Instant::now() >= next_report
        {
            next_report += REPORT_EVERY;
            let room = chatter.stats();
            let net = schedule
                .plugin::<NetPlugin>()
                .map(NetPlugin::stats)
                .unwrap_or_default();
            log::debug!(target: "chatter::stats",
                "members {}, lines delivered {}, cut off {}, bytes queued {}, writes {}, reads {}",
                room.members, room.deliveries, room.cut_off, net.queued, net.writes, net.reads);
        }
    }
    let stats = chatter.stats();
    chatter.shutdown(&mut schedule, Duration::from_secs(2));
    log::info!(target: "chatter", "stopped: {} lines delivered, {} members cut off for not reading",
        stats.deliveries, stats.cut_off);
    Ok(())
}

/// The listeners besides the chat's own: the web page, TLS and the web page over HTTPS.
fn serve_more(
    chatter: &mut Chatter,
    schedule: &mut Schedule,
    web_addr: Option<String>,
    tls: Option<super::flags::Tls>,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(web_addr) = web_addr {
        let served = chatter
            .serve_web(schedule, &web_addr)
            .map_err(|e| format!("cannot serve the web page on `{web_addr}`: {e}"))?;
        log::info!(target: "chatter", "web page on http://{served}/");
    }
    if let Some(tls) = tls {
        let served = chatter
            .serve_tls(schedule, &tls.addr, &tls.door, false)
            .map_err(|e| format!("cannot serve the chat over TLS on `{}`: {e}", tls.addr))?;
        log::info!(target: "chatter", "TLS on {served} (openssl s_client -connect {served})");
        if let Some(web) = &tls.web_addr {
            let served = chatter
                .serve_web_tls(schedule, web, &tls.door)
                .map_err(|e| format!("cannot serve the web page over HTTPS on `{web}`: {e}"))?;
            log::info!(target: "chatter", "web page on https://{served}/");
        }
    }
    Ok(())
}
