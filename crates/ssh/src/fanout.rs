//! Many hosts at once: a [`Pool`] keeps one session per host for the whole
//! run, and [`fan_out`] runs a closure on every host with a concurrency
//! limit, streaming results as they finish so one slow or dead host never
//! holds back the report of the others.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, OnceCell, Semaphore};

use crate::connect::connect_through;
use crate::error::SshError;
use crate::host::{HostSpec, SshOptions};
use crate::session::Session;

/// Default number of hosts worked on at once.
pub const DEFAULT_FAN_OUT: usize = 64;

/// Sessions keyed by who logs in where and through which hops (user,
/// address, port, jump chain: [`pool_key`]), connected on first use and
/// reused for the run; a jump host is a pooled host too, so targets behind
/// one bastion share its connection. Keying by name alone let the first
/// connection to a bastion serve every later one, whatever its user, and a
/// host that was its own bastion waited for itself forever. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    opts: SshOptions,
    connecting: Semaphore,
    sessions: Mutex<HashMap<String, Arc<OnceCell<Session>>>>,
}

impl Pool {
    /// A pool connecting at most [`DEFAULT_FAN_OUT`] hosts at the same time.
    pub fn new(opts: SshOptions) -> Self {
        Self::with_connect_limit(opts, DEFAULT_FAN_OUT)
    }

