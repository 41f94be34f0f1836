//! The chatter in a real browser: two headless Chromium windows and one telnet client in one
//! room. Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); in CI a
//! missing browser fails the test, elsewhere it says so and passes.

mod chat;
mod util;

use chat::{protocol, Config, TestServer};
use util::webdriver::{self, Driver};

#[test]
fn two_browsers_and_a_telnet_client_chat_in_one_room() {
    if !webdriver::available() {
        let why = "the browser test needs chromium and chromium-driver: \
                   apt-get install chromium chromium-driver (.ci/run does)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("NOT RUN: {why}");
        return;
    }
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
    assert_eq!(who, serde_json::Value::Bool(true));
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
