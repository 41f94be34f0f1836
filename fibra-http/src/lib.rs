//! HTTP/1.1 and WebSocket (RFC 6455) servers for fibra's tasklets.
//!
//! A [`Router`] maps methods and paths to handlers; [`serve`] accepts on a listener and
//! runs one tasklet per connection: requests in order (keep-alive, pipelining), bodies by
//! `Content-Length` or chunked, and every bound of [`Limits`] answered with its status (414,
//! 431, 413, 408, 400). Requests are held to RFC 9112's framing rules (one `Host`; a
//! `Transfer-Encoding` ending in `chunked`, never beside a `Content-Length`), and every
//! response carries a `Date`. A WebSocket route upgrades the connection and hands its handler a
//! [`WebSocket`]: [`receive`](WebSocket::receive) parks like a line's receive, other tasklets send
//! through a [`WsSender`] without waiting.
//!
//! ```no_run
//! use std::rc::Rc;
//! use fibra_http::{Message, Response, Router};
//! use fibra_net::{NetExt, NetPlugin};
//! use fibra_rt::Schedule;
//!
//! let mut schedule = Schedule::new();
//! schedule.add_plugin(fibra_tasks::TasksPlugin::new())?;
//! schedule.add_plugin(NetPlugin::new()?)?;
//! let router = Rc::new(
//!     Router::new()
//!         .get("/", |_h, _req| Response::text("hello, world!"))
//!         .websocket("/ws", |h, _req, ws| {
//!             // Every message back as it came, text or binary, until the peer closes.
//!             while let Ok(message) = ws.receive(h) {
//!                 let _ = match message {
//!                     Message::Text(text) => ws.send_text(&text),
//!                     Message::Binary(bytes) => ws.send_binary(&bytes),
//!                 };
//!             }
//!         }),
//! );
//! schedule.spawn(move |h| {
//!     let listener = h.listen("127.0.0.1:8080").unwrap();
//!     let _ = fibra_http::serve(h, &listener, router);
//! })?;
//! schedule.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! HTTPS and WSS (the `tls` feature, on by default): [`listen_tls`] listens with a rustls
//! `ServerConfig` and ALPN `http/1.1`, and [`serve`] serves it like a plain listener: TLS is
//! fibra-net's, inside the connection, so requests, bodies and WebSockets work the same.
//!
//! It lives in a crate of its own so that `fibra-net` stays free of HTTP and of `httparse`;
//! the façade re-exports it as `fibra::http`. Logging targets: `fibra_http`,
//! `fibra_http::websocket`.
#![warn(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod accept_key;
mod assembler;
mod chunked;
mod date;
mod error;
mod frame;
#[doc(hidden)]
pub mod fuzz;
mod head;
mod limits;
mod reader;
mod request;
mod response;
mod router;
mod server;
mod stackless;
mod websocket;

pub use error::HttpError;
pub use limits::Limits;
pub use request::Request;
pub use response::Response;
pub use router::{host_is_local, same_origin, Router};
#[cfg(feature = "tls")]
pub use server::{https_config, listen_tls};
pub use server::{serve, serve_connection};
pub use stackless::WsHandler;
pub use websocket::{CloseCode, Message, WebSocket, WsSender};

/// A [`Framing`](fibra_net::Framing) whose frames are WebSocket text messages: give it to a
/// [`Group`](fibra_net::Group) of WebSocket members (`GroupOptions::with_framing`) and a line
/// sent to the group is encoded once, as one text frame shared by every member; set it on an
/// upgraded connection ([`Conn::set_framing`](fibra_net::Conn::set_framing)) and
/// `try_send_frame`/`send_line` send text messages. Reading stays with
/// [`WebSocket::receive`].
pub fn text_frames() -> fibra_net::Framing {
    fibra_net::Framing::custom(|| frame::TextFrameCodec)
}
