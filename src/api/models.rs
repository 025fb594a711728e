//! The JSON shapes of the HTTP API, as the spec shows them.

use crate::auth::{SessionId, SessionSummary};
use poem_openapi::{Enum, Object, Union};
use time::OffsetDateTime;
use uuid::Uuid;

use super::text::{Secret, Text};

/// An account.
#[derive(Debug, Clone, Object)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub created_at: OffsetDateTime,
    /// When the user opened a verification link (or a password-reset link) mailed
    /// to `email`; `null` until then.
    #[oai(nullable)]
    pub email_verified_at: Option<OffsetDateTime>,
}

impl From<crate::auth::User> for User {
    fn from(u: crate::auth::User) -> Self {
        Self {
            id: u.id.0,
            email: u.email,
            display_name: u.display_name,
            created_at: u.created_at,
            email_verified_at: u.email_verified_at,
        }
    }
}

#[derive(Object)]
pub struct RegisterRequest {
    /// `local@domain.tld`: one `@`, a dot inside the domain, no whitespace, control
    /// characters or any of `"\<>()[],;:`. (Quoted, commented or bracketed forms
    /// would name another account's mailbox.) Trimmed and lower-cased before the
    /// uniqueness check.
    #[oai(validator(
        max_length = 254,
        pattern = r#"^\s*[^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:]+@[^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:.][^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:]*\.[^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:]*[^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:.]\s*$"#
    ))]
    pub email: Text,
    /// 8 to 128 characters, any Unicode, used as given (never trimmed or truncated).
    #[oai(validator(min_length = 8, max_length = 128))]
    pub password: Secret,
    /// 1 to 64 characters with at least one that is not a space, no control
    /// characters; defaults to the email's local part (also when `null`).
    #[oai(
        nullable,
        validator(
            max_length = 64,
            pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
        )
    )]
    pub display_name: Option<Text>,
}

/// How a login or refresh hands out its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
#[oai(rename_all = "lowercase")]
pub enum LoginMode {
    /// Tokens in the response body, for `Authorization: Bearer`.
    #[default]
    Token,
    /// HttpOnly cookies; no token in the body.
    Cookie,
}

impl LoginMode {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMode::Token => "token",
            LoginMode::Cookie => "cookie",
        }
    }
}

#[derive(Object)]
pub struct LoginRequest {
    #[oai(validator(max_length = 254))]
    pub email: Text,
    #[oai(validator(max_length = 512))]
    pub password: Secret,
    /// `token` (default, also when `null`) or `cookie`.
    #[oai(nullable)]
    pub mode: Option<LoginMode>,
}

#[derive(Object)]
pub struct RefreshRequest {
    /// The refresh token (token mode). Leave it out to use the refresh cookie
    /// (cookie mode); `null` counts as left out.
    #[oai(nullable, validator(max_length = 1024))]
    pub refresh_token: Option<Secret>,
}

/// Credentials handed out in token mode.
#[derive(Object)]
pub struct TokenPair {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// An opaque, single-use token for `POST /api/auth/refresh`.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    pub session_id: Uuid,
    pub user: User,
}

/// What cookie mode returns: the credentials are in `Set-Cookie`, not here.
#[derive(Object)]
pub struct CookieSession {
    /// Seconds until the access cookie expires.
    pub expires_in: u64,
    /// Seconds until the refresh cookie expires.
    pub refresh_expires_in: u64,
    pub session_id: Uuid,
    pub user: User,
}

/// The result of a login or refresh: a `TokenPair` in token mode, a
/// `CookieSession` in cookie mode, told apart by `mode`.
#[derive(Union)]
#[oai(discriminator_name = "mode")]
pub enum Credentials {
    #[oai(mapping = "token")]
    Token(TokenPair),
    #[oai(mapping = "cookie")]
    Cookie(CookieSession),
}

/// Where the caller's credential came from.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum AuthSourceName {
    Bearer,
    Cookie,
    Message,
}

impl From<crate::auth::CredentialSource> for AuthSourceName {
    fn from(s: crate::auth::CredentialSource) -> Self {
        use crate::auth::CredentialSource;
        match s {
            CredentialSource::Bearer => Self::Bearer,
            CredentialSource::Cookie => Self::Cookie,
            CredentialSource::Message => Self::Message,
        }
    }
}

