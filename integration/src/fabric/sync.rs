//! Keeps a fabric in step with the model in the background, so addresses
//! EC2 hands out (through the vpc-sim server) show up on the wire without
//! the test calling `reconcile` itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use vpc_cni_cloud::sim::SimVpc;

use super::Fabric;

/// Reconciles every `period` until dropped (or the fabric is gone).
pub struct Follower {
    stop: Arc<AtomicBool>,
    last_error: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Fabric {
    /// Starts following `sim`: one reconcile now (its error is returned),
    /// then one every `period` on a background thread.
    pub fn follow(self: &Arc<Self>, sim: SimVpc, period: Duration) -> std::io::Result<Follower> {
        self.reconcile(&sim.fabric_view())?;
        let stop = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(None));
        let fabric: Weak<Fabric> = Arc::downgrade(self);
        let thread = {
            let stop = Arc::clone(&stop);
            let last_error = Arc::clone(&last_error);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(fabric) = fabric.upgrade() else {
                        return;
                    };
                    let outcome = fabric.reconcile(&sim.fabric_view());
                    drop(fabric);
                    if let Ok(mut slot) = last_error.lock() {
                        *slot = outcome.err().map(|e| e.to_string());
                    }
                    std::thread::sleep(period);
                }
            })
        };
        Ok(Follower {
            stop,
            last_error,
            thread: Some(thread),
        })
    }
}

impl Follower {
    /// The latest background reconcile's error, if it failed.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