    pub fn with_connect_limit(opts: SshOptions, limit: usize) -> Self {
        Pool {
            inner: Arc::new(PoolInner {
                opts,
                connecting: Semaphore::new(limit.max(1)),
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn options(&self) -> &SshOptions {
        &self.inner.opts
    }

    /// The session for `host`, connecting if there is none or the previous
    /// one died. Concurrent callers for the same host share one connect.
    /// A jump chain that passes through the same address twice (a host that
    /// is its own bastion) is refused.
    pub async fn session(&self, host: &HostSpec) -> Result<Session, SshError> {
        if let Some(hop) = jump_loop(host) {
            return Err(SshError::InvalidInput {
                host: host.name.clone(),
                message: format!(
                    "the jump chain reaches {hop} twice: a host cannot be reached through itself"
                ),
            });
        }
        let cell = {
            let mut map = self
                .inner
                .sessions
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let entry = map.entry(pool_key(host)).or_default();
            if entry.get().is_some_and(Session::is_closed) {
                *entry = Arc::default();
            }
            entry.clone()
        };
        cell.get_or_try_init(|| async {
            // The bastion is itself a pooled host: many targets behind it
            // share one connection. Resolved before taking a connect slot,
            // so targets waiting on their bastion cannot starve it of slots.
            let jump = match host.jump.as_deref() {
                Some(j) => Some(Box::pin(self.session(j)).await?),
                None => None,
            };
            let _permit =
                self.inner
                    .connecting
                    .acquire()
                    .await
                    .map_err(|_| SshError::Disconnected {
                        host: host.name.clone(),
                        op: "connect (pool closed)".into(),
                    })?;
            connect_through(host, &self.inner.opts, jump).await
        })
        .await
        .cloned()
    }

    /// Sessions currently held.
    pub fn sessions(&self) -> Vec<Session> {
        let map = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        map.values().filter_map(|c| c.get().cloned()).collect()
    }

    /// Disconnect every session and forget them.
    pub async fn close_all(&self) {
        let sessions = self.sessions();
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clear();
        for s in sessions {
            s.close().await;
        }
    }
}

/// `user@address:port`, then ` via user@address:port` for each jump hop:
/// what makes two specs the same connection.
pub fn pool_key(spec: &HostSpec) -> String {
    let mut key = format!("{}@{}:{}", spec.user(), spec.addr, spec.port());
    let mut hop = spec.jump.as_deref();
    while let Some(h) = hop {
        key.push_str(&format!(" via {}@{}:{}", h.user(), h.addr, h.port()));
        hop = h.jump.as_deref();
    }
    key
}

/// The first `address:port` that a host's jump chain reaches twice.
fn jump_loop(spec: &HostSpec) -> Option<String> {
    let mut seen = Vec::new();
    let mut hop = Some(spec);
    while let Some(h) = hop {
        let at = format!("{}:{}", h.addr, h.port());
        if seen.contains(&at) {
            return Some(at);
        }
        seen.push(at);
        hop = h.jump.as_deref();
    }
    None
}

/// One host's result from [`fan_out`].
#[derive(Debug)]
pub struct HostResult<T> {
    pub host: String,
    pub result: Result<T, SshError>,
    /// Connect (if needed) plus the work.
    pub elapsed: Duration,
}

/// Run `work` on each host's session, at most `limit` hosts at a time.
/// Results arrive on the returned channel in completion order; it closes
/// after the last host. Must be called inside a tokio runtime. A host whose
/// `work` panics sends no result.
///
/// ```no_run
/// # async fn demo(pool: ez_ssh::Pool, hosts: Vec<ez_ssh::HostSpec>) {
/// let mut results = ez_ssh::fan_out(&pool, hosts, 64, |s| async move {
///     s.exec_ok("uname -r", Default::default()).await.map(|o| o.stdout_str())
/// });
/// while let Some(r) = results.recv().await {
///     println!("{}: {:?}", r.host, r.result);
/// }
/// # }
/// ```
pub fn fan_out<T, F, Fut>(
    pool: &Pool,
    hosts: Vec<HostSpec>,
    limit: usize,
    work: F,
) -> mpsc::Receiver<HostResult<T>>
where
    T: Send + 'static,
    F: Fn(Session) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, SshError>> + Send + 'static,
{
    // Room for every result: a slow consumer never stalls a host task.
    let (tx, rx) = mpsc::channel(hosts.len().max(1));
    let limit = Arc::new(Semaphore::new(limit.max(1)));
    let work = Arc::new(work);
    for host in hosts {
        let (tx, limit, work, pool) = (tx.clone(), limit.clone(), work.clone(), pool.clone());
        tokio::spawn(async move {
            let Ok(_permit) = limit.acquire_owned().await else {
                return;
            };
            let started = Instant::now();
            let result = match pool.session(&host).await {
                Ok(session) => work(session).await,
                Err(e) => Err(e),
            };
            let _ = tx
                .send(HostResult {
                    host: host.name,
                    result,
                    elapsed: started.elapsed(),
                })
                .await;
        });
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(user: &str, addr: &str, port: u16) -> HostSpec {
        let mut h = HostSpec::new(addr);
        h.user = Some(user.into());
        h.port = Some(port);
        h
    }

    #[test]
    fn the_pool_key_is_user_address_port_and_jump_chain() {
        let mut a = spec("root", "10.0.0.1", 22);
        let mut b = spec("ops", "10.0.0.1", 22);
        // Same name, other user: not the same connection.
        a.name = "bastion".into();
        b.name = "bastion".into();
        assert_ne!(pool_key(&a), pool_key(&b));
        assert_ne!(pool_key(&a), pool_key(&spec("root", "10.0.0.1", 2222)));
        let mut via = spec("root", "10.0.0.2", 22);
        assert_eq!(pool_key(&via), "root@10.0.0.2:22");
        via.jump = Some(Box::new(b.clone()));
        assert_eq!(pool_key(&via), "root@10.0.0.2:22 via ops@10.0.0.1:22");
        let mut other = via.clone();
        other.jump = Some(Box::new(a));
        assert_ne!(pool_key(&via), pool_key(&other));
    }

    #[tokio::test]
    async fn a_host_that_jumps_through_itself_is_refused_at_once() {
        let pool = Pool::new(SshOptions {
            known_hosts: Vec::new(),
            use_agent: false,
            ..SshOptions::default()
        });
        let mut host = spec("root", "127.0.0.1", 1);
        host.jump = Some(Box::new(spec("ops", "127.0.0.1", 1)));
        let err = tokio::time::timeout(Duration::from_secs(5), pool.session(&host))
            .await
            .expect("refused, not waiting for itself")
            .expect_err("a loop");
        assert!(matches!(err, SshError::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("through itself"), "{err}");
        // A longer loop too.
        let mut mid = spec("root", "127.0.0.2", 22);
        mid.jump = Some(Box::new(spec("root", "127.0.0.1", 1)));
        host.jump = Some(Box::new(mid));
        assert!(jump_loop(&host).is_some());
        host.jump = None;
        assert!(jump_loop(&host).is_none());
    }
}
