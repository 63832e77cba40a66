//! OCI lifecycle hooks: each runs with the container state JSON on stdin, only the
//! hook's own `env`, and its `timeout` (seconds) enforced by SIGKILL.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// A hook that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// Could not start it.
    #[error("{phase} hook {path}: cannot run it: {source}")]
    Spawn {
        /// Phase (prestart, …).
        phase: &'static str,
        /// The hook.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Non-zero exit.
    #[error("{phase} hook {path} failed ({status}){output}")]
    Failed {
        /// Phase.
        phase: &'static str,
        /// The hook.
        path: String,
        /// Exit status.
        status: ExitStatus,
        /// Its stderr/stdout, prefixed with ": " when not empty.
        output: String,
    },
    /// Ran past its timeout.
    #[error("{phase} hook {path} did not finish within its timeout of {secs} s and was killed")]
    Timeout {
        /// Phase.
        phase: &'static str,
        /// The hook.
        path: String,
        /// The timeout.
        secs: i64,
    },
}

/// Runs `hooks` in order; stops at the first failure.
pub fn run_all(phase: &'static str, hooks: &[Hook], state_json: &str) -> Result<(), HookError> {
    hooks.iter().try_for_each(|h| run(phase, h, state_json))
}

fn run(phase: &'static str, hook: &Hook, state_json: &str) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let mut cmd = Command::new(hook.path());
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(<[String]>::split_first) {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Output goes to a temp file, not a pipe: a hook that leaves a daemon holding the pipe
    // open must not block us.
    let mut out = tempfile().map_err(|source| HookError::Spawn { phase, path: path.clone(), source })?;
    let out_clone = out.try_clone().map_err(|source| HookError::Spawn { phase, path: path.clone(), source })?;
    let out_clone2 = out.try_clone().map_err(|source| HookError::Spawn { phase, path: path.clone(), source })?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::from(out_clone)).stderr(Stdio::from(out_clone2));
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn { phase, path: path.clone(), source })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin; EPIPE is not its failure.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let deadline =
        hook.timeout().filter(|t| *t > 0).map(|t| (t, Instant::now() + Duration::from_secs(t.unsigned_abs())));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => return Err(HookError::Spawn { phase, path, source }),
        }
        if let Some((secs, at)) = deadline {
            if Instant::now() >= at {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout { phase, path, secs });
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    use std::io::Seek;
    let _ = out.seek(io::SeekFrom::Start(0));
    let _ = out.take(4096).read_to_string(&mut text);
    let text = text.trim();
    let output = if text.is_empty() { String::new() } else { format!(": {text}") };
    Err(HookError::Failed { phase, path, status, output })
}

/// An anonymous temp file (O_TMPFILE in /tmp, unlinked fallback).
fn tempfile() -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    let file = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).open(&dir);
    file.or_else(|_| {
        let path = dir.join(format!(".tender-oci-hook-{}", std::process::id()));
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_and_its_env() {
        let h = hook(
            r#"{"path":"/bin/sh","args":["sh","-c","read s; [ \"$s\" = '{\"id\":\"x\"}' ] && [ \"$K\" = v ]"],"env":["K=v"]}"#,
        );
        run_all("prestart", &[h], "{\"id\":\"x\"}\n").unwrap();
    }

    #[test]
    fn failures_name_the_hook_and_show_its_output() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo no network for you >&2; exit 3"]}"#);
        let e = run_all("prestart", &[h], "{}").unwrap_err().to_string();
        assert!(e.contains("prestart hook /bin/sh failed"), "{e}");
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(e.contains("no network for you"), "{e}");
        let e = run_all("poststop", &[hook(r#"{"path":"/nonexistent/hook"}"#)], "{}").unwrap_err().to_string();
        assert!(e.contains("poststop hook /nonexistent/hook: cannot run it"), "{e}");
    }

    #[test]
    fn timeouts_kill_the_hook() {
        let h = hook(r#"{"path":"/bin/sleep","args":["sleep","30"],"timeout":1}"#);
        let e = run_all("createRuntime", &[h], "{}").unwrap_err();
        assert!(matches!(e, HookError::Timeout { secs: 1, .. }), "{e}");
    }
}
