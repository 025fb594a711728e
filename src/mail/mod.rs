//! Mail: the links of email verification and password reset, sent through SMTP
//! (`DOORMAN_SMTP_URL`) or written to a development outbox (`DOORMAN_MAIL_DIR`, one
//! `.eml` file per message). Sending never blocks a request: [`Mailer::send`] puts
//! the message on a bounded queue that a task empties, retrying each message with
//! backoff a bounded number of times. Log lines name a message by its kind and id,
//! never by its address, link or token.
//!
//! `letters`: what the messages say; `transport`: where they go.

mod letters;
mod transport;

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

pub(crate) use transport::Transport;

use crate::auth::Mailable;

/// Messages waiting to be sent; past it, [`Mailer::send`] refuses (the request
/// answers 503 `overloaded`, whoever it is for).
const QUEUE: usize = 1000;
/// Messages being delivered at once (each may be waiting between retries).
const IN_FLIGHT: usize = 8;
/// Tries per message: the first and seven retries, about two minutes in all.
const ATTEMPTS: u32 = 8;
/// The wait before the first retry; it doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The `kind` label of `doorman_mail_total` (and of log lines about mail).
pub(crate) const KINDS: &[&str] = &["verify_email", "password_reset"];
/// The `outcome` label of `doorman_mail_total`.
pub(crate) const OUTCOMES: &[&str] = &["sent", "failed", "refused"];

/// Where mail goes and who sends it, from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct MailSettings {
    /// `smtp://…` or `smtps://…` (it may carry a password: never logged).
    pub smtp_url: Option<String>,
    /// The development outbox, used when there is no SMTP URL.
    pub outbox: PathBuf,
    /// The `From:` mailbox, e.g. `doorman <noreply@example.org>`.
    pub from: String,
    /// The public URL: the links point at its demo page.
    pub public_url: String,
}

/// The queue is full: mail is going out slower than it is asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueFull;

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub(crate) struct Mailer {
    queue: mpsc::Sender<Outgoing>,
    letters: Arc<letters::Letters>,
}

/// A message on its way.
struct Outgoing {
    id: Uuid,
    kind: &'static str,
    message: lettre::Message,
}

impl Mailer {
    /// The mailer, and the task that sends what it is given. Fails (a
    /// configuration error, said in one line) on an SMTP URL or sender that cannot
    /// be used.
    pub(crate) fn start(settings: &MailSettings) -> Result<Self, String> {
        let letters = letters::Letters::new(&settings.from, &settings.public_url)?;
        let transport = Transport::new(settings, letters.host())?;
        tracing::info!(mail = %transport.describe(), "mail");
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver_all(rx, Arc::new(transport)));
        Ok(Self {
            queue,
            letters: Arc::new(letters),
        })
    }

    /// Queues the link `mail` carries for its address. Returns at once; a message
    /// that cannot be written for this address is logged and dropped.
    pub(crate) fn send(&self, mail: Mailable) -> Result<(), QueueFull> {
        let id = Uuid::now_v7();
        let kind = mail.purpose.as_str();
        let message = match self.letters.write(&mail, id) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(mail_id = %id, kind, reason = e, "mail not sent: cannot write it");
                return Ok(());
            }
        };
        self.queue
            .try_send(Outgoing { id, kind, message })
            .map_err(|_| {
                tracing::warn!(mail_id = %id, kind, "mail queue full: message refused");
                metrics::counter!("doorman_mail_total", "kind" => kind, "outcome" => "refused")
                    .increment(1);
                QueueFull
            })?;
        tracing::debug!(mail_id = %id, kind, "mail queued");
        Ok(())
    }
}

/// Empties the queue, a few messages at a time.
async fn deliver_all(mut rx: mpsc::Receiver<Outgoing>, transport: Arc<Transport>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(outgoing) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let transport = transport.clone();
        tokio::spawn(async move {
            deliver(&transport, outgoing).await;
            drop(slot);
        });
    }
}

/// Sends one message, retrying with backoff; a refusal the server calls permanent
/// is not retried.
async fn deliver(transport: &Transport, outgoing: Outgoing) {
    let Outgoing { id, kind, message } = outgoing;
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match transport.send(&message, id).await {
            Ok(()) => {
                tracing::info!(mail_id = %id, kind, attempt, "mail sent");
                metrics::counter!("doorman_mail_total", "kind" => kind, "outcome" => "sent")
                    .increment(1);
                return;
            }
            Err(failure) if failure.permanent || attempt == ATTEMPTS => {
                tracing::error!(
                    mail_id = %id,
                    kind,
                    attempt,
                    failure = %failure,
                    "mail given up"
                );
                metrics::counter!("doorman_mail_total", "kind" => kind, "outcome" => "failed")
                    .increment(1);
                return;
            }
            Err(failure) => {
                tracing::warn!(
                    mail_id = %id,
                    kind,
                    attempt,
                    failure = %failure,
                    retry_in_s = backoff.as_secs(),
                    "mail not sent yet; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::auth::Purpose;

    #[test]
    fn every_purpose_is_a_kind_of_the_mail_metric() {
        for purpose in [Purpose::VerifyEmail, Purpose::PasswordReset] {
            assert!(super::KINDS.contains(&purpose.as_str()), "{purpose:?}");
        }
    }
}
