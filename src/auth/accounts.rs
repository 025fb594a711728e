//! Accounts: input rules for email, password and display name, and the user rows.

use entity::user;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
    sea_query::Expr,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Error, db::Db};
use super::{Passwords, UserId};

/// An account as the core hands it out: never the password hash.
#[derive(Debug, Clone)]
pub struct User {
    /// The account's id.
    pub id: UserId,
    /// The login email, trimmed and lower-cased.
    pub email: String,
    /// The name shown to others (default: the email's local part).
    pub display_name: String,
    /// When the account was registered.
    pub created_at: OffsetDateTime,
    /// When the user proved they read mail at `email` (a verification or
    /// password-reset link); `None` until then.
    pub email_verified_at: Option<OffsetDateTime>,
}

impl From<&user::Model> for User {
    fn from(m: &user::Model) -> Self {
        Self {
            id: UserId(m.id),
            email: m.email.clone(),
            display_name: m.display_name.clone(),
            created_at: m.created_at,
            email_verified_at: m.email_verified_at,
        }
    }
}

/// A normalised email address: trimmed and lower-cased, so `A@X.org` and
/// `a@x.org ` are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises `raw`; `invalid_input` unless it looks like `local@domain.tld`
    /// (at most 254 characters as sent).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let invalid = || Error::Invalid("email must look like name@example.org".into());
        let trimmed = raw.trim();
        // The length counts what was sent, as the spec's `maxLength` does.
        if trimmed.is_empty() || raw.chars().count() > 254 {
            return Err(invalid());
        }
        let email = trimmed.to_lowercase();
        // The specials of RFC 5322 refused (quoted local parts, comments, angle
        // brackets, domain literals): mail software reads `"victim"@example.org` or
        // `<victim@example.org>` as `victim@example.org`, so they would make
        // several accounts, and several mail budgets, of one mailbox (outside
        // attack, two rounds).
        const SPECIALS: &[char] = &['"', '\\', '<', '>', '(', ')', '[', ']', ',', ';', ':'];
        if email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || SPECIALS.contains(&c))
        {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(invalid());
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password: 8 to 128 characters (not bytes), any Unicode, never truncated.
pub struct Password(String);

impl Password {
    /// The fewest characters a password may have.
    pub const MIN_CHARS: usize = 8;
    /// The most characters a password may have.
    pub const MAX_CHARS: usize = 128;

    /// `raw` unchanged, or `invalid_input` when its length is out of bounds.
    pub fn parse(raw: String) -> Result<Self, Error> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(Error::Invalid(format!(
                "password must be {} to {} characters",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            )));
        }
        Ok(Self(raw))
    }

    /// The password as given.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// A display name: 1 to 64 characters after trimming, no control characters.
#[derive(Debug, Clone)]
pub struct DisplayName(String);

impl DisplayName {
    /// `raw` trimmed, or `invalid_input` when it breaks the rule above.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let name = raw.trim();
        // The length counts what was sent, as the spec's `maxLength` does.
        if name.is_empty() || raw.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "display_name must be 1 to 64 characters without control characters".into(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The default: the email's local part.
    pub fn from_email(email: &Email) -> Self {
        let local = email.as_str().split('@').next().unwrap_or_default();
        Self(local.chars().take(64).collect())
    }
}

/// Creates a user; `EmailTaken` when the normalised email exists.
pub async fn register(
    db: &Db,
    passwords: &Passwords,
    email: Email,
    password: Password,
    display_name: DisplayName,
) -> Result<user::Model, Error> {
    if find_by_email(db, &email).await?.is_some() {
        return Err(Error::EmailTaken);
    }
    let hash = passwords.hash(password.into_inner()).await?;
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.0),
        display_name: Set(display_name.0),
        password_hash: Set(hash),
        created_at: Set(now()),
        email_verified_at: Set(None),
        // The admin flag and the block keep their column defaults (off).
        ..Default::default()
    };
    // Two concurrent registrations both pass the check above; the unique index
    // decides, and the loser gets the same 409.
    model.insert(db).await.map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Error::EmailTaken,
        _ => e.into(),
    })
}

/// What a password check found.
pub enum Checked {
    /// The account, with the right password.
    Valid(user::Model),
    /// An account exists, the password is wrong (its owner sees it in their activity).
    WrongPassword(Uuid),
    /// No such account.
    Unknown,
}

