//! Turning a caller's command into the exact string sent in the SSH exec
//! request: environment exports, and the sudo wrapper for non-root users.

use crate::host::Sudo;
use crate::secret::Secret;

/// POSIX single-quote `s` so the shell takes it literally.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Environment variable names we accept: what `export` takes without surprises.
pub(crate) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `export K='v'; ` prefixes. Exported inside the script (not as SSH env
/// requests) because sshd only accepts AcceptEnv names and sudo resets the
/// environment; inside the script both are irrelevant.
pub(crate) fn with_env(cmd: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in env {
        out.push_str("export ");
        out.push_str(k);
        out.push('=');
        out.push_str(&shell_quote(v));
        out.push_str("; ");
    }
    out.push_str(cmd);
    out
}

/// The command line and the bytes to put on stdin before the caller's own.
pub(crate) struct Wrapped {
    pub command: String,
    pub stdin_prefix: Vec<u8>,
}

/// Run `script` as root through sudo, or as is when `sudo` is `None`.
///
/// With a password, sudo reads it from stdin (`-S`, empty prompt) and `-k`
/// makes it always ask, so the password line is always consumed by sudo.
/// As a second guard the script first reads lines up to a random marker: if
/// sudo did not ask after all (NOPASSWD policy), the password line is
/// swallowed there and never reaches the command's stdin.
pub(crate) fn wrap_sudo(script: &str, sudo: &Sudo, marker: &str) -> Wrapped {
    match sudo {
        Sudo::None => Wrapped {
            command: script.to_string(),
            stdin_prefix: Vec::new(),
        },
        Sudo::Passwordless => Wrapped {
            command: format!("sudo -n -- sh -c {}", shell_quote(script)),
            stdin_prefix: Vec::new(),
        },
        Sudo::Password(secret) => password_wrapped(script, secret, marker),
    }
}

fn password_wrapped(script: &str, secret: &Secret, marker: &str) -> Wrapped {
    // `read` in sh consumes exactly one line from a pipe, so the command
    // still gets the caller's stdin untouched after the marker.
    let guarded = format!(
        "IFS= read -r __ez_l; [ \"$__ez_l\" = {m} ] || IFS= read -r __ez_l; unset __ez_l; {script}",
        m = shell_quote(marker)
    );
    let mut stdin_prefix = Vec::with_capacity(secret.expose().len() + marker.len() + 2);
    stdin_prefix.extend_from_slice(secret.expose().as_bytes());
    stdin_prefix.push(b'\n');
    stdin_prefix.extend_from_slice(marker.as_bytes());
    stdin_prefix.push(b'\n');
    Wrapped {
        command: format!("sudo -k -S -p '' -- sh -c {}", shell_quote(&guarded)),
        stdin_prefix,
    }
}

/// A fresh marker line: long and random, so no password equals it.
pub(crate) fn random_marker() -> String {
    let mut bytes = [0u8; 16];
    // getrandom failing means no entropy source at all; a time-based marker
    // still differs from any sane password.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&nanos.to_le_bytes());
    }
    format!("--ezctl-stdin-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a command string through a real local `sh`, to prove the quoting.
    fn sh(cmd: &str, stdin: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin).expect("write stdin");
        }
        let out = child.wait_with_output().expect("sh finishes");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn quoting_survives_a_real_shell() {
        let nasty = "it's $HOME `id` \"q\" \\ \n; rm -rf /";
        assert_eq!(sh(&format!("printf %s {}", shell_quote(nasty)), b""), nasty);
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn env_names_and_values() {
        assert!(valid_env_name("A_1") && valid_env_name("_x"));
        assert!(!valid_env_name("1A") && !valid_env_name("A-B") && !valid_env_name(""));
        let cmd = with_env(
            "echo \"$A|$B\"",
            &[("A".into(), "x y".into()), ("B".into(), "'q'".into())],
        );
        assert_eq!(sh(&cmd, b""), "x y|'q'\n");
    }

    #[test]
    fn sudo_forms() {
        let w = wrap_sudo("id -u", &Sudo::None, "m");
        assert_eq!(w.command, "id -u");
        let w = wrap_sudo("id -u", &Sudo::Passwordless, "m");
        assert_eq!(w.command, "sudo -n -- sh -c 'id -u'");
        let w = wrap_sudo("id -u", &Sudo::Password(Secret::new("pw")), "MARK");
        assert!(
            w.command.starts_with("sudo -k -S -p '' -- sh -c "),
            "{}",
            w.command
        );
        assert!(
            !w.command.contains("pw "),
            "password never on the command line"
        );
        assert_eq!(w.stdin_prefix, b"pw\nMARK\n");
    }

    #[test]
    fn marker_guard_swallows_an_unconsumed_password() {
        // Simulate sudo NOT reading the password: the guard must drop it and
        // hand the command only the caller's stdin.
        let w = wrap_sudo("cat", &Sudo::Password(Secret::new("s3cret")), "MARK");
        let inner = w.command.trim_start_matches("sudo -k -S -p '' -- ");
        let mut stdin = w.stdin_prefix.clone();
        stdin.extend_from_slice(b"payload\n");
        assert_eq!(sh(inner, &stdin), "payload\n");
        // And when sudo did consume the password line:
        assert_eq!(sh(inner, b"MARK\npayload\n"), "payload\n");
    }

    #[test]
    fn markers_differ() {
        assert_ne!(random_marker(), random_marker());
    }
}
