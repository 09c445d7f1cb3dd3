//! kubelet stand-in (TEST-ONLY, see the ez-standins README).
fn main() -> std::process::ExitCode {
    ez_standins::component::main(&ez_standins::kubelet::FLAGS, ez_standins::kubelet::run)
}
