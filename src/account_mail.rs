//! The account flows that go out by mail, between the auth core (which issues and
//! spends the tokens) and the mailer (which sends the links): a verification link
//! for a signed-in user, a new one for an unverified user who logs in while
//! verification is required, and a password-reset link for an address.
//!
//! A password-reset request does its database work here, in the background, not in
//! the request: the request answers 202 after the same few steps whether or not
//! the address has an account, so neither its answer nor its timing tells.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::{
    auth::{Auth, Email, Error, UserId},
    mail::{Mailer, QueueFull},
};

/// Background requests waiting; past it, requests answer 503 `overloaded`.
const JOBS: usize = 1000;
/// What a caller refused for a full queue is told to wait.
const RETRY_AFTER_SECS: u64 = 5;

/// What the background task does for an address.
enum Job {
    /// Mail a password-reset link if the address has an account.
    Reset(Email),
    /// Mail a new verification link if the address has an unverified account.
    Verify(Email),
}

/// The mail flows; cheap to clone.
#[derive(Clone)]
pub(crate) struct AccountMail {
    auth: Arc<Auth>,
    mailer: Mailer,
    jobs: mpsc::Sender<Job>,
}

impl From<QueueFull> for Error {
    fn from(_: QueueFull) -> Self {
        Error::Overloaded {
            retry_after_secs: RETRY_AFTER_SECS,
        }
    }
}

impl AccountMail {
    /// The flows, and the task that works through address requests one by one.
    pub(crate) fn start(auth: Arc<Auth>, mailer: Mailer) -> Self {
        let (jobs, mut rx) = mpsc::channel(JOBS);
        let flows = Self { auth, mailer, jobs };
        let worker = flows.clone();
        // The task holds a sender too; it ends with the runtime.
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                worker.run(job).await;
            }
        });
        flows
    }

    async fn run(&self, job: Job) {
        let (kind, found) = match job {
            Job::Reset(email) => ("password_reset", self.auth.reset_token(&email).await),
            Job::Verify(email) => (
                "verify_email",
                self.auth.verification_token_for(&email).await,
            ),
        };
        match found {
            Ok(Some(mail)) => {
                if self.mailer.send(mail).is_err() {
                    tracing::warn!(kind, "link not mailed: the mail queue is full");
                }
            }
            // No such account (or nothing to verify): nothing to send, nothing to say.
            Ok(None) => tracing::debug!(kind, "no account to mail a link to"),
            Err(e) => tracing::warn!(kind, error = %e, "link not mailed"),
        }
    }

    /// Mails a verification link to the signed-in user's address.
    /// `AlreadyVerified` when there is nothing to verify.
    pub(crate) async fn send_verification(&self, user: UserId) -> Result<(), Error> {
        let mail = self.auth.verification_token(user).await?;
        self.mailer.send(mail)?;
        Ok(())
    }

    /// Mails a new verification link to `email` if its account is unverified (a
    /// login refused with `email_unverified`), in the background.
    pub(crate) fn resend_verification(&self, email: Email) {
        if self.jobs.try_send(Job::Verify(email)).is_err() {
            tracing::warn!(kind = "verify_email", "link not mailed: the queue is full");
        }
    }

    /// Mails a password-reset link to `email` if it has an account, in the
    /// background. Refused (`Overloaded`) only when the queue is full, whatever
    /// the address.
    pub(crate) fn request_reset(&self, email: Email) -> Result<(), Error> {
        self.jobs.try_send(Job::Reset(email)).map_err(|_| {
            tracing::warn!(
                kind = "password_reset",
                "request refused: the queue is full"
            );
            Error::from(QueueFull)
        })
    }
}
