//! What every stand-in binary does before its own work: parse flags,
//! answer `--version`/`--help`, check the files it was pointed at.

use crate::flags::{FlagSet, Flags};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Errors in a component's start-up inputs; they name the flag and path.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("--{0} is required")]
    MissingFlag(&'static str),
    #[error("--{flag}: cannot read {path}: {source}")]
    Unreadable {
        flag: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--{flag}={value}: {reason}")]
    BadValue {
        flag: String,
        value: String,
        reason: String,
    },
}

/// A flag's value, or an error naming the flag.
pub fn required<'a>(flags: &'a Flags, flag: &'static str) -> Result<&'a str, StartupError> {
    flags
        .get(flag)
        .filter(|v| !v.is_empty())
        .ok_or(StartupError::MissingFlag(flag))
}

/// Checks that a file can be opened for reading.
pub fn readable(flag: &str, path: &str) -> Result<PathBuf, StartupError> {
    let p = PathBuf::from(path);
    std::fs::File::open(&p).map_err(|source| StartupError::Unreadable {
        flag: flag.to_string(),
        path: p.clone(),
        source,
    })?;
    Ok(p)
}

/// A required flag naming a readable file.
pub fn required_file(flags: &Flags, flag: &'static str) -> Result<PathBuf, StartupError> {
    readable(flag, required(flags, flag)?)
}

/// Every one of these flags that is set must name a readable file.
pub fn optional_files(flags: &Flags, names: &[&str]) -> Result<(), StartupError> {
    for n in names {
        if let Some(v) = flags.get(n).filter(|v| !v.is_empty()) {
            readable(n, v)?;
        }
    }
    Ok(())
}

/// Parses a numeric flag with a default.
pub fn number<T: std::str::FromStr>(
    flags: &Flags,
    flag: &str,
    default: T,
) -> Result<T, StartupError> {
    match flags.get(flag) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| StartupError::BadValue {
            flag: flag.into(),
            value: v.into(),
            reason: "not a number".into(),
        }),
    }
}

/// A path relative to `base`'s folder unless absolute (config files name
/// other files relative to themselves).
pub fn relative_to(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Runs a component: parses `std::env::args`, handles `--version` and
/// `--help`, then runs `body` on a tokio runtime. Errors print like the
/// real binaries (`Error: ...`) and exit 1.
pub fn main<F, Fut>(set: &FlagSet, body: F) -> ExitCode
where
    F: FnOnce(Flags) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let flags = match set.parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e}");
            eprintln!("Run '{} --help' for usage.", set.component);
            return ExitCode::from(1);
        }
    };
    if let Some(v) = &flags.version {
        if v == "raw" {
            println!(
                "{}",
                serde_json::json!({"major": "1", "gitVersion": crate::version::current()})
            );
        } else {
            println!("Kubernetes {}", crate::version::current());
        }
        return ExitCode::SUCCESS;
    }
    if flags.bool("help") {
        print!("{}", set.usage());
        return ExitCode::SUCCESS;
    }
    crate::klog::set_verbosity(flags.verbosity());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: starting runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(body(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::error!("{e:#}");
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Parses a `host:port` bind address.
pub fn socket_addr(flag: &str, value: &str) -> Result<std::net::SocketAddr, StartupError> {
    value.parse().map_err(|_| StartupError::BadValue {
        flag: flag.into(),
        value: value.into(),
        reason: "not an address:port".into(),
    })
}

/// Joins an IP and a port, bracketing IPv6.
pub fn join_host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_name_flag_and_path() {
        let set = FlagSet {
            component: "x",
            values: &["kubeconfig"],
            bools: &[],
        };
        let f = set.parse(["--kubeconfig=/nonexistent/kc"]).unwrap();
        let e = required_file(&f, "kubeconfig").unwrap_err().to_string();
        assert!(
            e.contains("--kubeconfig") && e.contains("/nonexistent/kc"),
            "{e}"
        );
        let f = set.parse(Vec::<String>::new()).unwrap();
        assert_eq!(
            required_file(&f, "kubeconfig").unwrap_err().to_string(),
            "--kubeconfig is required"
        );
        assert!(optional_files(&f, &["kubeconfig"]).is_ok());
    }

    #[test]
    fn helpers() {
        assert_eq!(join_host_port("::1", 1), "[::1]:1");
        assert_eq!(
            relative_to(Path::new("/a/b.yaml"), "c.pem"),
            PathBuf::from("/a/c.pem")
        );
        assert_eq!(
            relative_to(Path::new("/a/b.yaml"), "/c.pem"),
            PathBuf::from("/c.pem")
        );
    }
}