/// Checks an email and password, in about the same time for an unknown email and
/// a wrong password; callers answer both with the same `InvalidCredentials`.
pub async fn authenticate(
    db: &Db,
    passwords: &Passwords,
    email: &str,
    password: String,
) -> Result<Checked, Error> {
    let user = match Email::parse(email) {
        Ok(email) => find_by_email(db, &email).await?,
        Err(_) => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let valid = passwords.verify(password, hash).await?;
    Ok(match user {
        Some(user) if valid => Checked::Valid(user),
        Some(user) => Checked::WrongPassword(user.id),
        None => Checked::Unknown,
    })
}

/// Whether `password` is the user's (`false` for an unknown user).
pub async fn check_password(
    db: &Db,
    passwords: &Passwords,
    user: Uuid,
    password: String,
) -> Result<bool, Error> {
    let hash = find(db, user).await?.map(|u| u.password_hash);
    let known = hash.is_some();
    // A missing user still costs one hash: the answer takes as long either way.
    Ok(passwords.verify(password, hash).await? && known)
}

/// Checks a signed-in user's current password, then stores the new one's hash.
/// `false` (nothing changed) for a wrong current password.
pub async fn change_password(
    db: &Db,
    passwords: &Passwords,
    user: Uuid,
    current: String,
    new: Password,
) -> Result<bool, Error> {
    let Some(verified) = find(db, user).await?.map(|u| u.password_hash) else {
        return Ok(false);
    };
    if !passwords.verify(current, Some(verified.clone())).await? {
        return Ok(false);
    }
    let hash = passwords.hash(new.into_inner()).await?;
    // Only over the hash just verified: a password reset (or another change) that
    // landed while this one hashed wins, and this one fails as a wrong current
    // password (it is one now), instead of overwriting it (outside attack).
    let changed = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Id.eq(user))
        .filter(user::Column::PasswordHash.eq(verified))
        .exec(db)
        .await?
        .rows_affected;
    Ok(changed == 1)
}

/// Records that the user read mail at their address (kept if already recorded).
pub async fn mark_verified(
    conn: &impl ConnectionTrait,
    user: Uuid,
    at: OffsetDateTime,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(at))
        .filter(user::Column::Id.eq(user))
        .filter(user::Column::EmailVerifiedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Replaces `user`'s password hash with `hash`, only if it is still the one
/// `user` holds; the address counts as verified too (a reset link was read
/// there). `false` when the password changed in between.
pub async fn replace_password(
    conn: &impl ConnectionTrait,
    user: &user::Model,
    hash: String,
    at: OffsetDateTime,
) -> Result<bool, DbErr> {
    let replaced = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Id.eq(user.id))
        .filter(user::Column::PasswordHash.eq(user.password_hash.as_str()))
        .exec(conn)
        .await?;
    if replaced.rows_affected != 1 {
        return Ok(false);
    }
    mark_verified(conn, user.id, at).await?;
    Ok(true)
}

pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<user::Model>, Error> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?)
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<user::Model>, Error> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ann@Example.ORG ").unwrap().as_str(),
            "ann@example.org"
        );
    }

    #[test]
    fn email_without_at_or_domain_dot_is_refused() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.org",
            "ann@example",
            "a b@example.org",
            "a@b@c.org",
            // Quoted local parts: one mailbox, several accounts (outside attack).
            "\"ann\"@example.org",
            "\"a\\nn\"@example.org",
            "a\\nn@example.org",
            "<ann@example.org>",
            "ann(x)@example.org",
            "ann@[127.0.0.1]",
            "a,nn@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn password_length_counts_characters_not_bytes() {
        assert!(Password::parse("ééééééé".into()).is_err()); // 7 chars, 14 bytes
        assert!(Password::parse("éééééééé".into()).is_ok()); // 8 chars
        assert!(Password::parse("x".repeat(128)).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn display_name_refuses_control_characters_and_empty() {
        assert!(DisplayName::parse("  ").is_err());
        assert!(DisplayName::parse("a\nb").is_err());
        assert_eq!(DisplayName::parse(" Ann ").unwrap().0, "Ann");
    }
}
