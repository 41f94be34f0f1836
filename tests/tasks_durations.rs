//! A sleep of `Duration::MAX` means "never": the tasklet parks for good (a kill ends it),
//! and nothing panics.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use fibra::tasks::TasksExt;

#[test]
fn a_sleep_of_duration_max_parks_until_killed() {
    let mut s = util::schedule();
    let stage = Rc::new(Cell::new(0));
    let st = Rc::clone(&stage);
    let sleeper = s
        .spawn(move |h| {
            st.set(1);
            h.sleep(Duration::MAX);
            st.set(2);
        })
        .unwrap();
    for _ in 0..10 {
        s.tick_within(Duration::from_millis(2)).unwrap();
    }
    assert_eq!(stage.get(), 1, "asleep, not woken");
    assert!(s.kill(sleeper));
    util::run_all(&mut s, 5);
    assert_eq!(stage.get(), 1);
}
