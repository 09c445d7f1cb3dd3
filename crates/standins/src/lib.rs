//! ez-standins: TEST-ONLY stand-ins for the Kubernetes server binaries.
//!
//! Kubernetes server binaries cannot be downloaded where ezctl's
//! end-to-end tests run, so these small programs take their place. They
//! are never installed by ezctl unless a test asks for them. They keep the
//! parts of the real contract that a provisioner can get wrong: flag names,
//! certificate chains and SANs, client-certificate identities, kubeconfig
//! contents, etcd TLS, the REST API that kubectl drives, node registration
//! and health ports. See README.md for what is simplified.

pub mod apiserver;
pub mod component;
pub mod controller_manager;
pub mod etcd;
pub mod flags;
pub mod http;
pub mod klog;
pub mod kube_proxy;
pub mod kubeconfig;
pub mod kubelet;
pub mod leader;
pub mod protowire;
pub mod scheduler;
pub mod serving;
pub mod tls;
pub mod version;
pub mod yaml;
