//! `Router`: routes by method and path to a handler that answers a `Request` with a
//! `Response`, or to a WebSocket handler after the upgrade.

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

use fibra_rt::Handle;

use crate::{Limits, Request, Response, WebSocket};

type HttpHandler = Rc<dyn Fn(&Handle, &Request) -> Response>;
type WsHandler = Rc<dyn Fn(&Handle, &Request, &mut WebSocket)>;
type OriginCheck = Rc<dyn Fn(&Request) -> bool>;

#[derive(Clone)]
pub(crate) enum Route {
    Http(HttpHandler),
    WebSocket(WsHandler),
}

/// What the server answers, by method and path. A route's path matches the request's path
/// exactly (the query is not part of it; no parameters, wildcards or prefixes: a handler that
/// serves a tree of paths is routed by each, or reads [`Request::path`] itself). A path with
/// no route gets 404; a path whose routes take other methods gets 405 with `Allow`; `HEAD` is
/// answered by a `GET` route, without the body.
///
/// ```
/// use fibra_http::{Response, Router};
///
/// let router = Router::new()
///     .get("/", |_h, _req| Response::text("hello, world!"))
///     .post("/echo", |_h, req| Response::new(200).body(req.body().to_vec()))
///     .websocket("/ws", |h, _req, ws| {
///         while let Ok(message) = ws.receive(h) {
///             let _ = match message {
///                 fibra_http::Message::Text(text) => ws.send_text(&text),
///                 fibra_http::Message::Binary(bytes) => ws.send_binary(&bytes),
///             };
///         }
///     });
/// # let _ = router;
/// ```
#[derive(Clone, Default)]
pub struct Router {
    pub(crate) routes: Vec<(String, String, Route)>,
    pub(crate) limits: Limits,
    /// Which WebSocket handshakes may come from where ([`Router::check_origin`]); `None`:
    /// the same origin only ([`same_origin`]).
    pub(crate) origin: Option<OriginCheck>,
}

impl Router {
    /// No routes, default [`Limits`].
    pub fn new() -> Router {
        Router::default()
    }

    /// Answers `method` on `path` with `handler`. It runs on the connection's tasklet and may
    /// park (a back-end request): the connection's next request waits for it.
    pub fn route<F>(mut self, method: &str, path: &str, handler: F) -> Router
    where
        F: Fn(&Handle, &Request) -> Response + 'static,
    {
        let route = Route::Http(Rc::new(handler));
        self.routes
            .push((method.to_ascii_uppercase(), path.to_owned(), route));
        self
    }

    /// [`route`](Self::route) for `GET` (and `HEAD`).
    pub fn get<F>(self, path: &str, handler: F) -> Router
    where
        F: Fn(&Handle, &Request) -> Response + 'static,
    {
        self.route("GET", path, handler)
    }

    /// [`route`](Self::route) for `POST`.
    pub fn post<F>(self, path: &str, handler: F) -> Router
    where
        F: Fn(&Handle, &Request) -> Response + 'static,
    {
        self.route("POST", path, handler)
    }

    /// Upgrades `GET path` to a WebSocket and runs `handler` on it, on the connection's
    /// tasklet; when it returns, the WebSocket is closed (1000) if it is not already.
    pub fn websocket<F>(mut self, path: &str, handler: F) -> Router
    where
        F: Fn(&Handle, &Request, &mut WebSocket) + 'static,
    {
        let route = Route::WebSocket(Rc::new(handler));
        self.routes.push(("GET".to_owned(), path.to_owned(), route));
        self
    }

