//! fibra-http's request head parser and RFC 9112 checks, as the server runs them on a
//! connection's bytes: never a panic; a head accepted has one `Host` (HTTP/1.1), fits the
//! limit and gives a trustworthy body length; every refusal is one of the statuses the server
//! answers with; a head parses the same cut short (incomplete) or with bytes after it.
#![no_main]

use fibra_http::fuzz::parse_head;
use fibra_http::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&[head, headers, cut], data)) = input.split_first_chunk::<3>() else {
        return;
    };
    let limits = Limits {
        max_head: 16 + usize::from(head) * 4,
        max_headers: usize::from(headers % 70),
        max_body: 1000,
        ..Limits::default()
    };
    match parse_head(data, &limits) {
        Ok(Some(parsed)) => {
            assert!(parsed.len <= data.len() && parsed.len <= limits.max_head);
            let request = &parsed.request;
            let count = |name: &str| {
                request
                    .headers()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .count()
            };
            let hosts = count("host");
            assert!(hosts == 1 || (hosts == 0 && request.minor_version() == 0));
            match parsed.body {
                Some(n) => {
                    assert!(n <= limits.max_body);
                    assert_eq!(count("transfer-encoding"), 0);
                    assert!(n == 0 || count("content-length") > 0);
                }
                None => {
                    assert_eq!(count("content-length"), 0);
                    assert!(request.header_has_token("transfer-encoding", "chunked"));
                    assert_eq!(request.minor_version(), 1);
                }
            }
            // The path the router sees: a suffix of the target, without its query; of a
            // target in absolute form, from its first `/` after the host.
            let path = request.path();
            assert!(!path.contains('?') && request.target().contains(path));
            let lower = request.target().to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                assert!(path.starts_with('/'), "{path:?} of {:?}", request.target());
            }
            // The head alone parses the same; cut short, it is incomplete.
            let alone = parse_head(&data[..parsed.len], &limits).unwrap().unwrap();
            assert_eq!((alone.len, alone.body), (parsed.len, parsed.body));
            assert_eq!(alone.request, parsed.request);
            let short = usize::from(cut) % parsed.len;
            assert!(
                matches!(parse_head(&data[..short], &limits), Ok(None)),
                "a prefix of a good head is not incomplete"
            );
        }
        Ok(None) => assert!(data.len() < limits.max_head),
        Err(status) => assert!(
            [400, 413, 414, 431, 501].contains(&status),
            "status {status}"
        ),
    }
});
