//! The chatter in a real browser: two headless Chromium windows and one telnet client in one
//! room. Needs Debian's `chromium` and `chromium-driver`, so a plain `cargo test` lists it as
//! ignored; `.ci/run` installs both and runs it with `cargo test --test browser -- --ignored`,
//! where a missing browser fails it.

mod chat;
// The WebDriver client and its JSON: this test's alone, so not in `util`, which every test
// file compiles.
#[path = "util/json.rs"]
mod json;
mod util;
#[path = "util/webdriver.rs"]
mod webdriver;

use chat::{protocol, Config, TestServer};
use json::Json;
use webdriver::Driver;

#[test]
#[ignore = "needs chromium and chromium-driver; .ci/run installs them and runs it with --ignored"]
fn two_browsers_and_a_telnet_client_chat_in_one_room() {
    assert!(
        webdriver::available(),
        "the browser test needs {} and {}: apt-get install chromium chromium-driver",
        webdriver::BROWSER,
        webdriver::DRIVER
    );
    let (server, web) = TestServer::start_with_web(Config::default());
    let url = format!("http://{web}/");
    let driver = Driver::start();

    let ada = driver.session();
    ada.open(&url);
    ada.wait_for_line(protocol::PROMPT);
    ada.type_line("#input", "ada");
    ada.wait_for_line("ada has joined the chat.");

    let mut carl = server.join("carl");
    ada.wait_for_line("carl has joined the chat.");

    // A taken handle is refused in the browser.
    let bea = driver.session();
    bea.open(&url);
    bea.wait_for_line(protocol::PROMPT);
    bea.type_line("#input", "ada");
    bea.wait_for_line(protocol::TAKEN);
    bea.type_line("#input", "bea");
    bea.wait_for_line("bea has joined the chat.");
    carl.expect("bea has joined the chat.");

    // Lines both ways, in order.
    for line in ["one", "two", "three"] {
        ada.type_line("#input", line);
    }
    for line in ["one", "two", "three"] {
        carl.expect(&format!("ada says: {line}"));
    }
    carl.send("hello browsers");
    carl.expect("carl says: hello browsers");
    for window in [&ada, &bea] {
        let lines = window.wait_for_line("carl says: hello browsers");
        let said: Vec<&String> = lines.iter().filter(|l| l.starts_with("ada says")).collect();
        assert_eq!(said, ["ada says: one", "ada says: two", "ada says: three"]);
    }

    // /who (the page's button sends it), and /msg from a browser to telnet.
    let who = ada.script("document.getElementById('who').click(); return true;");
    assert_eq!(who, Json::Bool(true));
    ada.wait_for_line("Online: ada, bea, carl");
    bea.type_line("#input", "/msg carl psst");
    carl.expect("bea whispers: psst");

    // A closed window is a leave, exactly once.
    let screenshot = ada.screenshot();
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG");
    if let Some(path) = std::env::var_os("FIBRA_SCREENSHOT") {
        std::fs::write(path, &screenshot).unwrap();
    }
    bea.close();
    carl.expect("bea has left the chat.");
    carl.send("/who");
    carl.expect("Online: ada, carl");
    ada.wait_for_line("bea has left the chat.");
    let leaves = ada
        .lines()
        .iter()
        .filter(|l| *l == "bea has left the chat.")
        .count();
    assert_eq!(leaves, 1);
    ada.close();
    carl.expect("ada has left the chat.");
    server.stop();
}

