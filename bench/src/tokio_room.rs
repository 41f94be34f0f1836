//! The room of the tokio chat peers (`tokio_chat`, `tokio_tls_chat`): the chatter's
//! protocol, written as a good tokio programmer would: a reader task per client, a
//! `broadcast` channel for the room, and one batching writer task per client (it takes every
//! line waiting for it, then writes them with one `write_all`). The room is behind an `Arc`
//! and a `Mutex`; the broadcast path does not take the lock. A client is any byte stream
//! split into a reader and a writer: a TCP stream's halves, or a TLS stream's.
//!
//! Protocol as the chatter's: the prompt, handles of 1–32 characters without whitespace or
//! control characters, `That handle is already taken.`, join/leave/says lines to everyone,
//! `/who`, `/msg <handle> <text>`, `/join <room>` (a broadcast channel per room; everyone
//! enters the lobby), `/quit`. A line over 8 KiB ends the connection; a client
//! more than 32,768 lines behind is cut off (the broadcast channel's capacity).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc};

const PROMPT: &[u8] = b"What is your handle?\n";
const TAKEN: &[u8] = b"That handle is already taken.\n";
const MAX_LINE: u64 = 8 * 1024;
const BACKLOG_LINES: usize = 32 * 1024;

type Line = Arc<[u8]>;

/// The room everyone enters.
const LOBBY: &str = "lobby";

/// Everyone in the chat: the rooms, each a broadcast channel, and the members.
pub(crate) struct Room {
    rooms: Mutex<HashMap<String, broadcast::Sender<Line>>>,
    /// Each member's queue for what is meant for it alone, and the room it is in.
    members: Mutex<HashMap<String, Member>>,
}

struct Member {
    direct: mpsc::UnboundedSender<Out>,
    room: String,
}

/// What a member's writer is sent apart from its room's lines.
enum Out {
    /// A line for it alone.
    Line(Line),
    /// From now on, the lines of another room (`/join`).
    Switch(broadcast::Receiver<Line>),
}

impl Room {
    /// An empty room.
    pub(crate) fn new() -> Arc<Room> {
        let lobby = broadcast::channel(BACKLOG_LINES).0;
        Arc::new(Room {
            rooms: Mutex::new(HashMap::from([(LOBBY.to_owned(), lobby)])),
            members: Mutex::new(HashMap::new()),
        })
    }

    /// Room `name`'s channel, made if new.
    fn channel(&self, name: &str) -> broadcast::Sender<Line> {
        let mut rooms = self.rooms.lock().unwrap();
        rooms
            .entry(name.to_owned())
            .or_insert_with(|| broadcast::channel(BACKLOG_LINES).0)
            .clone()
    }
}

/// What room `name` hears when `handle` joins (`joined`) or leaves it, as the chatter says it.
fn moved_line(name: &str, handle: &str, joined: bool) -> Line {
    let verb = if joined { "joined" } else { "left" };
    if name == LOBBY {
        line(format!("{handle} has {verb} the chat."))
    } else {
        line(format!("{handle} has {verb} room {name}."))
    }
}

fn line(text: String) -> Line {
    let mut bytes = text.into_bytes();
    bytes.push(b'\n');
    bytes.into()
}

