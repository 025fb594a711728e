//! Password hashing with Argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1).

mod hasher;
mod pages;

use std::{sync::Arc, time::Duration};

use flume::{RecvTimeoutError, TrySendError};
use tokio::sync::oneshot;

use super::Error;
use hasher::Hasher;

type Job = Box<dyn FnOnce(&mut Hasher) + Send>;

/// How many jobs may wait for each hashing thread. A hash takes 15–30 ms on two
/// cores, so a full queue is served within about a second; past that a client is
/// better told to come back than kept waiting behind a storm it cannot see.
const QUEUE_PER_THREAD: usize = 32;

/// What a refused job tells the client to wait, in seconds: about the time the
/// queue takes to drain.
const RETRY_AFTER_SECS: u64 = 1;

/// How long a hashing thread with nothing to do keeps its Argon2 memory: jobs that
/// follow each other closer than this (a storm, a sign-up and its login) reuse it;
/// the first job after a longer pause maps it again (a few milliseconds of page
/// faults on a 15–30 ms hash).
const LINGER: Duration = Duration::from_secs(1);

/// Hashes and verifies passwords on a few dedicated threads, so a login storm
/// queues here instead of stalling every other request. The queue is bounded:
/// past `QUEUE_PER_THREAD` waiting jobs per thread, a job is refused at once with
/// [`Error::Overloaded`] rather than queued.
///
/// Dedicated threads rather than tokio's blocking pool, and each with one Argon2
/// memory (m = 19 MiB) it reuses for every job while it has work and hands back to
/// the operating system after a second (`LINGER`) without one: the server's memory for
/// hashing is at most `threads × 19 MiB` however many passwords it checks, and
/// none while nobody logs in.
#[derive(Clone)]
pub struct Passwords {
    jobs: flume::Sender<Job>,
    /// Verified against when the email is unknown, so both answers take as long.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// `threads`: how many hashes may run at once, each thread holding the Argon2
    /// memory (19 MiB) while it has work.
    pub async fn new(threads: usize) -> Result<Self, Error> {
        let params = hasher::params()?;
        let threads = threads.max(1);
        tracing::info!(
            threads,
            memory_mib_each = params.m_cost() / 1024,
            "password hashing threads (each holds this Argon2 memory while it hashes)"
        );
        let (jobs, queue) = flume::bounded::<Job>(threads * QUEUE_PER_THREAD);
        for i in 0..threads {
            let queue = queue.clone();
            let mut hasher = Hasher::new(params.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match queue.recv_timeout(LINGER) {
                            Ok(job) => job,
                            // Idle: give the memory back, then wait as long as it takes.
                            Err(RecvTimeoutError::Timeout) => {
                                hasher.release();
                                match queue.recv() {
                                    Ok(job) => job,
                                    Err(_) => break,
                                }
                            }
                            // Every `Passwords` (every sender) is gone.
                            Err(RecvTimeoutError::Disconnected) => break,
                        };
                        job(&mut hasher);
                    }
                })
                .map_err(|e| Error::caused("cannot start a hashing thread", e))?;
        }
        // Made on a hashing thread, like every hash: hashed here, it would allocate
        // and free 19 MiB outside the threads' memory.
        let dummy_hash = run(&jobs, |hasher| {
            hasher.hash(b"doorman dummy password for unknown users")
        })
        .await??;
        Ok(Self {
            jobs,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// How many hashes wait for a thread.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// Hashes a new password; [`Error::Overloaded`] when too many jobs wait.
    pub async fn hash(&self, password: String) -> Result<String, Error> {
        run(&self.jobs, move |hasher| hasher.hash(password.as_bytes())).await?
    }

    /// Checks `password` against `hash`; with no hash (unknown user) it checks a
    /// dummy and answers `false`, taking the same time. [`Error::Overloaded`] when
    /// too many jobs wait.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Error> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = run(&self.jobs, move |hasher| {
            hasher.verify(password.as_bytes(), &hash)
        })
        .await?;
        Ok(known && ok)
    }
}

/// Queues `work` for a hashing thread and waits for its result, or refuses it at
/// once when the queue is full.
async fn run<T: Send + 'static>(
    jobs: &flume::Sender<Job>,
    work: impl FnOnce(&mut Hasher) -> T + Send + 'static,
) -> Result<T, Error> {
    // Keep the caller's span so the hashing thread's log lines still carry the
    // request id.
    let span = tracing::Span::current();
    let (done, result) = oneshot::channel();
    let job: Job = Box::new(move |hasher| {
        let running = metrics::gauge!("doorman_password_hashes_running");
        running.increment(1.0);
        let _ = done.send(span.in_scope(|| work(hasher)));
        running.decrement(1.0);
    });
    match jobs.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            tracing::warn!("password hashing queue is full: answering overloaded");
            return Err(Error::Overloaded {
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(Error::internal("password hashing threads are gone"));
        }
    }
    result
        .await
        .map_err(|_| Error::internal("a password hashing job was dropped"))
}
