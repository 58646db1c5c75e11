//! The `ctihost` binary: parses arguments, loads config, wires parts, waits.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.log_json, args.default_log_level());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    rt.block_on(cli::dispatch(args))
}
