//! The few URL shapes the stand-ins meet: `https://host:port[/...]`.

/// A parsed server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    /// Host without brackets (`127.0.0.1`, `::1`, `kubernetes`).
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `host:port`, bracketing IPv6.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Errors parsing a URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid URL {url:?}: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

/// Parses `http[s]://host[:port][/path]`; the path is ignored.
pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
    let err = |reason| UrlError {
        url: url.to_string(),
        reason,
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(err("scheme must be http or https"));
    };
    let hostport = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or_else(|| err("unclosed ["))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(err("missing host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| err("bad port"))?,
        None if tls => 443,
        None => 80,
    };
    Ok(Endpoint {
        tls,
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            parse("https://127.0.0.1:6443").unwrap(),
            Endpoint {
                tls: true,
                host: "127.0.0.1".into(),
                port: 6443
            }
        );
        let e = parse("https://[::1]:2379/x").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 2379));
        assert_eq!(e.authority(), "[::1]:2379");
        assert_eq!(parse("http://h").unwrap().port, 80);
        assert!(parse("ftp://h").is_err());
        assert!(parse("https://h:notaport").is_err());
    }
}
