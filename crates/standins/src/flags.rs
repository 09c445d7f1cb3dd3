//! Command-line flags in the style of the real components (spf13/pflag):
//! `--flag=value`, `--flag value`, bare booleans, `--flag=false`,
//! underscores normalised to dashes, unknown flags rejected.

use std::collections::BTreeMap;

/// The flags one component accepts.
pub struct FlagSet {
    /// Component name, used in messages (`kube-apiserver`).
    pub component: &'static str,
    /// Flags that take a value.
    pub values: &'static [&'static str],
    /// Boolean flags (`--x`, `--x=true`, `--x=false`).
    pub bools: &'static [&'static str],
}

/// Flags every component has (klog, version, help).
const COMMON_VALUES: &[&str] = &["v", "vmodule", "log-flush-frequency", "feature-gates"];
const COMMON_BOOLS: &[&str] = &["help"];

/// Why a command line was refused; the Display text matches what the real
/// binaries print after `Error: `.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    #[error("unknown flag: --{0}")]
    Unknown(String),
    #[error("unknown shorthand flag: '{0}' in -{0}")]
    UnknownShorthand(String),
    #[error("flag needs an argument: --{0}")]
    MissingValue(String),
    #[error("invalid argument \"{value}\" for \"--{flag}\" flag: strconv.ParseBool: parsing \"{value}\": invalid syntax")]
    BadBool { flag: String, value: String },
    #[error("\"{component}\" does not take any arguments, got {args:?}")]
    Positional {
        component: String,
        args: Vec<String>,
    },
}

/// What the command line asked for.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    values: BTreeMap<String, String>,
    /// `--version` was given (the value is `true` or `raw`).
    pub version: Option<String>,
}

impl Flags {
    /// The value of a flag, the last one when repeated.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A flag's value or a default.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// A boolean flag: true when given bare or as `=true`.
    pub fn bool(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }

    /// Whether the flag appeared on the command line at all.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Verbosity from `--v`/`-v`, 0 when absent or not a number.
    pub fn verbosity(&self) -> u8 {
        self.get("v").and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

fn parse_bool(flag: &str, value: &str) -> Result<String, FlagError> {
    // Go's strconv.ParseBool spellings.
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok("true".into()),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok("false".into()),
        _ => Err(FlagError::BadBool {
            flag: flag.into(),
            value: value.into(),
        }),
    }
}

impl FlagSet {
    fn is_value(&self, name: &str) -> bool {
        self.values.contains(&name) || COMMON_VALUES.contains(&name)
    }

    fn is_bool(&self, name: &str) -> bool {
        self.bools.contains(&name) || COMMON_BOOLS.contains(&name)
    }

    /// Parses arguments (without the program name).
    pub fn parse<I, S>(&self, args: I) -> Result<Flags, FlagError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out = Flags::default();
        let mut positional = Vec::new();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let (raw_name, inline) = if let Some(long) = arg.strip_prefix("--") {
                if long.is_empty() {
                    positional.extend(args.by_ref());
                    break;
                }
                match long.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (long.to_string(), None),
                }
            } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
                // Only the shorthands the real components have: -v and -h.
                let (n, v) = match short.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None if short.len() > 1 && short.starts_with('v') => {
                        ("v", Some(short[1..].to_string()))
                    }
                    None => (short, None),
                };
                match n {
                    "v" => ("v".to_string(), v),
                    "h" => ("help".to_string(), v),
                    other => return Err(FlagError::UnknownShorthand(other.to_string())),
                }
            } else {
                positional.push(arg);
                continue;
            };
            let name = raw_name.replace('_', "-");
            if name == "version" {
                // pflag "version" is a tri-state: bare, =true/false, =raw.
                let v = inline.unwrap_or_else(|| "true".into());
                let v = if v == "raw" {
                    v
                } else {
                    parse_bool(&name, &v)?
                };
                out.version = (v != "false").then_some(v);
            } else if self.is_bool(&name) {
                let v = match inline {
                    Some(v) => parse_bool(&name, &v)?,
                    None => "true".into(),
                };
                out.values.insert(name, v);
            } else if self.is_value(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => args
                        .next()
                        .ok_or_else(|| FlagError::MissingValue(name.clone()))?,
                };
                out.values.insert(name, v);
            } else {
                return Err(FlagError::Unknown(name));
            }
        }
        if !positional.is_empty() {
            return Err(FlagError::Positional {
                component: self.component.into(),
                args: positional,
            });
        }
        Ok(out)
    }

    /// A short usage text listing the accepted flags.
    pub fn usage(&self) -> String {
        let mut names: Vec<&str> = self
            .values
            .iter()
            .chain(COMMON_VALUES)
            .chain(self.bools)
            .chain(COMMON_BOOLS)
            .copied()
            .collect();
        names.push("version");
        names.sort_unstable();
        let mut s = format!(
            "{} (ezctl test stand-in, not the real binary)\n\nUsage:\n  {} [flags]\n\nFlags:\n",
            self.component, self.component
        );
        for n in names {
            s.push_str("      --");
            s.push_str(n);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: FlagSet = FlagSet {
        component: "kube-test",
        values: &["etcd-servers", "secure-port"],
        bools: &["allow-privileged", "leader-elect"],
    };

    #[test]
    fn accepts_both_value_styles_and_booleans() {
        let f = SET
            .parse([
                "--etcd-servers=https://a:2379",
                "--secure-port",
                "6443",
                "--allow-privileged",
                "--leader-elect=false",
                "--v=2",
            ])
            .unwrap();
        assert_eq!(f.get("etcd-servers"), Some("https://a:2379"));
        assert_eq!(f.get("secure-port"), Some("6443"));
        assert!(f.bool("allow-privileged"));
        assert!(!f.bool("leader-elect"));
        assert!(f.is_set("leader-elect"));
        assert_eq!(f.verbosity(), 2);
        assert_eq!(f.version, None);
    }

    #[test]
    fn normalises_underscores_and_shorthand_v() {
        let f = SET.parse(["--secure_port=1", "-v", "4"]).unwrap();
        assert_eq!(f.get("secure-port"), Some("1"));
        assert_eq!(f.verbosity(), 4);
        assert_eq!(SET.parse(["-v3"]).unwrap().verbosity(), 3);
    }

    #[test]
    fn rejects_unknown_missing_and_positional() {
        let e = SET.parse(["--foo"]).unwrap_err();
        assert_eq!(e.to_string(), "unknown flag: --foo");
        assert_eq!(
            SET.parse(["--secure-port"]).unwrap_err(),
            FlagError::MissingValue("secure-port".into())
        );
        // `--bool false` leaves "false" as an argument, like pflag.
        assert!(matches!(
            SET.parse(["--leader-elect", "false"]).unwrap_err(),
            FlagError::Positional { .. }
        ));
        assert!(matches!(
            SET.parse(["--leader-elect=maybe"]).unwrap_err(),
            FlagError::BadBool { .. }
        ));
        assert!(matches!(
            SET.parse(["-x"]).unwrap_err(),
            FlagError::UnknownShorthand(_)
        ));
    }

    #[test]
    fn version_forms() {
        assert_eq!(
            SET.parse(["--version"]).unwrap().version.as_deref(),
            Some("true")
        );
        assert_eq!(
            SET.parse(["--version=raw"]).unwrap().version.as_deref(),
            Some("raw")
        );
        assert_eq!(SET.parse(["--version=false"]).unwrap().version, None);
    }
}