/// The page over HTTPS, its WebSocket over WSS: two browsers (told to accept the test CA's
/// certificate), a TLS line client and a plain one in one room.
#[test]
#[ignore = "needs chromium and chromium-driver; .ci/run installs them and runs it with --ignored"]
#[cfg(feature = "tls")]
fn browsers_over_https_and_wss_chat_with_tls_and_plain_clients() {
    assert!(
        webdriver::available(),
        "the browser test needs {} and {}: apt-get install chromium chromium-driver",
        webdriver::BROWSER,
        webdriver::DRIVER
    );
    let (server, _, tls) = TestServer::start_tls(
        1,
        Config::default(),
        fibra::net::DEFAULT_HANDSHAKE_TIMEOUT,
        true,
    );
    let url = format!("https://localhost:{}/", tls.web.unwrap().port());
    let driver = Driver::start();

    let ada = driver.session_accepting_any_certificate();
    ada.open(&url);
    ada.wait_for_line(protocol::PROMPT);
    let at = ada.script("return location.protocol;");
    assert_eq!(at.as_str(), Some("https:"), "the page came over HTTPS");
    ada.type_line("#input", "ada");
    ada.wait_for_line("ada has joined the chat.");

    let mut tim = tls.join("tim");
    let mut carl = server.join("carl");
    tim.expect("carl has joined the chat.");
    ada.wait_for_line("carl has joined the chat.");

    let bea = driver.session_accepting_any_certificate();
    bea.open(&url);
    bea.wait_for_line(protocol::PROMPT);
    bea.type_line("#input", "bea");
    bea.wait_for_line("bea has joined the chat.");
    tim.expect("bea has joined the chat.");
    carl.expect("bea has joined the chat.");

    // Lines every way: a browser, the TLS client, the plain client.
    ada.type_line("#input", "from a browser over wss");
    tim.expect("ada says: from a browser over wss");
    carl.expect("ada says: from a browser over wss");
    tim.send("from openssl's side");
    carl.expect("tim says: from openssl's side");
    tim.expect("tim says: from openssl's side");
    carl.send("from telnet");
    carl.expect("carl says: from telnet");
    tim.expect("carl says: from telnet");
    for window in [&ada, &bea] {
        let lines = window.wait_for_line("carl says: from telnet");
        assert!(
            lines.contains(&"tim says: from openssl's side".to_owned()),
            "{lines:?}"
        );
    }
    bea.type_line("#input", "/msg tim psst");
    tim.expect("bea whispers: psst");

    bea.close();
    tim.expect("bea has left the chat.");
    carl.expect("bea has left the chat.");
    ada.close();
    tim.expect("ada has left the chat.");
    carl.expect("ada has left the chat.");
    server.stop();
}

/// The WebDriver client's JSON, without a browser: chromedriver's kinds of answer read, and a
/// request written as the driver reads it.
#[test]
fn webdriver_json_reads_answers_and_writes_requests() {
    let answer = r#"{"value": {"sessionId": "5f\u00e9", "capabilities": {"n": -1.5e2,
        "ok": true, "none": null, "list": [1, "two\n", [], {}], "key": "\ud83d\ude00"}}}"#;
    let value = Json::parse(answer).unwrap();
    let value = value.get("value");
    assert_eq!(value.get("sessionId").as_str(), Some("5f\u{e9}"));
    let caps = value.get("capabilities");
    assert_eq!(caps.get("n"), &Json::Number(-150.0));
    assert_eq!(caps.get("ok"), &Json::Bool(true));
    assert_eq!(caps.get("none"), &Json::Null);
    assert_eq!(caps.get("missing"), &Json::Null);
    assert_eq!(caps.get("key").as_str(), Some("\u{1F600}"));
    let list = caps.get("list").as_array().unwrap();
    assert_eq!(list[1].as_str(), Some("two\n"));
    assert_eq!(list[2], Json::Array(Vec::new()));
    assert_eq!(list[3], Json::Object(Vec::new()));
    for bad in ["", "{", "[1,]", "\"open", "{\"a\" 1}", "tru", "1 2"] {
        assert!(Json::parse(bad).is_err(), "{bad:?} read as JSON");
    }

    let request = Json::object([
        ("text", "say \"hi\"\\\u{1}\u{E007}".into()),
        ("args", vec!["--a", "--b"].into()),
    ]);
    let written = request.to_string();
    assert_eq!(
        written,
        "{\"text\":\"say \\\"hi\\\"\\\\\\u0001\u{E007}\",\"args\":[\"--a\",\"--b\"]}"
    );
    assert_eq!(Json::parse(&written).unwrap(), request);
}
