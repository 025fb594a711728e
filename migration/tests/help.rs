//! The migration CLI never prints a secret from the environment (issue 31, item 14):
//! sea-orm-migration's own `--help` shows `DATABASE_URL`'s value, password included.

use std::process::Command;

const PASSWORD: &str = "hunter2-not-for-help";

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_migration"))
        .args(args)
        .env(
            "DATABASE_URL",
            format!("postgres://doorman:{PASSWORD}@db.invalid/doorman"),
        )
        .env("DATABASE_SCHEMA", "public")
        .output()
        .expect("the migration binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn help_and_usage_errors_never_print_the_database_password() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["up", "--help"],
        &["help", "up"],
        &["status", "-h"],
        &["fresh", "--help"],
        &["--no-such-flag"],
        &["up", "--num", "many"],
    ] {
        let (code, text) = run(args);
        assert!(code.is_some(), "{args:?}: killed by a signal");
        // The help is really there: the variable is named, its value is not.
        if args.contains(&"--help") || args.contains(&"-h") || args[0] == "help" {
            assert_eq!(code, Some(0), "{args:?}: {text}");
            assert!(text.contains("DATABASE_URL"), "{args:?}: {text}");
        } else {
            assert_eq!(code, Some(2), "{args:?}: {text}");
        }
        assert!(
            !text.contains(PASSWORD),
            "{args:?} printed the password:\n{text}"
        );
        assert!(
            !text.contains("db.invalid"),
            "{args:?} printed the URL:\n{text}"
        );
    }
}
