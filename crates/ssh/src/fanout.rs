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

/// Sessions keyed by [`HostSpec::name`], connected on first use and reused
/// for the run; a jump host is a pooled host too, so targets behind one
/// bastion share its connection. Cheap to clone.
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
    pub async fn session(&self, host: &HostSpec) -> Result<Session, SshError> {
        let cell = {
            let mut map = self
                .inner
                .sessions
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let entry = map.entry(host.name.clone()).or_default();
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
