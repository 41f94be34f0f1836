//! The tokio peer of `abchat`, for side-by-side benchmarks: ABChat's protocol on a
//! current-thread runtime, written as a good tokio programmer would: a reader task per
//! client, a `broadcast` channel for the room, and one batching writer task per client (it
//! takes every frame waiting for it, then writes them with one `write_all`).
//!
//! ```text
//! cargo run --release -p fibra-bench --bin tokio_abchat -- --addr 127.0.0.1:8889
//! ```
//!
//! Protocol as abchat's: 4-byte big-endian length frames of UTF-8; the first is the name
//! (`ok <name>` or `error <reason>`); a name online again replaces the old connection;
//! `@<name> <text>` is private; anything else goes to everyone, the sender included. A frame
//! over 64 KiB ends the connection; a client more than 32,768 frames behind is cut off (the
//! broadcast channel's capacity). No rate limit (abchat's default).

#[path = "../../../examples/shared/abchat_name.rs"]
mod abchat_name;
#[path = "../../../examples/shared/cli.rs"]
mod cli;
#[path = "../tokio_listen.rs"]
mod listen;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};

const MAX_FRAME: usize = 64 * 1024;
const BACKLOG_FRAMES: usize = 32 * 1024;

/// A frame, its length prefix included.
type Frame = Arc<[u8]>;

struct Member {
    id: u64,
    direct: mpsc::UnboundedSender<Frame>,
    /// Ends the member's connection (when its name is taken over).
    kick: Option<oneshot::Sender<()>>,
}

struct Room {
    everyone: broadcast::Sender<Frame>,
    members: RefCell<HashMap<String, Member>>,
    next_id: Cell<u64>,
}

/// What `--help` prints.
const HELP: &str = "\
tokio_abchat: the tokio peer of fibra's `abchat`, a benchmark tool (fibra-bench):
ABChat's protocol (4-byte length frames, the name first, @name for private lines).

usage: tokio_abchat [--addr HOST:PORT]
  --addr HOST:PORT  where to listen (default 127.0.0.1:8889)";

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:8889".to_owned();
    let mut args = cli::Args::new("tokio_abchat", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            _ => args.unknown(f),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = listen::bind(&addr).await?;
        eprintln!("tokio abchat listening on {}", listener.local_addr()?);
        let room = Rc::new(Room {
            everyone: broadcast::channel(BACKLOG_FRAMES).0,
            members: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
        });
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let room = room.clone();
            tokio::task::spawn_local(async move {
                let _ = client(stream, room).await;
            });
        }
    })
}

fn frame(payload: &[u8]) -> Frame {
    let mut bytes = Vec::with_capacity(4 + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes.into()
}

/// One frame into `buf`; `None` at the end, on an error or over the limit.
async fn read_frame<R: AsyncReadExt + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> Option<()> {
    let len = reader.read_u32().await.ok()? as usize;
    if len > MAX_FRAME {
        return None;
    }
    buf.resize(len, 0);
    reader.read_exact(buf).await.ok()?;
    Some(())
}

async fn client(stream: TcpStream, room: Rc<Room>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(4096, reader);
    let mut buf = Vec::with_capacity(256);
    if read_frame(&mut reader, &mut buf).await.is_none() {
        return Ok(());
    }
    let name = match std::str::from_utf8(&buf) {
        Err(_) => Err("a name is UTF-8"),
        Ok(name) => abchat_name::bad_name(name).map_or(Ok(name.to_owned()), Err),
    };
    let name = match name {
        Ok(name) => name,
        Err(reason) => {
            writer
                .write_all(&frame(format!("error {reason}").as_bytes()))
                .await?;
            return Ok(());
        }
    };
    // Subscribe before answering, so nothing said after `ok` is missed.
    let everyone = room.everyone.subscribe();
    let (direct_tx, direct) = mpsc::unbounded_channel();
    let (kick_tx, mut kicked) = oneshot::channel();
    let id = room.next_id.get();
    room.next_id.set(id + 1);
    let _ = direct_tx.send(frame(format!("ok {name}").as_bytes()));
    let old = room.members.borrow_mut().insert(
        name.clone(),
        Member {
            id,
            direct: direct_tx,
            kick: Some(kick_tx),
        },
    );
    if let Some(mut old) = old {
        let _ = old.direct.send(frame(b"error replaced"));
        if let Some(kick) = old.kick.take() {
            let _ = kick.send(());
        }
    }
    let mut writing = tokio::task::spawn_local(write_loop(writer, everyone, direct));
    loop {
        tokio::select! {
            got = read_frame(&mut reader, &mut buf) => {
                if got.is_none() {
                    break;
                }
            }
            _ = &mut kicked => {
                // Replaced: the writer sends what is queued ("error replaced"), then ends.
                let _ = (&mut writing).await;
                return Ok(());
            }
            _ = &mut writing => break, // cut off, or the connection failed
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            tell(&room, &name, frame(b"error a frame is UTF-8"));
            continue;
        };
        match text.strip_prefix('@') {
            Some(private) => {
                let (to, words) = private.split_once(' ').unwrap_or((private, ""));
                let whisper = frame(format!("{name} (private): {words}").as_bytes());
                if !tell(&room, to, whisper) {
                    tell(
                        &room,
                        &name,
                        frame(format!("error no such user {to}").as_bytes()),
                    );
                }
            }
            None => {
                let _ = room
                    .everyone
                    .send(frame(format!("{name}: {text}").as_bytes()));
            }
        }
    }
    {
        let mut members = room.members.borrow_mut();
        if members.get(&name).is_some_and(|m| m.id == id) {
            members.remove(&name);
        }
    }
    writing.abort();
    Ok(())
}

/// Queues a frame for one member; false if there is no such member.
fn tell(room: &Room, to: &str, frame: Frame) -> bool {
    match room.members.borrow().get(to) {
        Some(member) => {
            let _ = member.direct.send(frame);
            true
        }
        None => false,
    }
}

/// Waits for a frame, takes every other frame already waiting, and writes them in one go.
/// Ends when the member's direct queue closes (it was replaced or left) after writing what
/// was in it.
async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut everyone: broadcast::Receiver<Frame>,
    mut direct: mpsc::UnboundedReceiver<Frame>,
) {
    let mut out = Vec::with_capacity(4096);
    loop {
        let first = tokio::select! {
            // Direct frames first: `ok` before anything said to the room.
            biased;
            got = direct.recv() => match got {
                Some(frame) => frame,
                None => return,
            },
            got = everyone.recv() => match got {
                Ok(frame) => frame,
                Err(_) => return, // lagged past the backlog: cut off
            },
        };
        out.clear();
        out.extend_from_slice(&first);
        while let Ok(frame) = direct.try_recv() {
            out.extend_from_slice(&frame);
        }
        loop {
            match everyone.try_recv() {
                Ok(frame) => out.extend_from_slice(&frame),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(_) => return,
            }
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
        if out.capacity() > 64 * 1024 {
            out = Vec::with_capacity(4096);
        }
    }
}
