//! Measuring: a latency histogram, and a server process's CPU, memory and descriptors read
//! from `/proc`.

/// Latencies in microseconds, in buckets 10 µs wide up to 1 s (100,000 buckets) plus an
/// overflow count: bounded memory for any run length, percentiles within 10 µs.
pub(crate) struct Histogram {
    buckets: Vec<u64>,
    over: u64,
    count: u64,
    max_us: u64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 100_000;

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram {
            buckets: vec![0; BUCKETS],
            over: 0,
            count: 0,
            max_us: 0,
        }
    }

    pub(crate) fn record(&mut self, us: u64) {
        self.count += 1;
        self.max_us = self.max_us.max(us);
        match self.buckets.get_mut((us / BUCKET_US) as usize) {
            Some(b) => *b += 1,
            None => self.over += 1,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The latency under which a fraction `p` of the samples fall (bucket's upper edge).
    pub(crate) fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return ((i as u64 + 1) * BUCKET_US).min(self.max_us);
            }
        }
        self.max_us
    }
}

/// CPU seconds (user + system) the process has used, from `/proc/PID/stat`.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// Resident memory of the process in KiB (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Open file descriptors of the process (entries of `/proc/PID/fd`).
pub(crate) fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The server's CPU over a window: read at its start and end.
pub(crate) struct CpuWindow {
    pid: Option<u32>,
    start: Option<f64>,
}

impl CpuWindow {
    pub(crate) fn new(pid: Option<u32>) -> CpuWindow {
        CpuWindow { pid, start: None }
    }

    pub(crate) fn open(&mut self) {
        self.start = self.pid.and_then(cpu_seconds);
    }

    /// CPU seconds used since [`open`](Self::open).
    pub(crate) fn used(&self) -> Option<f64> {
        Some(cpu_seconds(self.pid?)? - self.start?)
    }
}

/// A JSON number, or `null`.
pub(crate) fn json_f64(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "null".to_owned(),
    }
}

/// Spawns a tasklet that reads the server's CPU time at `from` and at `to`; the cell holds
/// the CPU seconds used in between once `to` has passed (`None` without a PID).
pub(crate) fn cpu_between(
    schedule: &mut fibra::Schedule,
    pid: Option<u32>,
    from: std::time::Instant,
    to: std::time::Instant,
) -> Result<std::rc::Rc<std::cell::Cell<Option<f64>>>, fibra::Error> {
    use fibra::tasks::TasksExt;
    let used = std::rc::Rc::new(std::cell::Cell::new(None));
    let out = used.clone();
    let mut cpu = CpuWindow::new(pid);
    schedule.spawn(move |h| {
        h.sleep_until(from);
        cpu.open();
        h.sleep_until(to);
        out.set(cpu.used());
    })?;
    Ok(used)
}
