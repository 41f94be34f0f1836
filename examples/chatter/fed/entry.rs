//! An entry of the room's stream: what happened (a line said, a join, a leave, a whisper),
//! who did it, and where: the node, the node's instance (one run of the process) and that
//! instance's sequence number, by which every node skips an entry it has already delivered
//! (its own lines delivered here while Redis was out of reach, an entry published twice
//! across a reconnection). No I/O here: the fields as they go to `XADD` and come back.

use std::sync::Arc;

/// What an entry says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `handle` said `text` to the room.
    Say,
    /// `handle` joined (on `node`).
    Join,
    /// `handle` left (on `node`), by itself or declared gone with its dead node.
    Leave,
    /// A whisper `text` (the whole line) for the member `to`.
    Msg,
}

impl Kind {
    /// The value of the entry's `k` field.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Kind::Say => "say",
            Kind::Join => "join",
            Kind::Leave => "leave",
            Kind::Msg => "msg",
        }
    }

    fn from_word(word: &[u8]) -> Option<Kind> {
        Some(match word {
            b"say" => Kind::Say,
            b"join" => Kind::Join,
            b"leave" => Kind::Leave,
            b"msg" => Kind::Msg,
            _ => return None,
        })
    }
}

/// An entry this node made: kept in its outbox until the stream gives it back.
#[derive(Debug, Clone)]
pub(crate) struct Own {
    /// This instance's sequence number, from 1.
    pub(crate) seq: u64,
    /// What happened.
    pub(crate) kind: Kind,
    /// Who did it.
    pub(crate) handle: Arc<str>,
    /// The text said, or a whisper's line; empty for joins and leaves.
    pub(crate) text: Arc<str>,
    /// A whisper's recipient; empty otherwise.
    pub(crate) to: Arc<str>,
}

impl Own {
    /// The entry's fields, as `XADD` takes them after the id: `k n i s h [t] [to]`.
    pub(crate) fn fields<'a>(
        &'a self,
        node: &'a str,
        instance: &'a str,
        seq: &'a str,
    ) -> Fields<'a> {
        let mut fields: Fields<'a> = Vec::with_capacity(14);
        fields.extend([
            ("k", self.kind.word()),
            ("n", node),
            ("i", instance),
            ("s", seq),
            ("h", &*self.handle),
        ]);
        if !self.text.is_empty() {
            fields.push(("t", &*self.text));
        }
        if !self.to.is_empty() {
            fields.push(("to", &*self.to));
        }
        fields
    }
}

/// An entry's fields as pairs of name and value.
pub(crate) type Fields<'a> = Vec<(&'static str, &'a str)>;

/// An entry read back from the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Read {
    /// What happened (`None`: a kind this version does not know, skipped).
    pub(crate) kind: Option<Kind>,
    /// The node where it happened.
    pub(crate) node: String,
    /// The instance that wrote it (a reaper's for the leaves of a dead node).
    pub(crate) instance: String,
    /// The writer's sequence number; 0 for an entry with none (a reaper's), never skipped.
    pub(crate) seq: u64,
    /// Who did it.
    pub(crate) handle: String,
    /// The text or whisper line.
    pub(crate) text: String,
    /// A whisper's recipient.
    pub(crate) to: String,
}

impl Read {
    /// An entry from its fields, as name and value pairs; unknown fields are ignored.
    pub(crate) fn from_fields<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Read {
        let mut read = Read::default();
        for (name, value) in pairs {
            let text = || String::from_utf8_lossy(value).into_owned();
            match name {
                b"k" => read.kind = Kind::from_word(value),
                b"n" => read.node = text(),
                b"i" => read.instance = text(),
                b"s" => {
                    read.seq = std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0)
                }
                b"h" => read.handle = text(),
                b"t" => read.text = text(),
                b"to" => read.to = text(),
                _ => {}
            }
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_go_out_and_come_back() {
        let own = Own {
            seq: 7,
            kind: Kind::Msg,
            handle: "ann".into(),
            text: "ann whispers: hi".into(),
            to: "bob".into(),
        };
        let fields = own.fields("a", "f00", "7");
        let read = Read::from_fields(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        assert_eq!(read.kind, Some(Kind::Msg));
        assert_eq!(
            (read.node.as_str(), read.instance.as_str(), read.seq),
            ("a", "f00", 7)
        );
        assert_eq!(
            (read.handle.as_str(), read.text.as_str(), read.to.as_str()),
            ("ann", "ann whispers: hi", "bob")
        );
    }
}
