//! The second factors an account holds, in the database: a TOTP authenticator
//! (pending until a first code confirms it) and its ten single-use recovery codes.
//! Every check here is one conditional write, so of two requests presenting the
//! same code exactly one wins: a TOTP step is accepted once (`last_step` only
//! moves forward), a recovery code is spent once (`used_at`).

use entity::{recovery_code, totp_factor};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Set, sea_query::Expr,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Error, UserId, accounts::now, db::Db, totp};

/// How many recovery codes a confirmation gives.
pub(crate) const RECOVERY_CODES: usize = 10;

/// Whether the account has a confirmed TOTP factor.
pub(crate) async fn totp_on(db: &impl ConnectionTrait, user: UserId) -> Result<bool, Error> {
    Ok(totp_factor::Entity::find_by_id(user.0)
        .filter(totp_factor::Column::ConfirmedAt.is_not_null())
        .one(db)
        .await?
        .is_some())
}

/// Starts a TOTP enrolment: a new secret, pending until confirmed. A pending one
/// is replaced; a confirmed one must be removed first (`None`).
pub(crate) async fn begin_totp(db: &Db, user: UserId) -> Result<Option<String>, Error> {
    let secret = totp::new_secret()?;
    let now = now();
    let stored = db
        .transaction(async |txn| {
            let existing = totp_factor::Entity::find_by_id(user.0).one(txn).await?;
            match existing {
                Some(f) if f.confirmed_at.is_some() => return Ok(false),
                Some(_) => {
                    totp_factor::Entity::delete_by_id(user.0).exec(txn).await?;
                }
                None => {}
            }
            totp_factor::ActiveModel {
                user_id: Set(user.0),
                secret: Set(secret.clone()),
                created_at: Set(now),
                confirmed_at: Set(None),
                last_step: Set(None),
            }
            .insert(txn)
            .await?;
            Ok(true)
        })
        .await?;
    Ok(stored.then_some(secret))
}

/// Confirms a pending enrolment with its first code; returns the recovery codes
/// (shown once), or `None` for a wrong code, nothing pending, or a factor
/// confirmed already.
pub(crate) async fn confirm_totp(
    db: &Db,
    user: UserId,
    code: &str,
    at_aal2: bool,
) -> Result<Option<Vec<String>>, Error> {
    let Some(pending) = totp_factor::Entity::find_by_id(user.0)
        .filter(totp_factor::Column::ConfirmedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(step) = totp::matching_step(&pending.secret, code, now().unix_timestamp()) else {
        return Ok(None);
    };
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| new_recovery_code())
        .collect::<Result<_, _>>()?;
    let now = now();
    let confirmed = db
        .transaction(async |txn| {
            // Against a factor added meanwhile by another session (a passkey): a
            // session below aal2 may not add one to an account that has one.
            lock_account(txn, user).await?;
            if !at_aal2 && has_factor_in(txn, user).await? {
                return Ok(false);
            }
            let updated = totp_factor::Entity::update_many()
                .col_expr(totp_factor::Column::ConfirmedAt, Expr::value(now))
                .col_expr(totp_factor::Column::LastStep, Expr::value(step))
                .filter(totp_factor::Column::UserId.eq(user.0))
                .filter(totp_factor::Column::Secret.eq(pending.secret.as_str()))
                .filter(totp_factor::Column::ConfirmedAt.is_null())
                .exec(txn)
                .await?;
            if updated.rows_affected != 1 {
                return Ok(false);
            }
            recovery_code::Entity::delete_many()
                .filter(recovery_code::Column::UserId.eq(user.0))
                .exec(txn)
                .await?;
            for code in &codes {
                let id = Uuid::new_v4();
                recovery_code::ActiveModel {
                    id: Set(id),
                    user_id: Set(user.0),
                    code_hash: Set(recovery_hash(id, code)),
                    used_at: Set(None),
                }
                .insert(txn)
                .await?;
            }
            Ok(true)
        })
        .await?;
    Ok(confirmed.then_some(codes))
}

/// Holds the user's row until the transaction ends (PostgreSQL `FOR UPDATE`;
/// SQLite writes one transaction at a time): the changes to one account's factors
/// happen one after another, so each sees the others' result.
pub(crate) async fn lock_account(txn: &impl ConnectionTrait, user: UserId) -> Result<(), DbErr> {
    entity::user::Entity::find_by_id(user.0)
        .lock_exclusive()
        .one(txn)
        .await?;
    Ok(())
}

/// Whether the account has a confirmed TOTP factor or a passkey, as `txn` sees it.
pub(crate) async fn has_factor_in(txn: &impl ConnectionTrait, user: UserId) -> Result<bool, DbErr> {
    use sea_orm::PaginatorTrait;
    let totp = totp_factor::Entity::find_by_id(user.0)
        .filter(totp_factor::Column::ConfirmedAt.is_not_null())
        .count(txn)
        .await?;
    let passkeys = entity::passkey::Entity::find()
        .filter(entity::passkey::Column::UserId.eq(user.0))
        .count(txn)
        .await?;
    Ok(totp + passkeys > 0)
}

/// Whether a TOTP enrolment waits for its first code.
pub(crate) async fn totp_pending(db: &Db, user: UserId) -> Result<bool, Error> {
    Ok(totp_factor::Entity::find_by_id(user.0)
        .filter(totp_factor::Column::ConfirmedAt.is_null())
        .one(db)
        .await?
        .is_some())
}

