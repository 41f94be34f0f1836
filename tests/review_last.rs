//! Hostile review of the last two commits (rev-last): fibra-http's loopback-name origin
//! check (a non-ASCII `Host`, address literals, a reverse proxy on the same machine).

mod util;

struct Ws;
impl util::Served for Ws {
    type Stats = ();
    fn stats(&self, _: &fibra::rt::Schedule) {}
    fn stop(self, _: &mut fibra::rt::Schedule) {}
}

fn ws_server() -> util::ServerThread<()> {
    util::ServerThread::start(|s| {
        let router =
            std::rc::Rc::new(fibra::http::Router::new().websocket("/ws", |_h, _req, _ws| {}));
        let listener = util::listen(s);
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Ws)
    })
}

/// The handshake's response head with `Host: host` and `Origin: origin`, or what went wrong.
fn handshake_from(addr: std::net::SocketAddr, host: &[u8], origin: &[u8]) -> String {
    let origin = [b"Origin: ", origin, b"\r\n"].concat();
    util::ws::handshake_head(addr, host, &origin)
}

/// `names_loopback` cuts `.localhost` off the end of `Host` by byte index
/// (`name[name.len() - 10..]`): a `Host` (and a matching `Origin`, so `same_origin` holds)
/// of non-ASCII bytes whose cut falls inside a character (`€€€€`: 12 bytes, the cut at 2)
/// panics in the server's connection tasklet instead of answering 403.
#[test]
fn a_non_ascii_host_is_refused_not_a_panic() {
    let server = ws_server();
    let port = server.addr.port();
    let host = format!("€€€€:{port}");
    let got = handshake_from(
        server.addr,
        host.as_bytes(),
        format!("http://{host}").as_bytes(),
    );
    // 400 since a Host that is not a host is refused with the head (RFC 9112 §3.2).
    assert!(
        got.starts_with("HTTP/1.1 403") || got.starts_with("HTTP/1.1 400"),
        "a non-ASCII Host: {got}"
    );
    // And the server still serves.
    let own = format!("127.0.0.1:{port}");
    let got = handshake_from(
        server.addr,
        own.as_bytes(),
        format!("http://{own}").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 101"), "after it: {got}");
}

/// A page a browser opened at `http://0.0.0.0:PORT/` (what a server listening on every
/// address prints; Firefox on Linux connects it to the loopback) or at the IPv4-mapped
/// `http://[::ffff:127.0.0.1]:PORT/` names its server by an address `is_loopback` says no
/// to (unspecified; `Ipv6Addr::is_loopback` is `::1` alone): taken before, refused now.
#[test]
fn a_page_opened_at_an_ip_literal_host_gets_its_websocket() {
    let server = ws_server();
    for host in ["0.0.0.0", "[::ffff:7f00:1]"] {
        // (No DNS-rebinding page can send an IP address literal as its `Host`.)
        let host = format!("{host}:{}", server.addr.port());
        let got = handshake_from(
            server.addr,
            host.as_bytes(),
            format!("http://{host}").as_bytes(),
        );
        assert!(got.starts_with("HTTP/1.1 101"), "Host: {host}: {got}");
    }
}

/// The usual way to put a loopback-bound server on the web: a reverse proxy on the same
/// machine (nginx `proxy_pass http://127.0.0.1:1990; proxy_set_header Host $host;`). The
/// browser's page is the server's own (`Origin: https://chat.example.com`, `Host:
/// chat.example.com`), and looks to the server as a DNS-rebinding page does: the default
/// check refuses it (documented), a check that names the origin takes it, and so does the
/// chatter given `--web-origin`.
#[test]
fn a_page_served_through_a_local_reverse_proxy_is_taken_once_its_origin_is_named() {
    let server = ws_server();
    let got = handshake_from(
        server.addr,
        b"chat.example.com",
        b"https://chat.example.com",
    );
    assert!(got.starts_with("HTTP/1.1 403"), "the default: {got}");
    let named = util::ServerThread::start(|s| {
        let router = std::rc::Rc::new(
            fibra::http::Router::new()
                .websocket("/ws", |_h, _req, _ws| {})
                .check_origin(|req| {
                    fibra::http::same_origin(req)
                        && req.header("origin") == Some(b"https://chat.example.com")
                }),
        );
        let listener = util::listen(s);
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Ws)
    });
    let got = handshake_from(named.addr, b"chat.example.com", b"https://chat.example.com");
    assert!(got.starts_with("HTTP/1.1 101"), "named: {got}");

    // The chatter behind such a proxy.
    let chatter =
        util::Example::start_with("chatter", &["--web-origin", "https://chat.example.com"]);
    let line = chatter.wait_for("web page on http://");
    let at = line.find("http://").unwrap() + "http://".len();
    let web: std::net::SocketAddr = line[at..]
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let got = handshake_from(web, b"chat.example.com", b"https://chat.example.com");
    assert!(
        got.starts_with("HTTP/1.1 101"),
        "the chatter with --web-origin: {got}"
    );
    let got = handshake_from(web, b"evil.example", b"https://evil.example");
    assert!(got.starts_with("HTTP/1.1 403"), "another origin: {got}");
}
