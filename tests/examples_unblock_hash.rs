//! The `unblock_hash` example: `/hash NAME` answers a file's FNV-1a hash, computed off the
//! schedule's thread, while the other members' lines still go round; a name outside its
//! folder is refused.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn member(addr: &str) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a line within 10 s");
    line.trim_end().to_owned()
}

#[test]
fn a_file_is_hashed_off_thread_while_the_chat_goes_on() {
    let dir = std::env::temp_dir().join(format!("fibra-unblock-hash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 8 MiB of varied bytes.
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    let server = util::Example::start_with("unblock_hash", &["--dir", dir.to_str().unwrap()]);
    let (mut a, mut a_in) = member(&server.addr);
    let (mut b, mut b_in) = member(&server.addr);
    a.write_all(b"/hash big.bin\n").unwrap();
    // Both members are in (b's line reaches a once b is registered), and they chat on.
    b.write_all(b"hello from b\n").unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(line(&mut a_in));
    }
    let want = format!(
        "/hash big.bin: fnv1a64 {:016x}, {} bytes",
        fnv1a(&data),
        data.len()
    );
    assert!(got.contains(&want), "{got:?}");
    assert!(got.contains(&"hello from b".to_owned()), "{got:?}");
    a.write_all(b"hi b\n").unwrap();
    assert_eq!(line(&mut b_in), "hi b");
    // Nothing outside the folder.
    b.write_all(b"/hash ../etc/passwd\n").unwrap();
    assert!(line(&mut b_in).contains("not a file name inside the folder"));
    let (status, _) = server.interrupt();
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}
