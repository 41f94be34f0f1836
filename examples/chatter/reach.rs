//! The room's reach: how far it goes beyond this schedule, and how what happens here gets
//! there. One file per reach: [`Alone`](super::alone::Alone) (this schedule is the whole
//! room) and [`Relay`](super::relay::Relay) (one room across threads, tied by the hub).
//!
//! The room calls its reach once per thing that happens here (a claim, a line said, a join,
//! a leave, a whisper for someone not here), never once per member: the fan-out to the
//! members here stays the room's ([`Room::say_as`], [`Room::fan_out`], [`Room::announce`]),
//! and the reach chooses which one and when. What comes from beyond, the reach delivers from
//! tasklets of its own through the room's inbound calls ([`Room::deliver_in`],
//! [`Room::joined_elsewhere`], [`Room::left_elsewhere`], [`Room::tell_here`]), and it ends
//! those tasklets by listing them in [`Room::tasklets`].
//!
//! A reach through a shared log (Redis) fits the same calls: [`claim`](Reach::claim) may
//! park the session for a round trip (the room is not borrowed then), [`say`](Reach::say)
//! may leave the room alone and publish the line, to fan it out when the log gives it back
//! in its order, and [`pace`](Reach::pace) holds up speakers while its outbox is full.

use fibra::net::LoadToken;
use fibra::Handle;

use super::room::Room;

/// How far a room reaches beyond this schedule. Its calls never take the room's `RefCell`
/// themselves: those that need the room are given it.
pub(crate) trait Reach: std::fmt::Debug {
    /// Takes `handle` for a member joining here, once the room here found it free: `false`
    /// if a member elsewhere holds it or won it. May park (the room is not borrowed); must be
    /// the one judge across the reach, so that two sessions racing for a handle cannot both
    /// win.
    fn claim(&self, h: &Handle, handle: &str) -> bool;

    /// Frees a handle [`claim`](Self::claim) took: its member left, or could not join after
    /// all.
    fn release(&self, handle: &str);

    /// The member `handle` here says `text`: to every member, here and beyond, in one order.
    fn say(&self, room: &mut Room, handle: &str, text: &str);

    /// The member `handle` joined here: `"{handle} has joined the chat."` to every member,
    /// itself included; beyond, the rooms list it from now on.
    fn joined(&self, room: &mut Room, handle: &str);

    /// The member `handle` here left (it no longer hears the room): `"{handle} has left the
    /// chat."` to every member.
    fn left(&self, room: &mut Room, handle: &str);

    /// The member `handle` here left room `place` (not the lobby: [`left`](Self::left)
    /// is the lobby's): its leave to every member of that room. Only a reach with rooms
    /// ([`moved`](Self::moved)) has members outside the lobby.
    fn left_room(&self, room: &mut Room, handle: &str, _place: &str) {
        self.left(room, handle);
    }

    /// The member `handle` here asks to move to room `to` (`/join`): moved, its leave told
    /// in the room it left and its join in `to` (itself included), here and beyond; `false`
    /// if this reach has no rooms (the member stays).
    fn moved(&self, _room: &mut Room, _handle: &str, _to: &str) -> bool {
        false
    }

    /// A whisper `line` for the member `to`, whom the room lists as elsewhere: sent there;
    /// `false` if `to` is no longer anywhere.
    fn tell(&self, to: &str, line: &str) -> bool;

    /// Called by a session after each of its member's commands: parks it while the reach is
    /// behind (a speaker is held up, not the members who hear it).
    fn pace(&self, _h: &Handle) {}

    /// Called by a session after its member joined, before its first command: parks it
    /// until the member hears its own join (a join held for its turn in a shared log), so
    /// that nothing answered to it comes before that line.
    fn settle(&self, _h: &Handle, _handle: &str) {}

    /// This schedule's share of the load, for a connection no hand-off counted (a browser
    /// on the web page); kept as long as the connection is served.
    fn charge(&self) -> Option<LoadToken> {
        None
    }
}
