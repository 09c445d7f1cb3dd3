//! ez-lab: a local lab of real machines for ezctl's end-to-end tests.
//!
//! Each machine is a systemd-nspawn container booting real systemd and sshd
//! on an overlay of one cached Debian rootfs, in its own network namespace
//! bridged to the controller. See `lab` for the on-disk layout, `net` for
//! addressing, `layout` for the cluster roles written to `hosts.yml`, and
//! `testing` for the per-test-binary shared lab, `image` for container
//! images built without Docker (`ezlab image build`), and `light` for labs
//! of light hosts (netns + private mounts + sshd, no systemd) for scale.
//!
//! ```no_run
//! use ez_lab::{Lab, LabSpec};
//! let lab = Lab::up(LabSpec::new("demo", 3))?;
//! for h in lab.hosts() {
//!     let out = lab.ssh_run(h.index, "hostname", std::time::Duration::from_secs(10))?;
//!     assert_eq!(out.stdout.trim(), h.hostname);
//! }
//! lab.down()?;
//! # Ok::<(), ez_lab::LabError>(())
//! ```

mod cgroup;
pub mod cluster_files;
pub mod cmd;
pub mod doctor;
mod error;
mod fsutil;
pub mod image;
mod image_tar;
mod lab;
pub mod layout;
pub mod light;
mod lookup;
mod machine;
pub mod net;
mod process;
pub mod rootfs;
pub mod ssh_client;
mod state;
mod teardown;
pub mod testing;

pub use error::{LabError, Result};
pub use lab::{
    default_home, status, validate_name, Host, Lab, LabSpec, LabStatus, DEFAULT_CACHE_DIR,
    DEFAULT_HOME, DEFAULT_STATE_ROOT,
};
pub use layout::{Layout, Role};
pub use lookup::find_machine;
pub use teardown::{down_by_name, leftovers};
