//! ez-bench: measures ezctl against its peers on lab machines — the same
//! work, alternating runs, figures only from what was measured in the run.
//!
//! The library holds the parts with logic worth testing on their own; the
//! `ezbench` binary (src/main.rs, src/app/) brings labs up and down and
//! drives the runs.
//!
//! | module | what |
//! |---|---|
//! | [`measure`] | run a tool: wall, CPU and peak RSS from `wait4`, lab CPU from its cgroup |
//! | [`stats`] | min / median / ratio |
//! | [`events`] | `ezctl --json` events: success, changes, unit spans |
//! | [`critical`] | critical path of a run over the plan's edges |
//! | [`plan_edges`] | the plan's edges, built like `ezctl setup` builds its plan |
//! | [`ansible`] | pinned ansible-core venv, config, inventory, PLAY RECAP |
//! | [`exec_work`] | issue 3's executor benchmark: OpenSSH loop vs ez-ssh |
//! | [`payload`] | the random files every workload uploads |
//! | [`report`] | the printed table |
//! | [`growth`] | the growth table: medians per N and the marginal cost per added host |

pub mod ansible;
pub mod critical;
pub mod events;
pub mod exec_work;
pub mod growth;
pub mod measure;
pub mod payload;
pub mod plan_edges;
pub mod report;
pub mod stats;
