//! File names inside the PKI directory (`clusters/<c>/ssl/`), kubeasz-like.
//!
//! Every certificate `STEM` is written as `STEM.pem` with its key in `STEM-key.pem`.
//! Roles and templates should refer to these constants rather than spelling names.

/// CA certificate.
pub const CA_CERT: &str = "ca.pem";
/// CA private key.
pub const CA_KEY: &str = "ca-key.pem";
/// CA stem.
pub const CA: &str = "ca";

/// Cluster admin client cert (CN admin, O system:masters), used by `kubectl.kubeconfig`.
pub const ADMIN: &str = "admin";
/// kube-controller-manager client cert.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// kube-scheduler client cert.
pub const SCHEDULER: &str = "kube-scheduler";
/// kube-proxy client cert.
pub const KUBE_PROXY: &str = "kube-proxy";
/// etcd server + peer cert (also usable as an etcd client, as in kubeasz).
pub const ETCD: &str = "etcd";
/// kube-apiserver serving cert.
pub const APISERVER: &str = "kubernetes";
/// kube-apiserver's client cert towards etcd (`--etcd-certfile`).
pub const APISERVER_ETCD_CLIENT: &str = "apiserver-etcd-client";
/// kube-apiserver's client cert towards kubelets (`--kubelet-client-certificate`).
pub const APISERVER_KUBELET_CLIENT: &str = "apiserver-kubelet-client";
/// Aggregation layer front-proxy client cert (`--proxy-client-cert-file`), CN aggregator.
pub const AGGREGATOR: &str = "aggregator-proxy";
/// calico's etcd client cert.
pub const CALICO: &str = "calico";
/// Private registry (harbor) serving cert, only when a registry is given.
pub const REGISTRY: &str = "registry";

/// Service-account signing key (PKCS#8 PEM, ECDSA P-256):
/// `--service-account-signing-key-file` / controller-manager `--service-account-private-key-file`.
pub const SA_KEY: &str = "sa.key";
/// Service-account public key (PEM): apiserver `--service-account-key-file`.
/// During a rotation it also holds the other key's public half.
pub const SA_PUB: &str = "sa.pub";
/// During a CA rotation ([`crate::rotation`]): the next CA, before it signs.
pub const CA_NEXT_CERT: &str = "ca-next.pem";
/// The next CA's key.
pub const CA_NEXT_KEY: &str = "ca-next-key.pem";
/// The next service-account key.
pub const SA_NEXT_KEY: &str = "sa-next.key";
/// The other service-account public key trusted during a rotation (the
/// next one, then the previous one); appended to `sa.pub`.
pub const SA_PUB_EXTRA: &str = "sa-extra.pub";
/// The previous CA, trusted (in the `ca.pem` bundle) until the rotation ends.
pub const CA_PREVIOUS_CERT: &str = "ca-previous.pem";
/// The CA that signs, alone: the first certificate of `ca.pem` (the same
/// file outside a rotation). kube-controller-manager's
/// `--cluster-signing-cert-file` takes exactly one certificate: given the
/// bundle it exits ("expected 1 certificate, found 2") as soon as it leads.
pub const CA_SIGNER_CERT: &str = "ca-signer.pem";

/// Admin kubeconfig, server = ex-lb VIP if any, else the first master.
pub const KUBECTL_KUBECONFIG: &str = "kubectl.kubeconfig";
/// kube-controller-manager kubeconfig (server = local kube-lb).
pub const CONTROLLER_MANAGER_KUBECONFIG: &str = "kube-controller-manager.kubeconfig";
/// kube-scheduler kubeconfig (server = local kube-lb).
pub const SCHEDULER_KUBECONFIG: &str = "kube-scheduler.kubeconfig";
/// kube-proxy kubeconfig (server = local kube-lb).
pub const KUBE_PROXY_KUBECONFIG: &str = "kube-proxy.kubeconfig";

/// Sub-directory for user kubeconfigs (`kcfg-adm`).
pub const USERS_DIR: &str = "users";

/// Prefix of per-node kubelet files.
pub const KUBELET_PREFIX: &str = "kubelet-";

/// Certificate file for a stem: `STEM.pem`.
pub fn cert_file(stem: &str) -> String {
    format!("{stem}.pem")
}

/// Key file for a stem: `STEM-key.pem`.
pub fn key_file(stem: &str) -> String {
    format!("{stem}-key.pem")
}

/// Stem of a node's kubelet cert: `kubelet-<node>`.
pub fn kubelet(node: &str) -> String {
    format!("{KUBELET_PREFIX}{node}")
}

/// A node's kubelet kubeconfig: `kubelet-<node>.kubeconfig` (server = local kube-lb).
pub fn kubelet_kubeconfig(node: &str) -> String {
    format!("{KUBELET_PREFIX}{node}.kubeconfig")
}

/// A user's kubeconfig, relative to the PKI directory: `users/<name>.kubeconfig`.
pub fn user_kubeconfig(name: &str) -> String {
    format!("{USERS_DIR}/{name}.kubeconfig")
}
