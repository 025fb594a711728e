//! Configuration is parsed, not trusted (issue 10, finding 8): the real binary, as
//! an operator starts it.

use std::process::Command;

use crate::helpers::*;

/// Runs the binary with `env` and no other DOORMAN_* settings; returns its exit
/// code and standard error. A bad value stops it before it binds or opens a database.
fn start_with(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_doorman"));
    cmd.current_dir(dir.path())
        .env_clear()
        .env("DOORMAN_BIND", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/c.db?mode=rwc", dir.path().display()),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    // `openapi` parses the whole configuration, prints the spec and exits without
    // serving, so no server is ever left running.
    let out = cmd.arg("openapi").output().expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn nonsense_settings_stop_the_server_with_one_line_naming_the_variable() {
    for (name, value) in [
        ("DOORMAN_PUBLIC_URL", "auth.example.org"),
        ("DOORMAN_PUBLIC_URL", "https://example.org/auth"),
        ("DOORMAN_ALLOWED_ORIGINS", "*"),
        ("DOORMAN_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("DOORMAN_ACCESS_TTL_SECONDS", "ten"),
        ("DOORMAN_ACCESS_TTL_SECONDS", "0"),
        ("DOORMAN_SWEEP_SECONDS", "-1"),
        ("DOORMAN_HEADER_TIMEOUT_SECONDS", "NaN"),
        ("DOORMAN_LOGIN_PER_MINUTE", "0"),
        ("DOORMAN_HASH_THREADS", "0"),
        ("DOORMAN_HASH_THREADS", "1000"),
        ("DATABASE_URL", "mysql://root:hunter2@db/x"),
        // Values that parse but would overflow dates or clocks, or switch a defence off.
        ("DOORMAN_SESSION_TTL_SECONDS", "1e12"),
        ("DOORMAN_HEADER_TIMEOUT_SECONDS", "1e19"),
        ("DOORMAN_REFRESH_REUSE_GRACE_SECONDS", "1e15"),
        ("DOORMAN_TRUSTED_PROXIES", "0.0.0.0/0"),
        ("DOORMAN_TRUSTED_PROXIES", "::/0"),
    ] {
        let (code, stderr) = start_with(&[(name, value)]);
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}={value}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("doorman: {name} (")),
            "{stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "a database password was echoed"
        );
    }
    // Fractions are fine.
    let (code, stderr) = start_with(&[("DOORMAN_WS_HEARTBEAT_SECONDS", "0.5")]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn an_upper_case_https_public_url_still_gets_secure_prefixed_cookies() {
    let app = spawn_with(|c| {
        c.public_url = Some("HTTPS://Auth.Example.ORG:443/".parse().unwrap());
    })
    .await;
    let email = app.new_user().await;
    let resp = app.login_cookie_mode(&email, PASSWORD).await;
    let lines = set_cookie_lines(&resp);
    let access = lines
        .iter()
        .find(|l| l.starts_with("__Host-doorman_access="))
        .expect("the __Host- cookie");
    assert!(access.contains("Secure"), "{access}");
    // The issuer is the normalised URL.
    let tokens = app.login_tokens(&email).await;
    let claims = tokens.access.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "https://auth.example.org");
}

/// `--help` names every setting's environment variable but prints none of their
/// values (issue 31, item 14): `DATABASE_URL` may carry a password.
#[test]
fn help_never_prints_a_value_from_the_environment() {
    use clap::CommandFactory;
    let names: Vec<String> = doorman::Config::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "DATABASE_URL"), "{names:?}");
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["serve", "--help"],
        &["keys", "--help"],
        &["help", "keys", "rotate"],
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_doorman"));
        cmd.env_clear();
        for name in &names {
            cmd.env(name, format!("secret-of-{name}"));
        }
        cmd.env(
            "DATABASE_URL",
            "postgres://doorman:hunter2@db.invalid/doorman",
        );
        let out = cmd.args(args).output().expect("the binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
        assert!(
            !text.contains("hunter2"),
            "{args:?} printed the password:\n{text}"
        );
        assert!(
            !text.contains("secret-of-"),
            "{args:?} printed a value:\n{text}"
        );
        if args == ["--help"] {
            // The variables themselves are still documented.
            for name in &names {
                assert!(text.contains(name.as_str()), "{name} missing from --help");
            }
        }
    }
}
