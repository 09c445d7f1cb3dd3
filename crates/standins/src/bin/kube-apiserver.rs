//! kube-apiserver stand-in (TEST-ONLY, see the ez-standins README).
fn main() -> std::process::ExitCode {
    ez_standins::component::main(&ez_standins::apiserver::FLAGS, ez_standins::apiserver::run)
}
