//! Which session ids a run sent and which were acknowledged: what `--verify` checks.

/// How many session ids a run owns: `[base, base + SESSION_SPAN)`.
pub const SESSION_SPAN: u64 = 1 << 32;

/// Which session ids a run sent and which were acknowledged.
///
/// Worker `w` of `n` sends its `k`-th distinct logout with session id `base + k * n + w`, so
/// workers never share an id and need no lock.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub base: u64,
    lanes: Vec<Lane>,
}

/// The session ids of one worker, lane `lane` of `lanes`: its `k`-th distinct logout gets
/// `base + k * lanes + lane`. The one place that scheme is written ([`Ledger`] inverts it).
#[derive(Debug, Clone, Copy)]
pub(super) struct LaneIds {
    pub base: u64,
    pub lanes: u64,
    pub lane: u64,
}

impl LaneIds {
    pub(super) fn session_id(self, k: u64) -> u64 {
        self.base + k * self.lanes + self.lane
    }
}

/// One worker's part of the ledger.
#[derive(Debug, Clone, Default)]
pub(super) struct Lane {
    /// Distinct logouts generated: `k` in `0..generated` were sent.
    pub generated: u64,
    /// Bit `k`: logout `k` got a 2xx.
    acked: Vec<u64>,
}

impl Lane {
    pub(super) fn ack(&mut self, k: u64) {
        let (word, bit) = ((k / 64) as usize, k % 64);
        if word >= self.acked.len() {
            self.acked.resize(word + 1, 0);
        }
        self.acked[word] |= 1 << bit;
    }

    fn is_acked(&self, k: u64) -> bool {
        self.acked
            .get((k / 64) as usize)
            .is_some_and(|w| w & (1 << (k % 64)) != 0)
    }
}

impl Ledger {
    /// The ledger of a run whose worker `w` filled `lanes[w]`.
    pub(super) fn new(base: u64, lanes: Vec<Lane>) -> Self {
        Self { base, lanes }
    }

    /// The session id of worker `lane`'s `k`-th logout.
    pub fn session_id(&self, lane: usize, k: u64) -> u64 {
        LaneIds {
            base: self.base,
            lanes: self.lanes.len() as u64,
            lane: lane as u64,
        }
        .session_id(k)
    }

    /// Lane and index of a session id of this run's range, if it is one.
    fn locate(&self, session_id: u64) -> Option<(usize, u64)> {
        let offset = session_id.checked_sub(self.base)?;
        (offset < SESSION_SPAN).then(|| {
            let n = self.lanes.len() as u64;
            ((offset % n) as usize, offset / n)
        })
    }

    pub(crate) fn was_sent(&self, session_id: u64) -> bool {
        self.locate(session_id)
            .is_some_and(|(lane, k)| k < self.lanes[lane].generated)
    }

    pub(crate) fn was_acknowledged(&self, session_id: u64) -> bool {
        self.locate(session_id)
            .is_some_and(|(lane, k)| self.lanes[lane].is_acked(k))
    }

    pub fn unique_sent(&self) -> u64 {
        self.lanes.iter().map(|l| l.generated).sum()
    }

    pub fn acknowledged_unique(&self) -> u64 {
        self.lanes
            .iter()
            .flat_map(|l| &l.acked)
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// Session ids of every acknowledged logout.
    pub fn acknowledged(&self) -> impl Iterator<Item = u64> + '_ {
        self.lanes.iter().enumerate().flat_map(move |(lane, l)| {
            (0..l.generated)
                .filter(|&k| l.is_acked(k))
                .map(move |k| self.session_id(lane, k))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_maps_session_ids_to_lanes() {
        let mut lanes = vec![Lane::default(), Lane::default(), Lane::default()];
        lanes[1].generated = 3;
        lanes[1].ack(0);
        lanes[1].ack(2);
        lanes[2].generated = 70;
        lanes[2].ack(69);
        let ledger = Ledger { base: 100, lanes };
        assert_eq!(ledger.session_id(1, 2), 107);
        assert!(ledger.was_acknowledged(101) && ledger.was_acknowledged(107));
        assert!(ledger.was_sent(104) && !ledger.was_acknowledged(104));
        assert!(!ledger.was_sent(100) && !ledger.was_sent(99) && !ledger.was_sent(110));
        assert_eq!(ledger.acknowledged_unique(), 3);
        assert_eq!(ledger.unique_sent(), 73);
        let acked: Vec<u64> = ledger.acknowledged().collect();
        assert_eq!(acked, vec![101, 107, 100 + 69 * 3 + 2]);
    }
}
