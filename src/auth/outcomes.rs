//! `doorman_authentications_total`: every credential presented, counted by where it
//! came from and how its check ended — refusals before any token is read (a
//! malformed `Authorization` header, a malformed or doubled cookie, a cookie from a
//! foreign Origin) as much as tokens and sessions that do not hold.
//!
//! Every series is registered when the recorder is installed ([`register`]), so
//! the family is there from the start with zeros (an alert on it sees a value, not
//! nothing), and counting is an index into a table of handles and an atomic add:
//! no key built, hashed or allocated per request.

use std::sync::OnceLock;

use metrics::Counter;

use super::{AuthError, CredentialSource, Error};

const NAME: &str = "doorman_authentications_total";

/// The sources, in the order of their discriminants (the table's rows).
const SOURCES: [CredentialSource; 3] = [
    CredentialSource::Bearer,
    CredentialSource::Cookie,
    CredentialSource::Message,
];

/// Every outcome (the table's columns): `ok`, then each refusal's code.
const OUTCOMES: [&str; 7] = [
    "ok",
    "invalid_token",
    "session_revoked",
    "session_expired",
    "origin_refused",
    "database_unavailable",
    "internal_error",
];

type Table = [[Counter; OUTCOMES.len()]; SOURCES.len()];

static COUNTERS: OnceLock<Table> = OnceLock::new();

/// Describes the family and registers every series at 0 with the recorder just
/// installed (`telemetry::install`). A host that installs its own recorder gets
/// the series at the first credential (the handles are taken from the recorder
/// installed then; none installed, nothing is counted, as with the facade).
pub fn register() {
    metrics::describe_counter!(
        NAME,
        "credentials presented, by source (bearer: the Authorization header, cookie, message) and outcome (ok or the refusal's code)"
    );
    counters();
}

fn counters() -> &'static Table {
    COUNTERS.get_or_init(|| {
        SOURCES.map(|source| {
            OUTCOMES.map(|outcome| {
                metrics::counter!(NAME, "source" => source.as_str(), "outcome" => outcome)
            })
        })
    })
}

/// Counts one credential from `source` and how its check ended.
pub(super) fn count(source: CredentialSource, result: Result<(), &Error>) {
    let outcome = match result {
        Ok(()) => 0,
        Err(Error::Auth(e)) => refusal(*e),
        Err(Error::DatabaseUnavailable(_)) => 5,
        Err(_) => 6,
    };
    counters()[source as usize][outcome].increment(1);
}

/// Counts a credential refused before its token was checked.
pub(super) fn refused(source: CredentialSource, e: AuthError) {
    counters()[source as usize][refusal(e)].increment(1);
}

/// The column of a refusal. A credential check ends in the first four; the
/// others (codes of logins and refreshes) would be a bug here, counted as a
/// token that does not hold.
fn refusal(e: AuthError) -> usize {
    match e {
        // A blocked account's sessions were revoked by the block.
        AuthError::SessionRevoked | AuthError::AccountBlocked => 2,
        AuthError::SessionExpired => 3,
        AuthError::OriginRefused => 4,
        AuthError::InvalidToken
        | AuthError::MissingCredentials
        | AuthError::InvalidCredentials
        | AuthError::InvalidRefreshToken
        | AuthError::RefreshTokenReused => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_indexed_as_it_is_labelled() {
        for (i, source) in SOURCES.iter().enumerate() {
            assert_eq!(*source as usize, i);
        }
        for e in [
            AuthError::InvalidToken,
            AuthError::SessionRevoked,
            AuthError::SessionExpired,
            AuthError::OriginRefused,
        ] {
            assert_eq!(OUTCOMES[refusal(e)], e.code());
        }
    }
}
