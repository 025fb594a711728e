//! `doorman users …`: the admin operations from the command line, against the
//! server's database, for when no admin exists yet (or none can sign in).

use std::fmt::Write;

use crate::{
    auth::{
        SessionBus, SessionSettings,
        admin::{Account, Admin},
        db::Db,
    },
    config::{Config, UsersCommand},
};

use super::{Operations, Refused};

/// Runs one subcommand; returns what to print.
pub async fn run(
    config: &Config,
    db: Db,
    action: &UsersCommand,
) -> Result<String, Box<dyn std::error::Error>> {
    let bus = SessionBus::new();
    let ends = bus.subscribe();
    let settings = SessionSettings {
        absolute: config.session_ttl,
        idle: config.session_idle,
        refresh_grace: config.refresh_reuse_grace,
    };
    let ops = Operations::cli(Admin::offline(db, settings, bus), ends);
    let mut out = String::new();
    match action {
        UsersCommand::List { query, limit } => {
            out.push_str("id\temail\tdisplay_name\tadmin\tblocked\tcreated_at\n");
            let mut after = None;
            let mut left = *limit;
            while left > 0 {
                let (page, next) = ops
                    .admin()
                    .search(query.as_deref(), after, left.min(500))
                    .await?;
                left -= page.len() as u64;
                for a in &page {
                    row(&mut out, a);
                }
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        UsersCommand::Show { user } => {
            let a = find(&ops, user).await?;
            out.push_str("id\temail\tdisplay_name\tadmin\tblocked\tcreated_at\n");
            row(&mut out, &a);
            if let Some(reason) = &a.blocked_reason {
                let _ = writeln!(out, "blocked reason: {reason}");
            }
            let sessions = ops.admin().sessions(a.user.id).await?;
            let _ = writeln!(out, "{} active sessions", sessions.len());
            for s in sessions {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    s.id,
                    s.created_at,
                    s.ip.as_deref().unwrap_or("-"),
                    s.user_agent.as_deref().unwrap_or("-")
                );
            }
        }
        UsersCommand::Block { user, reason } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 500 {
                return Err("--reason: 1 to 500 characters".into());
            }
            let a = find(&ops, user).await?;
            let ended = ops.block(a.user.id, reason).await.map_err(message)?;
            let _ = writeln!(out, "blocked {}; ended {ended} sessions", a.user.email);
        }
        UsersCommand::Unblock { user } => {
            let a = find(&ops, user).await?;
            ops.unblock(a.user.id).await.map_err(message)?;
            let _ = writeln!(out, "unblocked {}", a.user.email);
        }
        UsersCommand::Delete { user } => {
            let a = find(&ops, user).await?;
            ops.delete(a.user.id).await.map_err(message)?;
            let _ = writeln!(out, "deleted {}", a.user.id);
        }
        UsersCommand::GrantAdmin { user } | UsersCommand::RevokeAdmin { user } => {
            let grant = matches!(action, UsersCommand::GrantAdmin { .. });
            let a = find(&ops, user).await?;
            ops.set_admin(a.user.id, grant).await.map_err(message)?;
            let done = if grant { "granted" } else { "revoked" };
            let _ = writeln!(out, "{done} admin: {}", a.user.email);
        }
    }
    Ok(out)
}

async fn find(ops: &Operations<'_>, user: &str) -> Result<Account, Box<dyn std::error::Error>> {
    ops.admin()
        .lookup(user)
        .await?
        .ok_or_else(|| format!("no user {user:?}").into())
}

fn row(out: &mut String, a: &Account) {
    let _ = writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}",
        a.user.id,
        a.user.email,
        a.user.display_name,
        if a.is_admin { "admin" } else { "-" },
        a.blocked_at
            .map_or("-".to_owned(), |t| format!("blocked {t}")),
        a.user.created_at
    );
}

fn message(r: Refused) -> Box<dyn std::error::Error> {
    match r {
        Refused::NotFound => "no such user".into(),
        Refused::OwnAccount => "not allowed on one's own account".into(),
        Refused::Core(e) => Box::new(e),
    }
}
