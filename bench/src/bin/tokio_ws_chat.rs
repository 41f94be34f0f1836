//! The tokio peer of the chatter's web side, for side-by-side benchmarks: the chat protocol
//! over WebSocket (one text message a line) on a current-thread runtime with
//! tokio-tungstenite, written as a good tokio programmer would: a reader task per client, a
//! `broadcast` channel for the room, one writer task per client that feeds every line
//! waiting for it and then flushes once. tungstenite's buffers are set small (its default
//! preallocates 128 KiB each).
//!
//! ```text
//! cargo run --release -p fibra-bench --bin tokio_ws_chat -- --addr 127.0.0.1:1991
//! ```

#[path = "../../../examples/shared/cli.rs"]
mod cli;
#[path = "../tokio_listen.rs"]
mod listen;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const PROMPT: &str = "What is your handle?";
const TAKEN: &str = "That handle is already taken.";
const MAX_LINE: usize = 8 * 1024;
const BACKLOG_LINES: usize = 32 * 1024;

type Line = Utf8Bytes;

struct Room {
    everyone: broadcast::Sender<Line>,
    members: RefCell<HashMap<String, mpsc::UnboundedSender<Line>>>,
}

/// What `--help` prints.
const HELP: &str = "\
tokio_ws_chat: the tokio peer of the chatter's WebSocket side, a benchmark tool
(fibra-bench): the chat protocol over WebSocket, one text message a line (tokio-tungstenite).

usage: tokio_ws_chat [--addr HOST:PORT]
  --addr HOST:PORT  where to listen (default 127.0.0.1:1991)";

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:1991".to_owned();
    let mut args = cli::Args::new("tokio_ws_chat", HELP);
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
        eprintln!(
            "tokio WebSocket chat server listening on {}",
            listener.local_addr()?
        );
        let room = Rc::new(Room {
            everyone: broadcast::channel(BACKLOG_LINES).0,
            members: RefCell::new(HashMap::new()),
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

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(MAX_LINE))
        .max_frame_size(Some(MAX_LINE))
}

fn valid_handle(handle: &str) -> bool {
    let chars = handle.chars().count();
    (1..=32).contains(&chars) && !handle.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn line(text: String) -> Line {
    Utf8Bytes::from(text)
}

async fn client(stream: TcpStream, room: Rc<Room>) -> Result<(), Box<dyn std::error::Error>> {
    stream.set_nodelay(true)?;
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config())).await?;
    let (mut sink, mut messages) = ws.split();
    let next_line = |got: Option<Result<Message, _>>| -> Option<String> {
        match got? {
            Ok(Message::Text(text)) => Some(text.as_str().replace(['\r', '\n'], " ")),
            Ok(Message::Binary(bytes)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => Some(String::new()),
            Ok(Message::Close(_)) | Err(_) => None,
        }
    };
    let handle = loop {
        sink.send(Message::text(PROMPT)).await?;
        let Some(answer) = next_line(messages.next().await) else {
            return Ok(());
        };
        let handle = answer.trim();
        if !valid_handle(handle) {
            sink.send(Message::text(
                "A handle is 1 to 32 characters, without spaces.",
            ))
            .await?;
            continue;
        }
        if room.members.borrow().contains_key(handle) {
            sink.send(Message::text(TAKEN)).await?;
            continue;
        }
        break handle.to_owned();
    };
    let everyone = room.everyone.subscribe();
    let (direct_tx, direct) = mpsc::unbounded_channel();
    room.members.borrow_mut().insert(handle.clone(), direct_tx);
    let _ = room
        .everyone
        .send(line(format!("{handle} has joined the chat.")));
    let mut writing = tokio::task::spawn_local(write_loop(sink, everyone, direct));
    loop {
        let text = tokio::select! {
            got = messages.next() => match next_line(got) {
                Some(text) => text,
                None => break,
            },
            _ = &mut writing => break,
        };
        if text.is_empty() {
            continue;
        }
        if text == "/quit" {
            break;
        } else if text == "/who" {
            let mut handles: Vec<String> = room.members.borrow().keys().cloned().collect();
            handles.sort_unstable();
            tell(
                &room,
                &handle,
                line(format!("Online: {}", handles.join(", "))),
            );
        } else if let Some(rest) = text.strip_prefix("/msg ") {
            match rest.trim_start().split_once(' ') {
                Some((to, words)) if !words.trim().is_empty() => {
                    if !tell(&room, to, line(format!("{handle} whispers: {words}"))) {
                        tell(&room, &handle, line(format!("No such handle: {to}")));
                    }
                }
                _ => {
                    tell(
                        &room,
                        &handle,
                        line("Usage: /msg <handle> <text>".to_owned()),
                    );
                }
            }
        } else if let Some(word) = text.strip_prefix('/') {
            let word = word.split_whitespace().next().unwrap_or("");
            tell(&room, &handle, line(format!("Unknown command: /{word}")));
        } else {
            let _ = room.everyone.send(line(format!("{handle} says: {text}")));
        }
    }
    room.members.borrow_mut().remove(&handle);
    writing.abort();
    let _ = room
        .everyone
        .send(line(format!("{handle} has left the chat.")));
    Ok(())
}

fn tell(room: &Room, to: &str, line: Line) -> bool {
    match room.members.borrow().get(to) {
        Some(member) => {
            let _ = member.send(line);
            true
        }
        None => false,
    }
}

/// Waits for a line, feeds every other line already waiting, then flushes once.
async fn write_loop<S>(
    mut sink: S,
    mut everyone: broadcast::Receiver<Line>,
    mut direct: mpsc::UnboundedReceiver<Line>,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    loop {
        let first = tokio::select! {
            got = everyone.recv() => match got {
                Ok(line) => line,
                Err(_) => return,
            },
            got = direct.recv() => match got {
                Some(line) => line,
                None => return,
            },
        };
        if sink.feed(Message::Text(first)).await.is_err() {
            return;
        }
        loop {
            match everyone.try_recv() {
                Ok(line) => {
                    if sink.feed(Message::Text(line)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(_) => return,
            }
        }
        while let Ok(line) = direct.try_recv() {
            if sink.feed(Message::Text(line)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
