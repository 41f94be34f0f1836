//! How a receive travels (documentation only): the path of one
//! [`h.receive(&conn)`](crate::NetExt::receive), from the call to the resume, file by file.
//!
//! The case followed is the one that waits: nothing is buffered for the connection and the
//! socket has nothing either, so the tasklet parks, and a later readiness event brings the
//! frame. Paths are those of the repository; `fibra-net/src/` is left out of fibra-net's,
//! and each file is named once, where the path first enters it.
//!
//! # Out: the tasklet yields, the plugin parks it
//!
//! | | File | What happens there |
//! |-|------|--------------------|
//! | 1 | `api/ext.rs` | [`NetExt::receive`](crate::NetExt::receive) makes a [`Receive`](crate::ops::Receive) op and yields it: `h.yield_op(ops::Receive::new(conn))`. |
//! | 2 | `api/ops.rs` | The op: the connection, what to return (a frame), a buffer to fill; its output is `Result<Vec<u8>, NetError>`. |
//! | 3 | `fibra-rt/src/handle.rs` | [`Handle::yield_op`](fibra_rt::Handle::yield_op) puts the op in a slot on the tasklet's own stack and switches to the schedule with a pointer to it. |
//! | 4 | `fibra-rt/src/op.rs` | The slot: a header (the op's type, its deadline, its status), the op, and room for the answer. |
//! | 5 | `fibra-rt/src/schedule/driver.rs` | `run_tasklet` receives the pointer from the coroutine and wraps it (`OpSlot`). |
//! | 6 | `fibra-rt/src/schedule/dispatch.rs` | `dispatch` finds the route of the op's type (the previous op's route is checked first) and makes the plugin's [`Context`](fibra_rt::Context). |
//! | 7 | `fibra-rt/src/wait.rs` | `OpSlot::submit` takes the op out of the slot and calls the plugin's [`Serves::submit`](fibra_rt::Serves::submit): every use of the pointer is in this file. |
//! | 8 | `engine/plugin.rs` | [`NetPlugin`](crate::NetPlugin) checks that the connection is its own and borrows the table (held in `engine/shared.rs`'s `Shared`). |
//! | 9 | `api/conn.rs` | The handle gives its table key. |
//! | 10 | `engine/table/input.rs` | `submit_receive`: the connection's input has no frame, so `read_step` reads. |
//! | 11 | `engine/table/mod.rs` | The connection's entry, found by key (slot and generation). |
//! | 12 | `engine/table/lifecycle.rs` | Its socket, if it is connected. |
//! | 13 | `engine/buffer.rs` | Room to read into, lent from the pool only now. |
//! | 14 | `engine/sys/socket.rs` | `read(2)` says `EAGAIN`: the socket is marked not readable, and the buffer, still empty, goes back to the pool. |
//! | 15 | `engine/table/waiters.rs` | `Waiters::park`: the tasklet is parked on the connection (its `Reader`), and `submit` says `Pending`. |
//! | 16 | `fibra-rt/src/tasklet.rs` | Back in the driver, the tasklet is `Suspended`, its coroutine and the slot's pointer kept together. (An op with a deadline, `receive_until`, also enters `fibra-rt/src/deadline.rs`.) |
//!
//! # Back: readiness, the frame, the resume
//!
//! | | File | What happens there |
//! |-|------|--------------------|
//! | 17 | `fibra-rt/src/reactor.rs` | The driver's `poll_round` makes the schedule's one wait for events. |
//! | 18 | `fibra-rt/src/reactor/epoll.rs` | `epoll_wait` (the `polling` crate with the `portable-poller` feature, or off Linux); each event goes to the plugin whose key it carries, and the driver calls [`Plugin::poll`](fibra_rt::Plugin::poll) (`engine/plugin.rs`). |
//! | 19 | `engine/table/round.rs` | `Table::poll` → `on_event`: the connection is readable again, and it has a reader, so `serve_reader` (`engine/table/input.rs`) reads (`engine/sys/socket.rs`, `engine/buffer.rs`). |
//! | 20 | `engine/codec_door.rs` | The codec is called through the one checked door. |
//! | 21 | `api/codec.rs` | The built-in line codec cuts the frame, and `input.rs` copies it into the op's buffer. |
//! | 22 | `fibra-rt/src/context.rs` | `Waiters::complete` (`engine/table/waiters.rs`) calls [`Context::complete`](fibra_rt::Context::complete), which writes the answer into the slot (`wait.rs`, `op.rs`) and calls `Core::resume` (`wait.rs`): the tasklet is runnable (`tasklet.rs`) and queued. |
//!
//! The driver's next step resumes the coroutine (`schedule/driver.rs`), `yield_op` takes the
//! answer out of its slot (`handle.rs`), and `receive` returns it (`api/ext.rs`).
//!
//! So one parked receive crosses 22 files: 13 of fibra-net (4 of its API, 9 of its engine;
//! none of the callback framework) and 9 of fibra-rt. A receive whose frame is already
//! buffered completes inside `submit` (steps 1 to 11, 20 and 21) and never leaves the
//! tasklet's turn.
//!
//! A receive without framing ([`Framing::Raw`](crate::Framing::Raw), or `io::Read` reads of
//! 4 KiB or more) on a connection whose input buffer is empty skips steps 13, 20 and 21:
//! `engine/table/direct.rs` reads into the table's one scratch buffer and copies the bytes
//! into the op's buffer, with no pooled input buffer lent and no codec called.
//!
//! # Without a tasklet: the input watch
//!
//! A connection that should hold no stack while it is silent (a million idle members) takes
//! another path. Its state is a job (an [`InputJob`](crate::ops::InputJob), boxed once and
//! armed again as it is), which the table keeps in the connection's input instead of a
//! parked reader (`engine/table/watch.rs`), armed with [`OnInput`](crate::ops::OnInput). At
//! step 19, `on_event` finds the watch and hands the job to a worker: one of a few tasklets
//! of the table's that run fired jobs one after another, an idle one (its
//! `NextJob` completed with the job) or a busy one, which takes the next job in line when its
//! job returns. A loss (`lifecycle.rs`'s `lose`), a close or reset asked by a handle
//! (`run_deferred`) and the read budget's retry fire the watch too, so the job always hears
//! of the end. The job takes what is there with [`TryReceive`](crate::ops::TryReceive), which
//! never parks, and arms the watch again. One job per connection, armed, in line or running:
//! frames in order.
//!
//! On the common path these are calls, not yields: [`NetExt::try_receive`](crate::NetExt::try_receive)
//! serves a raw receive on the table from the job (`direct.rs`, `try_receive_at_once`: one
//! `recv` into the scratch buffer, none of steps 1 to 11), [`NetExt::on_input`](crate::NetExt::on_input)
//! arms the watch while nothing is there to fire it, and the worker takes the next job in
//! line without switching out (it yields between jobs when a kill is posted, and every 64
//! jobs). A raw echo's message then costs no stack switch; a framed receive (lines) still
//! goes through the op. `Server::stackless` (`callback/stackless.rs`) and fibra-http's
//! `WebSocket::serve_stackless` are built on it.
//! While a watch is armed the plugin [has work](fibra_rt::Plugin::has_work): `Schedule::run`
//! goes on serving such connections when no tasklet is left.
