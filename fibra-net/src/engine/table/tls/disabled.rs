//! Without the `tls` feature no connection has a TLS state: the table's TLS steps are
//! never taken.

use std::time::Instant;

use fibra_rt::Context;

use super::super::input::ReadStep;
use super::super::waiters::Parked;
use super::super::Table;
use crate::api::error::Lost;
use crate::engine::shared::Key;
use crate::tls::TlsInfo;

/// Without the `tls` feature no connection has a TLS state: the type has no value, and
/// the table's TLS branches are never taken.
#[derive(Debug)]
pub(in crate::engine::table) enum Tls {}

impl Tls {
    pub(in crate::engine::table) fn is_handshaking(&self) -> bool {
        match *self {}
    }

    pub(in crate::engine::table) fn take_connecting(&mut self) -> Option<Parked> {
        match *self {}
    }

    pub(in crate::engine::table) fn connecting_is(&self, _id: fibra_rt::TaskletId) -> bool {
        match *self {}
    }

    pub(in crate::engine::table) fn wants_write(&self) -> bool {
        match *self {}
    }

    pub(in crate::engine::table) fn close_notify(&mut self) {
        match *self {}
    }

    pub(in crate::engine::table) fn shutdown_write(
        &mut self,
        _sock: &crate::engine::sys::Socket,
    ) -> Option<bool> {
        match *self {}
    }

    pub(in crate::engine::table) fn info(&self) -> TlsInfo {
        match *self {}
    }
}

/// The table's TLS steps, never taken: no connection has a TLS state.
impl Table {
    pub(in crate::engine::table) fn tls_started(
        &mut self,
        _key: Key,
        connecting: Option<Parked>,
        _now: Instant,
    ) {
        debug_assert!(
            connecting.is_none(),
            "only a TLS connect waits for a handshake"
        );
        let _ = connecting;
    }

    pub(in crate::engine::table) fn handshake_timer(
        &mut self,
        _key: Key,
        _at: Instant,
        _cx: &mut Context<'_>,
    ) {
    }

    pub(in crate::engine::table) fn tls_read_step(
        &mut self,
        _key: Key,
        _cx: &mut Context<'_>,
    ) -> ReadStep {
        ReadStep::Ended
    }

    pub(in crate::engine::table) fn tls_lost(
        &mut self,
        _key: Key,
        _lost: Lost,
        _cx: &mut Context<'_>,
    ) {
    }

    pub(in crate::engine::table) fn tls_write(&mut self, _key: Key) -> Result<(), Lost> {
        Ok(())
    }
}
