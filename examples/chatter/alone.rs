//! The reach of a room that one schedule serves alone: nothing beyond it, so a line said is
//! written into the members' output in place, with no line of its own made.

use fibra::Handle;

use super::reach::Reach;
use super::room::Room;

/// Nothing beyond this schedule.
#[derive(Debug, Default)]
pub(crate) struct Alone;

impl Reach for Alone {
    fn claim(&self, _h: &Handle, _handle: &str) -> bool {
        true // free here is free everywhere
    }

    fn release(&self, _handle: &str) {}

    fn say(&self, room: &mut Room, handle: &str, text: &str) {
        room.say_as(handle, text);
    }

    fn joined(&self, room: &mut Room, handle: &str) {
        room.announce(format_args!("{handle} has joined the chat."));
    }

    fn left(&self, room: &mut Room, handle: &str) {
        room.announce(format_args!("{handle} has left the chat."));
    }

    fn tell(&self, _to: &str, _line: &str) -> bool {
        false // nobody is elsewhere
    }
}
