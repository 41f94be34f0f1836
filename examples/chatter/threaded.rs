//! `--threads N`: one room served by N schedules on N threads (`Cores`), tied by the hub.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fibra::net::{Handed, Handoff, ListenOptions, NetError, NetPlugin};
use fibra::rt::Cores;
use fibra::signal::SignalExt;
use fibra::tasks::{RemoteSender, TasksExt, TasksPlugin};
use fibra::Schedule;

use super::flags::Flags;
use super::hub::{Event, Hub};
use super::server::Chatter;
use super::{signal, REPORT_EVERY};

/// Serves the chat on `threads` threads until Ctrl-C or SIGTERM, then stops them together:
/// no new connection, everyone told, connections closed gracefully.
pub(crate) fn run(flags: Flags) -> Result<(), Box<dyn std::error::Error>> {
    let Flags {
        addr,
        web_addr,
        config,
        threads,
        reuseport,
        pin,
        tls,
        redis,
    } = flags;
    let addr = addr.as_str();
    // Signals are caught before any other thread starts, so that none takes their default.
    let mut host = Schedule::new();
    let catches_signals = signal::catch_stop(&mut host)?;
    let hub = Hub::new(threads);
    let handed: Arc<Mutex<Vec<Option<RemoteSender<Handed>>>>> =
        Arc::new(Mutex::new((0..threads).map(|_| None).collect()));
    let served: Arc<Mutex<Served>> = Arc::default();
    // With reuseport, a port of 0 becomes a real one first, for every thread to share.
    let first = if reuseport {
        Some(bind_reuseport(addr)?)
    } else {
        None
    };
    let listen_on = first.map(|a| a.to_string());
    // With reuseport, the TLS port too is a listener per thread on one port.
    let tls_on = match &tls {
        Some(t) if reuseport => Some(
            bind_reuseport(&t.addr)
                .map_err(|e| format!("cannot serve the chat over TLS on `{}`: {e}", t.addr))?,
        ),
        _ => None,
    };
    let tls_handed: Arc<Mutex<Vec<Option<RemoteSender<Handed>>>>> =
        Arc::new(Mutex::new((0..threads).map(|_| None).collect()));
    let tls_out = Arc::clone(&tls_handed);
    let tls_addr = tls.as_ref().map(|t| t.addr.clone());
    // With `--redis` and no `--node`: the address, and the process id for a port of 0.
    let node_name = match addr.strip_suffix(":0") {
        Some(_) => format!("{}-{}", crate::fed::default_name(addr), std::process::id()),
        None => crate::fed::default_name(addr),
    };
    let (h, out, s) = (Arc::clone(&hub), Arc::clone(&handed), Arc::clone(&served));
    let cores = Cores::start(threads, pin, move |index, schedule| {
        schedule.add_plugin(TasksPlugin::new())?;
        schedule.add_plugin(NetPlugin::new()?)?;
        let (mut chatter, sender) = match &redis {
            // `--redis`: each thread is a node of the room in Redis.
            Some(redis) => Chatter::start_federated_thread(
                schedule,
                listen_on.as_deref(),
                config.clone(),
                redis,
                &node_name,
                Arc::clone(&h),
                index,
            )?,
            None => Chatter::start_threaded(
                schedule,
                listen_on.as_deref(),
                config.clone(),
                Arc::clone(&h),
                index,
            )?,
        };
        out.lock().unwrap()[index] = Some(sender);
        if log::log_enabled!(target: "chatter::stats", log::Level::Debug) {
            log_stats(schedule, &chatter, index)?;
        }
        match (&tls, tls_on) {
            (Some(t), Some(on)) => {
                chatter
                    .serve_tls(schedule, &on.to_string(), &t.door, true)
                    .map_err(|e| format!("cannot serve the chat over TLS on `{on}`: {e}"))?;
            }
            (Some(t), None) => {
                tls_out.lock().unwrap()[index] = Some(chatter.adopt_tls(schedule, &t.door)?);
            }
            (None, _) => {}
        }
        if index == 0 {
            s.lock().unwrap().telnet = Some(chatter.local_addr());
            if let Some(web) = &web_addr {
                let at = chatter
                    .serve_web(schedule, web)
                    .map_err(|e| format!("cannot serve the web page on `{web}`: {e}"))?;
                s.lock().unwrap().web = Some(at);
            }
            if let Some((t, web)) = tls.as_ref().and_then(|t| Some((t, t.web_addr.as_ref()?))) {
                let at = chatter
                    .serve_web_tls(schedule, web, &t.door)
                    .map_err(|e| format!("cannot serve the web page over HTTPS on `{web}`: {e}"))?;
                s.lock().unwrap().web_tls = Some(at);
            }
        }
        Ok(())
    })?;
    debug_assert!(
        hub.is_complete(),
        "every thread registered its relay when built"
    );
    let handoff = if reuseport {
        None
    } else {
        let targets = handed
            .lock()
            .unwrap()
            .iter_mut()
            .map(|s| s.take().unwrap())
            .collect();
        // The kernel's largest backlog, so that a burst of logins waits in its queue.
        let options = ListenOptions::new();
        let handoff = Handoff::bind(addr, &options, targets, hub.loads().clone());
        Some(handoff.map_err(|e| match e {
            NetError::Bind { source, .. } => format!("cannot serve the chat on `{addr}`: {source}"),
            e => format!("cannot serve the chat on `{addr}`: {e}"),
        })?)
    };
    // Without reuseport, the TLS port's connections are handed off by load too (one load
    // count for both ports).
    let tls_handoff = match &tls_addr {
        Some(addr) if !reuseport => {
            let targets = tls_handed
                .lock()
                .unwrap()
                .iter_mut()
                .map(|s| s.take().unwrap())
                .collect();
            let handoff = Handoff::bind(addr, &ListenOptions::new(), targets, hub.loads().clone());
            Some(handoff.map_err(|e| match e {
                NetError::Bind { source, .. } => {
                    format!("cannot serve the chat over TLS on `{addr}`: {source}")
                }
                e => format!("cannot serve the chat over TLS on `{addr}`: {e}"),
            })?)
        }
        _ => None,
    };
    let listening = match &handoff {
        Some(handoff) => handoff.local_addr(),
        None => served.lock().unwrap().telnet.ok_or("no listener")?,
    };
    let how = if reuseport {
        "a listener each"
    } else {
        "one acceptor"
    };
    log::info!(target: "chatter", "listening on {listening} (telnet or nc to chat; Ctrl-C stops), {threads} threads, {how}");
    if let Some(web) = served.lock().unwrap().web {
        log::info!(target: "chatter", "web page on http://{web}/");
    }
    if let Some(on) = tls_on.or(tls_handoff.as_ref().map(Handoff::local_addr)) {
        log::info!(target: "chatter", "TLS on {on} (openssl s_client -connect {on}), {how}");
    }
    if let Some(web) = served.lock().unwrap().web_tls {
        log::info!(target: "chatter", "web page on https://{web}/");
    }
    if !catches_signals {
        return Ok(cores.join()?);
    }
    let signal = host.block_on(|h| {
        let signal = h.signals(&signal::STOP)?;
        // A second Ctrl-C ends the process at once (a stop that hangs on a stuck thread).
        for signal in signal::STOP {
            let _ = h.stop_catching(signal);
        }
        Ok::<_, fibra::signal::SignalError>(signal)
    })??;
    log::info!(target: "chatter", "{signal}: stopping (once more to force)");
    for handoff in [handoff, tls_handoff].into_iter().flatten() {
        handoff.stop();
    }
    hub.begin_shutdown();
    // Every thread hears the stop, though its relay channel is full of the others' lines
    // at that moment: offered again until taken (or the wait below is over).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut telling: Vec<_> = hub.peers_of(usize::MAX).into_iter().flatten().collect();
    while hub.stopped() < threads && Instant::now() < deadline {
        telling.retain(|relay| {
            matches!(
                relay.try_send(Event::Shutdown),
                Err(fibra::tasks::TrySendError::Full(_))
            )
        });
        std::thread::sleep(Duration::from_millis(5));
    }
    // As on one thread: the goodbyes are written within 2 s (a member that does not read
    // gets no more of it).
    cores.stop_within(Duration::from_secs(2))?;
    let (deliveries, cut_off) = hub.totals();
    log::info!(target: "chatter", "stopped: {deliveries} lines delivered, {cut_off} members cut off for not reading");
    Ok(())
}

