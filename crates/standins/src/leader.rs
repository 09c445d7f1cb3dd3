//! Leader election on a coordination.k8s.io Lease, as the real
//! controller-manager and scheduler do with --leader-elect.

use crate::kubeconfig::KubeClient;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Lease duration; renew well before it runs out.
pub const LEASE_SECONDS: i64 = 15;

fn micro_time(t: OffsetDateTime) -> String {
    let s = t.format(&Rfc3339).unwrap_or_default();
    // MicroTime: RFC 3339 with exactly 6 fractional digits.
    match s.split_once('.') {
        Some((head, _)) => format!("{head}.{:06}Z", t.microsecond()),
        None => format!("{}.{:06}Z", s.trim_end_matches('Z'), t.microsecond()),
    }
}

/// Whether `lease` may be taken by `me` at `now`.
pub fn can_take(lease: &Value, me: &str, now: OffsetDateTime) -> bool {
    let spec = &lease["spec"];
    let holder = spec["holderIdentity"].as_str().unwrap_or("");
    if holder.is_empty() || holder == me {
        return true;
    }
    let renewed = spec["renewTime"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let dur = spec["leaseDurationSeconds"]
        .as_i64()
        .unwrap_or(LEASE_SECONDS);
    match renewed {
        Some(r) => (now - r).whole_seconds() > dur,
        None => true,
    }
}

/// Tries once to acquire or renew the lease; true when we hold it.
pub async fn try_acquire(client: &KubeClient, name: &str, me: &str) -> bool {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}");
    let now = OffsetDateTime::now_utc();
    let stamp = micro_time(now);
    match client.get(&path).await {
        Ok(None) => {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-system"},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": LEASE_SECONDS,
                         "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0},
            });
            client
                .create(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
                    &lease,
                )
                .await
                .is_ok()
        }
        Ok(Some(mut lease)) => {
            if !can_take(&lease, me, now) {
                return false;
            }
            let was_mine = lease["spec"]["holderIdentity"].as_str() == Some(me);
            if !was_mine {
                let t = lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0);
                lease["spec"]["leaseTransitions"] = json!(t + 1);
                lease["spec"]["acquireTime"] = json!(stamp);
            }
            lease["spec"]["holderIdentity"] = json!(me);
            lease["spec"]["renewTime"] = json!(stamp);
            lease["spec"]["leaseDurationSeconds"] = json!(LEASE_SECONDS);
            // resourceVersion in the body makes this a compare-and-swap.
            client.update(&path, &lease).await.is_ok()
        }
        Err(e) => {
            crate::error!("error retrieving resource lock kube-system/{name}: {e}");
            false
        }
    }
}

/// A holder identity like the real one: hostname + random suffix.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{}", host.trim(), crate::apiserver::rest::uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_rules() {
        let now = OffsetDateTime::now_utc();
        let fresh = json!({"spec": {"holderIdentity": "other", "renewTime": micro_time(now), "leaseDurationSeconds": 15}});
        assert!(!can_take(&fresh, "me", now));
        assert!(can_take(&fresh, "other", now));
        let later = now + time::Duration::seconds(20);
        assert!(can_take(&fresh, "me", later));
        assert!(can_take(&json!({"spec": {}}), "me", now));
        assert!(micro_time(now).ends_with('Z'));
        assert!(OffsetDateTime::parse(&micro_time(now), &Rfc3339).is_ok());
    }
}
