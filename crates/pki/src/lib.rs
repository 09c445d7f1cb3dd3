//! ez-pki: the cluster PKI, generated in-process (no cfssl).
//!
//! Input is a plain [`PkiSpec`] (ezctl converts its inventory `Cluster` into it);
//! output is a directory (`clusters/<c>/ssl/`) of kubeasz-like files, named in
//! [`names`]:
//!
//! | item | subject | SANs | usage |
//! |---|---|---|---|
//! | `ca.pem` | CN kubernetes-ca, O k8s | | CA:true, keyCertSign, cRLSign |
//! | `admin.pem` | CN admin, O system:masters | | client |
//! | `kube-controller-manager.pem` | CN = O = system:kube-controller-manager | | client |
//! | `kube-scheduler.pem` | CN = O = system:kube-scheduler | | client |
//! | `kube-proxy.pem` | CN system:kube-proxy | | client |
//! | `etcd.pem` | CN etcd | etcd IPs, 127.0.0.1, localhost | server + client |
//! | `kubernetes.pem` | CN kubernetes | 127.0.0.1, masters, API service IP, ex-lb VIP, MASTER_CERT_HOSTS, `kubernetes[.default[.svc[.<domain>]]]` | server |
//! | `apiserver-etcd-client.pem` | CN kube-apiserver-etcd-client, O system:masters | | client |
//! | `apiserver-kubelet-client.pem` | CN kube-apiserver-kubelet-client, O system:masters | | client |
//! | `aggregator-proxy.pem` | CN aggregator | | client |
//! | `calico.pem` | CN calico | | client |
//! | `kubelet-<node>.pem` | CN `system:node:<node>`, O system:nodes | node IP, node name | server + client |
//! | `registry.pem` (if any) | CN `<domain>` | domain, IP | server |
//! | `sa.key` / `sa.pub` | service-account signing key pair (ECDSA P-256, PEM) | | |
//!
//! Every key is ECDSA P-256 (PKCS#8 PEM, `<stem>-key.pem`, mode 0600); leaf usages are
//! digitalSignature + keyEncipherment. Kubeconfigs: `kubectl.kubeconfig` (admin, server =
//! ex-lb VIP or first master), `kube-controller-manager`, `kube-scheduler`, `kube-proxy`
//! and `kubelet-<node>` (server `https://127.0.0.1:SECURE_PORT`, the local kube-lb).
//!
//! Entry points: [`ensure`] (idempotent), [`renew_all`] (`kca-renew`), [`user_add`] /
//! [`user_list`] / [`user_delete`] (`kcfg-adm`), [`parse_expiry`].

#![warn(missing_docs)]

mod certs;
mod ensure;
mod error;
mod expiry;
mod fsutil;
mod kubeconfig;
pub mod names;
pub mod rotation;
mod spec;
mod users;

pub use certs::{CA_CN, CA_ORG, SYSTEM_MASTERS, SYSTEM_NODES};
#[doc(hidden)]
pub use ensure::ensure_at;
pub use ensure::{ensure, plan, renew_all, Renewal, Report};
pub use error::{Error, Result};
pub use expiry::{parse_expiry, ExpiryError};
pub use spec::{https_url, ExLb, NodeCert, PkiSpec, RegistryCert};
pub use users::{user_add, user_delete, user_list, Role, UserInfo, ADMIN_GROUP, VIEW_GROUP};