/// One line, at most `MAX_LINE` bytes, without its line end; `None` at the end or on error.
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> Option<()> {
    buf.clear();
    let n = reader
        .take(MAX_LINE + 1)
        .read_until(b'\n', buf)
        .await
        .ok()?;
    if n == 0 || buf.last() != Some(&b'\n') {
        return None; // the end, or a line too long
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Some(())
}

fn valid_handle(handle: &str) -> bool {
    let chars = handle.chars().count();
    (1..=32).contains(&chars) && !handle.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Serves one client, from the prompt to its leave.
pub(crate) async fn client<R, W>(reader: R, mut writer: W, room: Arc<Room>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut reader = BufReader::with_capacity(4096, reader);
    let mut buf = Vec::with_capacity(256);

    let handle = loop {
        writer.write_all(PROMPT).await?;
        if read_line(&mut reader, &mut buf).await.is_none() {
            return Ok(());
        }
        let answer = String::from_utf8_lossy(&buf);
        let handle = answer.trim();
        if !valid_handle(handle) {
            writer
                .write_all(b"A handle is 1 to 32 characters, without spaces.\n")
                .await?;
            continue;
        }
        if room.members.lock().unwrap().contains_key(handle) {
            writer.write_all(TAKEN).await?;
            continue;
        }
        break handle.to_owned();
    };
    // Subscribe before the join goes out, so the newcomer hears its own join.
    let mut here = room.channel(LOBBY);
    let everyone = here.subscribe();
    let (direct_tx, direct) = mpsc::unbounded_channel();
    let member = Member {
        direct: direct_tx,
        room: LOBBY.to_owned(),
    };
    room.members.lock().unwrap().insert(handle.clone(), member);
    let _ = here.send(moved_line(LOBBY, &handle, true));
    let mut writing = tokio::spawn(write_loop(writer, everyone, direct));

    loop {
        tokio::select! {
            got = read_line(&mut reader, &mut buf) => {
                if got.is_none() {
                    break;
                }
            }
            _ = &mut writing => break, // cut off, or the connection failed
        }
        let text = String::from_utf8_lossy(&buf);
        if text == "/quit" {
            break;
        } else if text == "/who" {
            let members = room.members.lock().unwrap();
            let mine = members.get(&handle).map_or(LOBBY, |m| m.room.as_str());
            let mut handles: Vec<&str> = members
                .iter()
                .filter(|(_, m)| m.room == mine)
                .map(|(h, _)| h.as_str())
                .collect();
            handles.sort_unstable();
            let who = if mine == LOBBY {
                format!("Online: {}", handles.join(", "))
            } else {
                format!("Online in {mine}: {}", handles.join(", "))
            };
            if let Some(me) = members.get(&handle) {
                let _ = me.direct.send(Out::Line(line(who)));
            }
        } else if let Some(to) = text.strip_prefix("/join ") {
            let to = to.trim();
            let from = room
                .members
                .lock()
                .unwrap()
                .get(&handle)
                .map(|m| m.room.clone());
            match from {
                Some(from) if valid_handle(to) && from != to => {
                    let _ = here.send(moved_line(&from, &handle, false));
                    here = room.channel(to);
                    // The writer hears the new room from the switch on, its own join first.
                    let switch = Out::Switch(here.subscribe());
                    if let Some(me) = room.members.lock().unwrap().get_mut(&handle) {
                        me.room = to.to_owned();
                        let _ = me.direct.send(switch);
                    }
                    let _ = here.send(moved_line(to, &handle, true));
                }
                _ => {
                    tell(&room, &handle, line("Usage: /join <room>".to_owned()));
                }
            }
        } else if let Some(rest) = text.strip_prefix("/msg ") {
            match rest.trim_start().split_once(' ') {
                Some((to, words)) if !words.trim().is_empty() => {
                    let whisper = line(format!("{handle} whispers: {words}"));
                    if !tell(&room, to, whisper) {
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
            let _ = here.send(line(format!("{handle} says: {text}")));
        }
    }
    let left = room.members.lock().unwrap().remove(&handle);
    writing.abort();
    let name = left.map_or_else(|| LOBBY.to_owned(), |m| m.room);
    let _ = here.send(moved_line(&name, &handle, false));
    Ok(())
}

/// Queues a line for one member; false if there is no such member.
fn tell(room: &Room, to: &str, line: Line) -> bool {
    match room.members.lock().unwrap().get(to) {
        Some(member) => {
            let _ = member.direct.send(Out::Line(line));
            true
        }
        None => false,
    }
}

/// Waits for a line, takes every other line already waiting, and writes them in one go.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut everyone: broadcast::Receiver<Line>,
    mut direct: mpsc::UnboundedReceiver<Out>,
) {
    let mut out = Vec::with_capacity(4096);
    loop {
        let first = tokio::select! {
            got = everyone.recv() => match got {
                Ok(line) => line,
                Err(_) => return, // lagged past the backlog: cut off
            },
            got = direct.recv() => match got {
                Some(Out::Line(line)) => line,
                Some(Out::Switch(room)) => {
                    everyone = room;
                    continue;
                }
                None => return,
            },
        };
        out.clear();
        out.extend_from_slice(&first);
        loop {
            match everyone.try_recv() {
                Ok(line) => out.extend_from_slice(&line),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(_) => return,
            }
        }
        while let Ok(got) = direct.try_recv() {
            match got {
                Out::Line(line) => out.extend_from_slice(&line),
                Out::Switch(room) => everyone = room,
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
