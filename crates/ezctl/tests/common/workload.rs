//! The workload probe of the day-2 tests: a Deployment spread over the nodes
//! behind a NodePort Service (with a PodDisruptionBudget, as a careful
//! operator would run it), and a client on the controller that asks it for
//! a page every 0.2 s through an operation. Operators judge a day-2 command
//! by what this client sees: how many requests failed, and the longest time
//! without an answer.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{text, Env};

/// How often the client asks, and how long one request may take. A request
/// answered late is slow, not lost: slowness is what the longest gap
/// reports (and the upgrade bounds it under 2 s). 1 s was too tight for the
/// lab's 2 shared cores running two clusters: in a CI rehearsal one request
/// of 1 136 during add-etcd got its connection at once and its answer after
/// more than 1 s (`read: Resource temporarily unavailable`, longest gap
/// 1.69 s). A refused, reset or unanswered request still fails.
const EVERY: Duration = Duration::from_millis(200);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The Deployment: `replicas` pods spread over the nodes, each answering
/// with its own name; a readiness probe so only serving pods get traffic;
/// a preStop pause so a pod being drained keeps serving until kube-proxy
/// has taken it out of the Service (upstream's advice for graceful drains);
/// a budget that lets a drain take one pod at a time.
fn manifest(name: &str, replicas: usize) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: {name}, namespace: default }}
spec:
  replicas: {replicas}
  selector: {{ matchLabels: {{ app: {name} }} }}
  template:
    metadata: {{ labels: {{ app: {name} }} }}
    spec:
      terminationGracePeriodSeconds: 15
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector: {{ matchLabels: {{ app: {name} }} }}
      containers:
      - name: web
        image: docker.io/library/busybox:1.35.0
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{{ containerPort: 8080 }}]
        readinessProbe: {{ httpGet: {{ path: /, port: 8080 }}, periodSeconds: 1 }}
        lifecycle: {{ preStop: {{ exec: {{ command: ["sleep", "5"] }} }} }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{ name: {name}, namespace: default }}
spec:
  maxUnavailable: 1
  selector: {{ matchLabels: {{ app: {name} }} }}
---
apiVersion: v1
kind: Service
metadata: {{ name: {name}, namespace: default }}
spec:
  type: NodePort
  selector: {{ app: {name} }}
  ports: [{{ port: 80, targetPort: 8080 }}]
"#
    )
}

/// A deployed probe workload.
pub struct Workload {
    pub name: String,
    pub node_port: u16,
}

impl Workload {
    /// Applies the workload through `master` and waits until every replica
    /// is available.
    pub fn deploy(env: &Env, master: &str, name: &str, replicas: usize) -> Workload {
        let file = env.home.join(format!("{name}-workload.yml"));
        std::fs::write(&file, manifest(name, replicas)).expect("write workload manifest");
        let file = file.to_string_lossy().into_owned();
        let out = env.kubectl(master, &["apply", "-f", &file]);
        assert!(out.status.success(), "apply {name}: {}", text(&out));
        let out = env.kubectl(
            master,
            &[
                "rollout",
                "status",
                &format!("deployment/{name}"),
                "--timeout=180s",
            ],
        );
        assert!(
            out.status.success(),
            "workload {name} did not roll out: {}\n{}",
            text(&out),
            text(&env.kubectl(master, &["get", "pods", "-o", "wide"]))
        );
        let out = env.kubectl(
            master,
            &[
                "get",
                "service",
                name,
                "-o",
                "jsonpath={.spec.ports[0].nodePort}",
            ],
        );
        let node_port = text(&out)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("node port of {name}: {}", text(&out)));
        Workload {
            name: name.to_string(),
            node_port,
        }
    }

    /// Starts polling the NodePort on `targets`, one after the other, every
    /// 0.2 s. Choose targets that stay in the cluster through the operation:
    /// a client pointed at a removed node fails however good the tool is.
    pub fn probe(&self, targets: &[String]) -> Probe {
        assert!(!targets.is_empty(), "the probe needs at least one target");
        let addrs: Vec<SocketAddr> = targets
            .iter()
            .map(|ip| {
                format!("{ip}:{}", self.node_port)
                    .parse()
                    .expect("target address")
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicBool::new(false));
        let (flag, seen) = (stop.clone(), answered.clone());
        let handle = std::thread::spawn(move || poll(&addrs, &flag, &seen));
        // The report only means something if the client could get answers
        // before the operation started: wait (bounded) for the first one.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answered.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline && !handle.is_finished(),
                "the probe of {} got no answer from {targets:?} in 30 s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Probe {
            name: self.name.clone(),
            stop,
            handle: Some(handle),
        }
    }
}