    /// Decides which WebSocket handshakes are taken, by their request: a refused one gets
    /// 403 and no upgrade. The default, [`same_origin`], takes a handshake without an
    /// `Origin` (not a browser's) or with the `Origin` of the page's own server (its `Host`):
    /// without it, any web page open in a user's browser could open a WebSocket to a server
    /// that user reaches (a chat on localhost, one behind the user's firewall) and speak as
    /// them (cross-site WebSocket hijacking). A server on a loopback address also wants its
    /// browsers to name it by `localhost` or an address: a page whose own name an attacker
    /// rebound to 127.0.0.1 (DNS rebinding) would match itself. Pages served from elsewhere,
    /// or through a reverse proxy on the same machine (`Host: chat.example.com` to a server
    /// on 127.0.0.1), need a check that names their origins (and then that check alone
    /// decides).
    ///
    /// ```
    /// use fibra_http::Router;
    ///
    /// let router = Router::new().check_origin(|req| {
    ///     req.header("origin").is_none_or(|o| o == b"https://chat.example.com")
    /// });
    /// # let _ = router;
    /// ```
    pub fn check_origin<F>(mut self, check: F) -> Router
    where
        F: Fn(&Request) -> bool + 'static,
    {
        self.origin = Some(Rc::new(check));
        self
    }

    /// Whether the WebSocket handshake `request`, which came to `local`, may be taken. By
    /// default: [`same_origin`], and a browser's handshake to a server on a loopback address
    /// must name it by `localhost` or an address (`127.0.0.1`, `[::1]`): a page whose own
    /// name was rebound to 127.0.0.1 (DNS rebinding) sends an `Origin` and a `Host` that
    /// match, both its own. (A page served through a reverse proxy on the same machine
    /// looks the same: such a server names its origins with [`check_origin`](Self::check_origin).)
    pub(crate) fn origin_allowed(&self, request: &Request, local: Option<SocketAddr>) -> bool {
        match &self.origin {
            Some(check) => check(request),
            None => {
                same_origin(request)
                    && (request.header("origin").is_none()
                        || !local.is_some_and(|a| a.ip().is_loopback())
                        || host_is_local(request))
            }
        }
    }

    /// Sets the [`Limits`] of every connection.
    pub fn with_limits(mut self, limits: Limits) -> Router {
        self.limits = limits;
        self
    }

    /// The route for `method` and `path`, or the status to answer (404, or 405 with the
    /// methods that path takes).
    pub(crate) fn find(&self, method: &str, path: &str) -> Result<&Route, (u16, String)> {
        let method = if method == "HEAD" { "GET" } else { method };
        let mut allowed = Vec::new();
        for (m, p, route) in &self.routes {
            if p == path {
                if m == method {
                    return Ok(route);
                }
                allowed.push(m.as_str());
            }
        }
        if allowed.is_empty() {
            Err((404, String::new()))
        } else {
            Err((405, allowed.join(", ")))
        }
    }
}

/// Whether the request's `Host` is a loopback name (`localhost`, or a name under it) or an
/// IP address, with or without a port: no DNS-rebinding page can send either. Part of the
/// default origin check ([`Router::check_origin`]) for a server on a loopback address.
pub fn host_is_local(request: &Request) -> bool {
    let Some(host) = request.header_str("host") else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name.len() > ".localhost".len()
            && name.as_bytes()[name.len() - ".localhost".len()..]
                .eq_ignore_ascii_case(b".localhost")
        // An address (no rebinding page can send one as its `Host`): the server's own.
        || name.parse::<std::net::IpAddr>().is_ok()
}

/// The default WebSocket origin check ([`Router::check_origin`]): a handshake without an
/// `Origin` header (a client that is not a browser), or whose `Origin`'s host and port are
/// the request's `Host` (ASCII case aside). `Origin: null` (a sandboxed page, a file) is
/// refused.
pub fn same_origin(request: &Request) -> bool {
    let Some(origin) = request.header("origin") else {
        return true;
    };
    let Some(host) = request.header("host") else {
        return false;
    };
    // `scheme://host[:port]`: the part after the scheme is what `Host` names.
    let Some(at) = origin.windows(3).position(|w| w == b"://") else {
        return false;
    };
    origin[at + 3..].eq_ignore_ascii_case(host)
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect();
        f.debug_struct("Router")
            .field("routes", &routes)
            .field("limits", &self.limits)
            .finish()
    }
}
