//! The `ctihost` binary: parses arguments, loads config, wires parts, waits.

mod cli;

use clap::Parser;

// glibc's allocator fragments under the host's churn (a SIP transaction's
// messages, a call's record, sled's pages): in the soak its RSS grew by
// 11 MiB a minute while the live heap stayed flat. jemalloc returns freed
// pages to the system on a decay timer.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // Freed pages go back to the system on jemalloc's own threads, on
    // time, rather than only when an allocating thread happens to check:
    // without them the soak's resident memory grew about 2 MiB a minute
    // over its live heap (pages freed but kept).
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: jemalloc background threads not started: {e}");
    }
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