/// One GET; Ok with the first line of the answer when it is a 200.
fn request(addr: &SocketAddr) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(addr, REQUEST_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| format!("socket: {e}"))?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or("");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    if status.split_whitespace().nth(1) == Some("200") && !body.is_empty() {
        Ok(())
    } else {
        Err(format!("answer {status:?}"))
    }
}

fn poll(addrs: &[SocketAddr], stop: &AtomicBool, answered: &AtomicBool) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let mut last_ok: Option<Instant> = None;
    let mut next = 0;
    while !stop.load(Ordering::SeqCst) {
        let tick = Instant::now();
        let addr = &addrs[next % addrs.len()];
        next += 1;
        let result = request(addr);
        // Before the first answer the operation has not started yet (see
        // `Workload::probe`): only requests from then on are counted.
        if last_ok.is_some() || result.is_ok() {
            report.requests += 1;
        }
        match result {
            Ok(()) => {
                if let Some(prev) = last_ok {
                    report.longest_gap = report.longest_gap.max(prev.elapsed());
                } else {
                    report.first_answer = Some(started.elapsed());
                    answered.store(true, Ordering::SeqCst);
                }
                last_ok = Some(Instant::now());
            }
            Err(_) if last_ok.is_none() => {}
            Err(e) => {
                report.failed += 1;
                if report.failures.len() < 10 {
                    report.failures.push(format!(
                        "{:.1}s {addr}: {e}",
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
        }
        if let Some(rest) = EVERY.checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    if let Some(prev) = last_ok {
        report.longest_gap = report.longest_gap.max(prev.elapsed());
    }
    report.duration = started.elapsed();
    report
}

/// A running probe; [`Probe::finish`] stops it and returns its report.
pub struct Probe {
    name: String,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Report>>,
}

impl Probe {
    /// Stops the client and prints its report (kept in the test output).
    pub fn finish(mut self, during: &str) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let report = self
            .handle
            .take()
            .expect("probe thread")
            .join()
            .expect("probe thread panicked");
        eprintln!("workload probe {} during {during}: {report}", self.name);
        assert!(
            report.first_answer.is_some(),
            "the probe never got an answer during {during}: {report}"
        );
        report
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What the client saw.
#[derive(Debug, Default)]
pub struct Report {
    pub requests: usize,
    pub failed: usize,
    /// The longest time between two answers (or from the last answer to
    /// the end).
    pub longest_gap: Duration,
    /// When the first answer came, from the start.
    pub first_answer: Option<Duration>,
    pub duration: Duration,
    /// The first few failures: when, where, what.
    pub failures: Vec<String>,
}

impl Report {
    pub fn failed_ratio(&self) -> f64 {
        if self.requests == 0 {
            1.0
        } else {
            self.failed as f64 / self.requests as f64
        }
    }

    /// No request failed (and there were requests).
    pub fn assert_no_failures(&self, during: &str) {
        assert!(self.requests > 0, "no requests during {during}");
        assert_eq!(self.failed, 0, "failed requests during {during}: {self}");
    }

    /// The longest gap and the failed share stay within bounds.
    pub fn assert_within(&self, during: &str, max_gap: Duration, max_failed_ratio: f64) {
        assert!(self.requests > 0, "no requests during {during}");
        assert!(
            self.longest_gap < max_gap && self.failed_ratio() <= max_failed_ratio,
            "during {during}: longest gap must stay under {max_gap:?} and failures at most {:.1} %: {self}",
            max_failed_ratio * 100.0
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests over {:.1} s, {} failed ({:.2} %), longest gap {:.2} s",
            self.requests,
            self.duration.as_secs_f64(),
            self.failed,
            self.failed_ratio() * 100.0,
            self.longest_gap.as_secs_f64()
        )?;
        for failure in &self.failures {
            write!(f, "\n  {failure}")?;
        }
        Ok(())
    }
}
