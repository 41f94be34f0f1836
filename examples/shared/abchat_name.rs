//! ABChat's rule for a client's name, shared by `abchat` and its tokio peer `tokio_abchat`
//! so that the benchmark's two servers accept and refuse the same names.

#[path = "invisible.rs"]
mod invisible;

/// Why a name is refused, or `None` for a good one: 1 to 32 characters, no spaces, control
/// characters or characters that show nothing (a zero-width space, a right-to-left
/// override: a name with one reads like another name).
pub(crate) fn bad_name(name: &str) -> Option<&'static str> {
    let chars = name.chars().count();
    if !(1..=32).contains(&chars) {
        Some("a name is 1 to 32 characters")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("a name has no spaces or control characters")
    } else if name.chars().any(invisible::is_invisible) {
        Some("a name has no characters that show nothing")
    } else {
        None
    }
}
