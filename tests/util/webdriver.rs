//! A small WebDriver client for the browser tests: Debian's `chromedriver` and `chromium`,
//! headless, each session with a fresh profile; never downloads anything.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::json::Json;

/// Where Debian puts the driver and the browser.
pub(crate) const DRIVER: &str = "/usr/bin/chromedriver";
pub(crate) const BROWSER: &str = "/usr/bin/chromium";

/// Whether both are installed.
pub(crate) fn available() -> bool {
    std::path::Path::new(DRIVER).exists() && std::path::Path::new(BROWSER).exists()
}

/// A running chromedriver, our child; killed (by handle) when dropped.
pub(crate) struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    pub(crate) fn start() -> Driver {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let child = Command::new(DRIVER)
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Driver { child, addr }
    }

    fn call(&self, method: &str, path: &str, body: Option<Json>) -> Json {
        let mut c = TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        c.write_all(request.as_bytes()).unwrap();
        // The head, then a body of its Content-Length (the driver may keep the connection).
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            assert_eq!(c.read(&mut byte).unwrap(), 1, "chromedriver closed early");
            answer.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |n| n.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        c.read_exact(&mut body).unwrap();
        let json = String::from_utf8(body).unwrap();
        let json = json.as_str();
        let value =
            Json::parse(json).unwrap_or_else(|e| panic!("WebDriver answered {json:?}: {e}"));
        let value = value.get("value");
        if let Some(error) = value.get("error").as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                value.get("message")
            );
        }
        value.clone()
    }

    /// A new headless browser window with a fresh profile.
    pub(crate) fn session(&self) -> Session<'_> {
        self.session_with(false)
    }

    /// [`session`](Self::session) whose browser accepts any TLS certificate (WebDriver's
    /// `acceptInsecureCerts`): for pages served with a test CA's certificate.
    pub(crate) fn session_accepting_any_certificate(&self) -> Session<'_> {
        self.session_with(true)
    }

    fn session_with(&self, any_certificate: bool) -> Session<'_> {
        let profile = std::env::temp_dir().join(format!(
            "fibra-browser-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=900,640".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let options = Json::object([("binary", BROWSER.into()), ("args", args.to_vec().into())]);
        let capabilities = Json::object([(
            "capabilities",
            Json::object([(
                "alwaysMatch",
                Json::object([
                    ("browserName", "chrome".into()),
                    ("acceptInsecureCerts", Json::Bool(any_certificate)),
                    ("goog:chromeOptions", options),
                ]),
            )]),
        )]);
        let value = self.call("POST", "/session", Some(capabilities));
        let id = value
            .get("sessionId")
            .as_str()
            .expect("a session id")
            .to_owned();
        Session {
            driver: self,
            id,
            profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill(); // our own child, by handle
        let _ = self.child.wait();
    }
}

/// One browser window.
pub(crate) struct Session<'d> {
    driver: &'d Driver,
    id: String,
    profile: std::path::PathBuf,
}

impl Session<'_> {
    pub(crate) fn open(&self, url: &str) {
        self.driver.call(
            "POST",
            &format!("/session/{}/url", self.id),
            Some(Json::object([("url", url.into())])),
        );
    }

    /// Runs `script` in the page; its return value.
    pub(crate) fn script(&self, script: &str) -> Json {
        self.driver.call(
            "POST",
            &format!("/session/{}/execute/sync", self.id),
            Some(Json::object([
                ("script", script.into()),
                ("args", Json::Array(Vec::new())),
            ])),
        )
    }

    /// Types `text` into the element `css`, then Enter.
    pub(crate) fn type_line(&self, css: &str, text: &str) {
        let element = self.driver.call(
            "POST",
            &format!("/session/{}/element", self.id),
            Some(Json::object([
                ("using", "css selector".into()),
                ("value", css.into()),
            ])),
        );
        let key = element
            .as_object()
            .and_then(|o| o.first())
            .and_then(|(_, id)| id.as_str())
            .expect("an element id")
            .to_owned();
        self.driver.call(
            "POST",
            &format!("/session/{}/element/{key}/value", self.id),
            Some(Json::object([("text", format!("{text}\u{E007}").into())])),
        );
    }

    /// The chat log's lines, as the page shows them.
    pub(crate) fn lines(&self) -> Vec<String> {
        let value = self
            .script("return [...document.querySelectorAll('#log .line')].map(e => e.textContent);");
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits up to 10 s until the page shows a line `want`; returns every line shown.
    pub(crate) fn wait_for_line(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.lines();
            if lines.iter().any(|l| l == want) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {want:?}: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The page as a PNG.
    pub(crate) fn screenshot(&self) -> Vec<u8> {
        let value = self
            .driver
            .call("GET", &format!("/session/{}/screenshot", self.id), None);
        base64_decode(value.as_str().expect("a base64 PNG"))
    }

    /// Closes the window (and its WebSocket with it).
    pub(crate) fn close(self) {}
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.driver
            .call("DELETE", &format!("/session/{}", self.id), None);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (u32::from(value(c)) << (18 - 6 * i)));
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}
