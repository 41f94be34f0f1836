//! The web side: `GET /` is the chat page (HTML, CSS and JavaScript in one file, in the
//! binary), `/ws` its WebSocket. Browsers are members of the same room, under the same rules:
//! the same session code reads their lines from the WebSocket, and the room fans out to them
//! in groups of their own framing (each line one text frame).

use std::net::SocketAddr;
use std::rc::Rc;

use fibra::http::{text_frames, Limits, Response, Router};
use fibra::net::Listener;
use fibra::Schedule;

use super::server::{listen, Chatter};
use super::session::{session, Peer};

/// The web page: HTML, CSS and JavaScript in one file, in the binary.
const PAGE: &str = include_str!("page.html");

impl Chatter {
    /// Serves the web page on `addr`: `GET /` is the page, `/ws` its WebSocket, whose members
    /// are in the same room, under the same rules. Returns the address.
    pub(crate) fn serve_web(
        &mut self,
        schedule: &mut Schedule,
        addr: &str,
    ) -> Result<SocketAddr, Box<dyn std::error::Error>> {
        let listener = listen(schedule, addr, self.config.conn_options(), false)?;
        let web_addr = listener.local_addr();
        self.serve_page(schedule, listener)?;
        Ok(web_addr)
    }

    /// Serves the web page to the connections `listener` accepts (plain, or another kind of
    /// listener), from a tasklet that the room's shutdown ends.
    pub(crate) fn serve_page(
        &mut self,
        schedule: &mut Schedule,
        listener: Listener,
    ) -> Result<(), fibra::rt::Error> {
        let config = self.config.clone();
        let limits = Limits {
            max_frame: config.max_line.max(125),
            max_message: config.max_line,
            ..Limits::default()
        };
        let chat = Rc::clone(&self.chat);
        let router = Router::new()
            .get("/", |_h, _req| Response::html(PAGE))
            .websocket("/ws", move |h, _req, ws| {
                // Across threads, a browser is this thread's load too.
                let load = chat.reach.charge();
                let conn = ws.conn().clone();
                // Lines sent to it (the prompt, /who, a whisper) become text messages.
                conn.set_framing(text_frames());
                let by = config.login_timeout.map(|t| fibra::rt::time::now() + t);
                if config.stackless_members {
                    super::stackless::session(h, &chat, &conn, Peer::Web(ws), by, load);
                    return;
                }
                let _load = load;
                session(h, &chat, &conn, Peer::Web(ws), by);
            })
            .with_limits(limits);
        // Pages from the origins named (`--web-origin`: a reverse proxy's), or the server's
        // own reached by `localhost` or an address; else fibra-http's default check.
        let router = if config.web_origins.is_empty() {
            router
        } else {
            let origins = config.web_origins.clone();
            router.check_origin(move |req| {
                req.header("origin").is_none_or(|o| {
                    origins.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(o))
                        || fibra::http::same_origin(req) && fibra::http::host_is_local(req)
                })
            })
        };
        let router = Rc::new(router);
        let server = schedule.spawn_named("chatter web", move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })?;
        self.chat.room.borrow_mut().tasklets.push(server);
        Ok(())
    }
}