/// The caller.
#[derive(Object)]
pub struct Me {
    pub user: User,
    pub session_id: Uuid,
    pub auth_source: AuthSourceName,
    /// The session's assurance level: `aal2` after a second factor or a passkey.
    pub aal: AalName,
    /// How the session's user authenticated: `pwd`, `otp`, `recovery_code`,
    /// `webauthn`.
    pub amr: Vec<String>,
    /// The session's last authentication (login or `POST /api/auth/reauth`); the
    /// sensitive operations need it within `DOORMAN_STEP_UP_SECONDS`.
    pub auth_at: OffsetDateTime,
}

/// An authenticator assurance level.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum AalName {
    /// One factor (a password).
    Aal1,
    /// Two factors, or a passkey.
    Aal2,
}

impl From<crate::auth::assurance::Aal> for AalName {
    fn from(a: crate::auth::assurance::Aal) -> Self {
        match a {
            crate::auth::assurance::Aal::Aal1 => Self::Aal1,
            crate::auth::assurance::Aal::Aal2 => Self::Aal2,
        }
    }
}

/// A login whose password was right, waiting for its second factor.
#[derive(Object)]
pub struct MfaChallengeBody {
    /// The factors that can finish the login (`totp`); a recovery code always can.
    pub mfa_required: Vec<String>,
    /// Send it to `POST /api/auth/login/mfa` with a code, within `expires_in`.
    pub mfa_token: String,
    /// Seconds the second step stays open.
    pub expires_in: u64,
}

/// The second step of a login: the `mfa_token` and `code` or `recovery_code` (when
/// both are sent, `code` is used; with neither, 401 `invalid_code`).
#[derive(Object)]
pub struct MfaLoginRequest {
    #[oai(validator(max_length = 128))]
    pub mfa_token: Secret,
    /// The 6-digit code of the authenticator app.
    #[oai(validator(max_length = 16))]
    pub code: Option<Secret>,
    /// One of the recovery codes (each works once), as `xxxx-xxxx-xxxx-xxxx`.
    #[oai(validator(max_length = 64))]
    pub recovery_code: Option<Secret>,
}

/// A re-authentication with one of `credential` (a passkey), `code`,
/// `recovery_code` and `password`: when several are sent, the first of them in
/// this order is used; with none, 401 `invalid_credentials`. A password alone is
/// refused with `mfa_required` when the account has a second factor.
#[derive(Object)]
pub struct ReauthRequest {
    #[oai(validator(max_length = 512))]
    pub password: Option<Secret>,
    /// The 6-digit code of the authenticator app.
    #[oai(validator(max_length = 16))]
    pub code: Option<Secret>,
    /// One of the recovery codes (each works once).
    #[oai(validator(max_length = 64))]
    pub recovery_code: Option<Secret>,
    /// A passkey's answer to options from `POST /api/auth/passkey/start`: the JSON
    /// of the browser's `PublicKeyCredential` (base64url binaries, as
    /// `credential.toJSON()` writes it).
    pub credential: Option<Credential>,
}

/// A new TOTP enrolment: add it to an authenticator app (the URI as a QR code, or
/// the secret typed), then confirm it with a first code.
#[derive(Object)]
pub struct TotpEnrolmentBody {
    /// The shared secret, base32 (RFC 4648, no padding): SHA-1, 6 digits, 30 s.
    pub secret: String,
    /// `otpauth://totp/…`: what authenticator apps read from a QR code.
    pub otpauth_uri: String,
    /// `otpauth_uri` as a QR code: an SVG document, to show as an image
    /// (`data:image/svg+xml,…`) for a phone to scan.
    pub qr_svg: String,
}

/// The first code of the app, confirming the enrolment.
#[derive(Object)]
pub struct TotpConfirmRequest {
    /// The 6-digit code of the authenticator app.
    #[oai(validator(max_length = 16))]
    pub code: Secret,
}

/// TOTP is on: keep these somewhere safe. Each signs in once in place of a code;
/// they are shown only now.
#[derive(Object)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// The caller's second factors.
#[derive(Object)]
pub struct FactorsBody {
    /// TOTP is on.
    pub totp: bool,
    /// Passkeys registered (`GET /api/me/passkeys` lists them).
    pub passkeys: u64,
    /// Whether this server can take passkeys at all: its public URL's host must be
    /// a domain name (an IP address cannot be a WebAuthn relying party).
    pub passkeys_available: bool,
    /// Recovery codes not used yet (0 without TOTP).
    pub recovery_codes_left: u64,
}

