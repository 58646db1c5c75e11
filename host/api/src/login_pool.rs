//! Password checks run on a few threads of their own. argon2 takes 19 MiB a
//! check, and the allocator keeps each thread's peak heap: spread over the
//! blocking pool's many threads, a flood of logins grew the host by hundreds
//! of MiB that were never given back. A fixed pool with a bounded queue
//! bounds both the checks at once and the memory they hold.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Checks run at once (argon2 is CPU-bound: more threads than a small
/// host's cores only add heaps), and checks that may wait for a thread.
pub const THREADS: usize = 2;
pub const QUEUE: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("every password check is busy and {QUEUE} are waiting")]
pub struct Busy;

pub struct LoginPool {
    jobs: SyncSender<Job>,
}

impl LoginPool {
    pub fn new() -> std::io::Result<Self> {
        let (jobs, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool was dropped
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Run `f` on the pool; `Busy` when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.jobs.try_send(Box::new(move || {
            let _ = tx.send(f());
        })) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(Busy),
        }
        rx.await.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn jobs_run_on_the_pool_and_answer() {
        let pool = super::LoginPool::new().unwrap();
        assert_eq!(pool.run(|| 41 + 1).await.unwrap(), 42);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("password-"));
    }
}
