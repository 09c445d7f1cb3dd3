//! Repeated measurements of one thing and the figures the table shows.

use std::time::Duration;

/// Repeated measurements (seconds, or counts) of one (tool, workload, size,
/// phase).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    secs: Vec<f64>,
}

impl Samples {
    pub fn new() -> Self {
        Samples::default()
    }

    pub fn push(&mut self, d: Duration) {
        self.secs.push(d.as_secs_f64());
    }

    /// A sample that is not a time (round trips per host).
    pub fn push_value(&mut self, v: f64) {
        self.secs.push(v);
    }

    pub fn len(&self) -> usize {
        self.secs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secs.is_empty()
    }

    pub fn values(&self) -> &[f64] {
        &self.secs
    }

    pub fn min(&self) -> Option<f64> {
        self.secs.iter().copied().reduce(f64::min)
    }

    /// Middle value; the mean of the two middle ones for an even count.
    pub fn median(&self) -> Option<f64> {
        if self.secs.is_empty() {
            return None;
        }
        let mut v = self.secs.clone();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        })
    }
}

impl FromIterator<f64> for Samples {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        Samples {
            secs: iter.into_iter().collect(),
        }
    }
}

/// How many times slower the peer is: `peer / ours`. `None` when either
/// side has no sample or ours took no measurable time.
pub fn ratio(peer: Option<f64>, ours: Option<f64>) -> Option<f64> {
    match (peer, ours) {
        (Some(p), Some(o)) if o > 0.0 => Some(p / o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_and_median_odd_and_even() {
        let s: Samples = [3.0, 1.0, 2.0].into_iter().collect();
        assert_eq!(s.min(), Some(1.0));
        assert_eq!(s.median(), Some(2.0));
        let s: Samples = [4.0, 1.0, 3.0, 2.0].into_iter().collect();
        assert_eq!(s.median(), Some(2.5));
        assert_eq!(Samples::new().median(), None);
        assert_eq!(Samples::new().min(), None);
    }

    #[test]
    fn push_keeps_seconds() {
        let mut s = Samples::new();
        s.push(Duration::from_millis(1500));
        assert_eq!(s.values(), &[1.5]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn ratio_is_peer_over_ours() {
        assert_eq!(ratio(Some(30.0), Some(3.0)), Some(10.0));
        assert_eq!(ratio(Some(30.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }
}
