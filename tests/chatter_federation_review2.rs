//! A hostile review of today's federation changes (rev-chat2): each case on a real
//! `redis-server` of its own and real chatter processes. Every wait is bounded. Each test
//! here failed when written.
//!
//! - A release waits for the next connection (made while Redis is away, or requeued after
//!   a failed pipeline), but the node may have taken the same handle again meanwhile (its
//!   member left and came back, or another newcomer took it, in any ASCII case): the late
//!   `RELEASE` then deletes the live claim (`GET == node`) and takes the handle off the
//!   node's members, and another node's newcomer gets the handle until the next heartbeat.

mod chat;
mod fed;
mod util;

use std::time::Duration;

use chat::protocol;
use fed::{a_cut_off, Ask, Redis};

fn a_handle_taken_again_on_its_node_while_away_keeps_its_claim(again: &str) {
    let redis = Redis::start();
    let (proxy, a, b, ann, _bob) = a_cut_off(&redis, &[], &[]);
    drop(ann); // ann leaves a while a is away: its release waits for Redis
    a.wait_for("ann left");
    // ann comes back to a, still away: taken here alone, claimed when Redis is back.
    let _ann = a.join(again);
    proxy.heal();
    a.wait_for("Redis is in reach");
    // Within the heartbeat's refresh (2 s): the claim must still be a's.
    std::thread::sleep(Duration::from_millis(300));
    let owner = redis.cmd(&["GET", "chatter:handle:ann"]);
    let listed = redis.cmd(&["SMEMBERS", "chatter:members:a"]);
    let mut newcomer = b.client();
    newcomer.expect(protocol::PROMPT);
    newcomer.send("ann");
    let answer = newcomer.line();
    assert_eq!(
        (owner.as_str(), answer.as_str()),
        ("a", protocol::TAKEN),
        "{again} is a member of a, yet its handle's key says {owner:?} (a's members: {listed:?}) \
         and b's newcomer ann was answered {answer:?}"
    );
}

#[test]
fn a_handle_taken_again_on_its_node_while_away_keeps_its_claim_same_case() {
    a_handle_taken_again_on_its_node_while_away_keeps_its_claim("ann");
}

#[test]
fn a_handle_taken_again_on_its_node_while_away_keeps_its_claim_other_case() {
    a_handle_taken_again_on_its_node_while_away_keeps_its_claim("Ann");
}