/// One of the caller's active sessions.
#[derive(Object)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    /// The absolute expiry.
    pub expires_at: OffsetDateTime,
    /// The session expires here unless used before.
    pub idle_expires_at: OffsetDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session of the request.
    pub current: bool,
    /// Open WebSockets of this session, on every instance.
    pub live_sockets: u64,
}

impl SessionInfo {
    pub fn new(s: SessionSummary, current: SessionId, live_sockets: usize) -> Self {
        Self {
            current: s.id == current,
            live_sockets: live_sockets as u64,
            id: s.id.0,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            idle_expires_at: s.idle_expires_at,
            user_agent: s.user_agent,
            ip: s.ip,
        }
    }
}

#[derive(Object)]
pub struct PublishRequest {
    /// The message text, 1 to 4096 characters.
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub body: Text,
}

#[derive(Object)]
pub struct Published {
    /// How many sockets on this instance received the message (with history on
    /// and PostgreSQL: how many were subscribed here when it was stored).
    pub delivered: u64,
    /// The message's place in the room (absent when the server keeps no history).
    #[oai(skip_serializing_if_is_none)]
    pub offset: Option<u64>,
    /// The epoch `offset` counts in.
    #[oai(skip_serializing_if_is_none)]
    pub epoch: Option<String>,
}

/// A page of a room's history.
#[derive(Object)]
pub struct HistoryPage {
    pub room: String,
    /// The epoch the offsets count in (`""` before the room's first message).
    pub epoch: String,
    /// Oldest first.
    pub messages: Vec<HistoryMessage>,
    /// Pass as `after` for the next page; absent on the last.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<u64>,
}

/// A kept message: the fields of the WebSocket `message` frame.
#[derive(Object)]
pub struct HistoryMessage {
    pub id: Uuid,
    pub room: String,
    /// The sender's user id.
    pub from: Uuid,
    pub body: String,
    pub sent_at: OffsetDateTime,
    /// Its place in the room: 1, 2, 3, … within `epoch`.
    pub offset: u64,
    pub epoch: String,
}

#[derive(Object)]
pub struct Health {
    /// `ok`, or why not: `database_unavailable`, `shutting_down` (draining).
    pub status: String,
}

/// A public signing key (RFC 8037 OKP JWK).
#[derive(Object)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub alg: String,
    #[oai(rename = "use")]
    pub use_: String,
    pub kid: String,
    pub x: String,
}

/// The JWK Set of the keys that sign access tokens.
#[derive(Object)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Object)]
pub struct ChangePasswordRequest {
    #[oai(validator(max_length = 512))]
    pub current_password: Secret,
    /// 8 to 128 characters.
    #[oai(validator(min_length = 8, max_length = 128))]
    pub new_password: Secret,
}

#[derive(Object)]
pub struct PasswordResetRequest {
    /// The account's address, as at registration: a reset link is mailed there if
    /// it has an account (the answer is the same either way).
    #[oai(validator(
        max_length = 254,
        pattern = r#"^\s*[^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:]+@[^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:.][^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:]*\.[^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:]*[^@\s\x00-\x1F\x7F-\x9F"\\<>()\[\],;:.]\s*$"#
    ))]
    pub email: Text,
}

#[derive(Object)]
pub struct VerifyEmailRequest {
    /// The token of a verification link: what follows `#verify-email=` in it.
    #[oai(validator(max_length = 128, pattern = r"^[A-Za-z0-9_-]+$"))]
    pub token: Secret,
}

#[derive(Object)]
pub struct PasswordResetConfirmRequest {
    /// The token of a password-reset link: what follows `#reset-password=` in it.
    #[oai(validator(max_length = 128, pattern = r"^[A-Za-z0-9_-]+$"))]
    pub token: Secret,
    /// 8 to 128 characters.
    #[oai(validator(min_length = 8, max_length = 128))]
    pub new_password: Secret,
}

/// Something that happened to the account.
#[derive(Object)]
pub struct ActivityEvent {
    /// `login`, `login_failed`, `logout`, `session_revoked`, `refresh_reuse`,
    /// `password_changed`, `password_change_failed` (a wrong current password
    /// given to `POST /api/me/password`, with the session that gave it),
    /// `password_reset` (a new password from a mailed link; every session was
    /// revoked) or `email_verified`.
    pub kind: String,
    pub at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub session_id: Option<Uuid>,
}

