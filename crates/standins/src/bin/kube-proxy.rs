//! kube-proxy stand-in (TEST-ONLY, see the ez-standins README).
fn main() -> std::process::ExitCode {
    ez_standins::component::main(
        &ez_standins::kube_proxy::FLAGS,
        ez_standins::kube_proxy::run,
    )
}
