//! The health of the links towards the neighbours: each retries with exponential
//! back-off and jitter, and a circuit per neighbour stops dialling a dead peer for a
//! while after repeated failures ([`LinkHealth`]); [`Links`] holds every link's state for
//! operators.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use lienthong_core::{NodeId, UnixMillis};

use crate::config::DeliveryConfig;

/// Where a link stands, for operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkPhase {
    /// Nothing to send; not connected.
    #[default]
    Idle,
    Up,
    /// Waiting to try again after a failure.
    Retrying,
    /// Circuit open: no attempt until the wait is over.
    Open,
    /// One trial connection after an open circuit.
    HalfOpen,
}

impl LinkPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPhase::Idle => "idle",
            LinkPhase::Up => "up",
            LinkPhase::Retrying => "retrying",
            LinkPhase::Open => "open",
            LinkPhase::HalfOpen => "half-open",
        }
    }
}

/// One link's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    pub phase: LinkPhase,
    pub consecutive_failures: u32,
    /// When the next attempt is due, while retrying or open.
    pub retry_at: Option<UnixMillis>,
    pub last_error: String,
}

/// The state of every link of a node, written by the link workers.
#[derive(Debug, Default)]
pub struct Links {
    states: Mutex<HashMap<NodeId, LinkStatus>>,
}

impl Links {
    /// Records a failure of the link towards `hop` in `health` and in the link's state
    /// for operators; returns how long to wait and the phase the link is in.
    pub fn failed(
        &self,
        hop: &NodeId,
        health: &mut LinkHealth,
        error: &str,
    ) -> (std::time::Duration, LinkPhase) {
        let (wait, phase) = health.failed();
        let failures = health.failures();
        self.set(hop, |s| {
            s.phase = phase;
            s.consecutive_failures = failures;
            s.retry_at = Some(lienthong_core::now_millis() + wait.as_millis() as i64);
            s.last_error = error.to_string();
        });
        (wait, phase)
    }

    pub fn set(&self, hop: &NodeId, update: impl FnOnce(&mut LinkStatus)) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        update(states.entry(hop.clone()).or_default());
    }

    pub fn get(&self, hop: &NodeId) -> LinkStatus {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.get(hop).cloned().unwrap_or_default()
    }

    /// Every link, sorted by neighbour.
    pub fn all(&self) -> Vec<(NodeId, LinkStatus)> {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = states.iter().map(|(h, s)| (h.clone(), s.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The retry policy of one link: after the `n`th failure in a row it waits
/// `retry_min · 2ⁿ⁻¹` (at most `retry_max`), jittered down by up to half so that links
/// failing together do not retry together; after `circuit_failures` failures in a row the
/// circuit opens for `circuit_open_ms`, then one trial connection decides.
#[derive(Debug)]
pub struct LinkHealth {
    config: DeliveryConfig,
    failures: u32,
}

impl LinkHealth {
    pub fn new(config: DeliveryConfig) -> Self {
        LinkHealth {
            config,
            failures: 0,
        }
    }

    /// The link delivered something: the next failure starts the back-off afresh.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// A connection attempt or a connection failed: how long to wait, and in which phase.
    pub fn failed(&mut self) -> (Duration, LinkPhase) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.config.circuit_failures {
            return (
                Duration::from_millis(self.config.circuit_open_ms),
                LinkPhase::Open,
            );
        }
        let exp = self.failures.saturating_sub(1).min(30);
        let full = self
            .config
            .retry_min_ms
            .saturating_mul(1u64 << exp)
            .min(self.config.retry_max_ms);
        let jittered = full - random_below(full / 2 + 1);
        (Duration::from_millis(jittered), LinkPhase::Retrying)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the next attempt is the trial of an open circuit.
    pub fn circuit_open(&self) -> bool {
        self.failures >= self.config.circuit_failures
    }
}

/// A random number below `bound` (0 when `bound` is 0), from the system's generator.
fn random_below(bound: u64) -> u64 {
    use ring::rand::SecureRandom;
    if bound == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return bound / 2;
    }
    u64::from_le_bytes(bytes) % bound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DeliveryConfig {
        DeliveryConfig {
            retry_min_ms: 100,
            retry_max_ms: 1_000,
            circuit_failures: 6,
            circuit_open_ms: 30_000,
            ..DeliveryConfig::default()
        }
    }

    #[test]
    fn back_off_doubles_with_jitter_up_to_the_cap_then_the_circuit_opens() {
        let mut health = LinkHealth::new(config());
        // Full delays 100, 200, 400, 800, 1000 (capped); jitter takes off at most half.
        for full in [100u64, 200, 400, 800, 1_000] {
            let (wait, phase) = health.failed();
            assert_eq!(phase, LinkPhase::Retrying);
            let ms = wait.as_millis() as u64;
            assert!(
                ms <= full && ms >= full / 2,
                "{ms} ms for a full delay of {full}"
            );
        }
        assert!(!health.circuit_open());
        let (wait, phase) = health.failed();
        assert_eq!(
            (wait, phase),
            (Duration::from_millis(30_000), LinkPhase::Open)
        );
        assert!(health.circuit_open());
        // The trial after the open period fails: the circuit stays open.
        assert_eq!(health.failed().1, LinkPhase::Open);
        // A link that delivered starts afresh.
        health.succeeded();
        assert!(!health.circuit_open());
        let (wait, phase) = health.failed();
        assert_eq!(phase, LinkPhase::Retrying);
        assert!(wait <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut waits = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut health = LinkHealth::new(config());
            health.failed();
            health.failed();
            health.failed();
            waits.insert(health.failed().0);
        }
        assert!(
            waits.len() > 10,
            "50 links failing together retry at {} moments",
            waits.len()
        );
    }
}
