//! `standin-set-version IN OUT vX.Y.Z`: copies a stand-in binary with its
//! reported Kubernetes version changed (for upgrade tests).
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, version] = args.as_slice() else {
        eprintln!("usage: standin-set-version IN OUT vX.Y.Z");
        return ExitCode::from(2);
    };
    match ez_standins::version::patch_binary(Path::new(input), Path::new(output), version) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
