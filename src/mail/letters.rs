//! What the messages say: a verification link and a password-reset link, each
//! pointing at the public URL's demo page with the token in the URL fragment
//! (`/#verify-email=…`, `/#reset-password=…`). A fragment never leaves the browser:
//! no server log, proxy or `Referer` header sees the token.

use lettre::{
    Message,
    message::{
        Body, Mailbox,
        header::{ContentTransferEncoding, ContentType},
    },
};
use uuid::Uuid;

use crate::auth::{Mailable, Purpose};

/// The sender and the site the links point at.
pub(super) struct Letters {
    from: Mailbox,
    public_url: String,
    host: String,
}

impl Letters {
    pub(super) fn new(from: &str, public_url: &str) -> Result<Self, String> {
        let from: Mailbox = from.parse().map_err(|_| {
            format!("DOORMAN_MAIL_FROM: `{from}` is not a mailbox (`name@example.org` or `Name <name@example.org>`)")
        })?;
        let host = url::Url::parse(public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned());
        Ok(Self {
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
            host,
        })
    }

    /// The public URL's host: the domain of message ids, the name in `EHLO`.
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    /// The message carrying `mail`'s link; `id` becomes its `Message-ID`.
    pub(super) fn write(&self, mail: &Mailable, id: Uuid) -> Result<Message, &'static str> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| "the address is not one SMTP can carry")?;
        let site = &self.public_url;
        let (subject, body) = match mail.purpose {
            Purpose::VerifyEmail => {
                let link = format!("{site}/#verify-email={}", mail.token);
                (
                    format!("Confirm your email address at {}", self.host),
                    format!(
                        "Hello {name},\r\n\r\n\
                         open this link to confirm that this is your address:\r\n\r\n\
                         {link}\r\n\r\n\
                         The link works once, for 24 hours. If you did not sign up at {site}, \
                         ignore this message.\r\n",
                        name = mail.display_name,
                    ),
                )
            }
            Purpose::PasswordReset => {
                let link = format!("{site}/#reset-password={}", mail.token);
                (
                    format!("Reset your password at {}", self.host),
                    format!(
                        "Hello {name},\r\n\r\n\
                         someone asked to reset the password of your account at {site}. To \
                         choose a new password, open this link:\r\n\r\n\
                         {link}\r\n\r\n\
                         The link works once, for 30 minutes, and signs you out on every \
                         device. If you did not ask for it, ignore this message: your password \
                         stays as it is.\r\n",
                        name = mail.display_name,
                    ),
                )
            }
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{id}@{}>", self.host)))
            .header(ContentType::TEXT_PLAIN)
            .body(plain(body))
            .map_err(|_| "the message could not be built")
    }
}

/// The body as 7-bit text when it is ASCII (the usual case: only a display name
/// can be anything else), so the link stays on one line, copyable from the raw
/// message; otherwise as lettre chooses (quoted-printable or base64).
fn plain(body: String) -> Body {
    match Body::new_with_encoding(body, ContentTransferEncoding::SevenBit) {
        Ok(body) => body,
        Err(bytes) => Body::new(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(purpose: Purpose) -> Mailable {
        Mailable {
            purpose,
            to: "ann@example.org".into(),
            display_name: "Ann".into(),
            token: "TOKEN-abc_123".into(),
        }
    }

    #[test]
    fn the_link_carries_the_token_in_the_fragment() {
        let letters =
            Letters::new("doorman <noreply@example.org>", "https://auth.example.org").unwrap();
        for (purpose, link) in [
            (
                Purpose::VerifyEmail,
                "https://auth.example.org/#verify-email=TOKEN-abc_123",
            ),
            (
                Purpose::PasswordReset,
                "https://auth.example.org/#reset-password=TOKEN-abc_123",
            ),
        ] {
            let raw = letters
                .write(&mail(purpose), Uuid::nil())
                .unwrap()
                .formatted();
            let text = String::from_utf8(raw).unwrap();
            // Quoted-printable may fold the line and writes `=` as `=3D`.
            let text = text.replace("=\r\n", "").replace("=3D", "=");
            assert!(text.contains(link), "{text}");
            assert!(
                text.contains(
                    "Message-ID: <00000000-0000-0000-0000-000000000000@auth.example.org>"
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn a_sender_that_is_no_mailbox_is_refused_at_start() {
        assert!(Letters::new("not a mailbox", "http://127.0.0.1:8080").is_err());
        assert!(Letters::new("doorman <noreply@localhost>", "http://127.0.0.1:8080").is_ok());
    }
}