/// Where thread 0 serves: the chat (with reuseport), the web page, the page over HTTPS.
#[derive(Debug, Default)]
struct Served {
    telnet: Option<SocketAddr>,
    web: Option<SocketAddr>,
    web_tls: Option<SocketAddr>,
}

/// Logs thread `index`'s counters every [`REPORT_EVERY`], from a tasklet of its own.
fn log_stats(
    schedule: &mut Schedule,
    chatter: &Chatter,
    index: usize,
) -> Result<(), fibra::rt::Error> {
    let stats = chatter.counters();
    schedule.spawn_named("chatter stats", move |h| loop {
        h.sleep(REPORT_EVERY);
        let room = stats();
        log::debug!(target: "chatter::stats",
            "thread {index}: members {}, lines delivered {}, cut off {}, events crossed {}, relay rounds {}",
            room.members, room.deliveries, room.cut_off, room.crossed, room.relay_rounds);
    })?;
    Ok(())
}

/// Binds `addr` once with `SO_REUSEPORT` to learn its port, and gives the socket up: the
/// threads' listeners then share that port.
fn bind_reuseport(addr: &str) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    use std::net::ToSocketAddrs;
    let want = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot serve the chat on `{addr}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{addr}` names no address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(want),
        socket2::Type::STREAM,
        None,
    )?;
    // As the threads' listeners (fibra-net sets both): a port whose earlier connections
    // wait in TIME_WAIT can be bound again.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket
        .bind(&want.into())
        .map_err(|e| format!("cannot serve the chat on `{addr}`: {e}"))?;
    Ok(socket
        .local_addr()?
        .as_socket()
        .ok_or("not an internet address")?)
}
