//! CPU time of the processes a benchmark runs, from `/proc/<pid>/stat` (user + system, with
//! the waited-for children's time for PostgreSQL's postmaster, so that a backend that exits
//! during a run still counts). Linux only; elsewhere the figures are absent, not wrong.

use std::path::Path;
use std::time::Duration;

/// Which processes to account for.
#[derive(Debug, Clone, Default)]
pub(super) struct Processes {
    /// `zegolog serve`.
    pub zegolog: Option<u32>,
    /// PostgreSQL's postmaster: it and every process whose parent it is.
    pub postmaster: Option<u32>,
    /// The load generator: this process.
    pub loader: bool,
}

/// CPU time per role: used so far ([`Processes::sample`]), or between two samples
/// ([`Times::until`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Times {
    pub zegolog: Option<Duration>,
    pub postgres: Option<Duration>,
    pub loader: Option<Duration>,
}

impl Processes {
    pub(super) fn sample(&self) -> Times {
        Times {
            zegolog: self.zegolog.and_then(|pid| stat(pid).map(|s| s.own)),
            postgres: self.postmaster.and_then(tree_time),
            loader: self
                .loader
                .then(|| stat(std::process::id()).map(|s| s.own))
                .flatten(),
        }
    }
}

impl Times {
    pub(super) fn until(self, later: Times) -> Times {
        let diff = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
        Times {
            zegolog: diff(self.zegolog, later.zegolog),
            postgres: diff(self.postgres, later.postgres),
            loader: diff(self.loader, later.loader),
        }
    }
}

/// The postmaster of the PostgreSQL whose data directory is `data_dir`, if it runs here.
pub(super) fn postmaster_of(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    stat(pid).map(|_| pid)
}

struct Stat {
    parent: u32,
    /// utime + stime.
    own: Duration,
    /// cutime + cstime: children waited for.
    children: Duration,
}

fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, is in parentheses and may hold spaces: fields after it.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let ticks = ticks_per_sec();
    let time = |t: u64| Duration::from_micros(t * 1_000_000 / ticks);
    Some(Stat {
        parent: u32::try_from(field(4)?).ok()?,
        own: time(field(14)? + field(15)?),
        children: time(field(16)? + field(17)?),
    })
}

/// The postmaster's time, its waited children's, and every live child's.
fn tree_time(postmaster: u32) -> Option<Duration> {
    let root = stat(postmaster)?;
    let mut total = root.own + root.children;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(child) = stat(pid).filter(|s| s.parent == postmaster) {
            total += child.own;
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_stat_and_uses_cpu() {
        let me = stat(std::process::id()).expect("/proc/self/stat");
        assert!(me.parent > 0);
        let before = Processes {
            loader: true,
            ..Processes::default()
        };
        let first = before.sample();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = first.until(before.sample()).loader.unwrap();
        assert!(used >= Duration::from_millis(50), "{used:?}");
    }
}
