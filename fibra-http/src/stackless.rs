//! A WebSocket served without a tasklet while it is idle: [`WsHandler`]'s callbacks run on a
//! worker tasklet of the network plugin's when a message arrives, which goes on to other
//! connections when they return (see fibra-net's `OnInput`). A handler that parks keeps the tasklet until it
//! returns; the connection's later messages wait, in order.

use fibra_net::ops::{InputJob, OnInput};
use fibra_net::NetExt;
use fibra_rt::Handle;

use crate::{CloseCode, HttpError, Message, WebSocket};

/// The name of the tasklets that run stackless WebSockets.
const WORKER: &str = "websocket";

/// A WebSocket's behaviour as callbacks, for [`WebSocket::serve_stackless`].
pub trait WsHandler: 'static {
    /// A message arrived. `ws` sends, and closes ([`WebSocket::close`] parks for the peer's
    /// answer, keeping the tasklet meanwhile); the connection ends when the callback returns
    /// with `ws` closed.
    fn on_message(&mut self, h: &Handle, ws: &mut WebSocket, message: Message);

    /// Nothing arrived within the connection's read timeout (`Conn::set_read_timeout`: a
    /// login deadline, a heartbeat). The default closes with 1008 (policy); a handler may
    /// say why first. The WebSocket ends when this returns.
    fn on_read_timeout(&mut self, h: &Handle, ws: &mut WebSocket) {
        let _ = ws.close(h, CloseCode::POLICY, "timed out");
    }

    /// The WebSocket ended, with the code of its close (1006 when the connection was lost
    /// without one, or the schedule went away): called exactly once, from a destructor, so
    /// it gets no handle and must not park.
    fn on_close(&mut self, code: CloseCode) {
        let _ = code;
    }
}

/// A stackless WebSocket's state, between its tasklets.
struct Idle<H: WsHandler> {
    ws: WebSocket,
    handler: H,
}

impl<H: WsHandler> Drop for Idle<H> {
    fn drop(&mut self) {
        // Dropped unclosed (a kill, or the schedule going away): the connection goes too.
        let code = self.ws.closed_code().unwrap_or(CloseCode::ABNORMAL);
        if self.ws.closed_code().is_none() {
            self.ws.conn().close();
        }
        let handler = &mut self.handler;
        let told =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.on_close(code)));
        if told.is_err() {
            log::error!(target: "fibra_http::websocket", "on_close panicked");
        }
    }
}

impl<H: WsHandler> InputJob for Idle<H> {
    fn run(self: Box<Self>, h: &Handle) {
        work(h, self);
    }
}

impl WebSocket {
    /// Serves this WebSocket with `handler`, without a tasklet while it is idle: the route's
    /// handler returns at once and its tasklet (and stack) is given back; each message then
    /// runs `handler.on_message` on one of the network plugin's worker tasklets. A server keeps
    /// a million idle WebSockets this way without a stack each. Messages already received
    /// are served first. This `WebSocket` is left closed; the connection is the handler's.
    ///
    /// # Errors
    ///
    /// [`HttpError::Closed`] when it is closed already (the handler is dropped, told its
    /// code).
    pub fn serve_stackless<H: WsHandler>(
        &mut self,
        h: &Handle,
        handler: H,
    ) -> Result<(), HttpError> {
        if let Some(code) = self.closed_code() {
            drop(Idle {
                ws: self.detach(),
                handler,
            });
            return Err(HttpError::Closed(code));
        }
        let idle = Box::new(Idle {
            ws: self.detach(),
            handler,
        });
        work(h, idle);
        Ok(())
    }
}

/// One turn: the handler for every message there, then the watch armed again (or the end).
fn work<H: WsHandler>(h: &Handle, mut idle: Box<Idle<H>>) {
    loop {
        let Idle { ws, handler } = &mut *idle;
        if ws.is_closed() {
            return;
        }
        match ws.try_receive(h) {
            Ok(Some(message)) => {
                if h.catch_panic(|| handler.on_message(h, ws, message))
                    .is_err()
                {
                    log::error!(target: "fibra_http", "a stackless WebSocket handler panicked");
                    let _ = ws.close(h, CloseCode::INTERNAL, "");
                    return;
                }
            }
            Ok(None) => break,
            Err(HttpError::TimedOut) => {
                if h.catch_panic(|| handler.on_read_timeout(h, ws)).is_err() {
                    log::error!(target: "fibra_http", "a stackless WebSocket handler panicked");
                }
                if !ws.is_closed() {
                    let _ = ws.close(h, CloseCode::POLICY, "timed out");
                }
                return;
            }
            Err(_) => return,
        }
    }
    idle.ws.release_idle();
    let conn = idle.ws.conn().clone();
    // The same box, armed again: no allocation per message.
    if let Err(e) = h.on_input(OnInput::new(&conn, WORKER, idle)) {
        // Its connection is gone: the state was dropped with the job.
        log::debug!(target: "fibra_http::websocket", "a WebSocket could not wait for input: {e}");
    }
}
