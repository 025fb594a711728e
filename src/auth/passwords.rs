//! Password hashing with Argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1).

use std::sync::{Arc, Mutex};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::SaltString,
};
use tokio::sync::{
    mpsc::{self, error::TrySendError},
    oneshot,
};

use crate::error::Error;

type Job = Box<dyn FnOnce() + Send>;

/// How many jobs may wait for each hashing thread. A hash takes 15–30 ms on two
/// cores, so a full queue is served within about a second; past that a client is
/// better told to come back than kept waiting behind a storm it cannot see.
const QUEUE_PER_THREAD: usize = 32;

/// What a refused job tells the client to wait, in seconds: about the time the
/// queue takes to drain.
const RETRY_AFTER_SECS: u64 = 1;

/// Hashes and verifies passwords on a few dedicated threads, so a login storm
/// queues here instead of stalling every other request. The queue is bounded:
/// past [`QUEUE_PER_THREAD`] waiting jobs per thread, a job is refused at once with
/// [`Error::Overloaded`] rather than queued. Dedicated rather than
/// tokio's blocking pool: each thread that ever hashed keeps its 19 MiB in its
/// allocator arena, and the blocking pool would spread that over many threads.
#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
    /// Verified against when the email is unknown, so both answers take as long.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal(e.to_string()))?;
    argon2()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("hashing: {e}")))
}

impl Passwords {
    /// `concurrency`: how many hashes may run at once (the number of cores is right).
    pub fn new(concurrency: usize) -> Result<Self, Error> {
        let threads = concurrency.max(1);
        let (jobs, queue) = mpsc::channel::<Job>(threads * QUEUE_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        // Ends when every `Passwords` (every sender) is gone.
                        let job = queue
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => break,
                        }
                    }
                })
                .map_err(|e| Error::internal(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(Self {
            jobs,
            dummy_hash: hash_blocking(b"doorman dummy password for unknown users")?.into(),
        })
    }

    /// Hashes a new password; [`Error::Overloaded`] when too many jobs wait.
    pub async fn hash(&self, password: String) -> Result<String, Error> {
        self.run(move || hash_blocking(password.as_bytes())).await?
    }

    /// Checks `password` against `hash`; with no hash (unknown user) it checks a
    /// dummy and answers `false`, taking the same time. [`Error::Overloaded`] when
    /// too many jobs wait.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Error> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = self
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        argon2()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && ok)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        // Keep the caller's span so the hashing thread's log lines still carry the
        // request id.
        let span = tracing::Span::current();
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(span.in_scope(work));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("password hashing queue is full: answering overloaded");
                return Err(Error::Overloaded {
                    retry_after_secs: RETRY_AFTER_SECS,
                });
            }
            Err(TrySendError::Closed(_)) => {
                return Err(Error::internal("password hashing threads are gone"));
            }
        }
        result
            .await
            .map_err(|_| Error::internal("a password hashing job was dropped"))
    }
}