/// Removes the TOTP factor and its recovery codes; `false` if there was none
/// confirmed (a pending enrolment goes too).
pub(crate) async fn remove_totp(db: &Db, user: UserId) -> Result<bool, Error> {
    Ok(db
        .transaction(async |txn| {
            let confirmed = totp_factor::Entity::find_by_id(user.0)
                .one(txn)
                .await?
                .is_some_and(|f| f.confirmed_at.is_some());
            totp_factor::Entity::delete_by_id(user.0).exec(txn).await?;
            recovery_code::Entity::delete_many()
                .filter(recovery_code::Column::UserId.eq(user.0))
                .exec(txn)
                .await?;
            Ok(confirmed)
        })
        .await?)
}

/// Checks a TOTP code of the confirmed factor and spends its step: `true` once per
/// step (a replayed code, even within its 30 s, is `false`).
pub(crate) async fn check_totp(db: &Db, user: UserId, code: &str) -> Result<bool, Error> {
    let Some(factor) = totp_factor::Entity::find_by_id(user.0)
        .filter(totp_factor::Column::ConfirmedAt.is_not_null())
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let Some(step) = totp::matching_step(&factor.secret, code, now().unix_timestamp()) else {
        return Ok(false);
    };
    // Only forward: a code of this step or an earlier one was used already.
    let spent = totp_factor::Entity::update_many()
        .col_expr(totp_factor::Column::LastStep, Expr::value(step))
        .filter(totp_factor::Column::UserId.eq(user.0))
        .filter(totp_factor::Column::Secret.eq(factor.secret.as_str()))
        .filter(
            sea_orm::Condition::any()
                .add(totp_factor::Column::LastStep.is_null())
                .add(totp_factor::Column::LastStep.lt(step)),
        )
        .exec(db)
        .await?;
    Ok(spent.rows_affected == 1)
}

/// Checks a recovery code and spends it: its row's id once per code, `None`
/// for a code that is wrong or spent.
pub(crate) async fn use_recovery_code(
    db: &Db,
    user: UserId,
    code: &str,
) -> Result<Option<Uuid>, Error> {
    let Some(code) = normalise_recovery_code(code) else {
        return Ok(None);
    };
    let unused = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user.0))
        .filter(recovery_code::Column::UsedAt.is_null())
        .all(db)
        .await?;
    // Each row's hash is salted with its id: compare against every unused one.
    let Some(row) = unused.into_iter().find(|r| {
        let hash = recovery_hash(r.id, &code);
        bool::from(subtle::ConstantTimeEq::ct_eq(
            hash.as_bytes(),
            r.code_hash.as_bytes(),
        ))
    }) else {
        return Ok(None);
    };
    let spent = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(now()))
        .filter(recovery_code::Column::Id.eq(row.id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok((spent.rows_affected == 1).then_some(row.id))
}

/// Gives a spent recovery code back: it was spent for a step that then did not
/// happen (another request finished the same login first).
pub(crate) async fn unspend_recovery_code(db: &Db, id: Uuid) -> Result<(), Error> {
    recovery_code::Entity::update_many()
        .col_expr(
            recovery_code::Column::UsedAt,
            Expr::value(Option::<time::OffsetDateTime>::None),
        )
        .filter(recovery_code::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// How many unused recovery codes the account has left.
pub(crate) async fn recovery_codes_left(db: &Db, user: UserId) -> Result<u64, Error> {
    use sea_orm::PaginatorTrait;
    Ok(recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user.0))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(db)
        .await?)
}

/// The alphabet of recovery codes: lowercase letters and digits without the
/// look-alikes 0/o and 1/l (RFC 4648's base32 alphabet, lowercased, has none).
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A new recovery code: 16 characters of a 32-letter alphabet (80 bits), shown
/// as `xxxx-xxxx-xxxx-xxxx`. 80 bits: a stolen table of salted SHA-256 hashes
/// stays unguessable offline.
fn new_recovery_code() -> Result<String, Error> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| Error::caused("no randomness", e))?;
    let mut out = String::with_capacity(19);
    for (i, b) in raw.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(b & 31)]));
    }
    Ok(out)
}

/// A recovery code as typed (any case, dashes or spaces anywhere), as its 16
/// characters; `None` if it cannot be one.
fn normalise_recovery_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == 16 && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// Hex SHA-256 of a code, salted with its row's id.
fn recovery_hash(id: Uuid, code: &str) -> String {
    let normalised = normalise_recovery_code(code).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(b"doorman recovery code v1\0");
    h.update(id.as_bytes());
    h.update(normalised.as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_read_back_however_typed() {
        let code = new_recovery_code().unwrap();
        assert_eq!(code.len(), 19);
        let id = Uuid::new_v4();
        let hash = recovery_hash(id, &code);
        for typed in [code.clone(), code.to_uppercase(), code.replace('-', " ")] {
            assert_eq!(recovery_hash(id, &typed), hash);
        }
        assert_ne!(recovery_hash(Uuid::new_v4(), &code), hash);
        assert_eq!(normalise_recovery_code("too-short"), None);
        assert_eq!(normalise_recovery_code("0000-0000-0000-0000"), None);
    }
}
