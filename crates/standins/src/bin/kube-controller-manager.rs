//! kube-controller-manager stand-in (TEST-ONLY, see the ez-standins README).
fn main() -> std::process::ExitCode {
    ez_standins::component::main(
        &ez_standins::controller_manager::FLAGS,
        ez_standins::controller_manager::run,
    )
}
