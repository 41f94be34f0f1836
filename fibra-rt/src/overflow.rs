//! Stack-overflow reports: a `SIGSEGV` handler that recognises a fault in the guard page of the
//! running tasklet's stack and says which tasklet overflowed and how to give it more stack,
//! instead of dying with a bare "Segmentation fault".
//!
//! Every tasklet stack has a guard page below it (corosensei's `DefaultStack`), so an overflow
//! always faults there and never writes into other memory. Before each resume the schedule
//! records a pointer to the running tasklet's [`Guard`] in a thread-local; the handler (running
//! on the thread's alternate signal stack) compares the fault address with that guard. Faults
//! that are not a tasklet overflow go to the handler that was installed before ours (Rust's own
//! main-thread overflow report) or to the default action.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use crate::TaskletId;

/// What the fault handler needs to know about a tasklet's stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Guard {
    pub(crate) id: TaskletId,
    /// Lowest address of the stack mapping: the start of its guard page.
    pub(crate) limit: usize,
    pub(crate) size: usize,
    /// The tasklet's name; it stays at this address for the tasklet's life (a `'static` str or
    /// the heap buffer of an owned `String`).
    pub(crate) name: *const u8,
    pub(crate) name_len: usize,
}

thread_local! {
    static CURRENT: Cell<*const Guard> = const { Cell::new(ptr::null()) };
    static ALTSTACK_READY: Cell<bool> = const { Cell::new(false) };
    /// A line the report ends with (a simulation's seed and how to replay it).
    static NOTE: Cell<(*const u8, usize)> = const { Cell::new((ptr::null(), 0)) };
}

/// Sets (or with `None` clears) a line that a stack-overflow report on this thread ends
/// with: a simulator (`fibra-sim`) names the seed that was running, since the process aborts
/// before any test harness could.
#[doc(hidden)]
pub fn set_overflow_note(note: Option<&'static str>) {
    let note = note.map_or((ptr::null(), 0), |n| (n.as_ptr(), n.len()));
    NOTE.with(|c| c.set(note));
}

static INSTALL: Once = Once::new();
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static PREV_SEGV: AtomicUsize = AtomicUsize::new(0);
static PREV_SEGV_FLAGS: AtomicUsize = AtomicUsize::new(0);
static PREV_BUS: AtomicUsize = AtomicUsize::new(0);
static PREV_BUS_FLAGS: AtomicUsize = AtomicUsize::new(0);

/// Marks `guard`'s tasklet as the one running on this thread until the returned value drops;
/// then the tasklet that was marked before is marked again. Entries nest: a tasklet that kills
/// another unwinds it inside its own step, and must be guarded again once that unwind is done.
pub(crate) fn enter(guard: &Guard) -> Entered {
    let prev = CURRENT.with(|c| c.replace(guard));
    Entered { prev }
}

/// The mark of a running tasklet; dropping it restores the previous mark.
pub(crate) struct Entered {
    prev: *const Guard,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

/// Installs the fault handler (once per process) and makes sure this thread has an alternate
/// signal stack to run it on (threads started by `std` already have one).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE_SIZE.store(page as usize, Ordering::Relaxed);
        }
        for (sig, prev, prev_flags) in [
            (libc::SIGSEGV, &PREV_SEGV, &PREV_SEGV_FLAGS),
            (libc::SIGBUS, &PREV_BUS, &PREV_BUS_FLAGS),
        ] {
            // SAFETY: an all-zero sigaction is a valid value to fill in.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: as above.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: both pointers are valid; the handler only does async-signal-safe work.
            if unsafe { libc::sigaction(sig, &action, &mut old) } == 0 {
                prev.store(old.sa_sigaction, Ordering::Relaxed);
                prev_flags.store(old.sa_flags as usize, Ordering::Relaxed);
            } else {
                log::warn!(target: "fibra_rt::overflow",
                    "could not install the stack-overflow handler: {}",
                    std::io::Error::last_os_error());
            }
        }
    });
    ensure_altstack();
}

fn ensure_altstack() {
    if ALTSTACK_READY.with(Cell::get) {
        return;
    }
    // SAFETY: an all-zero stack_t is a valid value to fill in.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries the current one.
    let queried = unsafe { libc::sigaltstack(ptr::null(), &mut old) } == 0;
    if queried && old.ss_flags & libc::SS_DISABLE != 0 {
        let size = 64 * 1024;
        // SAFETY: an anonymous private mapping with no address hint.
        let mem = unsafe {
            libc::mmap(
                ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem != libc::MAP_FAILED {
            let stack = libc::stack_t {
                ss_sp: mem,
                ss_flags: 0,
                ss_size: size,
            };
            // SAFETY: `stack` describes a mapping this thread keeps for the rest of its life.
            unsafe { libc::sigaltstack(&stack, ptr::null_mut()) };
        }
    }
    ALTSTACK_READY.with(|c| c.set(true));
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let current = CURRENT.try_with(Cell::get).unwrap_or(ptr::null());
    if !current.is_null() {
        // SAFETY: the schedule clears CURRENT before the guard it points to can move or drop.
        let guard = unsafe { &*current };
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        if addr >= guard.limit && addr < guard.limit + page {
            report(guard);
            // SAFETY: abort is async-signal-safe.
            unsafe { libc::abort() };
        }
    }
    let (prev, flags) = if sig == libc::SIGBUS {
        (&PREV_BUS, &PREV_BUS_FLAGS)
    } else {
        (&PREV_SEGV, &PREV_SEGV_FLAGS)
    };
    let prev = prev.load(Ordering::Relaxed);
    let flags = flags.load(Ordering::Relaxed) as libc::c_int;
    if prev == libc::SIG_DFL || prev == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction runs again and the
        // process dies as it would have without fibra.
        // SAFETY: an all-zero sigaction with SIG_DFL is valid; sigaction is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &action, ptr::null_mut());
        }
    } else if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO the previous handler has this signature.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev) };
        handler(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler takes only the signal number.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev) };
        handler(sig);
    }
}

/// Writes the report with `write(2)` only: no allocation, no locks.
fn report(guard: &Guard) {
    let mut buf = [0u8; 640];
    let mut w = Writer {
        buf: &mut buf,
        len: 0,
    };
    w.put(b"\nfibra: tasklet #");
    w.num(guard.id.key as usize);
    w.put(b".");
    w.num(guard.id.seq as usize);
    if guard.name_len > 0 {
        w.put(b" `");
        // SAFETY: `name`/`name_len` describe the tasklet's name, alive while it runs.
        w.put(unsafe { std::slice::from_raw_parts(guard.name, guard.name_len.min(200)) });
        w.put(b"`");
    }
    w.put(b" overflowed its stack of ");
    w.num(guard.size);
    w.put(
        b" bytes.\nfibra: give it a bigger stack: SpawnOptions::stack_size for this tasklet, \
            or Builder::stack_size for every tasklet of the schedule (Schedule::builder(); \
            fibra::schedule_with(builder) for the standard plugins, block_on's tasklet \
            included).\n",
    );
    let len = w.len;
    // SAFETY: writing an initialized buffer to stderr.
    unsafe { libc::write(2, buf.as_ptr().cast(), len) };
    let (note, note_len) = NOTE.try_with(Cell::get).unwrap_or((ptr::null(), 0));
    if !note.is_null() {
        // SAFETY: a `'static` str set by `set_overflow_note`.
        unsafe { libc::write(2, note.cast(), note_len) };
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn num(&mut self, mut n: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }
}
