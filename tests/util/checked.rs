//! Tasklets that count themselves when they return, so that an assertion failing inside one
//! (a panic, which ends that tasklet alone) fails the test.

use std::cell::Cell;
use std::rc::Rc;

thread_local! {
    /// Tasklets spawned through [`checked`] in this test, and those that returned.
    static COUNT: (Cell<u32>, Rc<Cell<u32>>) = (Cell::new(0), Rc::new(Cell::new(0)));
}

/// `f` as a tasklet that counts itself when it returns: an assertion failing inside it (a
/// panic, which ends the tasklet alone) is then seen by [`all_ended`].
pub(crate) fn checked(
    f: impl FnOnce(&fibra::rt::Handle) + 'static,
) -> impl FnOnce(&fibra::rt::Handle) + 'static {
    let ended = COUNT.with(|(spawned, ended)| {
        spawned.set(spawned.get() + 1);
        ended.clone()
    });
    move |h| {
        f(h);
        ended.set(ended.get() + 1);
    }
}

/// Fails the test unless every tasklet spawned through [`checked`] returned, but the `killed`.
pub(crate) fn all_ended(killed: u32) {
    COUNT.with(|(spawned, ended)| {
        assert_eq!(
            ended.get() + killed,
            spawned.get(),
            "a tasklet panicked (see above)"
        )
    });
}
