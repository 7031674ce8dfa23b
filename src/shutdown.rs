//! Stopping an instance in order. When it is told to stop, it takes no new connections and
//! every WebSocket goes away (close 1001) once its running operations have answered; when the
//! sockets are gone, the timers and loops of the instance end, a round of work already started
//! finishing first, so that nothing is cut off halfway before the pool closes.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

#[derive(Clone, Default)]
pub struct Shutdown {
    going_away: CancellationToken,
    stopped: CancellationToken,
    sockets: TaskTracker,
    tasks: TaskTracker,
}

impl Shutdown {
    /// Counts an open WebSocket until the returned token drops; `None` once the instance is
    /// going away.
    pub fn socket(&self) -> Option<TaskTrackerToken> {
        (!self.going_away.is_cancelled()).then(|| self.sockets.token())
    }

    /// Resolves once the instance has been told to stop.
    pub async fn going_away(&self) {
        self.going_away.cancelled().await;
    }

    /// Tells the sockets to go.
    pub fn begin(&self) {
        self.going_away.cancel();
        self.sockets.close();
    }

    /// Resolves when every socket has closed (after [`Self::begin`]).
    pub async fn sockets_closed(&self) {
        self.sockets.wait().await;
    }

    /// WebSockets still open.
    pub fn open_sockets(&self) -> usize {
        self.sockets.len()
    }

    /// Runs `work` after `delay`, unless the instance stops first.
    pub fn after(&self, delay: Duration, work: impl Future<Output = ()> + Send + 'static) {
        let stopped = self.stopped.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                biased;
                () = stopped.cancelled() => {}
                () = tokio::time::sleep(delay) => work.await,
            }
        });
    }

    /// Runs `round` now and then every `period` (later if a round runs long) until the
    /// instance stops.
    pub fn every<F, R>(&self, period: Duration, mut round: F)
    where
        F: FnMut() -> R + Send + 'static,
        R: Future<Output = ()> + Send + 'static,
    {
        let stopped = self.stopped.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = stopped.cancelled() => return,
                    _ = tick.tick() => round().await,
                }
            }
        });
    }

    /// Ends the timers and loops started with [`Self::after`] and [`Self::every`]; resolves
    /// when none is running.
    pub async fn stop_tasks(&self) {
        self.stopped.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
