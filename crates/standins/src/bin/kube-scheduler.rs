//! kube-scheduler stand-in (TEST-ONLY, see the ez-standins README).
fn main() -> std::process::ExitCode {
    ez_standins::component::main(&ez_standins::scheduler::FLAGS, ez_standins::scheduler::run)
}