impl From<crate::auth::activity::Event> for ActivityEvent {
    fn from(e: crate::auth::activity::Event) -> Self {
        Self {
            kind: e.kind,
            at: e.at,
            ip: e.ip,
            user_agent: e.user_agent,
            session_id: e.session_id,
        }
    }
}

/// The account's recent activity, newest first: at most 100 events besides failed
/// logins, and at most 20 failed logins.
#[derive(Object)]
pub struct Activity {
    pub events: Vec<ActivityEvent>,
}

#[derive(Object)]
pub struct CreateRoomRequest {
    /// `private:` followed by 1 to 64 of `A-Z a-z 0-9 _ - .`; any other name is
    /// 400 `invalid_input`.
    pub name: super::room_names::PrivateRoomParam,
    /// `true`: only sessions at aal2 (a second factor, or a passkey) may enter;
    /// an aal1 socket's `subscribe` gets `forbidden`, and a socket whose session
    /// drops to aal1 is unsubscribed with reason `mfa_required`. Creating one
    /// needs an aal2 session. Default (also when `null`) `false`.
    #[oai(nullable)]
    pub require_aal2: Option<bool>,
}

/// A private room.
#[derive(Object)]
pub struct Room {
    pub name: String,
    pub owner_id: Uuid,
    pub created_at: OffsetDateTime,
    /// Only sessions at aal2 may enter.
    pub require_aal2: bool,
}

impl From<crate::rooms::RoomInfo> for Room {
    fn from(r: crate::rooms::RoomInfo) -> Self {
        Self {
            name: r.name,
            owner_id: r.owner_id,
            created_at: r.created_at,
            require_aal2: r.require_aal2,
        }
    }
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum MemberRole {
    Owner,
    Member,
}

/// A member of a private room.
#[derive(Object)]
pub struct RoomMember {
    pub user_id: Uuid,
    pub display_name: String,
    pub role: MemberRole,
    pub added_at: OffsetDateTime,
}

impl From<crate::rooms::Member> for RoomMember {
    fn from(m: crate::rooms::Member) -> Self {
        Self {
            user_id: m.user_id,
            display_name: m.display_name,
            role: match m.role {
                crate::rooms::Role::Owner => MemberRole::Owner,
                crate::rooms::Role::Member => MemberRole::Member,
            },
            added_at: m.added_at,
        }
    }
}

/// A user present in a room.
#[derive(Object)]
pub struct PresentUser {
    pub user_id: Uuid,
    /// When their first socket joined.
    pub since: OffsetDateTime,
}

/// Who is in a room now, across instances.
#[derive(Object)]
pub struct Presence {
    pub room: String,
    pub users: Vec<PresentUser>,
}

/// A browser's WebAuthn answer as a JSON object (its fields are checked by the
/// ceremony, not by the schema).
pub type Credential = std::collections::HashMap<String, serde_json::Value>;

/// The JSON value of a [`Credential`].
pub fn credential_json(c: Credential) -> serde_json::Value {
    serde_json::Value::Object(c.into_iter().collect())
}

/// A passkey of the caller.
#[derive(Object)]
pub struct PasskeyBody {
    pub id: Uuid,
    /// The name given at registration.
    pub name: String,
    pub created_at: OffsetDateTime,
    /// When it last signed in or re-authenticated; `null` until then.
    #[oai(nullable)]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<crate::auth::PasskeyInfo> for PasskeyBody {
    fn from(p: crate::auth::PasskeyInfo) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// The end of a passkey registration.
#[derive(Object)]
pub struct PasskeyRegistrationRequest {
    /// The JSON of the browser's `PublicKeyCredential` from
    /// `navigator.credentials.create()` (base64url binaries, as
    /// `credential.toJSON()` writes it).
    pub credential: Credential,
    /// A name to tell it by: 1 to 64 characters (default `passkey`).
    #[oai(validator(max_length = 64))]
    pub name: Option<String>,
}

/// A sign-in with a passkey.
#[derive(Object)]
pub struct PasskeyLoginRequest {
    /// The JSON of the browser's `PublicKeyCredential` from
    /// `navigator.credentials.get()` with the options of `POST /api/auth/passkey/start`.
    pub credential: Credential,
    /// `token` (default, also when `null`) or `cookie`.
    #[oai(nullable)]
    pub mode: Option<LoginMode>,
}
