//! The reach of a room that one schedule serves alone: nothing beyond it, so a line said is
//! written into the members' output in place, with no line of its own made.

use fibra::Handle;

use super::protocol;
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

    fn left_room(&self, room: &mut Room, handle: &str, place: &str) {
        room.announce_in(place, &protocol::left_line(place, handle));
    }

    fn moved(&self, room: &mut Room, handle: &str, to: &str) -> bool {
        if let Some((from, to)) = room.move_member(handle, to) {
            room.announce_in(&from, &protocol::left_line(&from, handle));
            room.announce_in(&to, &protocol::joined_line(&to, handle));
        }
        true
    }

    fn tell(&self, _to: &str, _line: &str) -> bool {
        false // nobody is elsewhere
    }
}
